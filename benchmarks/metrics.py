"""The one metric table: every metric the harness reports, with everything anyone reads
about it (the torchmetrics that computes it, its direction, its bounds, the constant
predictor that is best for it, and an additive decomposition for resampling).

    from benchmarks.metrics import metric, predictions
    m = metric("f1")
    rows = m.contributions(predictions(outputs, "binary"), target)   # (N, S)
    m.from_sums(rows.sum(0))          # == the torchmetrics value on the whole split
    m.from_sums(weights @ rows)       # the value on a resample with row weights

Importing this module is cheap (numpy only): torch and torchmetrics are imported by the
functions that build torchmetrics objects. Task types are keyed by their string values
("binary", ...); `contract.TaskType` is a str enum, so it indexes these tables as well,
and this module imports nothing of the contract, which may then read its tables.

Conventions copied from torchmetrics 1.x, so that the decomposition gives its numbers:
- a 0/0 score is 0 (`zero_division=0`): F1 of a class never predicted nor present;
- multiclass macro-F1 averages over the classes seen in the targets or the predictions
  only, multilabel macro-F1 over every label;
- R^2 is 1 when the residual sum is within 1e-4 of 0, else 0 when the target's total
  sum of squares is within 1e-4 of 0; it needs two rows (NaN here, an error there);
- mse and mae average over every element (rows times outputs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np

from .errors import UserError

BINARY, MULTICLASS, MULTILABEL, REGRESSION = "binary", "multiclass", "multilabel", "regression"
TASKS = (BINARY, MULTICLASS, MULTILABEL, REGRESSION)  # the values of contract.TaskType

PROBABILITY_CLIP = 1e-6  # constant logits are log-odds of p clipped to [eps, 1 - eps]
MIN_LOGIT = 0.01         # and at least this far from 0, so float32 sigmoid keeps the side
R2_ATOL = 1e-4           # torchmetrics' "near zero" for the residual and total sums


def task_name(task: Any) -> str:
    """The task's string value ("binary", ...) from a TaskType or a string."""
    value = getattr(task, "value", task)
    if value not in TASKS:
        raise ValueError(f"unknown task type {task!r}; choose one of {', '.join(TASKS)}")
    return value


# -- raw outputs to predictions ---------------------------------------------------------
def _sigmoid32(x: np.ndarray) -> np.ndarray:
    """Sigmoid in float32, as evaluation applies it before torchmetrics thresholds it."""
    x = np.asarray(x, dtype=np.float32)
    with np.errstate(over="ignore"):  # exp overflow gives 1/inf = 0, the right limit
        return (np.float32(1) / (np.float32(1) + np.exp(-x))).astype(np.float32)


def predictions(outputs: Any, task: Any) -> np.ndarray:
    """Raw model outputs (contract layout) -> the predictions torchmetrics scores, as numpy:
    binary (N,) and multilabel (N, K) 0/1 ints, sigmoid(logit) > 0.5 in float32 (so a
    logit of exactly 0 is negative, as in torchmetrics); multiclass (N,) argmax class (the
    first maximum on ties, as torch.argmax); regression float64 values, (N,) when K = 1."""
    task = task_name(task)
    out = np.asarray(outputs)
    if task == MULTICLASS:
        return out.reshape(len(out), -1).argmax(axis=1)
    if task in (BINARY, REGRESSION) and out.ndim == 2 and out.shape[1] == 1:
        out = out.reshape(-1)
    if task == REGRESSION:
        return out.astype(np.float64)
    return (_sigmoid32(out) > 0.5).astype(np.int64)


