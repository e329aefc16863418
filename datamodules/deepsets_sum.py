"""Sum of a set of integers (workshop "Deep Sets"; Zaheer et al. 2017).

A multiset of s integers drawn uniformly from [0, max_value], s spread evenly over
[1, max_size]; the label is their sum (regression, integer valued). The ood_test split has
sizes in (max_size, ood_max_size]: a permutation-invariant sum decoder generalises to it, a
padded MLP need not. No multiset and no vector row occurs twice in all the splits together,
so a size s holds at most half of its C(s + max_value, max_value) multisets (few small sets).
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import (
    MathDataModule,
    check_range,
    check_split_sizes,
    split_counts,
)
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


def size_quotas(count: int, lo: int, hi: int, max_value: int) -> np.ndarray | None:
    """How many sets of each size lo..hi: as even as possible, none above half the
    C(s + max_value, max_value) multisets of size s (so rejection sampling stays quick);
    None when those halves hold fewer than `count`."""
    caps = []
    for s in range(lo, hi + 1):
        half = math.comb(s + max_value, max_value) // 2
        if half >= count:  # C grows with s: every larger size can give `count` too
            caps += [count] * (hi + 1 - s)
            break
        caps.append(half)
    caps = np.array(caps, dtype=np.int64)
    if caps.sum() < count:
        return None
    q_lo, q_hi = 0, count  # water level q: the least with sum(min(caps, q)) >= count
    while q_lo < q_hi:
        mid = (q_lo + q_hi) // 2
        q_lo, q_hi = (q_lo, mid) if np.minimum(caps, mid).sum() >= count else (mid + 1, q_hi)
    quota = np.minimum(caps, q_lo - 1)
    room = np.flatnonzero(caps >= q_lo)[::-1][:count - quota.sum()]  # largest sizes first
    quota[room] += 1
    return quota


FNV_OFFSET, FNV_PRIME = 0xCBF29CE484222325, 0x100000001B3


def row_hashes(rows: np.ndarray, width: int) -> np.ndarray:
    """A 64-bit FNV-1a hash of each row as if 0-padded to `width` (a zero column only
    multiplies by the prime, so the padding is one multiplication). Equal rows hash alike,
    so deduplicating on hashes never lets a repeat through; a collision (odds ~1e-9 at 10^5
    sets) only drops a fresh set."""
    h = np.full(len(rows), FNV_OFFSET, dtype=np.uint64)
    for column in rows.T.astype(np.uint64):
        h = (h ^ column) * np.uint64(FNV_PRIME)  # wraps modulo 2^64
    return h * np.uint64(pow(FNV_PRIME, width - rows.shape[1], 2**64))


def set_hashes(values: np.ndarray, sizes: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Hashes of (multiset, vector row) of each set, its values 0-padded to `width`. The
    multiset is the size then the sorted values; the row is the padded vector view, which
    cannot tell a real trailing 0 from padding ({3, 0} drawn as 3, 0 is the row of {3})."""
    multiset = np.concatenate([sizes[:, None], -np.sort(-values, axis=1)], axis=1)
    return row_hashes(multiset, width + 1), row_hashes(values, width)


def fresh_keys(keys: np.ndarray, taken: np.ndarray) -> np.ndarray:
    """Mask of the first occurrence of each value of `keys` that is not in `taken` (sorted)."""
    fresh = np.zeros(len(keys), dtype=bool)
    fresh[np.unique(keys, return_index=True)[1]] = True
    if len(taken):
        at = np.minimum(np.searchsorted(taken, keys), len(taken) - 1)
        fresh &= taken[at] != keys
    return fresh


