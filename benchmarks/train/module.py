"""The shared LightningModule: loss, optimiser and metrics for every (dataset, model) pair.

The backbone is a plain nn.Module from a model factory; everything task-specific comes
from the DatasetSpec. Logged keys: `train/loss`, `val/<metric>`, `test/<metric>` (and
`ood_test/<metric>`). The loss is summed on the device and logged once per epoch, not per
step. At each epoch end the selection state (benchmarks.train.selection) keeps the best
weights, stops early, and turns a non-finite loss into `Diverged`.
"""

from __future__ import annotations

import copy
from typing import Any

import lightning as L
import torch
from torch import nn

from ..contract import DatasetSpec, TaskType
from ..data import BatchChunk
from .evaluation import (
    NonFiniteOutputs,
    build_metrics,
    check_finite,
    metric_inputs,
    shape_outputs,
    task_loss,
    training_loss,
)
from .selection import Selection
from .trainer import optimizer_class

_NO_SCALER = ("32-true", "32", "bf16-mixed", "bf16-true", "64-true")


class Diverged(RuntimeError):
    """Training failed numerically: the loss, or the validation outputs, became NaN or
    infinite. The message is the failed record's reason."""


def call_backbone(backbone: nn.Module, inputs: Any) -> torch.Tensor:
    """Dict inputs (sets) are passed as keyword arguments, anything else as one argument."""
    return backbone(**inputs) if isinstance(inputs, dict) else backbone(inputs)


class BenchModule(L.LightningModule):
    def __init__(self, backbone: nn.Module, spec: DatasetSpec, selection: Selection,
                 lr: float = 1e-3, weight_decay: float = 0.0, optimizer: str = "adamw",
                 target_mean: float = 0.0, target_std: float = 1.0,
                 eval_splits: tuple[str, ...] = ("test",)) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone", "spec", "selection"])
        self.automatic_optimization = False  # see training_step: chunks of minibatches
        self.backbone, self.spec, self.selection = backbone, spec, selection
        self.regression = spec.task is TaskType.REGRESSION
        self.register_buffer("target_mean", torch.tensor(float(target_mean)))
        self.register_buffer("target_std", torch.tensor(float(target_std) or 1.0))
        self.val_metrics = build_metrics(spec)
        self.eval_splits = tuple(eval_splits)
        self.test_metrics = nn.ModuleDict({s: build_metrics(spec) for s in self.eval_splits})
        self._loss_sum = torch.zeros(())
        self._loss_steps = 0
        self._val: dict[str, float] = {}
        self._val_problem: str | None = None  # non-finite outputs seen in this validation
        self.test_outputs: dict[str, list[torch.Tensor]] = {}  # per split, for predictions
        self._val_loss, self._val_rows = torch.zeros(()), 0
        self._tested: set[str] = set()

    def forward(self, inputs: Any) -> torch.Tensor:
        """Outputs in target units (regression de-standardised)."""
        out = shape_outputs(call_backbone(self.backbone, inputs), self.spec)
        return out * self.target_std + self.target_mean if self.regression else out

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        """One optimiser step per minibatch. A `BatchChunk` carries several minibatches,
        so Lightning's per-call overhead is paid once for all of them; the sequence of
        optimiser steps is exactly that of one minibatch per call."""
        opt = self.optimizers()
        batches = batch if isinstance(batch, BatchChunk) else (batch,)
        # Without a gradient scaler (fp32, bf16) a micro-step needs none of Lightning's
        # per-step hooks: the raw optimiser and a plain backward (DDP still syncs in it).
        raw = opt.optimizer if self.trainer.precision in _NO_SCALER else None
        loss = None
        for inputs, target in batches:
            loss = training_loss(call_backbone(self.backbone, inputs), target, self.spec,
                                 self.target_mean, self.target_std)
            if raw is not None:
                raw.zero_grad(set_to_none=True)
                loss.backward()
                raw.step()
            else:
                opt.zero_grad(set_to_none=True)
                self.manual_backward(loss)
                opt.step()
            self._loss_sum = self._loss_sum.to(loss.device) + loss.detach()
            self._loss_steps += 1
        return loss.detach()

    def on_train_epoch_end(self) -> None:
        """Validation has run by now (Lightning validates inside the epoch): hand the
        epoch to the selection state, which keeps the best weights and decides to stop."""
        mean = self._loss_sum / max(self._loss_steps, 1)
        self._loss_sum, self._loss_steps = torch.zeros((), device=mean.device), 0
        loss = float(mean)
        stop = self.selection.end_epoch(self.current_epoch, loss, self._val,
                                        lambda: copy.deepcopy(self.state_dict()),
                                        self._val_problem)
        if self.selection.failed:
            raise Diverged(self.selection.failed)
        self.log("train/loss", mean, on_epoch=True, sync_dist=True)
        if stop:
            self.trainer.should_stop = True

    def restore_best(self) -> None:
        """Load the best validation epoch's weights (the last ones if none was finite)."""
        if self.selection.best_state is not None:
            self.load_state_dict(self.selection.best_state)

    def validation_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int) -> None:
        """Metrics on outputs in target units, and the validation loss (which still moves
        when the metric sits flat: early stopping may watch it)."""
        inputs, target = batch
        raw = shape_outputs(call_backbone(self.backbone, inputs), self.spec)
        try:
            check_finite(raw, "val")
        except NonFiniteOutputs as exc:  # decided at the epoch's end, after the loss check
            self._val_problem = self._val_problem or f"NonFiniteOutputs: {exc}"
            return
        loss = task_loss(raw, (target - self.target_mean) / self.target_std
                         if self.regression else target, self.spec)
        self._val_loss = self._val_loss + loss.detach() * len(target)
        self._val_rows += len(target)
        out = raw * self.target_std + self.target_mean if self.regression else raw
        self.val_metrics.update(*metric_inputs(out, target, self.spec))

    def on_validation_epoch_end(self) -> None:
        if self._val_problem:  # no metrics of non-finite outputs (the epoch end fails it)
            self.val_metrics.reset()
            self._val = {}
            return
        values = self.val_metrics.compute()
        self.val_metrics.reset()
        self._val = {k: float(v) for k, v in values.items()}
        self._val["loss"] = float(self._val_loss) / max(self._val_rows, 1)
        self._val_loss, self._val_rows = torch.zeros(()), 0
        self.log_dict({f"val/{k}": v for k, v in values.items()}, sync_dist=False)

    def test_step(self, batch: tuple[Any, torch.Tensor], batch_idx: int,
                  dataloader_idx: int = 0) -> None:
        split = self.eval_splits[dataloader_idx]
        self._tested.add(split)
        inputs, target = batch
        out = self(inputs)
        check_finite(out, split)
        self.test_metrics[split].update(*metric_inputs(out, target, self.spec))
        self.test_outputs.setdefault(split, []).append(out.detach().cpu())

    def on_test_epoch_end(self) -> None:
        for split in sorted(self._tested):
            metrics = self.test_metrics[split]
            values = metrics.compute()
            metrics.reset()
            self.log_dict({f"{split}/{k}": v for k, v in values.items()},
                          add_dataloader_idx=False)
        self._tested.clear()

    def configure_optimizers(self) -> torch.optim.Optimizer:
        opt = optimizer_class(self.hparams.optimizer)
        return opt(self.parameters(), lr=self.hparams.lr, weight_decay=self.hparams.weight_decay)