# -- the metric entry -------------------------------------------------------------------
@dataclass(frozen=True)
class Metric:
    """One metric. Functions, all on numpy arrays in the layouts documented above:

    build(task, num_outputs) -> the torchmetrics object (torchmetrics imported lazily);
    best_constant(y_train, task, num_outputs) -> (num_outputs,) float32 raw output (logits,
        log-probabilities or values) of the constant predictor best for this metric;
    contributions(preds, target) -> (N, S) per-row sufficient statistics;
    from_sums(sums (..., S)) -> the metric of those summed rows (a float for 1-d sums).
    """

    name: str
    tasks: tuple[str, ...]        # task types it applies to
    description: str              # one line, for tables and --help
    higher_is_better: bool
    bounds: tuple[float, float]   # (lo, hi); +-inf where unbounded
    build: Callable[[Any, int], Any]
    best_constant: Callable[[np.ndarray, Any, int], np.ndarray]
    contributions: Callable[[np.ndarray, np.ndarray], np.ndarray]
    from_sums: Callable[[np.ndarray], Any]
    integer_targets: bool = False  # only meaningful when targets are integers

    @property
    def best_value(self) -> float:
        """The bound a perfect model reaches (1 for scores, 0 for errors)."""
        return self.bounds[1] if self.higher_is_better else self.bounds[0]

    @property
    def sign(self) -> float:
        """+1 when higher is better, else -1: sign * value grows as the model improves."""
        return 1.0 if self.higher_is_better else -1.0

    def value(self, preds: np.ndarray, target: np.ndarray) -> float:
        """The metric on whole arrays, through the decomposition."""
        return float(self.from_sums(self.contributions(preds, target).sum(axis=0)))


# -- shared pieces of the decompositions ------------------------------------------------
def _rows(a: Any) -> np.ndarray:
    """(N,) or (N, K) -> (N, K)."""
    a = np.asarray(a)
    return a.reshape(len(a), -1)


def _safe_divide(num: Any, den: Any) -> Any:
    """num / den with 0 where den == 0 (torchmetrics' zero_division=0); float for scalars."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    out = np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)
    return float(out) if out.ndim == 0 else out


def _hits_and_counts(hits: np.ndarray, counts: Any) -> np.ndarray:
    """Two columns (hits, count) per row: a mean is their summed ratio. The count column
    is what a resample's weight total would be; the ratio needs it."""
    hits = np.asarray(hits, dtype=np.float64)
    return np.stack([hits, np.broadcast_to(np.asarray(counts, dtype=np.float64), hits.shape)],
                    axis=1)


def _ratio(sums: Any) -> Any:
    sums = np.asarray(sums, dtype=np.float64)
    return _safe_divide(sums[..., 0], sums[..., 1])


def _confusion_columns(pred: np.ndarray, true: np.ndarray, keep: float) -> np.ndarray:
    """Per row and class: TP, FP, FN and a `keep` flag, as (N, 4K). Summed, the flag marks
    classes that count in a macro average even when TP + FP + FN = 0: multilabel keeps
    every label (keep=1), multiclass drops unseen classes (keep=0), as torchmetrics does."""
    pred, true = pred.astype(bool), true.astype(bool)
    cols = [pred & true, pred & ~true, ~pred & true, np.full(pred.shape, keep, dtype=bool)]
    return np.concatenate(cols, axis=1).astype(np.float64)


