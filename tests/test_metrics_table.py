"""The metric table against torchmetrics: the decomposition gives torchmetrics' value on
whole splits and on weighted resamples, and each best constant beats every constant a
brute-force search tries, scored by that metric's torchmetrics on the same targets."""

from __future__ import annotations

import itertools
import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch

from benchmarks import metrics as M
from benchmarks.errors import UserError

TASK_OUTPUTS = {"binary": 1, "multiclass": 4, "multilabel": 3, "regression": 2}


def torchmetrics_value(name: str, outputs: np.ndarray, target: np.ndarray, task: str,
                       k: int) -> float:
    """The metric as the harness computes it: raw outputs shaped to the target's layout,
    sigmoid probabilities for binary and multilabel (evaluation.metric_inputs), logits
    for multiclass, values for regression, into the table's torchmetrics object."""
    out = torch.as_tensor(np.asarray(outputs), dtype=torch.float32)
    one_column = task in ("binary", "regression") and k == 1
    out = out.reshape(-1) if one_column else out.reshape(len(out), k)
    if task in ("binary", "multilabel"):
        preds, tgt = torch.sigmoid(out), torch.as_tensor(target).long()
    elif task == "multiclass":
        preds, tgt = out, torch.as_tensor(target).long()
    else:
        preds, tgt = out, torch.as_tensor(target, dtype=torch.float32)
    m = M.metric(name).build(task, k)
    m.update(preds, tgt)
    return float(m.compute())


