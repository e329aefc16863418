"""Parity of bit strings (colab "Playing with parity"; Barak et al. 2022 for sparse parity).

parity: x in {0,1}^n, label x_1 xor ... xor x_n. sparse_parity: the xor of a hidden subset
of k of the n bits, the subset fixed by data_seed. Strings are distinct across splits, so
the test set measures generalisation to unseen strings, not memory. parity with ood_n > n
adds an ood_test split of strings of length ood_n (length generalisation). Ground truth
(relevant_inputs): parity depends on every real bit alike, sparse_parity on its k hidden bits.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import (
    MathDataModule,
    check_range,
    check_split_sizes,
    distinct_rows,
    split_counts,
)
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


def parity_labels(bits: np.ndarray) -> np.ndarray:
    """xor of each row of a 0/1 matrix."""
    return (bits.sum(axis=1) % 2).astype(np.int64)


def distinct_bit_strings(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """`count` distinct uniformly random strings of n bits, as a uint8 (count, n) matrix."""
    if n <= 24:  # small cube: sample codes without replacement
        codes = rng.choice(2**n, size=count, replace=False)
        return ((codes[:, None] >> np.arange(n)[::-1]) & 1).astype(np.uint8)
    # collisions are rare for n > 24; redraw the shortfall
    return distinct_rows(
        lambda short: rng.integers(0, 2, size=(short + 16, n), dtype=np.uint8), count)


def longer_bit_strings(rng: np.random.Generator, n: int, ood_n: int, count: int) -> np.ndarray:
    """`count` distinct random strings of ood_n bits with a 1 beyond position n.

    Zero-padding a length-n string gives a length-ood_n string ending in zeros; excluding
    those keeps the OOD rows of the padded vector view distinct from every shorter string.
    """
    def draw(short: int) -> np.ndarray:  # a batch of the same size whatever the shortfall
        fresh = distinct_bit_strings(rng, ood_n, min(2 * count + 16, 2**min(ood_n, 62)))
        return fresh[fresh[:, n:].any(axis=1)]

    return distinct_rows(draw, count)


def check_bit_string_splits(dataset: str, n: int, n_train: int, n_val: int,
                            n_test: int) -> None:
    check_split_sizes(dataset, n_train, n_val, n_test)
    total = n_train + n_val + n_test
    if n < 63 and total > 2**n:
        raise UserError(f"dataset {dataset!r}: n={n} has only {2**n} distinct strings, "
                        f"fewer than n_train+n_val+n_test={total}; raise n or shrink the splits")


class BitStrings(MathDataModule):
    """Shared generation and views of the parity family: distinct strings, padded views."""

    def labels(self, bits: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    @property
    def width(self) -> int:
        """Length of the longest split's strings: every view is padded to it."""
        return max(self.params["n"], self.params.get("ood_n", 0))

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        bits = distinct_bit_strings(self.rng(), p["n"], sum(sizes.values()))
        parts = {s: bits[sl] for s, sl in split_counts(sizes).items()}
        if p.get("ood_n", 0):  # own stream, so the in-distribution splits do not change
            parts["ood_test"] = longer_bit_strings(self.rng(1), p["n"], p["ood_n"], p["n_test"])
        # each split keeps its own length; make_view pads, so the raw data stays small
        return {s: {"bits": torch.from_numpy(b), "y": torch.from_numpy(self.labels(b)).float()}
                for s, b in parts.items()}

    def views(self) -> tuple[ViewSpec, ...]:
        return (ViewSpec(Modality.SEQUENCE, (self.width,), vocab_size=3),
                ViewSpec(Modality.VECTOR, (self.width,)))

    def bit_mask(self, positions: np.ndarray | slice) -> torch.Tensor:
        """(1, 1, width): the same bit positions matter for every row and the one output,
        in both views (a bit is one position of the sequence and one feature of the vector)."""
        mask = torch.zeros(1, 1, self.width, dtype=torch.bool)
        mask[0, 0, positions] = True
        return mask

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        bits = raw["bits"].long()
        pad = self.width - bits.shape[1]
        if modality is Modality.SEQUENCE:  # tokens 1, 2; 0 is padding
            return torch.nn.functional.pad(bits + 1, (0, pad), value=0)
        # zeros do not change a parity, so the padded vector has the same label
        return torch.nn.functional.pad(bits.float(), (0, pad), value=0.0)


@register_dataset("parity")
class Parity(BitStrings):
    """Parity of an n-bit string (binary); ood_n > n adds an OOD split of longer strings."""

    version = "1"
    smoke_params = {"n": 8, "n_train": 128, "n_val": 32, "n_test": 64}

    def __init__(self, n: int = 16, n_train: int = 5000, n_val: int = 1000,
                 n_test: int = 2000, ood_n: int = 0, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 2, 4096, dataset="parity")
        check_bit_string_splits("parity", n, n_train, n_val, n_test)
        check_range("ood_n", ood_n, n + 1, 4096, dataset="parity", zero_means="no OOD split")
        if 0 < ood_n < 63 and 2**ood_n - 2**n < n_test:
            raise UserError(f"dataset 'parity': ood_n={ood_n} has only {2**ood_n - 2**n} "
                            f"strings longer than n={n}, fewer than n_test={n_test}; raise ood_n")
        self.save_hyperparameters()

    def labels(self, bits: np.ndarray) -> np.ndarray:
        return parity_labels(bits)

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """Every real bit of the split (all n, ood_n in the OOD split), not the padding:
        flipping any one of them flips the label."""
        if modality not in (Modality.SEQUENCE, Modality.VECTOR):
            return None
        real = self.params["ood_n"] if split == "ood_test" else self.params["n"]
        return self.bit_mask(slice(0, real))

    def build_spec(self) -> DatasetSpec:
        n, ood_n = self.params["n"], self.params["ood_n"]
        ood = f", OOD test on length {ood_n}" if ood_n else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=self.views(), description=f"xor of {n} random bits{ood}",
            params=self.params, has_ood=bool(ood_n),
            ground_truth="every real bit matters equally (flipping any bit flips the label); "
                         "padding does not matter")


@register_dataset("sparse_parity")
class SparseParity(BitStrings):
    """Parity of a hidden k-subset of n bits (binary); the subset is fixed by data_seed."""

    version = "1"
    smoke_params = {"n": 10, "k": 3, "n_train": 128, "n_val": 32, "n_test": 64}

    def __init__(self, n: int = 30, k: int = 3, n_train: int = 5000, n_val: int = 1000,
                 n_test: int = 2000, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 2, 4096, dataset="sparse_parity")
        check_range("k", k, 1, n, dataset="sparse_parity")
        check_bit_string_splits("sparse_parity", n, n_train, n_val, n_test)
        self.save_hyperparameters()

    def hidden_subset(self) -> np.ndarray:
        """The k bit positions whose xor is the label (sorted); a function of data_seed."""
        p = self.params
        return np.sort(self.rng(2).choice(p["n"], size=p["k"], replace=False))

    def labels(self, bits: np.ndarray) -> np.ndarray:
        return parity_labels(bits[:, self.hidden_subset()])

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """The k hidden bits, the same for every row; no other bit changes the label."""
        if modality not in (Modality.SEQUENCE, Modality.VECTOR):
            return None
        return self.bit_mask(self.hidden_subset())

    def build_spec(self) -> DatasetSpec:
        n, k = self.params["n"], self.params["k"]
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=self.views(), description=f"xor of a hidden subset of {k} of {n} random bits",
            params=self.params,
            # the positions stay out of the spec: model factories read it
            ground_truth=f"the {k} hidden bits (hidden_subset()) and no other")
