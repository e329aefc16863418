"""The Robinson-Schensted correspondence (ACD Repo folder `rsk`, arXiv:2503.06366).

Row insertion of s(1), ..., s(n) builds the insertion tableau P; the recording tableau Q
marks where each step added a cell. s <-> (P, Q) is a bijection from S_n onto the pairs of
standard Young tableaux of equal shape. The task is the ACD's: given (P, Q), predict s as
its inversion set, the C(n,2) bits [s(i) > s(j)] for i < j in lexicographic order.

The universe is all of S_n (n <= 9, the ACD's setting) or n_samples distinct uniform
permutations (needed for n = 10, whose 3.6M rows would not fit in memory with every view).
No OOD split: the number of target bits, C(n,2), changes with n.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, distinct_rows, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

MAX_ALL_N = 9           # all of S_9 (362,880 rows) with every view stays well under 3 GiB
MAX_SAMPLES = 1_000_000  # at n = 10 with every view built, about 2.5 GiB


def permutations_of(n: int) -> np.ndarray:
    """Every permutation of 1..n as int8 rows (insert k at each position of S_{k-1})."""
    perms = np.ones((1, 1), dtype=np.int8)
    for k in range(2, n + 1):
        out = np.empty((k, len(perms), k), dtype=np.int8)
        for p in range(k):
            out[p, :, :p], out[p, :, p], out[p, :, p + 1:] = perms[:, :p], k, perms[:, p:]
        perms = out.reshape(-1, k)
    return perms


def rsk_rows(perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(row of each entry 1..n in P, row of each entry in Q), both (N, n) int8, 0-based.

    The row words determine the tableaux (entries of a row increase left to right), so
    they are the compact form; Schensted row insertion runs on all rows at once, each
    bump on the still-active rows only.
    """
    count, n = perms.shape
    grid = np.zeros((count, n, n), dtype=np.int8)  # P, 0 = empty cell
    length = np.zeros((count, n), dtype=np.int8)    # row lengths of P
    q_rows = np.zeros((count, n), dtype=np.int8)
    for t in range(n):
        act = np.arange(count)
        x = perms[:, t].astype(np.int8)
        for r in range(n):
            row = grid[act, r]
            pos = ((row > 0) & (row < x[:, None])).sum(axis=1)  # first entry above x
            ends = pos == length[act, r]
            done = act[ends]
            grid[done, r, pos[ends]] = x[ends]
            length[done, r] += 1
            q_rows[done, t] = r
            act, pos, x = act[~ends], pos[~ends], x[~ends]
            if not len(act):
                break
            x, grid[act, r, pos] = grid[act, r, pos], x  # x bumps the entry it replaces
    p_rows = np.zeros((count, n + 1), dtype=np.int8)  # column n absorbs the empty cells
    for r in range(n):
        np.put_along_axis(p_rows, np.where(grid[:, r] > 0, grid[:, r] - 1, n).astype(np.intp),
                          np.int8(r), axis=1)
    return p_rows[:, :n], q_rows


def inversion_bits(perms: np.ndarray) -> np.ndarray:
    """[s(i) > s(j)] for i < j in lexicographic order of (i, j), (N, C(n,2)) uint8."""
    i, j = np.triu_indices(perms.shape[1], k=1)  # row-major: (0,1), (0,2), ..., (n-2,n-1)
    return (perms[:, i] > perms[:, j]).astype(np.uint8)