def distinct_sets(rng: np.random.Generator, quota: np.ndarray, lo: int, max_value: int,
                  seen: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """quota[s - lo] random multisets of each size s (values uniform in [0, max_value], padded
    with 0 to the largest size), no two with the same multiset or vector row, and none whose
    set_hashes (at this width) are in `seen`, those of other splits. Draw order per size."""
    width = lo + len(quota) - 1
    taken_sets, taken_rows = np.sort(seen[0]), np.sort(seen[1])
    values, sizes = [], []
    have = np.zeros(len(quota), dtype=np.int64)
    for _ in range(100):  # half of each size's multisets are left: a few rounds suffice
        short = quota - have
        if not short.any():
            return np.concatenate(values), np.concatenate(sizes)
        new_sizes = np.repeat(np.arange(lo, width + 1), np.where(short > 0, 2 * short + 16, 0))
        new = rng.integers(0, max_value + 1, size=(len(new_sizes), width))
        new[np.arange(width) >= new_sizes[:, None]] = 0
        set_h, row_h = set_hashes(new, new_sizes, width)
        fresh = fresh_keys(set_h, taken_sets) & fresh_keys(row_h, taken_rows)
        # the first short[s] fresh sets of each size, in draw order
        idx = np.flatnonzero(fresh)
        group = new_sizes[idx] - lo
        by_size = np.argsort(group, kind="stable")
        rank = np.empty(len(idx), dtype=np.int64)
        rank[by_size] = np.arange(len(idx)) - np.searchsorted(group[by_size], group[by_size])
        idx = idx[rank < short[group]]
        values.append(new[idx])
        sizes.append(new_sizes[idx])
        have += np.bincount(new_sizes[idx] - lo, minlength=len(quota))
        taken_sets = np.sort(np.concatenate([taken_sets, set_h[idx]]))
        taken_rows = np.sort(np.concatenate([taken_rows, row_h[idx]]))
    raise RuntimeError(f"deepsets_sum: could not draw {quota.tolist()} distinct sets of "
                       f"sizes {lo}..{width}")


@register_dataset("deepsets_sum")
class DeepSetsSum(MathDataModule):
    """Sum of a random set of integers (regression); OOD test on much larger sets."""

    version = "2"  # v1 drew each split independently: 885 of 2,000 test sets were training sets
    smoke_params = {"max_size": 5, "ood_max_size": 12, "n_train": 128, "n_val": 32,
                    "n_test": 64}

    def __init__(self, max_value: int = 9, max_size: int = 9, ood_max_size: int = 100,
                 n_train: int = 4000, n_val: int = 1000, n_test: int = 2000,
                 data_seed: int = 0) -> None:
        super().__init__()
        check_range("max_value", max_value, 1, 10_000, dataset="deepsets_sum")
        check_range("max_size", max_size, 1, 1000, dataset="deepsets_sum")
        check_split_sizes("deepsets_sum", n_train, n_val, n_test)
        check_range("ood_max_size", ood_max_size, max_size + 1, 10_000, dataset="deepsets_sum",
                    zero_means="no OOD split")
        width = max(max_size, ood_max_size)
        if max_value * width > 2**24:  # float32 targets hold every integer up to 2^24
            raise UserError(f"dataset 'deepsets_sum': sums up to max_value*{width} = "
                            f"{max_value * width} are not exact in float32; accepted: "
                            f"max_value <= {2**24 // width}")
        total = n_train + n_val + n_test
        if size_quotas(total, 1, max_size, max_value) is None:
            raise UserError(f"dataset 'deepsets_sum': max_size={max_size} and max_value="
                            f"{max_value} give too few distinct sets for {total} (each size "
                            "offers half its multisets); raise max_size or max_value")
        if ood_max_size and size_quotas(n_test, max_size + 1, ood_max_size, max_value) is None:
            raise UserError(f"dataset 'deepsets_sum': ood_max_size={ood_max_size} gives too "
                            f"few distinct sets for n_test={n_test}; raise ood_max_size")
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        return max(self.params["max_size"], self.params["ood_max_size"])

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        lo, hi, v = 1, p["max_size"], p["max_value"]
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        rng = self.rng()
        nothing = (np.zeros(0, np.uint64), np.zeros(0, np.uint64))
        values, size = distinct_sets(rng, size_quotas(sum(sizes.values()), lo, hi, v), lo, v,
                                     nothing)
        # one pool, then a data_seed permutation into splits: they share one size
        # distribution, and no set is in two of them
        order = rng.permutation(len(values))
        parts = {s: (values[order[sl]], size[order[sl]]) for s, sl in split_counts(sizes).items()}
        if p["ood_max_size"]:  # own stream, so the in-distribution splits do not change
            ood_rng, top = self.rng(1), p["ood_max_size"]
            ood, ood_size = distinct_sets(ood_rng, size_quotas(p["n_test"], hi + 1, top, v),
                                          hi + 1, v, set_hashes(values, size, top))
            order = ood_rng.permutation(len(ood))  # sizes were drawn in blocks
            parts["ood_test"] = (ood[order], ood_size[order])
        return {s: {"values": torch.from_numpy(x.astype(np.int16)),
                    "size": torch.from_numpy(n.astype(np.int16)),
                    "y": torch.from_numpy(x.sum(axis=1)).float()}  # exact: checked in __init__
                for s, (x, n) in parts.items()}

    def build_spec(self) -> DatasetSpec:
        p = self.params
        w, v = self.width, p["max_value"]
        ood = f", OOD sizes up to {p['ood_max_size']}" if p["ood_max_size"] else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.REGRESSION, num_outputs=1,
            views=(ViewSpec(Modality.SET, (w, 1)),
                   ViewSpec(Modality.SEQUENCE, (w,), vocab_size=v + 2),
                   ViewSpec(Modality.VECTOR, (w,))),
            description=f"sum of 1..{p['max_size']} integers in [0, {v}], no set repeated{ood}",
            params=self.params, has_ood=bool(p["ood_max_size"]),
            integer_valued=True)  # r2 ~ 1 can hide wrong sums of large sets

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> object:
        values = raw["values"].long()
        values = torch.nn.functional.pad(values, (0, self.width - values.shape[1]), value=0)
        real = torch.arange(self.width) < raw["size"].long()[:, None]
        if modality is Modality.SEQUENCE:
            return torch.where(real, values + 1, 0)  # tokens value+1; 0 is padding
        scaled = values.float() / self.params["max_value"]
        if modality is Modality.SET:
            return {"x": scaled.unsqueeze(-1), "mask": real}
        return scaled  # padding zeros add nothing to the sum
