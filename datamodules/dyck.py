"""Dyck words: is a bracket string balanced? (workshop "RNNs and LSTM").

Positives: uniformly random Dyck words of even length <= max_len (cycle lemma). Negatives:
the same words after one swap of a '(' with a later ')' that makes them unbalanced, so both
classes have the same lengths and bracket counts and counting cannot solve the task.
The ood_test split holds longer strings, lengths in (max_len, ood_max_len].
"""

from __future__ import annotations

import math

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, check_split_sizes, first_occurrences
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

OPEN, CLOSE = 1, 2  # tokens; 0 is padding


def random_dyck_words(rng: np.random.Generator, half: int, count: int) -> np.ndarray:
    """`count` uniformly random Dyck words of length 2*half, as +1/-1 steps (count, 2*half).

    Cycle lemma: of the 2*half+1 rotations of a random arrangement of half up-steps and
    half+1 down-steps, exactly one stays >= 0 until its final step; it starts just after
    the first minimum of the prefix sums. Dropping that final step leaves a Dyck word, and
    every word arises from the same number of arrangements, so the result is uniform.
    """
    n = 2 * half + 1
    base = np.where(np.arange(n) < half, 1, -1).astype(np.int8)
    steps = rng.permuted(np.tile(base, (count, 1)), axis=1)
    start = np.argmin(np.cumsum(steps, axis=1), axis=1) + 1
    rotated = np.take_along_axis(steps, (start[:, None] + np.arange(n)) % n, axis=1)
    return rotated[:, :-1]


def unbalancing_swap(rng: np.random.Generator, words: np.ndarray) -> np.ndarray:
    """Each Dyck word with one '(' and a later ')' exchanged so that the result is unbalanced.

    The swap lowers the heights between the two positions by 2, so it unbalances exactly
    when some height there is <= 1. Pairs are drawn uniformly and rejected until they do,
    which samples uniformly among the unbalancing swaps (the first '(' with any ')' always
    qualifies, so every row terminates).
    """
    out = words.copy()
    todo = np.arange(len(words))
    heights = np.cumsum(words, axis=1)
    cols = np.arange(words.shape[1])
    while len(todo):
        w, h = words[todo], heights[todo]
        i = np.argmax(np.where(w > 0, rng.random(w.shape), -1), axis=1)  # a random '('
        j = np.argmax(np.where(w < 0, rng.random(w.shape), -1), axis=1)  # a random ')'
        between = (cols >= i[:, None]) & (cols < j[:, None])
        ok = (i < j) & ((h <= 1) & between).any(axis=1)
        rows = todo[ok]
        out[rows, i[ok]], out[rows, j[ok]] = -1, 1
        todo = todo[~ok]
    return out


