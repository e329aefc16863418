"""Weaving patterns (ACD Repo folder `weaving_patterns`, arXiv:2503.06366; Felsner 1996).

Draw a reduced word of the longest permutation of S_n as a wiring diagram: n lines, each
pair crossing once. Row r of the n x (n-1) weaving pattern lists, in order, the lines that
line n-r crosses (the ACD layout); one pattern per commutation class (8, 62, 908, 24,698 for
n = 4..7). Negatives, as in the ACD: a pattern with every row shuffled (not a pattern), so
each row keeps its entries and counting cannot separate the classes.

negatives="swap" exchanges two entries of one row instead (near misses; an earlier ACD
README's description). Labels: 1 = pattern (the ACD stores 0 for a pattern). ood_n adds an
ood_test split of size ood_n <= 7 (zero-padded to ood_n x (ood_n-1)), so only for n <= 6:
n = 8 has 1,232,944 patterns, too many to enumerate here, and rejecting negatives needs them.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Literal

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_choice, check_range, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

MAX_N = 7  # 24,698 patterns in ~1 s; n = 8 has 50x more


def independent_subsets(positions: list[int]) -> Iterator[list[int]]:
    """Nonempty subsets of sorted adjacent-swap positions with no two neighbours (p, p+1
    share a line, so they cannot cross in the same parallel step)."""
    if not positions:
        return
    first, rest = positions[0], positions[1:]
    yield [first]
    after = [p for p in rest if p > first + 1]
    for tail in independent_subsets(after):
        yield [first, *tail]
    yield from independent_subsets(rest)


@functools.cache
def weaving_patterns(n: int) -> np.ndarray:
    """Every weaving pattern of size n, (count, n, n-1) int8 with entries 1..n (read-only).

    One wiring diagram per commutation class, enumerated in Cartier-Foata normal form: each
    step swaps a set of non-adjacent uncrossed neighbours, and every swap after the first
    step touches a position next to one of the previous step (else it could move earlier,
    and the class would be met twice). Crossing only uncrossed pairs keeps words reduced.
    """
    order = list(range(1, n + 1))           # the lines top to bottom at the current time
    crossed: list[list[int]] = [[] for _ in range(n + 1)]  # lines each line has crossed
    total, found = n * (n - 1) // 2, []

    def extend(prev: list[int], done: int) -> None:
        if done == total:
            found.append([x for line in range(n, 0, -1) for x in crossed[line]])
            return
        free = [p for p in range(n - 1) if order[p] < order[p + 1]]
        if prev:
            free = [p for p in free if p - 1 in prev or p + 1 in prev]
        for step in independent_subsets(free):
            for p in step:
                x, y = order[p], order[p + 1]
                crossed[x].append(y)
                crossed[y].append(x)
                order[p], order[p + 1] = y, x
            extend(step, done + len(step))
            for p in step:
                y, x = order[p], order[p + 1]
                crossed[x].pop()
                crossed[y].pop()
                order[p], order[p + 1] = x, y

    extend([], 0)
    out = np.array(found, dtype=np.int8).reshape(-1, n, n - 1)
    out.flags.writeable = False
    return out


def row_keys(mats: np.ndarray) -> np.ndarray:
    """Each matrix as one byte string (entries are >= 1, so no trailing NUL is lost)."""
    flat = np.ascontiguousarray(mats.reshape(len(mats), -1))
    return flat.view(f"S{flat.shape[1]}").ravel()


def perturb(rng: np.random.Generator, mats: np.ndarray, how: str) -> np.ndarray:
    """`shuffle`: every row permuted at random (the ACD's negatives). `swap`: two entries of
    one random row exchanged, a near miss (the ACD README's earlier description); a change
    confined to one row is never a pattern, as each crossing shows in the rows of two lines."""
    if how == "shuffle":
        return rng.permuted(mats, axis=2)
    out = mats.copy()
    m, n, w = mats.shape
    idx, row = np.arange(m), rng.integers(0, n, size=m)
    c1 = rng.integers(0, w, size=m)
    c2 = (c1 + rng.integers(1, w, size=m)) % w  # a second, different column
    out[idx, row, c1], out[idx, row, c2] = mats[idx, row, c2], mats[idx, row, c1]
    return out


def negatives_of(rng: np.random.Generator, positives: np.ndarray, per_positive: int,
                 how: str, known: np.ndarray) -> np.ndarray:
    """`per_positive` distinct non-patterns for each positive (rows grouped by positive),
    redrawn until none is a pattern (`known` = keys of every pattern) or a repeat."""
    source = np.repeat(np.arange(len(positives)), per_positive)
    neg = perturb(rng, positives[source], how)
    while True:
        keys = row_keys(neg)
        first = np.zeros(len(neg), dtype=bool)
        first[np.unique(keys, return_index=True)[1]] = True
        bad = np.isin(keys, known) | ~first
        if not bad.any():
            return neg
        neg[bad] = perturb(rng, positives[source[bad]], how)


@register_dataset("weaving")
class Weaving(MathDataModule):
    """Is an n x (n-1) matrix a weaving pattern? Negatives are row-shuffled patterns (binary)."""

    version = "1"
    smoke_params = {"n": 5, "ood_n": 6, "n_ood_test": 200}

    def __init__(self, n: int = 7, negatives: Literal["shuffle", "swap"] = "shuffle",
                 negatives_per_positive: int = 1, val_frac: float = 0.1, test_frac: float = 0.2,
                 ood_n: int = 0, n_ood_test: int = 4000, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 5, MAX_N, dataset="weaving")  # n = 4 has 8 patterns: too few to split
        check_choice("negatives", negatives, ("shuffle", "swap"), dataset="weaving")
        check_range("negatives_per_positive", negatives_per_positive, 1, 10, dataset="weaving")
        check_range("val_frac", val_frac, 0.05, 0.4, dataset="weaving")
        check_range("test_frac", test_frac, 0.05, 0.4, dataset="weaving")
        if ood_n and n >= MAX_N:
            raise UserError(f"dataset 'weaving': ood_n needs n <= {MAX_N - 1} (patterns are "
                            f"enumerated up to n = {MAX_N}); got n={n}, ood_n={ood_n}")
        check_range("ood_n", ood_n, n + 1, MAX_N, dataset="weaving", zero_means="no OOD split")
        check_range("n_ood_test", n_ood_test, 2, 1_000_000, dataset="weaving")
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        return max(self.params["n"], self.params["ood_n"])

    def negatives(self, rng: np.random.Generator, positives: np.ndarray, n: int) -> np.ndarray:
        """(len(positives), k, n, n-1): k distinct non-patterns per positive, none repeated
        anywhere (all splits are drawn in one call, so no negative lands in two splits)."""
        p = self.params
        k = p["negatives_per_positive"]
        neg = negatives_of(rng, positives, k, p["negatives"], row_keys(weaving_patterns(n)))
        return neg.reshape(len(positives), k, n, n - 1)

    @staticmethod
    def labelled(rng: np.random.Generator, positives: np.ndarray,
                 negatives: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Positives (label 1) and their negatives (label 0), shuffled together."""
        neg = negatives.reshape(-1, *positives.shape[1:])
        x = np.concatenate([positives, neg])
        y = np.concatenate([np.ones(len(positives)), np.zeros(len(neg))])
        order = rng.permutation(len(x))
        return x[order], y[order]

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        rng = self.rng()
        patterns = weaving_patterns(p["n"])
        total = len(patterns)
        n_val, n_test = int(total * p["val_frac"] + 0.5), int(total * p["test_frac"] + 0.5)
        sizes = {"train": total - n_val - n_test, "val": n_val, "test": n_test}
        # a pattern and its negatives share a split; data_seed decides which
        order = rng.permutation(total)
        negatives = self.negatives(rng, patterns, p["n"])
        parts = {s: self.labelled(rng, patterns[order[sl]], negatives[order[sl]])
                 for s, sl in split_counts(sizes).items()}
        if p["ood_n"]:
            bigger = weaving_patterns(p["ood_n"])
            count = max(1, p["n_ood_test"] // (1 + p["negatives_per_positive"]))
            pick = bigger[rng.permutation(len(bigger))[:count]]  # all of them, when fewer
            parts["ood_test"] = self.labelled(rng, pick, self.negatives(rng, pick, p["ood_n"]))
        return {s: {"matrix": torch.from_numpy(x), "y": torch.from_numpy(y).float()}
                for s, (x, y) in parts.items()}

    def build_spec(self) -> DatasetSpec:
        p, w = self.params, self.width
        balanced = p["negatives_per_positive"] == 1
        ood = f", OOD test on n={p['ood_n']}" if p["ood_n"] else ""
        what = {"shuffle": "row-shuffled patterns", "swap": "one-swap near misses"}
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            # balanced classes: accuracy; with several negatives per pattern, F1 of the patterns
            metric="acc" if balanced else "f1",
            # tokens before the vector, so that sequence models read line labels as tokens
            views=(ViewSpec(Modality.IMAGE, (w, w, w - 1)),
                   ViewSpec(Modality.SEQUENCE, (w * (w - 1),), vocab_size=w + 1),
                   ViewSpec(Modality.VECTOR, (w * (w - 1),))),
            description=f"weaving patterns of size {p['n']} vs {what[p['negatives']]}{ood}",
            params=self.params, has_ood=bool(p["ood_n"]))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        mat = raw["matrix"].long()
        w = self.width
        grid = torch.nn.functional.pad(mat, (0, w - 1 - mat.shape[2], 0, w - mat.shape[1]))
        if modality is Modality.SEQUENCE:
            return grid.flatten(1)  # row-major as in the ACD files; tokens 1..n, 0 pads
        if modality is Modality.VECTOR:
            return grid.flatten(1).float() / w
        # channel v-1 marks the cells holding line v; padding cells are empty everywhere
        values = torch.arange(1, w + 1, dtype=grid.dtype).view(1, w, 1, 1)
        return (grid.unsqueeze(1) == values).float()