def tableau_cells(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(column of each entry, length of each row) of tableaux given as row words (N, n):
    entries of a row increase left to right, so entry v sits after the earlier entries
    of its row. A loop over the n entries, vectorised over the rows of the batch."""
    count, n = rows.shape
    idx = np.arange(count)
    lengths = np.zeros((count, n), dtype=np.int16)
    col = np.empty((count, n), dtype=np.int16)
    for v in range(n):
        col[:, v] = lengths[idx, rows[:, v]]
        lengths[idx, rows[:, v]] += 1
    return col, lengths


def tableau_grids(rows: np.ndarray) -> np.ndarray:
    """(N, n, n) int8 grids of the entries 1..n (0 = empty cell) from row words (N, n)."""
    count, n = rows.shape
    col, _ = tableau_cells(rows)
    grid = np.zeros((count, n * n), dtype=np.int8)
    entries = np.arange(1, n + 1, dtype=np.int8)[None]
    np.put_along_axis(grid, rows.astype(np.intp) * n + col, entries, axis=1)
    return grid.reshape(count, n, n)


def tableau_tokens(p_rows: np.ndarray, q_rows: np.ndarray) -> np.ndarray:
    """P then Q row by row: entries 1..n, n+1 closes each nonempty row, n+2 separates P
    from Q; 0-padded to 4n+1 (n entries and at most n rows per tableau, one separator).
    Each token's position is computed, not searched: a row starts after the earlier rows
    and their closers."""
    count, n = p_rows.shape
    width = 4 * n + 1
    idx = np.arange(count)[:, None]
    out = np.zeros((count, width + 1), dtype=np.int8)  # the last column takes no-op writes
    start = np.zeros((count, 1), dtype=np.int16)       # where the current tableau begins
    for rows in (p_rows, q_rows):
        col, lengths = tableau_cells(rows)
        span = lengths + (lengths > 0)  # a nonempty row: its entries and a closer
        first = start + np.cumsum(span, axis=1) - span
        out[idx, np.take_along_axis(first, rows.astype(np.intp), axis=1) + col] = \
            np.arange(1, n + 1, dtype=np.int8)
        out[idx, np.where(lengths > 0, first + lengths, width)] = n + 1
        start = start + span.sum(axis=1, keepdims=True)
        if rows is p_rows:
            out[idx, start] = n + 2
            start = start + 1
    return out[:, :width]


@functools.cache
def all_rsk(n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(perms, P rows, Q rows) over all of S_n, memoised (read-only) so that a new
    data_seed only re-splits."""
    perms = permutations_of(n)
    p_rows, q_rows = rsk_rows(perms)
    for a in (perms, p_rows, q_rows):
        a.flags.writeable = False
    return perms, p_rows, q_rows


@register_dataset("rsk")
class RSK(MathDataModule):
    """Permutation from its RSK tableau pair (P, Q), as inversion bits (multi-label)."""

    version = "1"
    smoke_params = {"n": 5}

    def __init__(self, n: int = 9, n_samples: int = 0, val_frac: float = 0.1,
                 test_frac: float = 0.2, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 5, 10, dataset="rsk")  # S_4's 24 rows are too few to split
        check_range("val_frac", val_frac, 0.01, 0.4, dataset="rsk")
        check_range("test_frac", test_frac, 0.01, 0.4, dataset="rsk")
        if n_samples == 0 and n > MAX_ALL_N:
            raise UserError(f"dataset 'rsk': all of S_{n} ({math.factorial(n):,} rows) does "
                            f"not fit in memory with its views; set n_samples <= {MAX_SAMPLES:,}")
        check_range("n_samples", n_samples, 100, MAX_SAMPLES, dataset="rsk",
                    zero_means=f"all of S_{n}")
        if n_samples > math.factorial(n) // 2:  # drawing distinct rows would crawl
            raise UserError(f"dataset 'rsk': n_samples={n_samples} is over half of S_{n} "
                            f"({math.factorial(n):,} rows); use n_samples=0 for all of it")
        self.save_hyperparameters()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        rng = self.rng()
        n = p["n"]
        if p["n_samples"]:
            perms = distinct_rows(lambda short: (np.argsort(rng.random((short + 16, n)), axis=1)
                                                 + 1).astype(np.int8), p["n_samples"])
            p_rows, q_rows = rsk_rows(perms)
        else:
            perms, p_rows, q_rows = all_rsk(n)
        total = len(perms)
        n_val, n_test = int(total * p["val_frac"] + 0.5), int(total * p["test_frac"] + 0.5)
        sizes = {"train": total - n_val - n_test, "val": n_val, "test": n_test}
        order = rng.permutation(total)
        out = {}
        for s, sl in split_counts(sizes).items():
            idx = order[sl]
            out[s] = {"perm": torch.from_numpy(perms[idx]), "p_rows": torch.from_numpy(p_rows[idx]),
                      "q_rows": torch.from_numpy(q_rows[idx]),
                      "y": torch.from_numpy(inversion_bits(perms[idx]))}
        return out

    def make_target(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        return raw["y"].float()  # stored as uint8 bits

    def build_spec(self) -> DatasetSpec:
        n = self.params["n"]
        size = "all of" if not self.params["n_samples"] else f"{self.params['n_samples']:,} of"
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTILABEL,
            num_outputs=n * (n - 1) // 2,
            metric="exact_match",  # the permutation is recovered only if every bit is right
            views=(ViewSpec(Modality.IMAGE, (2, n, n)),
                   ViewSpec(Modality.SEQUENCE, (4 * n + 1,), vocab_size=n + 3),
                   ViewSpec(Modality.VECTOR, (2 * n * n,))),
            description=f"inverse RSK: inversion set of s from (P, Q), {size} S_{n}",
            params=self.params)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        n = self.params["n"]
        p_rows, q_rows = raw["p_rows"].numpy(), raw["q_rows"].numpy()
        if modality is Modality.SEQUENCE:
            return torch.from_numpy(tableau_tokens(p_rows, q_rows)).long()
        grids = torch.from_numpy(np.stack([tableau_grids(p_rows), tableau_grids(q_rows)], axis=1))
        scaled = grids.float() / n  # channel 0 = P, 1 = Q; empty cells 0
        return scaled if modality is Modality.IMAGE else scaled.flatten(1)