def scenarios(task: str, rng: np.random.Generator) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(raw outputs, target) per edge case of the task."""
    n, k = 40, TASK_OUTPUTS[task]
    if task == "binary":
        y = rng.integers(0, 2, n)
        ties = rng.choice([-1.0, 0.0, 1.0, 1e-8], size=(n, 1))  # logit 0 is a negative
        return {"random": (rng.normal(size=(n, 1)), y), "ties": (ties, y),
                "no positives anywhere": (-np.abs(rng.normal(size=(n, 1))), np.zeros(n, int)),
                "nothing predicted positive": (-np.ones((n, 1)), y),
                "all positive": (np.ones((n, 1)), np.ones(n, int))}
    if task == "multiclass":
        y = rng.integers(0, 3, n)  # class 3 never a target
        logits = rng.normal(size=(n, k))
        never = logits.copy()
        never[:, 1] = -10  # class 1 never predicted
        tied = np.zeros((n, k))
        tied[:, 2] = rng.integers(0, 2, n)  # rows of all-equal logits pick class 0
        gap = np.where(np.arange(k) % 2 == 0, 0.0, -10.0) + rng.normal(size=(n, k))
        return {"random": (logits, y), "a class never predicted": (never, y), "ties": (tied, y),
                "classes 1 and 3 nowhere": (gap, 2 * rng.integers(0, 2, n)),
                "one class everywhere": (np.tile([5.0, 0, 0, 0], (n, 1)), np.zeros(n, int))}
    if task == "multilabel":
        y = rng.integers(0, 2, (n, k))
        empty = y.copy()
        empty[:, 0] = 0  # a label never positive
        logits = rng.normal(size=(n, k))
        logits[:, 0] = -1.0
        return {"random": (rng.normal(size=(n, k)), y),
                "a label never positive nor predicted": (logits, empty),
                "ties": (rng.choice([-1.0, 0.0, 1.0], size=(n, k)), y),
                "all empty": (-np.ones((n, k)), np.zeros((n, k), int))}
    y = rng.integers(-3, 4, (n, k)).astype(np.float64)
    constant_target = np.full((n, k), 2.0)
    return {"random": (rng.normal(size=(n, k)) * 2, y),
            "near integers, halves": (y + rng.choice([-0.5, -0.3, 0.0, 0.5, 0.6], size=(n, k)), y),
            "constant target": (rng.normal(size=(n, k)), constant_target),
            "perfect": (y.copy(), y)}


CASES = [(task, name) for task, names in M.TASK_METRICS.items() for name in names]


@pytest.mark.parametrize(("task", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
def test_decomposition_equals_torchmetrics(task, name):
    """from_sums(contributions.sum(0)) is torchmetrics' value (float32 there, float64
    here: 1e-5), on whole splits and on resamples given as row weights."""
    rng = np.random.default_rng(0)
    m, k = M.metric(name), TASK_OUTPUTS[task]
    for case, (outputs, target) in scenarios(task, rng).items():
        rows = m.contributions(M.predictions(outputs, task), target)
        assert rows.shape[0] == len(target)
        expected = torchmetrics_value(name, outputs, target, task, k)
        assert m.from_sums(rows.sum(axis=0)) == pytest.approx(expected, abs=1e-5), case
        weights = rng.multinomial(len(target), np.full(len(target), 1 / len(target)), size=3)
        batched = m.from_sums(weights.astype(float) @ rows)  # (3, S) sums -> 3 values
        for w, value in zip(weights, batched, strict=True):
            idx = np.repeat(np.arange(len(target)), w)
            assert value == pytest.approx(
                torchmetrics_value(name, outputs[idx], target[idx], task, k), abs=1e-5), case


def test_predictions_follow_torchmetrics_thresholds():
    logits = np.array([[-1.0], [0.0], [1e-9], [2.0]])
    assert M.predictions(logits, "binary").tolist() == [0, 0, 0, 1]
    assert M.predictions(np.array([[1.0, 1.0, 0.0]]), "multiclass").tolist() == [0]  # first max
    assert M.predictions(np.array([[0.5], [1.5]]), "regression").shape == (2,)


def brute_force_constants(task: str, k: int, y: np.ndarray) -> list[np.ndarray]:
    """Every constant worth trying, as raw outputs: each class, each label subset (small
    k), or a fine grid of values around the targets (regression, one output)."""
    if task == "binary":
        return [np.array([-1.0]), np.array([1.0])]
    if task == "multiclass":
        return [np.where(np.arange(k) == c, 1.0, -1.0) for c in range(k)]
    if task == "multilabel":
        return [np.array(s, dtype=float) * 2 - 1 for s in itertools.product([0, 1], repeat=k)]
    grid = np.linspace(y.min() - 1, y.max() + 1, 601)  # steps of 1/60 hit every integer
    return [np.array([v]) for v in grid]


def training_targets(task: str, k: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = 60
    if task == "binary":
        return {"minority positives": (rng.random(n) < 0.2).astype(int),
                "balanced": np.repeat([0, 1], n // 2), "no positives": np.zeros(n, int)}
    if task == "multiclass":
        return {"skewed": rng.choice(k, n, p=[0.1, 0.5, 0.3, 0.1]),
                "a class absent": rng.choice(3, n), "tied majority": np.repeat([2, 1, 0], n // 3)}
    if task == "multilabel":
        return {"correlated": (rng.random((n, 1)) < [0.3, 0.6, 0.45]).astype(int),
                "independent": (rng.random((n, k)) < [0.1, 0.55, 0.5]).astype(int),
                "a label never on": np.c_[np.zeros((n, 1), int), rng.integers(0, 2, (n, k - 1))]}
    return {"skewed": np.round(rng.exponential(2.0, n)),
            "bimodal": np.r_[np.zeros(n // 3), np.full(n - n // 3, 5.0)] + rng.integers(0, 2, n)}


@pytest.mark.parametrize(("task", "name"), CASES, ids=[f"{t}-{n}" for t, n in CASES])
def test_best_constant_beats_every_constant(task, name):
    """Fitted and scored on the same targets, no brute-force constant scores better."""
    rng = np.random.default_rng(1)
    m = M.metric(name)
    k = 1 if task in ("binary", "regression") else TASK_OUTPUTS[task]
    for case, y in training_targets(task, k, rng).items():
        chosen = m.best_constant(y, task, k)
        assert chosen.shape == (k,) and chosen.dtype == np.float32
        score = torchmetrics_value(name, np.tile(chosen, (len(y), 1)), y, task, k)
        tried = [torchmetrics_value(name, np.tile(c, (len(y), 1)), y, task, k)
                 for c in brute_force_constants(task, k, y)]
        best = max(tried) if m.higher_is_better else min(tried)
        assert m.sign * score >= m.sign * best - 1e-5, (case, score, best)


def test_best_constants_are_the_documented_ones():
    y = np.array([0, 0, 0, 1])
    assert M.metric("acc").best_constant(y, "binary", 1)[0] < 0  # majority: negative
    assert M.metric("f1").best_constant(y, "binary", 1)[0] > 0  # all-positive beats F1 = 0
    assert M.metric("mae").best_constant(np.array([0.0, 0, 1, 10]), "regression", 1)[0] == 0.5
    assert M.metric("mse").best_constant(np.array([0.0, 0, 1, 11]), "regression", 1)[0] == 3.0
    assert M.metric("exact_acc").best_constant(np.array([1.0, 2, 2, 7]), "regression", 1)[0] == 2
    with pytest.raises(ValueError, match="integer"):
        M.metric("exact_acc").best_constant(np.array([0.5, 1.0]), "regression", 1)
    with pytest.raises(ValueError, match="does not apply to regression"):
        M.metric("acc").best_constant(np.array([0.5, 1.0]), "regression", 1)


def test_table_is_complete_and_lookups_explain_themselves():
    assert set(M.TASK_METRICS) == set(M.TASKS)
    assert {n for names in M.TASK_METRICS.values() for n in names} == set(M.METRICS)
    assert M.metric("r2").bounds == (-np.inf, 1.0) and M.metric("mse").best_value == 0.0
    assert M.task_metrics("regression") == ("r2", "mse", "mae")
    assert M.task_metrics("regression", integer_valued=True)[-1] == "exact_acc"
    with pytest.raises(UserError, match="unknown metric 'accuracy'; choose one of acc, f1"):
        M.metric("accuracy")
    exact = M.metric("exact_acc").build("regression", 1)
    assert type(pickle.loads(pickle.dumps(exact))).__name__ == "ExactIntegerAccuracy"


def test_import_is_cheap():
    code = ("import sys, benchmarks.metrics; "
            "sys.exit('torch' in sys.modules or 'torchmetrics' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_constant_baseline_predicts_its_metric_constant():
    from benchmarks import registry
    from benchmarks.contract import DatasetSpec, ViewSpec

    entry = registry.get_model_entry("constant")
    assert entry.baseline and entry.kind == "fitted"
    assert "majority" not in registry.list_models()
    spec = DatasetSpec(name="toy", version="1", task="binary", num_outputs=1,
                       views=(ViewSpec("vector", (2,)),), metric="f1")
    model = registry.create_model("constant", spec)
    y = np.array([0, 0, 0, 1])
    out = model.fit(np.zeros((4, 2)), y).predict(np.zeros((3, 2)))
    assert out.shape == (3, 1) and (out > 0).all()
    assert model.describe({})["constant"]["description"].startswith("all-positive")
