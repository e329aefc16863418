"""Associativity of small Cayley tables (workshop "Classifying semigroups").

Input: a binary operation on {0..m-1} as its m x m table, m in {3, 4, 5}. Label: whether
(x*y)*z = x*(y*z) for all x, y, z. Positives are labelled semigroups (all of them for
m <= 4, enumerated; sampled for m = 5); each negative is a near miss of one of them (one
entry changed so that associativity fails), so table statistics cannot tell them apart.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

SEMIGROUP_COUNTS = {1: 1, 2: 8, 3: 113, 4: 3492, 5: 183732}  # labelled semigroups (OEIS A023814)
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}  # per class, so each split is 50/50


def associative(tables: np.ndarray) -> np.ndarray:
    """Whether each (N, m, m) table satisfies (xy)z = x(yz) for all m^3 triples."""
    m = tables.shape[-1]
    grid = np.meshgrid(*(np.arange(m, dtype=np.int16),) * 3, indexing="ij")
    x, y, z = (g.ravel() for g in grid)
    # flat rows, one gather per side; small index dtypes make numpy's gathers 4x faster
    t = tables.reshape(len(tables), m * m).astype(np.int16)
    left = np.take_along_axis(t, t[:, x * m + y] * m + z, axis=1)
    right = np.take_along_axis(t, x * m + t[:, y * m + z], axis=1)
    return (left == right).all(axis=1)


def _fits(t: list[list[int]], a: int, b: int) -> bool:
    """Whether the entry just written at t[a][b] keeps every fully known triple associative.

    A triple is checked when the last of its four lookups is filled; that lookup is cell
    (a, b) in one of four roles, so these four loops together check every triple once.
    """
    v, r = t[a][b], range(len(t))
    for z in r:  # (a b) z = a (b z)
        bz, left = t[b][z], t[v][z]
        if bz >= 0 and left >= 0 and t[a][bz] >= 0 and t[a][bz] != left:
            return False
    for x in r:  # (x a) b = x (a b)
        xa, right = t[x][a], t[x][v]
        if xa >= 0 and right >= 0 and t[xa][b] >= 0 and t[xa][b] != right:
            return False
    for x in r:
        for y in r:
            xy = t[x][y]
            if xy == a:  # (x y) b = x (y b), the left side being our cell
                yb = t[y][b]
                if yb >= 0 and 0 <= t[x][yb] != v:
                    return False
            if xy == b:  # (a x) y = a (x y), the right side being our cell
                ax = t[a][x]
                if ax >= 0 and 0 <= t[ax][y] != v:
                    return False
    return True


def _complete(t: list[list[int]], cells: list[tuple[int, int]],
              values: Callable[[], list[int]], k: int = 0) -> Iterator[np.ndarray]:
    """Every associative completion of the partial table t (entries -1 are unknown),
    filling `cells` in order with values in the order `values()` gives (pruned DFS)."""
    if k == len(cells):
        yield np.array(t, dtype=np.int8)
        return
    a, b = cells[k]
    for v in values():
        t[a][b] = v
        if _fits(t, a, b):
            yield from _complete(t, cells, values, k + 1)
    t[a][b] = -1


@functools.cache
def enumerate_semigroups(m: int) -> np.ndarray:
    """All labelled semigroups on {0..m-1} as an (N, m, m) int8 array (m <= 4: < 1 s)."""
    t = [[-1] * m for _ in range(m)]
    cells = [(a, b) for a in range(m) for b in range(m)]
    tables = np.stack(list(_complete(t, cells, lambda: list(range(m)))))
    tables.setflags(write=False)  # shared through the cache
    return tables


def relabel(table: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """The isomorphic table in which element i is renamed perm[i]."""
    out = np.empty_like(table)
    out[np.ix_(perm, perm)] = perm[table]
    return out


def sample_semigroups(m: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` distinct random labelled semigroups of order m (for m = 5, where the
    183,732 are too many to enumerate on the fly).

    A uniformly random semigroup of order m-1 (enumerated) gets a new element m-1 whose
    row and column are filled by randomised backtracking (values in random order, first
    completion wins; one always exists, e.g. a new zero), then all elements are renamed
    by a random permutation. This reaches every semigroup with a subsemigroup of order
    m-1 (nearly all; not e.g. the cyclic group of order m), not uniformly.
    """
    base = enumerate_semigroups(m - 1)
    new = m - 1
    cells = [(new, x) for x in range(m)] + [(x, new) for x in range(new)]
    out: dict[bytes, np.ndarray] = {}
    while len(out) < count:
        t = [[int(v) for v in row] + [-1] for row in base[rng.integers(len(base))]]
        t.append([-1] * m)
        table = next(_complete(t, cells, lambda: rng.permutation(m).tolist()))
        table = relabel(table, rng.permutation(m).astype(np.int8))
        out.setdefault(table.tobytes(), table)
    return np.stack(list(out.values()))


