"""Sum of a set of integers (workshop "Deep Sets"; Zaheer et al. 2017).

A multiset of s integers drawn uniformly from [0, max_value], s uniform in [1, max_size];
the label is their sum (regression). The ood_test split draws sizes in (max_size,
ood_max_size]: a permutation-invariant sum decoder generalises to it, a padded MLP need not.
"""

from __future__ import annotations

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, check_split_sizes
from benchmarks.registry import register_dataset


def random_sets(rng: np.random.Generator, count: int, min_size: int, max_size: int,
                max_value: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(values padded with 0 to `width`, sizes) of `count` random multisets."""
    sizes = rng.integers(min_size, max_size + 1, size=count)
    values = rng.integers(0, max_value + 1, size=(count, width))
    values[np.arange(width) >= sizes[:, None]] = 0
    return values, sizes


@register_dataset("deepsets_sum")
class DeepSetsSum(MathDataModule):
    """Sum of a random set of integers (regression); OOD test on much larger sets."""

    version = "1"
    smoke_params = {"max_size": 5, "ood_max_size": 12, "n_train": 128, "n_val": 32,
                    "n_test": 64}
    unique_inputs = False  # small sets repeat by chance; the task is the sum, not recall

    def __init__(self, max_value: int = 9, max_size: int = 9, ood_max_size: int = 100,
                 n_train: int = 4000, n_val: int = 1000, n_test: int = 2000,
                 data_seed: int = 0) -> None:
        super().__init__()
        check_range("max_value", max_value, 1, 10_000, dataset="deepsets_sum")
        check_range("max_size", max_size, 1, 1000, dataset="deepsets_sum")
        check_split_sizes("deepsets_sum", n_train, n_val, n_test)
        check_range("ood_max_size", ood_max_size, max_size + 1, 10_000, dataset="deepsets_sum",
                    zero_means="no OOD split")
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        return max(self.params["max_size"], self.params["ood_max_size"])

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        plan = {"train": (p["n_train"], 1, p["max_size"]), "val": (p["n_val"], 1, p["max_size"]),
                "test": (p["n_test"], 1, p["max_size"])}
        if p["ood_max_size"]:
            plan["ood_test"] = (p["n_test"], p["max_size"] + 1, p["ood_max_size"])
        out = {}
        for k, (split, (count, lo, hi)) in enumerate(plan.items()):
            values, sizes = random_sets(self.rng(k), count, lo, hi, p["max_value"], hi)
            out[split] = {"values": torch.from_numpy(values.astype(np.int16)),
                          "size": torch.from_numpy(sizes.astype(np.int16)),
                          "y": torch.from_numpy(values.sum(axis=1)).float()}
        return out

    def build_spec(self) -> DatasetSpec:
        p = self.params
        w, v = self.width, p["max_value"]
        ood = f", OOD sizes up to {p['ood_max_size']}" if p["ood_max_size"] else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.REGRESSION, num_outputs=1,
            views=(ViewSpec(Modality.SET, (w, 1)),
                   ViewSpec(Modality.SEQUENCE, (w,), vocab_size=v + 2),
                   ViewSpec(Modality.VECTOR, (w,))),
            description=f"sum of 1..{p['max_size']} integers in [0, {v}]{ood}",
            params=self.params, has_ood=bool(p["ood_max_size"]))

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