def labelled_pairs(rng: np.random.Generator, lengths: np.ndarray, pairs: int,
                   width: int) -> tuple[np.ndarray, np.ndarray]:
    """`pairs` distinct Dyck words and their distinct perturbations, as tokens (2*pairs, width).

    The length of each draw is uniform over `lengths`; repeats are dropped, so the short
    lengths, which have few words, end up rarer than the long ones.
    """
    rows = np.zeros((0, width), dtype=np.int8)
    negs = np.zeros((0, width), dtype=np.int8)
    while len(rows) < pairs:
        want = 2 * (pairs - len(rows)) + 64
        drawn = rng.choice(lengths, size=want)
        for length in np.unique(drawn):
            words = random_dyck_words(rng, int(length) // 2, int((drawn == length).sum()))
            padded = np.zeros((len(words), width), dtype=np.int8)
            padded[:, :length] = words
            rows = np.concatenate([rows, padded])
            negs = np.concatenate([negs, unbalancing_swap(rng, padded)])
        keep = first_occurrences(rows)  # distinct positives, then distinct negatives
        rows, negs = rows[keep], negs[keep]
        keep = first_occurrences(negs)
        rows, negs = rows[keep], negs[keep]
    x = np.concatenate([rows[:pairs], negs[:pairs]])
    y = np.concatenate([np.ones(pairs), np.zeros(pairs)])
    return x, y


def dyck_count(max_len: int) -> int:
    """Number of Dyck words of even length 2..max_len (sum of Catalan numbers)."""
    return sum(math.comb(2 * h, h) // (h + 1) for h in range(1, max_len // 2 + 1))


@register_dataset("dyck")
class Dyck(MathDataModule):
    """Balanced-bracket recognition with hard negatives (binary); OOD on longer strings."""

    version = "1"
    smoke_params = {"max_len": 16, "ood_max_len": 20, "n_train": 128, "n_val": 32,
                    "n_test": 64}

    def __init__(self, max_len: int = 24, ood_max_len: int = 40, n_train: int = 4000,
                 n_val: int = 1000, n_test: int = 2000, data_seed: int = 0) -> None:
        super().__init__()
        check_range("max_len", max_len, 4, 1024, dataset="dyck")
        check_split_sizes("dyck", n_train, n_val, n_test, lo=2)
        check_range("ood_max_len", ood_max_len, max_len + 2, 4096, dataset="dyck",
                    zero_means="no OOD split")
        # room for distinct words (4x margin), or dropping repeats would never end
        pairs = sum((v + 1) // 2 for v in (n_train, n_val, n_test))
        if dyck_count(max_len) < 4 * pairs:
            raise UserError(f"dataset 'dyck': max_len={max_len} allows only "
                            f"{dyck_count(max_len)} Dyck words, too few for {pairs} distinct "
                            "positives (4x margin); raise max_len or shrink the splits")
        longer = dyck_count(ood_max_len) - dyck_count(max_len)
        if ood_max_len and longer < 4 * ((n_test + 1) // 2):
            raise UserError(f"dataset 'dyck': ood_max_len={ood_max_len} allows only {longer} "
                            f"Dyck words longer than max_len, too few for n_test={n_test}; "
                            "raise ood_max_len")
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        return max(self.params["max_len"], self.params["ood_max_len"])

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        rng = self.rng()
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        pairs = {s: (v + 1) // 2 for s, v in sizes.items()}
        x, y = labelled_pairs(rng, np.arange(2, p["max_len"] + 1, 2), sum(pairs.values()),
                              p["max_len"])
        total = sum(pairs.values())
        # a word and its perturbation go to the same split: each split is exactly balanced
        owner = np.repeat(np.arange(3), list(pairs.values()))[rng.permutation(total)]
        parts = {s: np.concatenate([x[:total][owner == k], x[total:][owner == k]])
                 for k, s in enumerate(sizes)}
        labels = {s: np.repeat([1.0, 0.0], pairs[s]) for s in sizes}
        if p["ood_max_len"]:
            lengths = np.arange(p["max_len"] + 2, p["ood_max_len"] + 1, 2)
            parts["ood_test"], labels["ood_test"] = labelled_pairs(
                rng, lengths, (p["n_test"] + 1) // 2, p["ood_max_len"])
            sizes["ood_test"] = p["n_test"]
        out = {}
        for s, rows in parts.items():
            order = rng.permutation(len(rows))[:sizes[s]]  # odd sizes drop one row
            tokens = np.where(rows[order] > 0, OPEN, np.where(rows[order] < 0, CLOSE, 0))
            out[s] = {"tokens": torch.from_numpy(tokens.astype(np.uint8)),
                      "y": torch.from_numpy(labels[s][order]).float()}
        return out

    def build_spec(self) -> DatasetSpec:
        p = self.params
        ood = f", OOD lengths up to {p['ood_max_len']}" if p["ood_max_len"] else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.BINARY, num_outputs=1,
            views=(ViewSpec(Modality.SEQUENCE, (self.width,), vocab_size=3),
                   ViewSpec(Modality.VECTOR, (self.width,))),
            description=f"balanced brackets of length <= {p['max_len']}, hard negatives{ood}",
            params=self.params, has_ood=bool(p["ood_max_len"]))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        tokens = raw["tokens"].long()
        tokens = torch.nn.functional.pad(tokens, (0, self.width - tokens.shape[1]), value=0)
        if modality is Modality.SEQUENCE:
            return tokens
        # '(' = +1, ')' = -1, padding 0: the heights are the prefix sums of this vector
        return (tokens == OPEN).float() - (tokens == CLOSE).float()