def _f1_per_class(sums: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(F1 per class, whether it counts in the macro average) from (..., 4K) sums."""
    tp, fp, fn, keep = np.split(np.asarray(sums, dtype=np.float64), 4, axis=-1)
    f1 = _safe_divide(2 * tp, 2 * tp + fp + fn)
    return np.asarray(f1), (tp + fp + fn > 0) | (keep > 0)


def _one_hot(labels: np.ndarray, k: int) -> np.ndarray:
    return np.eye(k, dtype=bool)[labels.astype(np.int64)]


# -- contributions and from_sums per metric ---------------------------------------------
def _correct_contributions(preds: Any, target: Any) -> np.ndarray:
    """acc: (correct, 1) per row (binary labels or multiclass classes)."""
    return _hits_and_counts(np.asarray(preds).reshape(-1) == np.asarray(target).reshape(-1), 1)


def _exact_match_contributions(preds: Any, target: Any) -> np.ndarray:
    """exact_match: (every label right, 1) per row."""
    return _hits_and_counts((_rows(preds) == _rows(target)).all(axis=1), 1)


def _bit_contributions(preds: Any, target: Any) -> np.ndarray:
    """bit_acc: (labels right, labels) per row; the ratio of sums is torchmetrics' micro
    accuracy over all N * K bits."""
    right = _rows(preds) == _rows(target)
    return _hits_and_counts(right.sum(axis=1), right.shape[1])


def _binary_f1_contributions(preds: Any, target: Any) -> np.ndarray:
    """f1: (TP, FP, FN) per row."""
    pred = np.asarray(preds).reshape(-1, 1).astype(bool)
    true = np.asarray(target).reshape(-1, 1).astype(bool)
    return np.concatenate([pred & true, pred & ~true, ~pred & true], axis=1).astype(np.float64)


def _binary_f1_from_sums(sums: Any) -> Any:
    tp, fp, fn = np.moveaxis(np.asarray(sums, dtype=np.float64), -1, 0)
    return _safe_divide(2 * tp, 2 * tp + fp + fn)


def _macro_f1_contributions(preds: Any, target: Any) -> np.ndarray:
    """f1_macro: (TP, FP, FN, keep) per class. Multiclass (1-d class labels) sizes K as the
    largest class seen plus one: classes seen nowhere are dropped from the average anyway."""
    preds, target = np.asarray(preds), np.asarray(target)
    if preds.ndim == 1:
        k = int(max(preds.max(initial=0), target.max(initial=0))) + 1
        return _confusion_columns(_one_hot(preds, k), _one_hot(target, k), keep=0.0)
    return _confusion_columns(_rows(preds), _rows(target), keep=1.0)


def _macro_f1_from_sums(sums: Any) -> Any:
    f1, counts = _f1_per_class(sums)
    return _safe_divide((f1 * counts).sum(axis=-1), counts.sum(axis=-1))


def _squared_error_contributions(preds: Any, target: Any) -> np.ndarray:
    """mse: (squared error summed over the row's outputs, outputs) per row."""
    err = _rows(preds).astype(np.float64) - _rows(target).astype(np.float64)
    return _hits_and_counts((err ** 2).sum(axis=1), err.shape[1])


def _absolute_error_contributions(preds: Any, target: Any) -> np.ndarray:
    """mae: (absolute error summed over the row's outputs, outputs) per row."""
    err = _rows(preds).astype(np.float64) - _rows(target).astype(np.float64)
    return _hits_and_counts(np.abs(err).sum(axis=1), err.shape[1])


def _exact_integer_contributions(preds: Any, target: Any) -> np.ndarray:
    """exact_acc: (every output rounds to its target, 1) per row. np.round rounds half to
    even, as torch.round does."""
    hit = (np.round(_rows(preds).astype(np.float64)) == _rows(target)).all(axis=1)
    return _hits_and_counts(hit, 1)


def _r2_contributions(preds: Any, target: Any) -> np.ndarray:
    """r2: per output y, y^2 and the squared residual, then a count column: (N, 3K + 1)."""
    y = _rows(target).astype(np.float64)
    residual = y - _rows(preds).astype(np.float64)
    return np.concatenate([y, y ** 2, residual ** 2, np.ones((len(y), 1))], axis=1)


def _r2_from_sums(sums: Any) -> Any:
    sums = np.asarray(sums, dtype=np.float64)
    k = (sums.shape[-1] - 1) // 3
    sum_y, sum_y2, rss = (sums[..., i * k:(i + 1) * k] for i in range(3))
    n = sums[..., -1:]
    with np.errstate(invalid="ignore", divide="ignore"):
        tss = sum_y2 - sum_y * (sum_y / n)
        raw = np.where(np.abs(rss) <= R2_ATOL, 1.0,
                       np.where(np.abs(tss) <= R2_ATOL, 0.0, 1.0 - rss / tss))
    score = np.where(n[..., 0] < 2, np.nan, raw.mean(axis=-1))
    return float(score) if score.ndim == 0 else score


# -- best constants ---------------------------------------------------------------------
def _check_targets(y_train: Any, task: Any, allowed: tuple[str, ...], name: str) -> np.ndarray:
    task = task_name(task)
    if task not in allowed:
        raise ValueError(f"metric {name} does not apply to {task} tasks "
                         f"(it applies to {', '.join(allowed)})")
    y = np.asarray(y_train)
    if len(y) == 0:
        raise ValueError(f"best constant for {name}: no training targets")
    return y


def _logits(positive: np.ndarray, frequency: np.ndarray) -> np.ndarray:
    """Per label, the clipped log-odds of its training frequency, kept on the chosen side of
    0 (at least MIN_LOGIT away): the chosen decision with the calibrated confidence where
    the two agree."""
    p = np.clip(frequency, PROBABILITY_CLIP, 1 - PROBABILITY_CLIP)
    log_odds = np.log(p / (1 - p))
    return np.where(positive, np.maximum(log_odds, MIN_LOGIT),
                    np.minimum(log_odds, -MIN_LOGIT)).astype(np.float32)


def _log_probabilities(chosen: int, labels: np.ndarray, k: int) -> np.ndarray:
    """Log class frequencies (smoothed) with `chosen` made the unique largest, normalised."""
    freq = np.bincount(labels.astype(np.int64), minlength=k)[:k] / len(labels)
    logp = np.log(freq + PROBABILITY_CLIP)
    others = np.delete(logp, chosen)
    if others.size and logp[chosen] <= others.max():  # a tie: argmax must still pick it
        logp[chosen] = others.max() + MIN_LOGIT
    return (logp - np.logaddexp.reduce(logp)).astype(np.float32)


def _modal_row(y: np.ndarray) -> np.ndarray:
    """The most frequent row (the lexicographically first on ties)."""
    rows, counts = np.unique(_rows(y), axis=0, return_counts=True)
    return rows[int(np.argmax(counts))]


def _label_frequency(y: np.ndarray) -> np.ndarray:
    return _rows(y).astype(np.float64).mean(axis=0)


def _acc_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The majority class (negative on a binary tie)."""
    y = _check_targets(y_train, task, (BINARY, MULTICLASS), "acc")
    if task_name(task) == BINARY:
        freq = _label_frequency(y)
        return _logits(freq > 0.5, freq)
    counts = np.bincount(y.astype(np.int64), minlength=num_outputs)
    return _log_probabilities(int(np.argmax(counts)), y, num_outputs)


def _f1_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The better of all-positive and all-negative (negative on a tie, i.e. no positives:
    both then score 0). All-negative always scores 0, so this is all-positive whenever the
    training targets hold a positive."""
    y = _check_targets(y_train, task, (BINARY,), "f1")
    freq = _label_frequency(y)
    positives, n = freq * len(y), len(y)
    candidates = np.array([[0.0, 0.0, positives[0]], [positives[0], n - positives[0], 0.0]])
    scores = _binary_f1_from_sums(candidates)  # all-negative, all-positive
    return _logits(np.array([scores[1] > scores[0]]), freq)


def _macro_f1_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """Multiclass: the class whose constant prediction has the best macro-F1 (scored for
    every class from the class counts; the lowest class on ties). Multilabel: per label
    the better of all-positive and all-negative, since macro-F1 is a mean of per-label
    scores that each depend on that label's decision alone."""
    y = _check_targets(y_train, task, (MULTICLASS, MULTILABEL), "f1_macro")
    n = len(y)
    if task_name(task) == MULTICLASS:
        k = num_outputs
        counts = np.bincount(y.astype(np.int64), minlength=k)[:k].astype(np.float64)
        # predicting class c everywhere: TP_c = n_c, FP_c = n - n_c, FN_j = n_j for j != c
        eye = np.eye(k)
        sums = np.concatenate([eye * counts, eye * (n - counts),
                               (1 - eye) * counts, np.zeros((k, k))], axis=1)
        return _log_probabilities(int(np.argmax(_macro_f1_from_sums(sums))), y, k)
    freq = _label_frequency(y)
    positives = freq * n
    all_negative = _binary_f1_from_sums(np.stack([0 * positives, 0 * positives, positives], 1))
    all_positive = _binary_f1_from_sums(np.stack([positives, n - positives, 0 * positives], 1))
    return _logits(all_positive > all_negative, freq)


def _exact_match_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The modal label set (every other set matches fewer training rows)."""
    y = _check_targets(y_train, task, (MULTILABEL,), "exact_match")
    return _logits(_modal_row(y).astype(bool), _label_frequency(y))


def _bit_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The per-label majority (negative on a tie)."""
    y = _check_targets(y_train, task, (MULTILABEL,), "bit_acc")
    freq = _label_frequency(y)
    return _logits(freq > 0.5, freq)


def _mean_constant(name: str) -> Callable[[Any, Any, int], np.ndarray]:
    def fit(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
        """The mean per output (minimises squared error, so maximises R^2 as well)."""
        y = _check_targets(y_train, task, (REGRESSION,), name)
        return _rows(y).astype(np.float64).mean(axis=0).astype(np.float32)
    return fit


def _median_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The median per output (minimises absolute error)."""
    y = _check_targets(y_train, task, (REGRESSION,), "mae")
    return np.median(_rows(y).astype(np.float64), axis=0).astype(np.float32)


def _modal_integer_constant(y_train: Any, task: Any, num_outputs: int) -> np.ndarray:
    """The modal integer target row (the smallest on ties)."""
    y = _check_targets(y_train, task, (REGRESSION,), "exact_acc")
    if not np.array_equal(np.round(y), y):
        raise ValueError("exact_acc needs integer regression targets (integer_valued=True)")
    return _modal_row(y).astype(np.float32)


# -- torchmetrics objects (imported lazily) ---------------------------------------------
@cache
def _exact_integer_accuracy_class() -> type:
    """torchmetrics' MeanMetric over rows whose rounded outputs all equal their targets.
    Made on first use so torch stays unimported; registered under this module's name so
    that pickling finds it through the module's __getattr__."""
    import torch
    from torchmetrics.aggregation import MeanMetric

    class ExactIntegerAccuracy(MeanMetric):
        """Fraction of rows whose prediction, rounded to the nearest integer, is the target."""

        def update(self, preds: torch.Tensor,  # type: ignore[override]
                   target: torch.Tensor) -> None:
            hit = torch.round(preds) == target
            super().update(hit.reshape(hit.shape[0], -1).all(dim=1).float())

    ExactIntegerAccuracy.__module__ = __name__
    ExactIntegerAccuracy.__qualname__ = "ExactIntegerAccuracy"
    return ExactIntegerAccuracy


def __getattr__(name: str) -> Any:
    if name == "ExactIntegerAccuracy":
        return _exact_integer_accuracy_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _build_acc(task: Any, num_outputs: int) -> Any:
    from torchmetrics.classification import BinaryAccuracy, MulticlassAccuracy

    if task_name(task) == BINARY:
        return BinaryAccuracy()
    return MulticlassAccuracy(num_outputs, average="micro")


def _build_f1(task: Any, num_outputs: int) -> Any:
    from torchmetrics.classification import BinaryF1Score

    return BinaryF1Score()


def _build_macro_f1(task: Any, num_outputs: int) -> Any:
    from torchmetrics.classification import MulticlassF1Score, MultilabelF1Score

    if task_name(task) == MULTICLASS:
        return MulticlassF1Score(num_outputs, average="macro")
    return MultilabelF1Score(num_outputs, average="macro")


def _build_exact_match(task: Any, num_outputs: int) -> Any:
    from torchmetrics.classification import MultilabelExactMatch

    return MultilabelExactMatch(num_outputs)


def _build_bit_acc(task: Any, num_outputs: int) -> Any:
    from torchmetrics.classification import MultilabelAccuracy

    return MultilabelAccuracy(num_outputs, average="micro")


def _build_r2(task: Any, num_outputs: int) -> Any:
    from torchmetrics import R2Score

    return R2Score(multioutput="uniform_average")


def _build_mse(task: Any, num_outputs: int) -> Any:
    from torchmetrics import MeanSquaredError

    return MeanSquaredError()


def _build_mae(task: Any, num_outputs: int) -> Any:
    from torchmetrics import MeanAbsoluteError

    return MeanAbsoluteError()


def _build_exact_acc(task: Any, num_outputs: int) -> Any:
    return _exact_integer_accuracy_class()()


# -- the table --------------------------------------------------------------------------
UNIT, INF = (0.0, 1.0), math.inf
METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("acc", (BINARY, MULTICLASS), "fraction of rows whose predicted class is right",
           True, UNIT, _build_acc, _acc_constant, _correct_contributions, _ratio),
    Metric("f1", (BINARY,), "F1 of the positive class (0 when nothing is predicted positive)",
           True, UNIT, _build_f1, _f1_constant, _binary_f1_contributions, _binary_f1_from_sums),
    Metric("f1_macro", (MULTICLASS, MULTILABEL), "unweighted mean of per-class F1",
           True, UNIT, _build_macro_f1, _macro_f1_constant, _macro_f1_contributions,
           _macro_f1_from_sums),
    Metric("exact_match", (MULTILABEL,), "fraction of rows whose whole label set is right",
           True, UNIT, _build_exact_match, _exact_match_constant, _exact_match_contributions,
           _ratio),
    Metric("bit_acc", (MULTILABEL,), "fraction of all labels (rows times labels) right",
           True, UNIT, _build_bit_acc, _bit_constant, _bit_contributions, _ratio),
    Metric("r2", (REGRESSION,), "coefficient of determination, averaged over outputs",
           True, (-INF, 1.0), _build_r2, _mean_constant("r2"), _r2_contributions, _r2_from_sums),
    Metric("mse", (REGRESSION,), "mean squared error over all outputs",
           False, (0.0, INF), _build_mse, _mean_constant("mse"), _squared_error_contributions,
           _ratio),
    Metric("mae", (REGRESSION,), "mean absolute error over all outputs",
           False, (0.0, INF), _build_mae, _median_constant, _absolute_error_contributions,
           _ratio),
    Metric("exact_acc", (REGRESSION,),
           "fraction of rows whose prediction rounded to the nearest integer is the target",
           True, UNIT, _build_exact_acc, _modal_integer_constant, _exact_integer_contributions,
           _ratio, integer_targets=True),
)}

# Per task type, the metrics it may report, in order; the first is the default primary.
# exact_acc is reported only for integer-valued targets (see task_metrics).
TASK_METRICS: dict[str, tuple[str, ...]] = {
    BINARY: ("acc", "f1"),
    MULTICLASS: ("acc", "f1_macro"),
    MULTILABEL: ("exact_match", "bit_acc", "f1_macro"),
    REGRESSION: ("r2", "mse", "mae", "exact_acc"),
}
assert all(t in METRICS[n].tasks for t, names in TASK_METRICS.items() for n in names)


def metric(name: str) -> Metric:
    """The table's entry for a metric name."""
    try:
        return METRICS[name]
    except KeyError:
        raise UserError(f"unknown metric {name!r}; choose one of {', '.join(METRICS)}") from None


def task_metrics(task: Any, integer_valued: bool = False) -> tuple[str, ...]:
    """The metrics a dataset of this task reports, in TASK_METRICS order; those that need
    integer targets only when the dataset says its targets are integers."""
    return tuple(n for n in TASK_METRICS[task_name(task)]
                 if integer_valued or not METRICS[n].integer_targets)
