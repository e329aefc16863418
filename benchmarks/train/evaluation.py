"""Loss and metrics per task type: the one evaluation that neural and fitted models share.

Model outputs are raw: logits for classification (binary (B,) or (B, 1), multiclass and
multilabel (B, K)), values for regression. Probabilities are formed here, never by
torchmetrics' guess (it applies a sigmoid only when a value falls outside [0, 1]).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torchmetrics import MetricCollection

from ..contract import DatasetSpec, TaskType
from ..metrics import metric, task_metrics


def build_metrics(spec: DatasetSpec) -> MetricCollection:
    """The torchmetrics of a dataset, from the one metric table (benchmarks.metrics):
    its task's metrics, with exact accuracy where the targets are integers."""
    names = task_metrics(spec.task, spec.integer_valued)
    return MetricCollection({n: metric(n).build(spec.task, spec.num_outputs) for n in names})


def shape_outputs(outputs: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """Bring model outputs to the target's layout ((B, 1) becomes (B,) when K = 1)."""
    if spec.task in (TaskType.BINARY, TaskType.REGRESSION) and spec.num_outputs == 1:
        return outputs.reshape(-1)
    return outputs.reshape(outputs.shape[0], spec.num_outputs)


class NonFiniteOutputs(RuntimeError):
    """A model produced NaN or infinite outputs where it was scored: its metrics would be
    torchmetrics' reading of sigmoid(NaN), not a result, so the cell fails."""


def check_finite(outputs: torch.Tensor, where: str) -> None:
    """NonFiniteOutputs unless every output is finite."""
    if not bool(torch.isfinite(outputs).all()):
        bad = int((~torch.isfinite(outputs)).sum())
        raise NonFiniteOutputs(f"{bad} non-finite model outputs on the {where} split")


def training_loss(outputs: torch.Tensor, target: torch.Tensor, spec: DatasetSpec,
                  target_mean: torch.Tensor | float = 0.0,
                  target_std: torch.Tensor | float = 1.0) -> torch.Tensor:
    """The loss both training paths minimise: the task's loss on shaped outputs, with
    regression targets standardised by the training split's mean and std."""
    out = shape_outputs(outputs, spec)
    if spec.task is TaskType.REGRESSION:
        target = (target - target_mean) / target_std
    return task_loss(out, target, spec)


def task_loss(outputs: torch.Tensor, target: torch.Tensor, spec: DatasetSpec) -> torch.Tensor:
    """The training loss of a task on shaped outputs (regression on standardised targets)."""
    if spec.task is TaskType.MULTICLASS:
        return F.cross_entropy(outputs, target.long())
    if spec.task is TaskType.REGRESSION:
        return F.mse_loss(outputs, target.float())
    return F.binary_cross_entropy_with_logits(outputs, target.float())


def metric_inputs(outputs: torch.Tensor, target: torch.Tensor,
                  spec: DatasetSpec) -> tuple[torch.Tensor, torch.Tensor]:
    """(preds, target) as the task's torchmetrics expect them."""
    if spec.task in (TaskType.BINARY, TaskType.MULTILABEL):
        return torch.sigmoid(outputs.float()), target.long()
    if spec.task is TaskType.MULTICLASS:
        return outputs.float(), target.long()
    return outputs.float(), target.float()


def evaluate_outputs(outputs: torch.Tensor, target: torch.Tensor,
                     spec: DatasetSpec) -> dict[str, float]:
    """All metrics of the task on a whole split at once (fitted models, baselines)."""
    metrics = build_metrics(spec)
    outputs = shape_outputs(torch.as_tensor(outputs), spec)
    check_finite(outputs, "evaluated")
    metrics.update(*metric_inputs(outputs, target, spec))
    return {k: float(v) for k, v in metrics.compute().items()}


def compact_predictions(outputs: torch.Tensor, spec: DatasetSpec) -> Any:
    """Shaped outputs as the per-row predictions the metrics score (classes or 0/1 bits
    as small integers, regression values as float32): what a paired test resamples."""
    import numpy as np

    from ..metrics import predictions

    pred = predictions(outputs.detach().cpu().float().numpy(), spec.task)
    if spec.task is TaskType.REGRESSION:
        return pred.astype(np.float32)
    return pred.astype(np.int16 if spec.num_outputs > 127 else np.int8)
