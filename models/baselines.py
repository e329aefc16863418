"""Baselines every table is read against: the majority class, or the mean for regression.

The best constant predictor under the task's loss, fitted on the training targets:
class frequencies as logits (binary, multiclass, per label for multilabel) or the mean.
"""

from __future__ import annotations

import numpy as np

from benchmarks.contract import DatasetSpec, FittedModel, TaskType
from benchmarks.registry import register_model


class ConstantPredictor(FittedModel):
    """Predicts the training prior (as logits) or the training mean for every input."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.output: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> ConstantPredictor:
        eps = 1e-6
        task = self.spec.task
        if task is TaskType.MULTICLASS:
            freq = np.bincount(y.astype(np.int64), minlength=self.spec.num_outputs) / len(y)
            # the majority class gets the largest logit; ties go to the lowest class
            self.output = np.log(freq + eps)
        elif task in (TaskType.BINARY, TaskType.MULTILABEL):
            p = np.clip(y.reshape(len(y), -1).mean(axis=0), eps, 1 - eps)
            self.output = np.log(p / (1 - p))
        else:
            self.output = y.reshape(len(y), -1).mean(axis=0)
        self.n_params = int(self.output.size)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.output is not None, "fit first"
        return np.tile(self.output, (len(x), 1)).astype(np.float32)


@register_model("majority", modalities=("vector", "tabular"), kind="fitted", baseline=True)
def majority(spec: DatasetSpec) -> FittedModel:
    """Majority class (classification) or mean (regression) of the training targets."""
    return ConstantPredictor(spec)
