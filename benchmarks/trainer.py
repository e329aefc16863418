"""The common Trainer: one factory, one training budget, the same lean settings for every
cell (no per-step logging, no sanity steps, no progress bar of its own, no checkpoint
files: the best validation weights are kept in memory and restored before testing)."""

from __future__ import annotations

import copy
import logging
import math
import shutil
import warnings
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback, EarlyStopping


@dataclass(frozen=True)
class TrainBudget:
    """How long and how a cell trains; a suite's [budget] table maps onto these fields."""

    max_epochs: int = 30            # upper bound on passes over the training split
    patience: int = 8               # early stopping on the primary val metric (0: off)
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


_NONE = object()
_NEUTRAL = {"batch_scale": 1, "compile": ""}  # options added after the first records were written


OPTIMIZERS = {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}
COMPILE_MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


def compile_backbone(backbone: torch.nn.Module, mode: str, on_gpu: bool) -> None:
    """Compile `backbone` in place (its parameter names are unchanged). On CPU, Inductor
    generates C++: without a compiler that fails on the first step, so say so up front."""
    if not on_gpu and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        from .errors import UserError

        raise UserError(f"compile = {mode!r} on CPU needs a C++ compiler (g++ or clang++) "
                        "on PATH; install one or leave compile unset")
    backbone.compile(mode=None if mode == "default" else mode)


class BestWeights(Callback):
    """Keep a copy of the weights at the best value of the monitored validation metric."""

    def __init__(self, monitor: str, higher_is_better: bool) -> None:
        self.monitor, self.sign = monitor, 1.0 if higher_is_better else -1.0
        self.best_score = -math.inf
        self.best_epoch = -1
        self.state: dict[str, torch.Tensor] | None = None
        self.best_metrics: dict[str, float] = {}  # val metrics at the best epoch

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or self.monitor not in trainer.callback_metrics:
            return
        value = float(trainer.callback_metrics[self.monitor])
        if math.isfinite(value) and self.sign * value > self.best_score:
            self.best_score, self.best_epoch = self.sign * value, trainer.current_epoch
            self.state = copy.deepcopy(pl_module.state_dict())
            self.best_metrics = {k.split("/", 1)[1]: float(v)
                                 for k, v in trainer.callback_metrics.items()
                                 if k.startswith("val/")}

    def restore(self, pl_module: L.LightningModule) -> None:
        if self.state is not None:
            pl_module.load_state_dict(self.state)


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (hardware banners, tips) out of a suite's output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")


def build_trainer(budget: TrainBudget, callbacks: list[Callback] | None = None,
                  accelerator: str = "auto", devices: int | str = 1, strategy: str = "auto",
                  num_nodes: int = 1, monitor: str | None = None,
                  higher_is_better: bool = True) -> L.Trainer:
    """The one Trainer every cell runs under."""
    quiet_lightning()
    cbs = list(callbacks or [])
    if monitor and budget.patience > 0:
        cbs.append(EarlyStopping(monitor=monitor, mode="max" if higher_is_better else "min",
                                 patience=budget.patience, check_finite=False))
    return L.Trainer(
        accelerator=accelerator, devices=devices, strategy=strategy, num_nodes=num_nodes,
        precision=budget.precision, max_epochs=budget.max_epochs,
        max_time=timedelta(seconds=budget.max_time_s) if budget.max_time_s > 0 else None,
        callbacks=cbs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, num_sanity_val_steps=0, log_every_n_steps=10**9,
        deterministic=False, use_distributed_sampler=False,
    )
