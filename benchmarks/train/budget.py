"""TrainBudget: how long and how a cell trains. A suite's [budget] table maps onto its
fields; every field's domain is checked when a budget is made, so a bad value is one line
at parse time rather than a failure in every cell. No torch import here: parsing a suite
(and printing its errors) stays fast."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

OPTIMIZER_NAMES = ("adamw", "adam", "sgd")
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")
PRECISIONS = ("32-true", "32", "64-true", "64", "16-mixed", "bf16-mixed", "16-true",
              "bf16-true")


@dataclass(frozen=True)
class TrainBudget:
    """How long and how a cell trains; a suite's [budget] table maps onto these fields."""

    max_epochs: int = 30            # upper bound on passes over the training split
    patience: int = 8               # early stopping on the primary val metric (0: off)
    min_epochs: int = 0             # no early stop before this many epochs (a run flat at
                                    # chance for a while may still learn)
    stop_on: str = "metric"         # what must stop improving for `patience` epochs:
                                    # "metric" (the primary val metric) or "metric_or_loss"
                                    # (neither it nor the val loss, which still moves
                                    # while the metric is flat)
    batch_size: int = 256           # training batch; evaluation uses whole-split batches
    lr: float = 1e-3                # AdamW learning rate
    weight_decay: float = 0.0
    optimizer: str = "adamw"        # adamw, adam or sgd
    max_time_s: float = 0.0         # wall-clock cap per cell in seconds (0: none)
    precision: str = "32-true"      # Lightning precision ("bf16-mixed" on recent GPUs)
    chunk: int = 0                  # minibatches per Lightning step (0: a whole epoch);
                                    # the same optimiser steps, less per-call overhead
    batch_scale: int = 1            # speed mode: train on batch_size * k with the rate
                                    # scaled to match (see train_lr)
    compile: str = ""               # torch.compile the backbone with this mode: default,
                                    # reduce-overhead (CUDA graphs on GPU), max-autotune

    def __post_init__(self) -> None:
        problem = budget_problem(self)
        if problem:
            raise ValueError(problem)

    @property
    def train_batch_size(self) -> int:
        return self.batch_size * self.batch_scale

    @property
    def train_lr(self) -> float:
        """The learning rate for `train_batch_size`: the square-root rule for Adam and
        AdamW (Malladi et al., 2022), the linear rule for SGD (Goyal et al., 2017)."""
        k = self.batch_scale
        return self.lr * (k if self.optimizer == "sgd" else math.sqrt(k))

    def to_dict(self) -> dict[str, Any]:
        """The budget as recorded and hashed. Options at their neutral value are left out,
        so that records made before an option existed keep their identity (and resume)."""
        return {k: v for k, v in asdict(self).items() if _NEUTRAL.get(k, _NONE) != v}

    @classmethod
    def field_types(cls) -> dict[str, type]:
        """Each field's Python type (int, float or str), for typed suite tables."""
        return {f.name: {"int": int, "float": float, "str": str}[str(f.type)]
                for f in fields(cls)}


_NONE = object()
# options added after the first records were written, left out at these values
_NEUTRAL = {"batch_scale": 1, "compile": "", "min_epochs": 0, "stop_on": "metric"}
STOP_ON = ("metric", "metric_or_loss")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def budget_problem(b: TrainBudget) -> str | None:
    """Why a budget cannot train, in one line, or None. Numbers must be finite; the
    seed-like counts must be integers within range."""
    checks = [
        (_is_int(b.max_epochs) and b.max_epochs >= 1, "max_epochs must be an integer >= 1"),
        (_is_int(b.patience) and b.patience >= 0, "patience must be an integer >= 0 (0: off)"),
        (_is_int(b.min_epochs) and 0 <= b.min_epochs <= b.max_epochs,
         "min_epochs must be an integer between 0 and max_epochs"),
        (b.stop_on in STOP_ON, f"stop_on must be one of {', '.join(STOP_ON)}"),
        (_is_int(b.batch_size) and b.batch_size >= 1, "batch_size must be an integer >= 1"),
        (_is_number(b.lr) and b.lr > 0, "lr must be a finite number > 0"),
        (_is_number(b.weight_decay) and b.weight_decay >= 0,
         "weight_decay must be a finite number >= 0"),
        (b.optimizer in OPTIMIZER_NAMES,
         f"optimizer must be one of {', '.join(OPTIMIZER_NAMES)}"),
        (_is_number(b.max_time_s) and b.max_time_s >= 0,
         "max_time_s must be a finite number >= 0 (0: no cap)"),
        (b.precision in PRECISIONS, f"precision must be one of {', '.join(PRECISIONS)}"),
        (_is_int(b.chunk) and b.chunk >= 0, "chunk must be an integer >= 0 (0: a whole epoch)"),
        (_is_int(b.batch_scale) and b.batch_scale >= 1, "batch_scale must be an integer >= 1"),
        (b.compile == "" or b.compile in COMPILE_MODES,
         f"compile must be one of {', '.join(COMPILE_MODES)} (or \"\" for none)"),
    ]
    for ok, message in checks:
        if not ok:
            return f"budget: {message}; got {_given(b, message)}"
    return None


def _given(b: TrainBudget, message: str) -> str:
    name = message.split()[0]
    return f"{name} = {getattr(b, name)!r}"