def near_misses(tables: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One non-associative table per semigroup, differing from it in exactly one entry;
    all distinct. Drawn uniformly among the failing single-entry changes not yet taken."""
    n, m = len(tables), tables.shape[-1]
    cell, shift = np.divmod(np.arange(m * m * (m - 1)), m - 1)  # every (entry, new value)
    weights = m ** np.arange(m * m, dtype=np.int64)  # a table's code: its entries in base m
    out = np.empty_like(tables)
    taken: set[int] = set()
    for start in range(0, n, 1024):  # chunks bound the (chunk, m^2 (m-1), m, m) candidates
        chunk = tables[start:start + 1024].reshape(-1, m * m)
        cand = np.repeat(chunk[:, None, :], len(cell), axis=1)
        rows = np.arange(len(cell))
        cand[:, rows, cell] = (cand[:, rows, cell] + 1 + shift) % m
        fails = ~associative(cand.reshape(-1, m, m)).reshape(len(chunk), -1)
        codes = cand.astype(np.int64) @ weights
        for i in range(len(chunk)):
            for j in rng.permutation(np.flatnonzero(fails[i])):
                if int(codes[i, j]) not in taken:
                    taken.add(int(codes[i, j]))
                    out[start + i] = cand[i, j].reshape(m, m)
                    break
            else:  # not seen in practice: each semigroup has many failing changes
                raise RuntimeError(f"no unused near miss for table {start + i}")
    return out


@register_dataset("semigroups")
class Semigroups(MathDataModule):
    """Is a Cayley table on m elements associative? Near-miss negatives (binary)."""

    version = "1"
    smoke_params = {"m": 3}

    def __init__(self, m: int = 4, n_per_class: int | None = None, data_seed: int = 0) -> None:
        super().__init__()
        check_range("m", m, 3, 5, dataset="semigroups")
        if n_per_class is not None:
            most = SEMIGROUP_COUNTS[m] if m <= 4 else 50_000
            if not 10 <= n_per_class <= most:
                raise UserError(f"dataset 'semigroups': parameter n_per_class={n_per_class} is "
                                f"out of range; accepted for m={m}: 10 <= n_per_class <= {most}"
                                " (or leave it unset)")
        self.save_hyperparameters()

    def per_class(self) -> int:
        """Positives (= negatives): every semigroup for m <= 4 unless told, 3,000 for m = 5."""
        m, n = self.params["m"], self.params["n_per_class"]
        return n if n is not None else (SEMIGROUP_COUNTS[m] if m <= 4 else 3000)

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        m, n = self.params["m"], self.per_class()
        rng = self.rng()
        if m <= 4:
            everything = enumerate_semigroups(m)
            positives = everything[rng.permutation(len(everything))[:n]]
        else:
            positives = sample_semigroups(m, n, rng)
        negatives = near_misses(positives, rng)
        # a near miss stays in the split of the semigroup it was made from, so that no
        # test negative is made from a training positive
        sizes = {s: int(f * n) for s, f in SPLIT_FRACTIONS.items()}
        sizes["train"] = n - sizes["val"] - sizes["test"]
        out = {}
        for split, sl in split_counts(sizes).items():
            tables = np.concatenate([positives[sl], negatives[sl]])
            y = np.repeat([1.0, 0.0], len(positives[sl])).astype(np.float32)
            order = rng.permutation(len(tables))
            out[split] = {"table": torch.from_numpy(tables[order].copy()),
                          "y": torch.from_numpy(y[order])}
        return out

    def build_spec(self) -> DatasetSpec:
        m = self.params["m"]
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=(ViewSpec(Modality.IMAGE, (m, m, m)), ViewSpec(Modality.VECTOR, (m ** 3,)),
                   ViewSpec(Modality.SEQUENCE, (m * m,), vocab_size=m + 1)),
            description=f"associativity of {m} x {m} Cayley tables, near-miss negatives",
            params=self.params)

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        table = raw["table"].long()
        if modality is Modality.SEQUENCE:
            return table.flatten(1) + 1  # tokens 1..m; 0 stays padding
        m = table.shape[-1]
        # channel v marks the entries equal to v
        onehot = torch.nn.functional.one_hot(table, m).permute(0, 3, 1, 2).float()
        return onehot if modality is Modality.IMAGE else onehot.flatten(1)
