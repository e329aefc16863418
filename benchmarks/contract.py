"""The data/model contract: what a datamodule publishes and what a model factory reads.

A datamodule describes itself with a frozen `DatasetSpec`; it offers its data in one
or more *views* (its native modality first, then derived ones such as a padded vector).
The runner picks the first view a model accepts and hands the factory the spec narrowed
to that view (`spec.for_view(modality)`), so a factory only ever reads one layout.

Batch layouts, per view (the first element of every batch; the second is the target):
- vector, tabular: float tensor (B, D)
- sequence: long tensor (B, L) of tokens in [0, vocab_size); token 0 is padding, so a
  model derives lengths and masks from `x != PAD` (variable lengths, OOD splits)
- image: float tensor (B, C, H, W)
- set: dict {"x": float (B, S, F), "mask": bool (B, S)} (True marks a real element)
- graph: a torch_geometric Batch (x, edge_index, batch)
Targets: binary float (B,), multiclass long (B,), multilabel float (B, K),
regression float (B,) or (B, K).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from . import metrics as _metrics

PAD = 0  # padding token of every sequence view


class Modality(str, Enum):
    VECTOR = "vector"
    SEQUENCE = "sequence"
    IMAGE = "image"
    SET = "set"
    GRAPH = "graph"
    TABULAR = "tabular"


class TaskType(str, Enum):
    BINARY = "binary"
    MULTICLASS = "multiclass"
    MULTILABEL = "multilabel"
    REGRESSION = "regression"


# What a metric is (its torchmetrics, direction, bounds, best constant) lives in one
# table, benchmarks.metrics; the contract only names, per task type, which ones apply.
# The first is the default primary metric. Direction is a property of the metric, never
# of the model.
TASK_METRICS: dict[TaskType, tuple[str, ...]] = {
    TaskType(task): names for task, names in _metrics.TASK_METRICS.items()}
HIGHER_IS_BETTER: dict[str, bool] = {n: m.higher_is_better for n, m in _metrics.METRICS.items()}


class SpecError(ValueError):
    """A datamodule published an inconsistent spec (a bug in the plugin)."""


@dataclass(frozen=True)
class ViewSpec:
    """One layout of the inputs: its modality and per-sample shape.

    shape: per-sample shape of the tensor (vector (D,), sequence (L,), image (C, H, W),
    set (S, F), graph (F,) = node feature width). vocab_size: sequences only.
    """

    modality: Modality
    shape: tuple[int, ...]
    vocab_size: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "modality", Modality(self.modality))
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        if not self.shape or any(s <= 0 for s in self.shape):
            raise SpecError(f"view {self.modality.value}: shape must be positive, got {self.shape}")
        if self.modality is Modality.SEQUENCE and (self.vocab_size is None or self.vocab_size < 2):
            raise SpecError("a sequence view needs vocab_size >= 2 (token 0 is padding)")

    @property
    def numel(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class DatasetSpec:
    """What a model factory and the shared LightningModule may know about a dataset."""

    name: str                          # registry name, e.g. "descents"
    version: str                       # bumped whenever generated data would change
    task: TaskType                     # decides loss and metrics
    num_outputs: int                   # logits (classes, labels) or regression targets
    views: tuple[ViewSpec, ...]        # native view first; every dataset offers a vector view
    metric: str = ""                   # primary metric; "" means the task's default
    higher_is_better: bool | None = None  # None means the metric's own direction
    secondary_metrics: tuple[str, ...] = ()  # shown beside the primary one
    description: str = ""              # one line for the leaderboard
    params: Mapping[str, Any] = field(default_factory=dict)  # generation parameters
    has_ood: bool = False              # an out-of-distribution test split exists
    integer_valued: bool = False       # regression targets are integers: exact accuracy of
                                       # the rounded prediction is reported beside r2
    ground_truth: str = ""             # what is known to matter for the target, in words
                                       # ("the k hidden bits"); the datamodule's
                                       # relevant_inputs() gives it per input (explain)
    extra: Mapping[str, Any] = field(default_factory=dict)  # e.g. the ground-truth formula
    view: Modality | None = None       # the view chosen for a model (None: native)

    def __post_init__(self) -> None:
        object.__setattr__(self, "task", TaskType(self.task))
        object.__setattr__(self, "views", tuple(self.views))
        object.__setattr__(self, "params", dict(self.params))
        object.__setattr__(self, "extra", dict(self.extra))
        allowed = _metrics.task_metrics(self.task, self.integer_valued)
        if not self.metric:
            object.__setattr__(self, "metric", allowed[0])
        if self.metric not in allowed:
            raise SpecError(f"{self.name}: metric {self.metric!r} is not computed for "
                            f"{self.task.value} tasks; choose one of {', '.join(allowed)}")
        if self.higher_is_better is None:
            object.__setattr__(self, "higher_is_better", HIGHER_IS_BETTER[self.metric])
        if not self.secondary_metrics:
            object.__setattr__(self, "secondary_metrics",
                               tuple(m for m in allowed if m != self.metric))
        if self.num_outputs < 1:
            raise SpecError(f"{self.name}: num_outputs must be >= 1, got {self.num_outputs}")
        if self.task is TaskType.BINARY and self.num_outputs != 1:
            raise SpecError(f"{self.name}: a binary task has num_outputs=1 (one logit)")
        if self.task is TaskType.MULTICLASS and self.num_outputs < 2:
            raise SpecError(f"{self.name}: a multiclass task needs num_outputs >= 2")
        if not self.views:
            raise SpecError(f"{self.name}: a dataset must offer at least one view")
        mods = [v.modality for v in self.views]
        if len(set(mods)) != len(mods):
            raise SpecError(f"{self.name}: each view modality may appear once, got {mods}")
        if Modality.VECTOR not in mods and Modality.TABULAR not in mods:
            raise SpecError(f"{self.name}: every dataset must offer a vector (or tabular) view "
                            "so that every model family can run on it")
        if self.view is not None:
            object.__setattr__(self, "view", Modality(self.view))
            if self.view not in mods:
                raise SpecError(f"{self.name}: no {self.view.value} view")

    # -- views ------------------------------------------------------------------------
    @property
    def modality(self) -> Modality:
        """The modality a model sees: the chosen view, else the native one."""
        return self.view if self.view is not None else self.views[0].modality

    @property
    def native_modality(self) -> Modality:
        return self.views[0].modality

    @property
    def input(self) -> ViewSpec:
        """The ViewSpec of the chosen (or native) view."""
        return self.view_spec(self.modality)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def vocab_size(self) -> int | None:
        return self.input.vocab_size

    def view_spec(self, modality: Modality | str) -> ViewSpec:
        modality = Modality(modality)
        for v in self.views:
            if v.modality is modality:
                return v
        raise SpecError(f"{self.name}: no {modality.value} view "
                        f"(offers {', '.join(v.modality.value for v in self.views)})")

    @property
    def modalities(self) -> tuple[Modality, ...]:
        return tuple(v.modality for v in self.views)

    def for_view(self, modality: Modality | str) -> DatasetSpec:
        """This spec as a model sees it through one view."""
        self.view_spec(modality)
        return dataclasses.replace(self, view=Modality(modality))

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for run records."""
        return {
            "name": self.name, "version": self.version, "task": self.task.value,
            "num_outputs": self.num_outputs, "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "views": [v.modality.value for v in self.views],
            "view": self.modality.value, "input_shape": list(self.input_shape),
            "description": self.description,
        }


def choose_view(spec: DatasetSpec, accepted: tuple[Modality, ...]) -> Modality | None:
    """The first view the dataset offers (native first) that a model accepts, or None."""
    for v in spec.views:
        if v.modality in accepted:
            return v.modality
    return None


class FittedModel:
    """What a `kind="fitted"` factory returns: fit on numpy arrays of the vector (or
    tabular) view, predict raw outputs in the network layout (logits for classification,
    values for regression), so that the shared evaluation scores it like a network.
    Subclassing is optional; these three members are the whole protocol."""

    n_params: int = 0  # learned numbers, for the leaderboard's parameter column

    def fit(self, x: Any, y: Any, seed: int = 0) -> FittedModel:
        raise NotImplementedError

    def predict(self, x: Any) -> Any:
        raise NotImplementedError

    def describe(self, metrics: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
        """Extra fields for the record (a found formula, a tree count), given the metrics
        the harness scored on every split after fitting: a model applies its own rules
        to them (symbolic regression credits exact recovery only when test R^2 > 0.5)."""
        return {}
