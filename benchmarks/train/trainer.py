"""The common Trainer: one factory, the same lean settings for every cell (no per-step
logging, no sanity steps, no progress bar of its own, no checkpoint files: the best
validation weights are kept in memory by the selection state and restored before
testing; early stopping is that state's too, see benchmarks.train.selection)."""

from __future__ import annotations

import logging
import shutil
import warnings
from datetime import timedelta
from typing import Any

from ..errors import UserError
from .budget import TrainBudget
from .hardware import Hardware


def optimizer_class(name: str) -> Any:
    """The torch optimiser of a budget's `optimizer` name."""
    import torch

    return {"adamw": torch.optim.AdamW, "adam": torch.optim.Adam, "sgd": torch.optim.SGD}[name]


def compile_backbone(backbone: Any, mode: str, on_gpu: bool) -> None:
    """Compile `backbone` in place (its parameter names are unchanged). On CPU, Inductor
    generates C++: without a compiler that fails on the first step, so say so up front."""
    if not on_gpu and not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        raise UserError(f"compile = {mode!r} on CPU needs a C++ compiler (g++ or clang++) "
                        "on PATH; install one or leave compile unset")
    backbone.compile(mode=None if mode == "default" else mode)


def quiet_lightning() -> None:
    """Keep Lightning's start-up chatter (hardware banners, tips) out of a suite's output."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*sync_dist=True.*")


def build_trainer(budget: TrainBudget, hardware: Hardware, callbacks: list | None = None,
                  logger: Any = False) -> Any:
    """The one Trainer every cell runs under."""
    import lightning as L

    quiet_lightning()
    return L.Trainer(
        accelerator=hardware.accelerator, devices=hardware.devices,
        strategy=hardware.strategy, num_nodes=hardware.num_nodes,
        precision=budget.precision, max_epochs=budget.max_epochs,
        max_time=timedelta(seconds=budget.max_time_s) if budget.max_time_s > 0 else None,
        callbacks=list(callbacks or []), logger=logger, enable_checkpointing=False,
        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
        log_every_n_steps=10**9, deterministic=False, use_distributed_sampler=False,
    )
