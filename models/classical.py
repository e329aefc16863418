"""Classical scikit-learn baselines on the vector (or tabular) view, as fitted models.

- `linear`: the task's linear model on standardised inputs: L2-penalised logistic
  regression for classification (multinomial for multiclass), ridge for regression.
- `logistic`: the same logistic regression, registered for classification tasks only,
  for suites that name it; a suite needs one of `linear` and `logistic`, not both.
- `gboost`: histogram gradient boosting (HistGradientBoostingClassifier / Regressor).

Estimators that predict one column get one copy per label (multilabel) or per regression
target; a multiclass task is one estimator. Outputs follow the network layout: log-odds
(binary, multilabel), log-probabilities (multiclass), values (regression).

Run: mlwm run --dataset descents --model gboost --seed 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from benchmarks.contract import DatasetSpec, FittedModel, TaskType
from benchmarks.errors import UserError
from benchmarks.registry import register_model

EPS = 1e-9  # probabilities are clipped to [EPS, 1 - EPS] before taking logs
CLASSIFICATION = (TaskType.BINARY, TaskType.MULTICLASS, TaskType.MULTILABEL)


def learned_numbers(est: Any) -> int:
    """Coefficients of a linear model (a scaler folds into them, so it adds none), nodes
    of boosted trees, or the class prior of a constant fallback."""
    est = est.steps[-1][1] if hasattr(est, "steps") else est
    if hasattr(est, "coef_"):
        return int(np.size(est.coef_) + np.size(est.intercept_))
    if hasattr(est, "_predictors"):  # HistGradientBoosting: one tree per class per round
        return sum(len(tree.nodes) for stage in est._predictors for tree in stage)
    return int(np.size(getattr(est, "class_prior_", 1)))


class ColumnwiseModel(FittedModel):
    """Fits `make(task)` per target column (one column of classes for multiclass)."""

    def __init__(self, spec: DatasetSpec, make: Callable[[TaskType], Any]) -> None:
        self.spec, self.make = spec, make
        self.estimators: list[Any] = []

    def _columns(self, y: np.ndarray) -> list[np.ndarray]:
        if self.spec.task is TaskType.MULTICLASS:
            return [y.astype(np.int64)]
        y = y.reshape(len(y), -1)
        if self.spec.task is TaskType.REGRESSION:
            return [y[:, j].astype(np.float64) for j in range(y.shape[1])]
        return [y[:, j].astype(np.int64) for j in range(y.shape[1])]

    def fit(self, x: np.ndarray, y: np.ndarray, seed: int = 0) -> ColumnwiseModel:
        from sklearn.base import clone
        from sklearn.dummy import DummyClassifier
        from threadpoolctl import threadpool_limits

        x = np.asarray(x, dtype=np.float64)
        self.estimators = []
        # one thread: on these small problems, and beside other cells, OpenMP and BLAS
        # threads spin-wait for more time than they save (gboost ran 20x slower)
        with threadpool_limits(limits=1):
            for col in self._columns(np.asarray(y)):
                if self.spec.task in CLASSIFICATION and len(np.unique(col)) < 2:
                    est = DummyClassifier(strategy="prior")  # one class seen: its prior
                else:
                    est = clone(self.make(self.spec.task))
                    est.set_params(**{k: seed for k in est.get_params()
                                      if k.endswith("random_state")})
                self.estimators.append(est.fit(x, col))
        self.n_params = sum(learned_numbers(e) for e in self.estimators)
        return self

    def _classes_proba(self, est: Any, x: np.ndarray, k: int) -> np.ndarray:
        """Probabilities of classes 0..k-1, zero for a class absent from training."""
        proba = np.zeros((len(x), k))
        proba[:, np.asarray(est.classes_, dtype=np.int64)] = est.predict_proba(x)
        return np.clip(proba, EPS, 1 - EPS)

    def predict(self, x: np.ndarray) -> np.ndarray:
        from threadpoolctl import threadpool_limits

        assert self.estimators, "fit first"
        with threadpool_limits(limits=1):
            return self._predict(np.asarray(x, dtype=np.float64))

    def _predict(self, x: np.ndarray) -> np.ndarray:
        task = self.spec.task
        if task is TaskType.REGRESSION:
            out = np.stack([e.predict(x) for e in self.estimators], axis=1)
        elif task is TaskType.MULTICLASS:
            out = np.log(self._classes_proba(self.estimators[0], x, self.spec.num_outputs))
        else:
            p = np.stack([self._classes_proba(e, x, 2)[:, 1] for e in self.estimators], axis=1)
            out = np.log(p) - np.log1p(-p)
        return out.astype(np.float32)

    def describe(self, metrics: Any = None) -> dict[str, Any]:
        names = sorted({type(e.steps[-1][1] if hasattr(e, "steps") else e).__name__
                        for e in self.estimators})
        rounds = [int(e.n_iter_) for e in self.estimators if hasattr(e, "_predictors")]
        return {"estimators": names, "columns": len(self.estimators),
                **({"boosting_rounds": rounds} if rounds else {})}


def linear_model(spec: DatasetSpec, l2: float, max_iter: int) -> FittedModel:
    """Standardised inputs, then logistic regression (C = 1/l2) or ridge (alpha = l2)."""
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if l2 <= 0 or max_iter < 1:
        raise UserError(f"linear models need l2 > 0 and max_iter >= 1, got {l2}, {max_iter}")

    def make(task: TaskType) -> Any:
        last = (Ridge(alpha=l2) if task is TaskType.REGRESSION
                else LogisticRegression(C=1.0 / l2, max_iter=max_iter))
        return make_pipeline(StandardScaler(), last)

    return ColumnwiseModel(spec, make)


@register_model("linear", modalities=("vector", "tabular"), kind="fitted",
                tags=("classical", "sklearn"), space={"l2": ("logfloat", 1e-4, 1e2)})
def linear(spec: DatasetSpec, l2: float = 1.0, max_iter: int = 1000) -> FittedModel:
    """Linear model of the task: logistic regression (classification) or ridge (regression)."""
    return linear_model(spec, l2, max_iter)


@register_model("logistic", modalities=("vector", "tabular"), kind="fitted",
                tasks=CLASSIFICATION, tags=("classical", "sklearn"),
                space={"l2": ("logfloat", 1e-4, 1e2)})
def logistic(spec: DatasetSpec, l2: float = 1.0, max_iter: int = 1000) -> FittedModel:
    """Logistic regression on standardised inputs, one per label for multilabel tasks."""
    return linear_model(spec, l2, max_iter)


@register_model("gboost", modalities=("vector", "tabular"), kind="fitted",
                tags=("classical", "sklearn"),
                space={"learning_rate": ("logfloat", 0.01, 0.3),
                       "max_leaf_nodes": ("int", 8, 64)})
def gboost(spec: DatasetSpec, max_iter: int = 100, learning_rate: float = 0.1,
           max_leaf_nodes: int = 31, l2: float = 0.0) -> FittedModel:
    """Histogram gradient boosting; one model per label (multilabel) or target."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor

    if max_iter < 1 or learning_rate <= 0 or max_leaf_nodes < 2 or l2 < 0:
        raise UserError("model 'gboost': needs max_iter >= 1, learning_rate > 0, "
                        f"max_leaf_nodes >= 2, l2 >= 0; got {max_iter}, {learning_rate}, "
                        f"{max_leaf_nodes}, {l2}")
    # no early stopping: its stratified hold-out fails on a class with one sample, and a
    # fixed number of rounds keeps a cell's cost predictable
    kw = dict(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
              l2_regularization=l2, early_stopping=False)

    def make(task: TaskType) -> Any:
        if task is TaskType.REGRESSION:
            return HistGradientBoostingRegressor(**kw)
        return HistGradientBoostingClassifier(**kw)

    return ColumnwiseModel(spec, make)
