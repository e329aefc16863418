"""The baseline every table is read against: the best constant predictor for the
dataset's primary metric, fitted on the training targets.

Which constant is best depends on the metric, not only the task (benchmarks/metrics.py
derives each): the majority class for accuracy, all-positive for a binary F1 whenever
positives exist (all-negative scores 0), the modal label set for exact match, the mean
for R^2 and mse, the median for mae, the modal integer for exact accuracy.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from benchmarks.contract import DatasetSpec, FittedModel, TaskType
from benchmarks.metrics import metric
from benchmarks.registry import register_model


class ConstantPredictor(FittedModel):
    """Predicts, for every input, the constant raw output best for spec.metric on the
    training targets (logits, log-probabilities or values, as a network would)."""

    def __init__(self, spec: DatasetSpec) -> None:
        self.spec = spec
        self.output: np.ndarray | None = None

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> ConstantPredictor:
        self.output = metric(self.spec.metric).best_constant(
            np.asarray(y), self.spec.task, self.spec.num_outputs)
        self.n_params = int(self.output.size)
        return self

    def predict(self, x: np.ndarray) -> np.ndarray:
        assert self.output is not None, "fit first"
        return np.tile(self.output, (len(x), 1)).astype(np.float32)

    def describe(self, metrics: Mapping[str, Mapping[str, float]] | None = None
                 ) -> dict[str, Any]:
        """Which constant, in words and as the decision it encodes."""
        assert self.output is not None, "fit first"
        task, out = self.spec.task, self.output
        if task is TaskType.MULTICLASS:
            decision: Any = int(np.argmax(out))
            what = f"class {decision}"
        elif task in (TaskType.BINARY, TaskType.MULTILABEL):
            # the output logits sit on the chosen side of 0 (never at 0)
            decision = [int(v > 0) for v in out]
            what = ("all-positive" if decision[0] else "all-negative") \
                if task is TaskType.BINARY else f"label set {decision}"
        else:
            decision = [float(v) for v in out]
            what = f"value {decision[0]:.6g}" if len(decision) == 1 else f"values {decision}"
        return {"constant": {"metric": self.spec.metric, "decision": decision,
                             "description": f"{what}, best constant for {self.spec.metric}"}}


@register_model("constant", modalities=("vector", "tabular"), kind="fitted", baseline=True)
def constant(spec: DatasetSpec) -> FittedModel:
    """Best constant prediction for the dataset's primary metric (majority, mean, ...)."""
    return ConstantPredictor(spec)
