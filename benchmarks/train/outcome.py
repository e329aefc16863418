"""TrainOutcome: what training (or fitting) one model returns to the runner, the same
type from the plain path, the stacked path and fitted models."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

STOP_REASONS = ("max_epochs", "early_stopping", "time_cap")


@dataclass
class TrainOutcome:
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # split -> metric -> value
    epochs: int = 0                 # epochs completed (1 for a fitted model)
    best_epoch: int | None = None   # the validation epoch whose weights were tested
    stopped_by: str | None = None   # one of STOP_REASONS (neural models), else None
    train_s: float = 0.0
    eval_s: float = 0.0
    samples_per_s: float | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # one row per epoch
    details: dict[str, Any] = field(default_factory=dict)  # model-specific record fields
    n_params: int | None = None
    failed: str | None = None       # why the model failed (a stacked member that diverged)
    predictions: dict[str, Any] = field(default_factory=dict)  # split -> per-row predictions
                                    # (benchmarks.metrics.predictions of the outputs)
    model: Any = field(default=None, repr=False)  # the trained model (best weights), for
                                    # explaining or keeping it; never recorded


def stop_reason(epochs: int, max_epochs: int, stopped_early: bool) -> str:
    """Why training ended. A time cap makes the metric depend on the machine's speed; the
    leaderboard says so."""
    if epochs >= max_epochs:
        return "max_epochs"
    return "early_stopping" if stopped_early else "time_cap"
