"""One selection and early-stopping state per trained model, shared by the plain path
(BenchModule calls it at each epoch end) and the stacked path (one per member).

At the end of epoch e, with the epoch's mean training loss and validation metrics:
1. best weights: kept when the primary validation metric is finite and strictly better
   than every earlier epoch's (the model is tested at these weights); with
   stop_on="metric_or_loss", an equal metric at a lower validation loss also counts, so a
   run flat at chance keeps its best-calibrated epoch rather than its first;
2. divergence: a non-finite training loss ends the run as failed; so do non-finite model
   outputs on the validation split (its metrics would be torchmetrics' reading of NaN);
3. the epoch joins the learning curve;
4. early stopping: `patience` epochs without a strict improvement end the run, but never
   before `min_epochs` (a NaN never counts as one). What must improve: the primary metric
   (stop_on="metric"), or either it or the validation loss ("metric_or_loss": the loss
   still moves while the metric sits flat at chance, so a run that is learning is not
   stopped for looking flat). Once the metric has reached its perfect value (`perfect`,
   e.g. accuracy 1), there is nothing left to select for: a falling loss no longer keeps
   the run going (it would fall for ever on a solved task, up to the epoch cap).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Selection:
    monitor: str                    # the primary metric, as validation reports it
    higher_is_better: bool
    patience: int                   # 0: no early stopping
    min_epochs: int = 0             # no early stop before this many epochs
    stop_on: str = "metric"         # "metric" or "metric_or_loss"
    perfect: float | None = None    # the metric's perfect value (benchmarks.metrics)
    best_loss: float = math.inf     # val loss at the best epoch (tie-break, metric_or_loss)
    stop_loss: float = math.inf     # early stopping's best val loss
    best_score: float = -math.inf   # sign * best finite value of the monitored metric
    best_epoch: int = -1
    best_metrics: dict[str, float] = field(default_factory=dict)
    best_state: Any = None          # whatever `state()` returned at the best epoch
    stop_score: float = -math.inf   # early stopping's own best (NaN never wins)
    wait: int = 0
    epochs: int = 0                 # epochs completed
    stopped_early: bool = False
    failed: str | None = None       # the failed record's reason ("diverged: ...")
    history: list[dict[str, float]] = field(default_factory=list)

    @property
    def sign(self) -> float:
        return 1.0 if self.higher_is_better else -1.0

    def end_epoch(self, epoch: int, mean_loss: float, val: dict[str, float],
                  state: Callable[[], Any], val_problem: str | None = None) -> bool:
        """Update with one finished epoch; True when training should stop here.
        `val_problem`: why validation produced no metrics (non-finite outputs)."""
        value = val.get(self.monitor, math.nan)
        loss = val.get("loss", math.nan)
        both = self.stop_on == "metric_or_loss"
        tie = both and self.sign * value == self.best_score and loss < self.best_loss
        if math.isfinite(value) and (self.sign * value > self.best_score or tie):
            self.best_score, self.best_epoch = self.sign * value, epoch
            self.best_loss = loss if math.isfinite(loss) else math.inf
            self.best_metrics = dict(val)
            self.best_state = state()
        if not math.isfinite(mean_loss):
            self.failed = f"diverged: training loss became {mean_loss} at epoch {epoch}"
            return True
        if val_problem:
            self.failed = val_problem
            return True
        row = {"epoch": epoch, "train/loss": round(mean_loss, 6)}
        row.update({f"val/{k}": round(v, 6) for k, v in val.items()})
        self.history.append(row)
        self.epochs = epoch + 1
        if self.patience > 0:
            improved = self.sign * value > self.stop_score  # False for NaN, as torch.gt
            solved = self.perfect is not None \
                and self.best_score >= self.sign * self.perfect - 1e-9
            if both and not solved and loss < self.stop_loss * (1 - 1e-4):  # a real fall
                improved = True
            if self.sign * value > self.stop_score:
                self.stop_score = self.sign * value
            if loss < self.stop_loss:
                self.stop_loss = loss
            self.wait = 0 if improved else self.wait + 1
            if self.wait >= self.patience and self.epochs >= self.min_epochs:
                self.stopped_early = True
                return True
        return False
