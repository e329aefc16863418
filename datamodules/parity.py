"""Parity of bit strings (colab "Playing with parity").

x in {0,1}^n, label x_1 xor ... xor x_n. The strings of the three splits are distinct,
so the test set measures generalisation to unseen strings, not memory.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, first_occurrences, split_counts
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
    out = np.zeros((0, n), dtype=np.uint8)
    while len(out) < count:  # collisions are rare for n > 24; redraw the shortfall
        fresh = rng.integers(0, 2, size=(count - len(out) + 16, n), dtype=np.uint8)
        out = np.concatenate([out, fresh])
        out = out[first_occurrences(out)]
    return out[:count]


@register_dataset("parity")
class Parity(MathDataModule):
    """Parity of an n-bit string (binary); distinct strings across splits."""

    version = "1"
    smoke_params = {"n": 8, "n_train": 128, "n_val": 32, "n_test": 64}

    def __init__(self, n: int = 16, n_train: int = 5000, n_val: int = 1000,
                 n_test: int = 2000, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 2, 4096, dataset="parity")
        for key, value in (("n_train", n_train), ("n_val", n_val), ("n_test", n_test)):
            check_range(key, value, 1, 10_000_000, dataset="parity")
        total = n_train + n_val + n_test
        if n < 63 and total > 2**n:
            raise UserError(f"dataset 'parity': n={n} has only {2**n} distinct strings, "
                            f"fewer than n_train+n_val+n_test={total}; raise n or shrink "
                            "the splits")
        self.save_hyperparameters()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        bits = distinct_bit_strings(self.rng(), p["n"], sum(sizes.values()))
        y = parity_labels(bits)
        return {s: {"bits": torch.from_numpy(bits[sl]), "y": torch.from_numpy(y[sl]).float()}
                for s, sl in split_counts(sizes).items()}

    def build_spec(self) -> DatasetSpec:
        n = self.params["n"]
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=(ViewSpec(Modality.SEQUENCE, (n,), vocab_size=3),
                   ViewSpec(Modality.VECTOR, (n,))),
            description=f"xor of {n} random bits", params=self.params)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        if modality is Modality.SEQUENCE:
            return raw["bits"].long() + 1  # tokens 1, 2; 0 is padding
        return raw["bits"].float()
