"""Explaining a cell: after it trains, attributions of its model on the test split,
scored against what the dataset declares relevant (benchmarks.explain), written beside
the record as seed<k>.explain.json; and its weights kept as seed<k>.weights.safetensors
(weights only) on request.

    mlwm explain --dataset sparse_parity --model mlp --method saliency --method ig
    (or `explain = true` in a suite: every cell of a dataset that declares ground truth)

A model near the constant baseline learned nothing; the leaderboard marks its
attributions so. `--retrain-top K` is the Davies et al. step: retrain the cell on the K
most salient inputs only (the others zeroed; vector views) and record the metric kept.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from ..contract import Modality
from ..data import MathDataModule
from ..errors import UserError
from ..explain.trained import default_methods, explain_model, top_k_inputs
from .files import (  # noqa: F401  (the file names live with the other files)
    explain_path,
    read_explanation,
    weights_path,
    write_text_atomic,
)


def after_training(cell: Any, dm: MathDataModule, outcome: Any, record_path: Path,
                   config_hash: str, explain: tuple[str, ...], keep_weights: bool,
                   rows: int = 500) -> None:
    """What run_cell does with a trained model before dropping it: keep its weights,
    explain it (a failure to explain is written down, never fails the cell). A baseline
    (a constant) has nothing to explain."""
    from .. import registry

    model = outcome.model
    if model is None or registry.get_model_entry(cell.model.name).baseline:
        return
    if keep_weights and isinstance(model, torch.nn.Module):
        from ..explain.weights import save_weights

        save_weights(model, weights_path(record_path),
                     metadata={"config_hash": config_hash, "model": cell.model.name})
    if not explain or not dm.spec.ground_truth:
        return
    kind = "neural" if isinstance(model, torch.nn.Module) else "fitted"
    methods = tuple(m for m in explain if m in default_methods(kind)) or default_methods(kind)
    try:
        data = explain_model(model, dm, cell.view, methods, rows=rows, seed=cell.seed)
    except Exception as exc:  # the cell trained; its explanation did not
        data = {"view": cell.view, "methods": {}, "error": f"{type(exc).__name__}: {exc}"}
    write_text_atomic(explain_path(record_path),
                      json.dumps({"config_hash": config_hash, **data}, indent=1) + "\n")


def retrain_on_top(cell: Any, dm: MathDataModule, entry: dict[str, Any], k: int,
                   train: Any) -> dict[str, Any]:
    """Retrain the cell on its K most salient inputs (the others zeroed) and return the
    test metric it keeps; `train()` trains the cell on the datamodule as it stands (run's
    prepare and train_cell). Vector and tabular views only: a masked token or node is not
    the same as a missing one."""
    vs = dm.spec.view_spec(cell.view)
    if vs.modality not in (Modality.VECTOR, Modality.TABULAR):
        raise UserError(f"--retrain-top needs a vector view; {cell.model.id} reads {vs.key}")
    keep = top_k_inputs(entry, k)
    mask = torch.zeros(vs.shape[0])
    mask[keep] = 1.0
    dm.mask_inputs(cell.view, mask)
    try:
        out = train()
    finally:
        dm.mask_inputs(cell.view, None)
    metric = dm.spec.metric
    return {"k": k, "inputs": keep, "metric": metric,
            "test": out.metrics.get("test", {}).get(metric)}
