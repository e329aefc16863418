"""The data/model contract: what a datamodule publishes and what a model factory reads.

A datamodule describes itself with a frozen `DatasetSpec`; it offers its data in one
or more *views* (its native modality first, then derived ones such as a padded vector).
Where a dataset has a token sequence view, the harness adds a one-hot vector view of the
same tokens (key "vector:onehot"), so that a vector model can read exactly what a
sequence model reads. The planner picks the view a model reads (`choose_view`: the
model's order of preference; a vector model takes the one-hot view where there is one)
and hands the factory the spec narrowed to it (`spec.for_view(key)`), so a factory only
ever reads one layout. A view is named by its key: the modality, and ":encoding" for a
second encoding of the same modality ("vector", "vector:onehot").

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
    encoding: str = ""   # "" the dataset's own; "onehot" the tokens one-hot (harness-made)

    @property
    def key(self) -> str:
        """The view's name: its modality, with ":encoding" for a second encoding."""
        return self.modality.value + (f":{self.encoding}" if self.encoding else "")

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
    view: str | None = None            # the key of the view chosen for a model (None: native)

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
        if any(v.encoding == ONEHOT for v in self.views if v.modality is Modality.VECTOR):
            pass  # already derived (dataclasses.replace of a spec)
        else:
            object.__setattr__(self, "views", self.views + onehot_views(self.views))
        keys = [v.key for v in self.views]
        if len(set(keys)) != len(keys):
            raise SpecError(f"{self.name}: each view may appear once, got {keys}")
        mods = [v.modality for v in self.views]
        if Modality.VECTOR not in mods and Modality.TABULAR not in mods:
            raise SpecError(f"{self.name}: every dataset must offer a vector (or tabular) view "
                            "so that every model family can run on it")
        if self.view is not None:
            object.__setattr__(self, "view", self.view_spec(self.view).key)

    # -- views ------------------------------------------------------------------------
    @property
    def modality(self) -> Modality:
        """The modality a model sees: the chosen view's, else the native one's."""
        return self.input.modality

    @property
    def native_modality(self) -> Modality:
        return self.views[0].modality

    @property
    def input(self) -> ViewSpec:
        """The ViewSpec of the chosen (or native) view."""
        return self.view_spec(self.view) if self.view is not None else self.views[0]

    @property
    def input_shape(self) -> tuple[int, ...]:
        return self.input.shape

    @property
    def vocab_size(self) -> int | None:
        return self.input.vocab_size

    def view_spec(self, view: Modality | str) -> ViewSpec:
        """A view by key ("vector:onehot") or modality (its first view: the dataset's own
        encoding)."""
        key = view.value if isinstance(view, Modality) else str(view)
        for v in self.views:
            if v.key == key:
                return v
        if ":" not in key:
            for v in self.views:
                if v.modality.value == key:
                    return v
        raise SpecError(f"{self.name}: no {key} view "
                        f"(offers {', '.join(v.key for v in self.views)})")

    @property
    def modalities(self) -> tuple[Modality, ...]:
        """The modalities of the views, each once, in order."""
        return tuple(dict.fromkeys(v.modality for v in self.views))

    @property
    def view_keys(self) -> tuple[str, ...]:
        return tuple(v.key for v in self.views)

    def for_view(self, view: Modality | str) -> DatasetSpec:
        """This spec as a model sees it through one view."""
        return dataclasses.replace(self, view=self.view_spec(view).key)

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for run records."""
        return {
            "name": self.name, "version": self.version, "task": self.task.value,
            "num_outputs": self.num_outputs, "metric": self.metric,
            "higher_is_better": self.higher_is_better,
            "views": [v.key for v in self.views],
            "view": self.modality.value, "encoding": self.input.encoding,
            "input_shape": list(self.input_shape), "description": self.description,
        }


ONEHOT = "onehot"
MAX_ONEHOT_FEATURES = 20_000  # a wider one-hot view is left out (memory, not information)


def onehot_views(views: tuple[ViewSpec, ...]) -> tuple[ViewSpec, ...]:
    """The one-hot vector view of a sequence view's tokens: each position's token as V - 1
    indicators (PAD is all zeros), so a vector model reads what a sequence model reads."""
    seq = next((v for v in views if v.modality is Modality.SEQUENCE), None)
    if seq is None:
        return ()
    width = seq.shape[0] * (seq.vocab_size - 1)
    return (ViewSpec(Modality.VECTOR, (width,), encoding=ONEHOT),) \
        if width <= MAX_ONEHOT_FEATURES else ()


def choose_view(spec: DatasetSpec, accepted: tuple[Modality, ...]) -> str | None:
    """The key of the view a model reads: the first of the model's accepted modalities
    (its order of preference) that the dataset offers. A model that reads vectors first
    (mlp, linear, gboost) takes the one-hot view of the dataset's tokens where there is
    one: the information a sequence model gets. A model that prefers named columns
    (symbolic regression: tabular first) keeps the dataset's own encoding. None when the
    model can read none of them."""
    keys = spec.view_keys
    for modality in accepted:
        if modality is Modality.VECTOR and accepted[0] is Modality.VECTOR \
                and f"vector:{ONEHOT}" in keys:
            return f"vector:{ONEHOT}"
        for v in spec.views:
            if v.modality is modality:
                return v.key
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
