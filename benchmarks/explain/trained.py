"""Explaining a trained model on a dataset: attributions on the test split by each
method, scored against what the dataset declares relevant, and the mean |attribution|
per (output, input) that heat maps draw. benchmarks.run.explaining runs it for a cell
and writes the result beside the record."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..contract import TaskType
from ..data import MathDataModule
from ..errors import UserError
from .attribute import METHODS, attribute
from .score import score_attributions, top_inputs

ROWS = 500                 # test rows explained (the first ones): enough for stable scores
NEURAL_METHODS = ("saliency", "ig", "shap")
FITTED_METHODS = ("permutation",)


def default_methods(kind: str) -> tuple[str, ...]:
    return NEURAL_METHODS if kind == "neural" else FITTED_METHODS


def _rows(x: Any, n: int) -> Any:
    from ..data import num_rows, take_rows

    return take_rows(x, torch.arange(min(n, num_rows(x))))


def explain_model(model: Any, dm: MathDataModule, view: str, methods: tuple[str, ...],
                  rows: int = ROWS, seed: int = 0) -> dict[str, Any]:
    """Attribution scores of a trained model on the first `rows` test rows, per method,
    with the mean |attribution| per (output, input) for heat maps."""
    spec = dm.spec.for_view(view)
    mask = dm.relevant_mask("test", view)
    inputs = _rows(dm.inputs("test", view), rows)
    target = _rows(dm.target("test"), rows)
    if spec.task is TaskType.REGRESSION and isinstance(model, torch.nn.Module):
        mean, std = dm.target_stats()
        target = (target - mean) / std  # in the network's output units
    out: dict[str, Any] = {"view": spec.input.key, "ground_truth": spec.ground_truth,
                           "rows": int(len(target)), "methods": {}}
    if mask is not None:
        mask = mask[: len(target)] if mask.shape[0] > 1 else mask
    for method in methods:
        if method not in METHODS:
            raise UserError(f"unknown attribution method {method!r}; choose one of "
                            f"{', '.join(METHODS)}")
        t0 = time.perf_counter()
        try:
            attr = attribute(model, spec, inputs, target, method, seed=seed)
        except UserError as exc:  # a method this model or view cannot take
            out["methods"][method] = {"error": str(exc)}
            continue
        entry: dict[str, Any] = {"seconds": round(time.perf_counter() - t0, 3)}
        if mask is not None:
            entry.update(score_attributions(attr, mask))
        magnitude = attr.abs().mean(dim=0)  # (K, *layout)
        entry["mean_abs"] = magnitude.reshape(magnitude.shape[0], -1).tolist()
        entry["layout"] = list(attr.shape[2:])
        out["methods"][method] = entry
    if mask is not None:
        m = torch.as_tensor(mask).bool()
        out["relevant"] = m.any(dim=0).reshape(m.shape[1], -1).tolist()  # outlined in pictures
    return out


def top_k_inputs(entry: dict[str, Any], k: int) -> list[int]:
    """The K inputs with the largest mean |attribution| (over rows and outputs) of one
    method's entry."""
    return top_inputs(torch.tensor(entry["mean_abs"]).unsqueeze(0), k)
