"""Associativity of small Cayley tables (workshop "Classifying semigroups").

Input: a binary operation on {0..m-1} as its m x m table, m in {3, 4, 5}. Label: whether
(x*y)*z = x*(y*z) for all x, y, z. Positives are labelled semigroups (all of them for
m <= 4, enumerated; sampled for m = 5); each negative is a near miss of one of them (one
entry changed so that associativity fails), so table statistics cannot tell them apart.
Splits are by isomorphism class (f(x*y) = f(x)*f(y) for a bijection f): no val or test
table, positive or negative, is isomorphic to a table of another split.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Iterator

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

SEMIGROUP_COUNTS = {1: 1, 2: 8, 3: 113, 4: 3492, 5: 183732}  # labelled semigroups (OEIS A023814)
CLASS_COUNTS = {1: 1, 2: 5, 3: 24, 4: 188, 5: 1915}  # up to isomorphism (OEIS A027851)
SPLIT_FRACTIONS = {"train": 0.7, "val": 0.1, "test": 0.2}  # of the positives, whole classes
CANDIDATES_FIRST = 2  # near-miss candidates per table whose class is computed in bulk


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


def table_codes(tables: np.ndarray) -> np.ndarray:
    """Each (.., m, m) table as one int64: its entries as base-m digits, the first entry
    most significant, so codes order like the table bytes (5^25 < 2^63)."""
    m = tables.shape[-1]
    weights = m ** np.arange(m * m - 1, -1, -1, dtype=np.int64)
    return tables.reshape(*tables.shape[:-2], m * m).astype(np.int64) @ weights


@functools.cache
def _relabellings(m: int) -> tuple[np.ndarray, np.ndarray]:
    """All m! permutations q of {0..m-1} and their inverses, as (m!, m) int64 arrays."""
    perms = np.array(list(itertools.permutations(range(m))), dtype=np.int64)
    return perms, np.argsort(perms, axis=1)


def canonical_codes(tables: np.ndarray) -> np.ndarray:
    """The isomorphism class of each (N, m, m) table: the least code (table_codes) over all
    m! relabellings, so two tables get the same code iff they are isomorphic as magmas."""
    n, m = len(tables), tables.shape[-1]
    perms, inverse = _relabellings(m)
    p = np.arange(len(perms))[:, None, None]
    out = np.empty(n, dtype=np.int64)
    step = max(1, 2 ** 21 // (len(perms) * m * m))  # chunks of ~2M entries stay in cache
    for start in range(0, n, step):
        t = tables[start:start + step].astype(np.int64)
        # renaming by f = q^-1: the new table is q^-1[t[q[a], q[b]]] at (a, b)
        renamed = inverse[p, t[:, perms[:, :, None], perms[:, None, :]]]
        out[start:start + step] = table_codes(renamed).min(axis=1)
    return out


def assign_classes(classes: np.ndarray, rng: np.random.Generator,
                   fractions: tuple[float, ...] = tuple(SPLIT_FRACTIONS.values())) -> np.ndarray:
    """A split index per row such that rows of one class share a split: the classes, in
    random order, each go to the split least filled relative to its share of the rows (so
    each split lands within about one class of its share, and the first three classes
    open the three splits)."""
    _, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
    target = np.asarray(fractions) * len(classes)
    filled = np.zeros(len(fractions))
    where = np.empty(len(counts), dtype=np.int64)
    for k in rng.permutation(len(counts)):
        where[k] = s = int(np.argmin(filled / target))
        filled[s] += counts[k]
    return where[inverse]


def near_misses(tables: np.ndarray, rng: np.random.Generator,
                groups: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """One non-associative table per semigroup, differing from it in exactly one entry;
    all distinct. Drawn uniformly among the failing single-entry changes still allowed.
    Returns (tables, the changed entry of each as a row-major index x * m + y).

    With `groups` (a split index per table), a change is allowed only if no table of
    another group already has a near miss of its isomorphism class: the first group to
    use a class owns it. Near misses of non-isomorphic semigroups can be isomorphic, so
    this is what keeps the negatives of different splits apart. Tables are visited in
    random order, groups interleaved, so that no split claims the classes first.
    """
    n, m = len(tables), tables.shape[-1]
    cell, shift = np.divmod(np.arange(m * m * (m - 1)), m - 1)  # every (entry, new value)
    out = np.empty_like(tables)
    changed = np.empty(n, dtype=np.int64)
    taken: set[int] = set()
    owner: dict[int, int] = {}
    visit = rng.permutation(n)
    for start in range(0, n, 1024):  # chunks bound the (chunk, m^2 (m-1), m, m) candidates
        rows = visit[start:start + 1024]
        chunk = tables[rows].reshape(-1, m * m)
        cand = np.repeat(chunk[:, None, :], len(cell), axis=1)
        cols = np.arange(len(cell))
        cand[:, cols, cell] = (cand[:, cols, cell] + 1 + shift) % m
        cand = cand.reshape(len(rows), len(cell), m, m)
        fails = ~associative(cand.reshape(-1, m, m)).reshape(len(rows), -1)
        codes = table_codes(cand)
        # each table's failing changes in a uniformly random order, the others last
        ranked = np.argsort(np.where(fails, rng.random(fails.shape), 2.0), axis=1)
        if groups is not None:  # classes of the first few candidates, in one pass
            first = ranked[:, :CANDIDATES_FIRST]
            first_class = canonical_codes(
                cand[np.arange(len(rows))[:, None], first].reshape(-1, m, m)
            ).reshape(first.shape)
        for i, row in enumerate(rows.tolist()):
            for r, j in enumerate(ranked[i, :fails[i].sum()].tolist()):
                if int(codes[i, j]) in taken:
                    continue
                if groups is not None:
                    cls = int(first_class[i, r]) if r < CANDIDATES_FIRST else \
                        int(canonical_codes(cand[i, j][None])[0])
                    if owner.setdefault(cls, int(groups[row])) != groups[row]:
                        continue
                taken.add(int(codes[i, j]))
                out[row] = cand[i, j]
                changed[row] = cell[j]
                break
            else:  # not seen in practice: each semigroup has many failing changes
                raise RuntimeError(f"no unused near miss for table {row}")
    return out, changed


@register_dataset("semigroups")
class Semigroups(MathDataModule):
    """Is a Cayley table on m elements associative? Near-miss negatives (binary)."""

    version = "2"  # 2: splits by isomorphism class
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

    def positives(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The semigroups of the dataset and the split index of each (0 train, 1 val,
        2 test), whole isomorphism classes to a split.

        m <= 4: every class of the whole universe goes to a split, then a subsample of
        n_per_class tables (each split in proportion to its size) if one is asked for, so
        that no split runs empty. m = 5: n_per_class sampled tables, grouped into the
        classes they fall in (a class may have more members unsampled: they are unused).
        """
        m, n = self.params["m"], self.per_class()
        if m > 4:
            tables = sample_semigroups(m, n, rng)
            return tables, assign_classes(canonical_codes(tables), rng)
        tables = enumerate_semigroups(m)
        split = assign_classes(canonical_codes(tables), rng)
        if n == len(tables):
            return tables, split
        # per split, its share of n by largest remainder, then at least one table each
        share = np.bincount(split, minlength=3) * n / len(tables)
        take = np.floor(share).astype(np.int64)
        take[np.argsort(take - share, kind="stable")[:n - take.sum()]] += 1
        take = np.maximum(take, 1)
        take[0] -= take.sum() - n  # what the minimum added, train gives back
        keep = np.concatenate([rng.permutation(np.flatnonzero(split == s))[:k]
                               for s, k in enumerate(take.tolist())])
        return tables[keep], split[keep]

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        rng = self.rng()  # data_seed decides the sample and the split of the classes
        positives, split = self.positives(rng)
        # a near miss stays in the split of the semigroup it was made from, and its class
        # (that of no semigroup, being non-associative) in one split only
        negatives, changed = near_misses(positives, rng, groups=split)
        out = {}
        for s, name in enumerate(SPLIT_FRACTIONS):
            tables = np.concatenate([positives[split == s], negatives[split == s]])
            y = np.repeat([1.0, 0.0], int((split == s).sum())).astype(np.float32)
            # the entry a near miss breaks (every failing triple reads it: its semigroup
            # was associative); -1 for a semigroup, where no single entry is to blame
            broken = np.concatenate([np.full(int((split == s).sum()), -1), changed[split == s]])
            order = rng.permutation(len(tables))
            out[name] = {"table": torch.from_numpy(tables[order].copy()),
                         "y": torch.from_numpy(y[order]),
                         "broken": torch.from_numpy(broken[order].astype(np.int16))}
        return out

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """A near miss: the one entry changed from its semigroup (per row); a semigroup:
        every entry (nothing to single out, so scoring skips the row)."""
        modality = Modality(modality)
        if modality not in self.spec.modalities:
            return None
        m, broken = self.params["m"], self._raw_split(split)["broken"].long()
        cells = (broken < 0)[:, None].repeat(1, m * m)
        hit = broken >= 0
        cells[hit, broken[hit]] = True
        if modality is Modality.SEQUENCE:  # the entries in row-major order
            return cells[:, None, :]
        grid = cells.reshape(-1, 1, 1, m, m)  # broadcasts over the value channels
        if modality is Modality.IMAGE:
            return grid
        return grid.expand(-1, 1, m, m, m).reshape(-1, 1, m ** 3)  # one-hot, channel-major

    def build_spec(self) -> DatasetSpec:
        m = self.params["m"]
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=(ViewSpec(Modality.IMAGE, (m, m, m)), ViewSpec(Modality.VECTOR, (m ** 3,)),
                   ViewSpec(Modality.SEQUENCE, (m * m,), vocab_size=m + 1)),
            description=f"associativity of {m} x {m} Cayley tables, near-miss negatives",
            params=self.params,
            ground_truth="a near miss: the one entry changed from its semigroup")

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        table = raw["table"].long()
        if modality is Modality.SEQUENCE:
            return table.flatten(1) + 1  # tokens 1..m; 0 stays padding
        m = table.shape[-1]
        # channel v marks the entries equal to v
        onehot = torch.nn.functional.one_hot(table, m).permute(0, 3, 1, 2).float()
        return onehot if modality is Modality.IMAGE else onehot.flatten(1)
