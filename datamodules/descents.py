"""Descent sets of permutations (colab "Classifying descents in S_n"; Williamson 2024, 5.2).

s a uniformly random permutation of {1..n}; label its descent set {i : s(i) > s(i+1)} as
n-1 bits (multi-label). side=left takes the descents of the inverse (i+1 stands before
i). The encoding (one-line values or the permutation matrix) is part of the identity,
because it decides what is learnable. Ground truth (relevant_inputs): right descent i reads
positions i and i+1 (rows i and i+1 of the matrix); left descent i reads where values i+1
and i+2 stand (per row in one-line notation; columns i and i+1 of the matrix).
"""

from __future__ import annotations

import math
from typing import Literal

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


def descent_set(perms: np.ndarray, side: str = "right") -> np.ndarray:
    """Descent indicator bits (rows of length n-1) of permutations in one-line notation.

    perms: (N, n) with values 1..n. Right descent at i: s(i) > s(i+1). Left descent at
    i: the right descent of the inverse, i.e. value i+1 stands before value i.
    """
    if side == "left":  # one-line notation of the inverse: inv[s(i) - 1] = i (a scatter, not a sort)
        n = perms.shape[1]
        inv = np.empty_like(perms)
        values = np.broadcast_to(np.arange(1, n + 1, dtype=perms.dtype), perms.shape)
        np.put_along_axis(inv, perms.astype(np.intp) - 1, values, axis=1)
        perms = inv
    return (perms[:, :-1] > perms[:, 1:]).astype(np.uint8)


def all_permutations(n: int) -> np.ndarray:
    """Every permutation of 1..n as rows (n! x n, int8), built by inserting k into every
    position of each permutation of 1..k-1: k copies of an array per step, no Python loop
    over permutations (S_10's 3,628,800 rows in well under a second)."""
    perms = np.ones((1, 1), dtype=np.int8)
    for k in range(2, n + 1):
        m = len(perms)
        out = np.empty((k, m, k), dtype=np.int8)
        for p in range(k):  # k is placed at position p
            out[p, :, :p] = perms[:, :p]
            out[p, :, p] = k
            out[p, :, p + 1:] = perms[:, p:]
        perms = out.reshape(k * m, k)
    return perms


def random_permutations(rng: np.random.Generator, n: int, count: int) -> np.ndarray:
    """`count` distinct uniformly random permutations of 1..n (rows, one-line notation)."""
    return distinct_rows(
        lambda short: np.argsort(rng.random((short + 16, n)), axis=1).astype(np.int16) + 1,
        count)


GROUND_TRUTH = {
    ("right", "oneline"): "descent i depends on positions i and i+1 only",
    ("left", "oneline"): "left descent i depends on the positions of values i and i+1 only "
                         "(different in each row)",
    ("right", "matrix"): "descent i depends on rows i and i+1 of the permutation matrix only",
    ("left", "matrix"): "left descent i depends on columns i and i+1 of the permutation "
                        "matrix only",
}


@register_dataset("descents")
class Descents(MathDataModule):
    """Descent set of a random permutation of S_n (multi-label, exact-set accuracy)."""

    version = "1"
    smoke_params = {"n": 7, "n_train": 256, "n_val": 64, "n_test": 64}

    def __init__(self, n: int = 10, side: Literal["right", "left"] = "right",
                 encoding: Literal["oneline", "matrix"] = "oneline", n_train: int = 20000,
                 n_val: int = 2000, n_test: int = 5000, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 3, 128, dataset="descents")
        check_split_sizes("descents", n_train, n_val, n_test)
        total = n_train + n_val + n_test
        if n <= 12 and total > math.factorial(n) // 2:
            raise UserError(f"dataset 'descents': S_{n} has {math.factorial(n)} permutations; "
                            f"n_train+n_val+n_test={total} must be at most half of them")
        self.save_hyperparameters()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        perms = random_permutations(self.rng(), p["n"], sum(sizes.values()))
        y = descent_set(perms, p["side"])
        return {s: {"perm": torch.from_numpy(perms[sl]),
                    "y": torch.from_numpy(y[sl]).float()}
                for s, sl in split_counts(sizes).items()}

    def build_spec(self) -> DatasetSpec:
        n, side, enc = self.params["n"], self.params["side"], self.params["encoding"]
        if enc == "oneline":
            views = (ViewSpec(Modality.SEQUENCE, (n,), vocab_size=n + 1),
                     ViewSpec(Modality.VECTOR, (n,)))
        else:
            views = (ViewSpec(Modality.IMAGE, (1, n, n)), ViewSpec(Modality.VECTOR, (n * n,)))
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTILABEL, num_outputs=n - 1,
            metric="exact_match", views=views, params=self.params,
            description=f"{side} descent set of a permutation of S_{n}, {enc} encoding",
            ground_truth=GROUND_TRUTH[side, enc])

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """Output i (0-based; the descent at i+1 in 1-based notation) against the inputs it
        is a function of. Right: s(i) > s(i+1), so positions i and i+1, the same for every
        row (1, n-1, ...). Left: value i+2 stands before value i+1, so the positions holding
        those values, which differ per row (N, n-1, n) in one-line notation; in the matrix
        (row = position, column = value - 1) they are columns i and i+1, fixed per output."""
        n, side, enc = self.params["n"], self.params["side"], self.params["encoding"]
        modality = Modality(modality)
        if modality not in self.spec.modalities:
            return None
        out = torch.arange(n - 1)
        if enc == "oneline":
            if side == "right":
                mask = torch.zeros(1, n - 1, n, dtype=torch.bool)
                mask[0, out, out] = mask[0, out, out + 1] = True
                return mask
            perm = self._raw_split(split)["perm"].long()
            where = torch.argsort(perm, dim=1)  # where[r, v - 1]: position of value v
            mask = torch.zeros(len(perm), n - 1, n, dtype=torch.bool)
            rows = torch.arange(len(perm))[:, None]
            mask[rows, out, where[:, :-1]] = mask[rows, out, where[:, 1:]] = True
            return mask
        grid = torch.zeros(1, n - 1, 1, n, n, dtype=torch.bool)
        if side == "right":
            grid[0, out, 0, out, :] = grid[0, out, 0, out + 1, :] = True
        else:
            grid[0, out, 0, :, out] = grid[0, out, 0, :, out + 1] = True
        # the vector view is the flattened matrix (make_view: matrix.flatten(1))
        return grid if modality is Modality.IMAGE else grid.reshape(1, n - 1, n * n)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        perm = raw["perm"].long()
        n = perm.shape[1]
        if modality is Modality.SEQUENCE:
            return perm  # values 1..n are the tokens; 0 stays the padding token
        if self.params["encoding"] == "oneline":
            return perm.float() / n
        matrix = torch.nn.functional.one_hot(perm - 1, n).float()  # row i has a 1 at s(i)
        return matrix.unsqueeze(1) if modality is Modality.IMAGE else matrix.flatten(1)
