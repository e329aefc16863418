"""Training one network on one dataset through the shared LightningModule and the common
Trainer, testing it at its best validation epoch: the plain path of every neural cell."""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from typing import Any

import torch
from torch import nn

from ..contract import DatasetSpec, TaskType
from ..data import MathDataModule
from ..metrics import metric
from .budget import TrainBudget
from .evaluation import compact_predictions
from .hardware import Hardware
from .module import BenchModule
from .outcome import TrainOutcome, stop_reason
from .selection import Selection
from .trainer import build_trainer, compile_backbone


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def train_neural(backbone: nn.Module, dm: MathDataModule, spec: DatasetSpec,
                 budget: TrainBudget, hardware: Hardware, logger: Any = False,
                 test: bool = True) -> TrainOutcome:
    """Fit on train, select on val, test at the best validation weights. The datamodule is
    set up and configured (view, batch size, seed) by the caller. test=False (a tuning
    trial) never touches the test splits: the outcome has validation metrics only."""
    mean, std = dm.target_stats() if spec.task is TaskType.REGRESSION else (0.0, 1.0)
    eval_splits = tuple(s for s in ("test", "ood_test") if s in dm.splits) if test else ()
    if budget.compile:
        compile_backbone(backbone, budget.compile, hardware.on_gpu)
    selection = Selection(spec.metric, spec.higher_is_better, budget.patience,
                          budget.min_epochs, budget.stop_on, metric(spec.metric).best_value)
    module = BenchModule(backbone, spec, selection, lr=budget.train_lr,
                         weight_decay=budget.weight_decay, optimizer=budget.optimizer,
                         target_mean=mean, target_std=std, eval_splits=eval_splits)
    trainer = build_trainer(budget, hardware, logger=logger)
    t0 = time.perf_counter()
    with interrupts_propagate(trainer):
        trainer.fit(module, train_dataloaders=dm.loader("train", shuffle=True),
                    val_dataloaders=dm.loader("val"))
    train_s = time.perf_counter() - t0
    module.restore_best()
    t1 = time.perf_counter()
    if eval_splits:
        with interrupts_propagate(trainer):
            trainer.test(module, dataloaders=[dm.loader(s) for s in eval_splits], verbose=False)
    eval_s = time.perf_counter() - t1
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics: dict[str, dict[str, float]] = {"val": selection.best_metrics}
    for split in eval_splits:
        metrics[split] = {k.split("/", 1)[1]: v for k, v in logged.items()
                          if k.startswith(f"{split}/")}
    epochs = trainer.current_epoch
    predictions = {}
    if trainer.world_size == 1:  # a DDP rank holds only its shard of each split
        predictions = {split: compact_predictions(torch.cat(outs), spec)
                       for split, outs in module.test_outputs.items()}
    return TrainOutcome(
        metrics=metrics, epochs=epochs, best_epoch=selection.best_epoch,
        stopped_by=stop_reason(epochs, budget.max_epochs, selection.stopped_early),
        train_s=train_s, eval_s=eval_s,
        samples_per_s=dm.split_size("train") * max(epochs, 1) / max(train_s, 1e-9),
        history=selection.history, n_params=count_params(backbone), predictions=predictions,
        model=backbone)


@contextlib.contextmanager
def interrupts_propagate(trainer: Any) -> Iterator[None]:
    """Lightning turns Ctrl-C (and SIGTERM) inside fit into sys.exit(1) and ignores further
    signals; give the suite a KeyboardInterrupt back, so it stops cleanly with a resume
    message. A SystemExit that Lightning did not cause (a model calling sys.exit) is a
    failure of that model, not an interrupt."""
    try:
        yield
    except SystemExit as exc:
        # Lightning answers a KeyboardInterrupt with exit(1), raised while handling it
        if isinstance(exc.__context__, KeyboardInterrupt):
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt("interrupted during training") from exc
        raise RuntimeError(f"the model called sys.exit({exc.code})") from exc
