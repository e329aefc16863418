"""Fitting a `kind="fitted"` model (scikit-learn, symbolic regression, the constant
baseline) on the vector view and scoring it with the same evaluation as the networks."""

from __future__ import annotations

import time
from typing import Any

import torch

from ..contract import DatasetSpec
from ..data import MathDataModule
from .evaluation import compact_predictions, evaluate_outputs, shape_outputs
from .outcome import TrainOutcome


def fit_model(model: Any, dm: MathDataModule, spec: DatasetSpec, seed: int) -> TrainOutcome:
    """Fit on train, score every other split; the model's describe(metrics) adds its own
    record fields once the scores are known (a symbolic model credits exact recovery only
    above its R^2 gate)."""
    view = spec.input.key  # the view the plan chose (a one-hot view is a vector too)
    x, y = dm.arrays("train", view)
    t0 = time.perf_counter()
    model.fit(x, y, seed=seed)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics, predictions = {}, {}
    for split in dm.splits:
        if split == "train":
            continue
        xs, _ = dm.arrays(split, view)
        out = torch.as_tensor(model.predict(xs)).float()
        metrics[split] = evaluate_outputs(out, dm.target(split), spec)
        if split != "val":
            predictions[split] = compact_predictions(shape_outputs(out, spec), spec)
    eval_s = time.perf_counter() - t1
    describe = getattr(model, "describe", None)
    return TrainOutcome(metrics=metrics, epochs=1, best_epoch=0, train_s=train_s,
                        eval_s=eval_s, samples_per_s=len(x) / max(train_s, 1e-9),
                        predictions=predictions, model=model,
                        details=describe(metrics) if describe else {},
                        n_params=int(getattr(model, "n_params", 0) or 0))
