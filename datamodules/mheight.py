"""The mHeight of a permutation (ACD Repo folder `mheight_function`, arXiv:2503.06366).

A 3412 occurrence in s = a_1..a_n is i<j<k<l with a_k < a_l < a_i < a_j; its height is
a_i - a_l, and mHeight(s) is the least height over all occurrences (Gaetz and Gao 2023).
As in the ACD, the universe is every s in S_n that contains 3412 and avoids 4231, labelled
mHeight - 1 (classes 0..n-4; n = 10 gives the ACD's 467,640 permutations, 94% in class 0).

ood_n > n adds an ood_test split of permutations of size ood_n, zero-padded views: the
classes of n are a prefix of those of ood_n (num_outputs = ood_n - 3), so the encoding
allows it; the top classes of ood_n are unseen in training (one permutation each for the
largest). ood_n <= 10 draws from the enumerated universe, larger ood_n by rejection
sampling uniform permutations of S_ood_n (about 1 in 10 lies in the universe).
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, distinct_rows, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

MAX_ENUMERATED_N = 10  # S_10 is enumerated in ~1 s; S_11 (39.9M rows) is sampled instead


def permutations_of(n: int) -> np.ndarray:
    """Every permutation of 1..n as int8 rows, by inserting k into every position of each
    permutation of 1..k-1 (vectorised per position; S_10 in a fraction of a second)."""
    perms = np.ones((1, 1), dtype=np.int8)
    for k in range(2, n + 1):
        out = np.empty((k, len(perms), k), dtype=np.int8)
        for p in range(k):
            out[p, :, :p], out[p, :, p], out[p, :, p + 1:] = perms[:, :p], k, perms[:, p:]
        perms = out.reshape(-1, k)
    return perms


def pattern_stats(perms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mHeight, contains 4231) of each row of one-line permutations; mHeight 0 = no 3412.

    O(n^2) per row instead of the C(n,4) quadruples: (i, l) with a_l < a_i closes a 3412
    iff some j in (i, l) has a_j > a_i and some later k < l has a_k < a_l, i.e. iff the
    first position after i above a_i comes before the last position before l below a_l.
    Likewise (j, k) with a_j < a_k is the middle of a 4231 iff something before j exceeds
    a_k and something after k is below a_j.
    """
    n = perms.shape[1]
    a = np.ascontiguousarray(perms.T.astype(np.int8))  # (n, N): contiguous columns
    nxt_up = np.full(a.shape, n, dtype=np.int8)        # first j > i with a_j > a_i, else n
    prv_dn = np.full(a.shape, -1, dtype=np.int8)       # last k < l with a_k < a_l, else -1
    for i in range(n):
        for j in range(n - 1, i, -1):
            nxt_up[i] = np.where(a[j] > a[i], j, nxt_up[i])
        for k in range(i):
            prv_dn[i] = np.where(a[k] < a[i], k, prv_dn[i])
    none = np.int8(n + 1)
    height = np.full(a.shape[1], none, dtype=np.int8)
    for i in range(n):
        for ell in range(i + 3, n):
            closes = (a[ell] < a[i]) & (nxt_up[i] < prv_dn[ell])
            np.minimum(height, np.where(closes, a[i] - a[ell], none).astype(np.int8), out=height)
    before_max = np.zeros_like(a)       # max of a_0..a_{j-1} (0 when empty)
    after_min = np.full_like(a, n + 1)  # min of a_{k+1}..a_{n-1} (n+1 when empty)
    for j in range(1, n):
        before_max[j] = np.maximum(before_max[j - 1], a[j - 1])
        after_min[n - 1 - j] = np.minimum(after_min[n - j], a[n - j])
    has_4231 = np.zeros(a.shape[1], dtype=bool)
    for j in range(1, n - 2):
        for k in range(j + 1, n - 1):
            has_4231 |= (a[j] < a[k]) & (before_max[j] > a[k]) & (after_min[k] < a[j])
    height[height == none] = 0
    return height, has_4231


def in_universe(height: np.ndarray, has_4231: np.ndarray) -> np.ndarray:
    """The ACD's rows: a 3412 occurs (mHeight >= 1) and 4231 does not."""
    return (height > 0) & ~has_4231


@functools.cache
def mheight_universe(n: int) -> tuple[np.ndarray, np.ndarray]:
    """(perms, labels) of every 3412-containing, 4231-avoiding s in S_n, labels mHeight - 1.
    Memoised: a new data_seed only re-splits. Arrays are read-only (shared by the memo)."""
    perms = permutations_of(n)
    height, has_4231 = pattern_stats(perms)
    keep = in_universe(height, has_4231)
    perms, labels = perms[keep], (height[keep] - 1).astype(np.int8)
    perms.flags.writeable = labels.flags.writeable = False
    return perms, labels


