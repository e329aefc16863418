"""Parameter budgets: scale a model's width so that it lands within 10% of a budget.

Architectures are compared fairly at equal parameter counts (Benchmarking GNNs fixes
100k/500k by hand); here the harness searches the integer hyperparameter a family names
as its `width` for every (dataset, model) pair. Models are built on the meta device, so
a search costs no memory and little time.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

from .. import registry
from ..contract import DatasetSpec
from ..errors import UserError

TOLERANCE = 0.10
MAX_WIDTH = 1 << 14


def format_budget(budget: int) -> str:
    """10000 -> '10k', 1500000 -> '1.5M'."""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if budget >= div:
            return f"{budget / div:g}{unit}"
    return str(budget)


def count_for_width(name: str, spec: DatasetSpec, hparams: dict[str, Any], width: int) -> int:
    entry = registry.get_model_entry(name)
    with torch.device("meta"):
        model = registry.create_model(name, spec, **{**hparams, entry.width: width})
    return sum(p.numel() for p in model.parameters())


def fit_width(name: str, spec: DatasetSpec, budget: int,
              hparams: dict[str, Any] | None = None) -> tuple[int, int]:
    """(width, parameter count) closest to `budget`; UserError when no width is within 10%."""
    entry = registry.get_model_entry(name)
    hparams = {k: v for k, v in (hparams or {}).items() if k != entry.width}
    if entry.width is None:
        raise UserError(f"model {name!r} declares no width hyperparameter, so it cannot be "
                        "scaled to a parameter budget; give it explicit hparams instead")
    if budget < 1:
        raise UserError(f"parameter budget must be a positive integer, got {budget}")
    @functools.cache
    def count(width: int) -> int:
        return count_for_width(name, spec, hparams, width)

    lo, hi = 1, 1
    while count(hi) < budget and hi < MAX_WIDTH:
        lo, hi = hi, min(hi * 2, MAX_WIDTH)
    while hi - lo > 1:  # smallest width whose count reaches the budget lies in (lo, hi]
        mid = (lo + hi) // 2
        if count(mid) >= budget:
            hi = mid
        else:
            lo = mid
    candidates = [(abs(count(w) - budget), w) for w in {lo, hi}]
    _, width = min(candidates)
    n = count(width)
    if abs(n - budget) > TOLERANCE * budget:
        raise UserError(
            f"model {name!r} cannot reach a budget of {budget} parameters on dataset "
            f"{spec.name!r} within 10%: width {lo} gives {count(lo)}, width {hi} gives "
            f"{count(hi)}; choose a budget between {count(1)} and {count(MAX_WIDTH)}")
    return width, n
