"""Partitions and the irreducible representations of S_n (Deep Sets; representation theory).

Input: a partition lambda of n, as the multiset of its parts; every partition of every n in
[n_min, n_max], split at random. Target: log10 f^lambda (regression) or f^lambda mod 2
(binary), where f^lambda = n! / prod of hook lengths is the dimension of the irreducible
representation of S_n indexed by lambda (the number of standard Young tableaux).
ood_n_max > n_max adds an ood_test split of the partitions of n in (n_max, ood_n_max].

On that split log_dim extrapolates in its target, not only its input: log10 f grows with n
(at most 11.1 for n <= 24; two thirds of n = 25..30 lie above that, up to 15.3), so a model
must output values it never saw, and r2 there is relative to the OOD split's own spread;
read mae beside it. Parts above n_max occur only there, as tokens no model has trained on.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch
from sympy.functions.combinatorial.numbers import partition

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_choice, check_range, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


def partitions_of(n: int) -> Iterator[list[int]]:
    """Partitions of n with parts in descending order (Kelleher's accelAsc, reversed)."""
    a = [0] * (n + 1)
    k, a[1], y = 1, n, n - 1
    while k:
        x = a[k - 1] + 1
        k -= 1
        while 2 * x <= y:
            a[k], y, k = x, y - x, k + 1
        ell = k + 1
        while x <= y:
            a[k], a[ell] = x, y
            yield a[ell::-1]
            x, y = x + 1, y - 1
        a[k] = x + y
        y = x + y - 1
        yield a[k::-1]


def partition_count(n: int) -> int:
    """p(n), the number of partitions of n (sympy's partition function)."""
    return int(partition(n))


def all_partitions(n_min: int, n_max: int) -> np.ndarray:
    """Every partition of every n in [n_min, n_max], parts descending, 0-padded to n_max."""
    rows = []
    for n in range(n_min, n_max + 1):
        parts = np.zeros((partition_count(n), n_max), dtype=np.int64)
        for r, lam in enumerate(partitions_of(n)):
            parts[r, :len(lam)] = lam
        rows.append(parts)
    return np.concatenate(rows)


def hook_cells(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row, hook length) of every cell of every diagram; rows hold descending parts, 0-padded.

    hook(i, j) = lambda_i - j + lambda'_j - i - 1, lambda' the conjugate partition. Working on
    the n cells of each diagram, not an n x n grid, keeps the cost linear in n.
    """
    rows, w = parts.shape
    flat = parts.ravel()
    owner = np.repeat(np.arange(rows * w), flat)  # row * w + i, once per cell of row i
    j = np.arange(len(owner)) - np.repeat(np.cumsum(flat) - flat, flat)
    r, i = np.divmod(owner, w)
    mult = np.bincount((np.arange(rows)[:, None] * (w + 1) + parts).ravel(),
                       minlength=rows * (w + 1)).reshape(rows, w + 1)
    at_least = np.cumsum(mult[:, ::-1], axis=1)[:, ::-1]  # number of parts >= v
    return r, parts[r, i] - j + at_least[r, j + 1] - i - 1


def dimension_targets(parts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(log10 f, f mod 2) of each partition, by the hook length formula f = n! / prod hooks.

    The parity is exact without big integers: f is odd iff the 2-adic valuations of n! and
    of the product of hooks agree; v2(n!) = n - popcount(n) (Legendre).
    """
    n = parts.sum(axis=1)
    r, hooks = hook_cells(parts)
    top = int(n.max())
    log_fact = np.array([math.lgamma(k + 1) for k in range(top + 1)])
    v2_fact = np.array([k - bin(k).count("1") for k in range(top + 1)])
    log_hooks = np.bincount(r, weights=np.log(hooks), minlength=len(parts))
    v2_hooks = np.bincount(r, weights=np.log2(hooks & -hooks), minlength=len(parts))
    log_f = (log_fact[n] - log_hooks) / math.log(10)
    return log_f, (np.round(v2_hooks) == v2_fact[n]).astype(np.int64)


@register_dataset("partitions")
class Partitions(MathDataModule):
    """Dimension of the S_n irreducible of a partition: log10 f (regression) or f mod 2."""

    version = "1"
    smoke_params = {"n_min": 1, "n_max": 12}

    def __init__(self, n_min: int = 1, n_max: int = 24,
                 target: Literal["log_dim", "dim_parity"] = "log_dim", val_frac: float = 0.15,
                 test_frac: float = 0.25, ood_n_max: int = 0, n_ood: int = 0,
                 data_seed: int = 0) -> None:
        super().__init__()
        check_range("n_max", n_max, 1, 40, dataset="partitions")  # 215,307 partitions
        check_range("n_min", n_min, 1, n_max, dataset="partitions")
        check_choice("target", target, ("log_dim", "dim_parity"), dataset="partitions")
        check_range("val_frac", val_frac, 0.01, 0.5, dataset="partitions")
        check_range("test_frac", test_frac, 0.01, 0.5, dataset="partitions")
        total = sum(partition_count(n) for n in range(n_min, n_max + 1))
        sizes = self.split_sizes(total, val_frac, test_frac)
        if min(sizes.values()) < 10:
            raise UserError(f"dataset 'partitions': n_min={n_min}..n_max={n_max} gives only "
                            f"{total} partitions, too few to split (sizes {sizes}, each needs "
                            ">= 10); raise n_max")
        check_range("ood_n_max", ood_n_max, n_max + 1, 40, dataset="partitions",
                    zero_means="no OOD split")
        check_range("n_ood", n_ood, 10, 1_000_000, dataset="partitions",
                    zero_means="every partition")
        longer = sum(partition_count(n) for n in range(n_max + 1, ood_n_max + 1))
        if n_ood > longer:  # also catches n_ood without an OOD split (longer = 0)
            raise UserError(f"dataset 'partitions': n_ood={n_ood} exceeds the {longer} "
                            f"partitions of n in ({n_max}, ood_n_max={ood_n_max}]; lower n_ood "
                            "or raise ood_n_max")
        self.save_hyperparameters()

    @staticmethod
    def split_sizes(total: int, val_frac: float, test_frac: float) -> dict[str, int]:
        val, test = round(total * val_frac), round(total * test_frac)
        return {"train": total - val - test, "val": val, "test": test}

    @property
    def width(self) -> int:
        """Longest partition of any split: every view is padded to it."""
        return max(self.params["n_max"], self.params["ood_n_max"])

    def split_arrays(self, parts: np.ndarray) -> dict[str, torch.Tensor]:
        """The raw tensors of one split: its partitions and their targets."""
        log_f, odd = dimension_targets(parts)
        y = log_f if self.params["target"] == "log_dim" else odd
        return {"parts": torch.from_numpy(parts.astype(np.int16)), "y": torch.from_numpy(y).float()}

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        parts = all_partitions(p["n_min"], p["n_max"])
        # a fixed finite set: data_seed decides only which split each partition lands in
        order = self.rng().permutation(len(parts))
        sizes = self.split_sizes(len(parts), p["val_frac"], p["test_frac"])
        out = {s: self.split_arrays(parts[order[sl]]) for s, sl in split_counts(sizes).items()}
        if p["ood_n_max"]:  # each split keeps its own width; make_view pads
            ood = all_partitions(p["n_max"] + 1, p["ood_n_max"])
            if p["n_ood"]:  # own stream, so the in-distribution splits do not change
                ood = ood[np.sort(self.rng(1).choice(len(ood), size=p["n_ood"], replace=False))]
            out["ood_test"] = self.split_arrays(ood)
        return out

    def build_spec(self) -> DatasetSpec:
        p = self.params
        w = self.width
        binary = p["target"] == "dim_parity"
        what = "f^lambda mod 2" if binary else "log10 f^lambda"
        ood = f", OOD test on n up to {p['ood_n_max']}" if p["ood_n_max"] else ""
        return DatasetSpec(
            name=self.name, version=self.version,
            task=TaskType.BINARY if binary else TaskType.REGRESSION, num_outputs=1,
            # odd dimensions are rare (1 in 10 up to n = 24, fewer beyond): accuracy flatters
            metric="f1" if binary else "r2",
            views=(ViewSpec(Modality.SET, (w, 1)),
                   ViewSpec(Modality.SEQUENCE, (w,), vocab_size=w + 1),
                   ViewSpec(Modality.VECTOR, (w,))),
            description=f"{what} for the partitions of {p['n_min']}..{p['n_max']}{ood}",
            params=self.params, has_ood=bool(p["ood_n_max"]))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> object:
        parts = raw["parts"].long()  # descending, padded with 0
        parts = torch.nn.functional.pad(parts, (0, self.width - parts.shape[1]), value=0)
        if modality is Modality.SEQUENCE:
            return parts  # part sizes are the tokens; 0 stays the padding token
        # scaled by n_max, not the width, so the in-distribution inputs do not depend on the
        # OOD setting; OOD parts above n_max come out above 1
        scaled = parts.float() / self.params["n_max"]
        if modality is Modality.SET:
            return {"x": scaled.unsqueeze(-1), "mask": parts > 0}
        return scaled