def sample_universe(rng: np.random.Generator, n: int, count: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` distinct uniform members of the universe of S_n (rejection sampling) and labels."""
    def draw(short: int) -> np.ndarray:
        perms = (np.argsort(rng.random((12 * short + 64, n)), axis=1) + 1).astype(np.int8)
        return perms[in_universe(*pattern_stats(perms))]

    perms = distinct_rows(draw, count)
    return perms, (pattern_stats(perms)[0] - 1).astype(np.int8)


def stratified_split(rng: np.random.Generator, labels: np.ndarray, val_frac: float,
                     test_frac: float) -> dict[str, np.ndarray]:
    """Row indices per split, each class dealt out in the given fractions (rounded), so
    that the rare top classes reach val and test as soon as they have a few members."""
    order = rng.permutation(len(labels))
    order = order[np.argsort(labels[order], kind="stable")]  # grouped by class, random inside
    parts: dict[str, list[np.ndarray]] = {"train": [], "val": [], "test": []}
    start = 0
    for count in np.bincount(labels).tolist():
        members = order[start:start + count]
        start += count
        n_val, n_test = int(count * val_frac + 0.5), int(count * test_frac + 0.5)
        sizes = {"train": count - n_val - n_test, "val": n_val, "test": n_test}
        for split, sl in split_counts(sizes).items():
            parts[split].append(members[sl])
    return {s: rng.permutation(np.concatenate(p)) for s, p in parts.items()}


@register_dataset("mheight")
class MHeight(MathDataModule):
    """mHeight of a 3412-containing, 4231-avoiding permutation (multiclass, macro F1)."""

    version = "1"
    smoke_params = {"n": 6, "ood_n": 7, "n_ood_test": 200}

    def __init__(self, n: int = 10, val_frac: float = 0.1, test_frac: float = 0.2,
                 ood_n: int = 0, n_ood_test: int = 20000, data_seed: int = 0) -> None:
        super().__init__()
        # n = 5 is the least with two classes; 10 is the ACD's largest and S_10 enumerates fast
        check_range("n", n, 5, MAX_ENUMERATED_N, dataset="mheight")
        check_range("val_frac", val_frac, 0.01, 0.4, dataset="mheight")
        check_range("test_frac", test_frac, 0.01, 0.4, dataset="mheight")
        check_range("ood_n", ood_n, n + 1, 12, dataset="mheight", zero_means="no OOD split")
        check_range("n_ood_test", n_ood_test, 1, 1_000_000, dataset="mheight")
        if n == 5 and min(val_frac, test_frac) < 0.04:  # else a split of 15 rows is empty
            raise UserError("dataset 'mheight': n=5 has only 15 permutations; val_frac and "
                            "test_frac must be >= 0.04 (or raise n)")
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        return max(self.params["n"], self.params["ood_n"])

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        rng = self.rng()
        perms, labels = mheight_universe(p["n"])
        parts = {s: (perms[idx], labels[idx]) for s, idx in
                 stratified_split(rng, labels, p["val_frac"], p["test_frac"]).items()}
        if p["ood_n"] and p["ood_n"] <= MAX_ENUMERATED_N:
            ood_perms, ood_labels = mheight_universe(p["ood_n"])
            pick = rng.permutation(len(ood_perms))[:p["n_ood_test"]]  # all, when fewer
            parts["ood_test"] = (ood_perms[pick], ood_labels[pick])
        elif p["ood_n"]:
            parts["ood_test"] = sample_universe(rng, p["ood_n"], p["n_ood_test"])
        return {s: {"perm": torch.from_numpy(x), "y": torch.from_numpy(y)}
                for s, (x, y) in parts.items()}

    def make_target(self, raw: dict[str, torch.Tensor]) -> torch.Tensor:
        return raw["y"].long()  # stored as int8 classes

    def build_spec(self) -> DatasetSpec:
        p, w = self.params, self.width
        ood = f", OOD test on S_{p['ood_n']}" if p["ood_n"] else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS,
            # mHeight ranges over 1..n-3 on this universe (checked in the tests)
            num_outputs=w - 3,
            # class 0 holds 94% of S_10's rows: accuracy rewards the constant guess, macro F1
            # weighs each mHeight alike (classes absent from a split are left out of it)
            metric="f1_macro",
            views=(ViewSpec(Modality.SEQUENCE, (w,), vocab_size=w + 1),
                   ViewSpec(Modality.VECTOR, (w,)),
                   ViewSpec(Modality.IMAGE, (1, w, w))),
            description=f"mHeight - 1 of 3412-containing 4231-avoiding s in S_{p['n']}{ood}",
            params=self.params, has_ood=bool(p["ood_n"]))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        perm = raw["perm"].long()
        w = self.width
        tokens = torch.nn.functional.pad(perm, (0, w - perm.shape[1]), value=0)
        if modality is Modality.SEQUENCE:
            return tokens  # values 1..n are the tokens; 0 pads shorter permutations
        if modality is Modality.VECTOR:
            return tokens.float() / w  # one scale for every size, so padding means 0
        values = torch.arange(1, w + 1, dtype=tokens.dtype)
        return (tokens.unsqueeze(2) == values).unsqueeze(1).float()  # row i: a 1 at s(i)
