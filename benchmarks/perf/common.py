"""Helpers shared by the performance scripts."""

from __future__ import annotations

import dataclasses
from typing import Any

from benchmarks.run.plan import Cell, make_cell  # noqa: F401


def cells_for(pair: str, suite, seeds: list[int], **budget_changes: Any) -> list[Cell]:
    """The cells of one `dataset_id:model_id` pair of a suite, one per seed, with the
    suite's budget (and the dataset's overrides of it) changed by `budget_changes`."""
    dataset_id, model_id = pair.split(":")
    dcfg = next((d for d in suite.datasets if d.id == dataset_id), None)
    mcfg = next((m for m in suite.models if m.id == model_id), None)
    if dcfg is None or mcfg is None:
        raise SystemExit(f"--pairs {pair}: suite {suite.name} has datasets "
                         f"{', '.join(d.id for d in suite.datasets)} and models "
                         f"{', '.join(m.id for m in suite.models)}")
    budget = dataclasses.replace(suite.budget, **dcfg.budget)
    budget = dataclasses.replace(budget, **budget_changes)
    return [make_cell("perf", dcfg, mcfg, s, budget) for s in seeds]
