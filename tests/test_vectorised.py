"""Seeds trained as one stacked model (benchmarks.train.stacked) give what the plain
per-seed path (run_cell, one minibatch per Lightning call) gives: the same epochs, best
epochs and metrics per seed, early stopping frozen per seed, batch norm statistics per
seed, divergence per seed.

Tolerance: vmap does the same arithmetic with other kernels (a linear layer is bmm plus
an add, not addmm; the logistic loss is decomposed), so weights differ from the plain
path's by about 1e-9 after a step. On these instances no prediction comes that close to
a decision boundary, so accuracies agree exactly (one sample would be 1/64, far outside
the tolerance); only continuous values (losses, mse, r2) differ, in the 7th digit.
Exactness is not promised everywhere: where a model sits at chance, or a parameter's
gradient is pure rounding, Adam scales ~1e-9 differences up to steps of size lr, and the
plain path parts from itself just as far under a one-ulp change of its initial weights.
"""

from __future__ import annotations

import math

import pytest
from torch import nn

from benchmarks import registry
from benchmarks.run.execute import RunOptions, prepare, run_cell
from benchmarks.run.plan import make_cell, make_datamodule
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware
from benchmarks.train.stacked import NotStackable, stack_problem, train_stacked

DESCENTS = DatasetConfig("descents", "descents", {"n": 7, "n_train": 256, "n_val": 64,
                                                  "n_test": 64})
PARITY = DatasetConfig("parity", "parity", {"n": 8, "n_train": 128, "n_val": 32, "n_test": 64})
SUMS = DatasetConfig("deepsets_sum", "deepsets_sum", {"max_size": 5, "ood_max_size": 12,
                                                      "n_train": 128, "n_val": 32, "n_test": 32})
MLP = ModelConfig("mlp", "mlp", {"hidden": 32})
SEEDS = (0, 1, 2)


def plain_and_vectorised(dcfg: DatasetConfig, budget: TrainBudget, tmp_path,
                         model: ModelConfig = MLP) -> tuple[list, list]:
    cells = [make_cell("t", dcfg, model, seed, budget) for seed in SEEDS]
    dm = make_datamodule(dcfg)
    options = RunOptions(results_dir=tmp_path, hardware=Hardware("cpu"))
    plain = [run_cell(cell, dm, options) for cell in cells]
    prepare(cells[0], dm)
    c = cells[0]
    return plain, train_stacked(c.model.name, c.hparams, list(SEEDS), dm,
                                dm.spec.for_view(c.view), budget, options.hardware)


def close(a: float, b: float) -> bool:
    # abs_tol covers history values rounded to 6 digits, one rounding step apart
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1.5e-6)


def assert_same(plain: list, vec: list) -> None:
    for p, v in zip(plain, vec, strict=True):
        assert p.status == "ok" and v.failed is None, p.reason
        assert (v.epochs, v.best_epoch) == (p.epochs, p.best_epoch), p.seed
        assert v.metrics.keys() == p.metrics.keys()
        for split, values in p.metrics.items():
            got = v.metrics[split]
            assert got.keys() == values.keys()
            assert all(close(got[k], values[k]) for k in values), (p.seed, split, got, values)
        assert len(v.history) == len(p.history)
        for hv, hp in zip(v.history, p.history, strict=True):
            assert hv.keys() == hp.keys() and all(close(hv[k], hp[k]) for k in hp), (hv, hp)
        assert v.n_params == p.model.n_params
        assert v.stopped_by == p.stopped_by, p.seed


def test_descents_seeds_stop_early_at_their_own_epochs(tmp_path):
    budget = TrainBudget(max_epochs=10, patience=2, batch_size=32, chunk=1)
    plain, vec = plain_and_vectorised(DESCENTS, budget, tmp_path)
    assert_same(plain, vec)
    # Seeds stop at different epochs, and those still training after one stopped (the
    # stack shrinks then) still follow their plain runs.
    epochs = sorted(v.epochs for v in vec)
    assert len(set(epochs)) == 3 and epochs[0] < budget.max_epochs, epochs
    assert all(v.best_epoch == v.epochs - 1 - budget.patience
               or v.epochs == budget.max_epochs for v in vec)
    assert all(v.stopped_by == ("max_epochs" if v.epochs == budget.max_epochs
                                   else "early_stopping") for v in vec)


class NormedMLP(nn.Module):
    """Linear, batch norm, ReLU, linear: running statistics are buffers that train mode
    updates in place, which the stacked buffers must follow seed by seed. No bias before
    the norm (it cancels): its gradient would be pure rounding, which Adam scales up to
    steps of size lr, so plain and vectorised runs would part by chance, not by a bug."""

    def __init__(self, d: int, k: int, hidden: int) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(d, hidden, bias=False), nn.BatchNorm1d(hidden),
                                 nn.ReLU(), nn.Linear(hidden, k))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def normed_mlp():
    registry.load_plugins()

    def factory(spec, hidden: int = 32) -> nn.Module:
        """MLP with batch norm (test only)."""
        return NormedMLP(spec.input_shape[0], spec.num_outputs, hidden)

    registry.register_model("normed_mlp", modalities=("vector",))(factory)
    yield ModelConfig("normed_mlp", "normed_mlp", {})
    registry.unregister("model", "normed_mlp")


def test_batch_norm_statistics_follow_each_seed(tmp_path, normed_mlp):
    # Eval mode reads the running statistics, so test metrics check the stacked buffers;
    # seeds stop at different epochs, so the buffers are also cut down with the stack.
    budget = TrainBudget(max_epochs=10, patience=1, batch_size=32, chunk=1)
    plain, vec = plain_and_vectorised(DESCENTS, budget, tmp_path, normed_mlp)
    assert_same(plain, vec)
    assert len({v.epochs for v in vec}) > 1


def test_parity_with_adamw_weight_decay(tmp_path):
    budget = TrainBudget(max_epochs=4, patience=0, batch_size=32, lr=1e-2, weight_decay=0.1,
                         chunk=1)
    plain, vec = plain_and_vectorised(PARITY, budget, tmp_path, ModelConfig("mlp", "mlp",
                                                                            {"hidden": 64}))
    assert_same(plain, vec)
    assert all(v.epochs == 4 for v in vec)


def test_regression_with_sgd_and_an_ood_split(tmp_path):
    budget = TrainBudget(max_epochs=4, patience=0, batch_size=32, optimizer="sgd", lr=0.05,
                         weight_decay=0.01, chunk=1)
    plain, vec = plain_and_vectorised(SUMS, budget, tmp_path)
    assert_same(plain, vec)
    assert all("ood_test" in v.metrics for v in vec)


def test_a_time_cap_stops_at_an_epoch_end_as_the_plain_path_does(tmp_path):
    # chunk 0: the plain path takes a whole epoch per Lightning step, so its timer, like
    # the joint run's, can only stop training at an epoch end
    budget = TrainBudget(max_epochs=5, patience=0, batch_size=32, max_time_s=1e-6, chunk=0)
    plain, vec = plain_and_vectorised(DESCENTS, budget, tmp_path)
    assert_same(plain, vec)
    assert all(v.epochs == 1 and v.stopped_by == "time_cap" for v in vec)


def test_a_diverged_seed_fails_as_in_the_plain_path(tmp_path):
    budget = TrainBudget(max_epochs=3, patience=0, batch_size=32, optimizer="sgd", lr=30.0,
                         chunk=1)
    plain, vec = plain_and_vectorised(SUMS, budget, tmp_path)
    assert [p.reason for p in plain] == [v.failed for v in vec]
    assert all(v.failed.startswith(("diverged: ", "NonFiniteOutputs: ")) and not v.metrics
               and not v.history
               for v in vec)


def test_what_cannot_be_vectorised_says_why():
    registry.load_plugins()
    descents = make_datamodule(DESCENTS).spec
    assert stack_problem("mlp", descents, {"hidden": 32}) is None
    assert "fitted" in stack_problem("linear", descents)
    # cnn1d on token sequences trims each batch to its longest sequence: a data-dependent
    # shape, which vmap refuses.
    assert "vmap" in stack_problem("cnn1d", descents, {})
    # dropout under vmap would draw other masks than the plain path: not the same runs
    assert stack_problem("mlp", descents, {"dropout": 0.0}) is None
    assert "dropout" in stack_problem("mlp", descents, {"dropout": 0.1})
    bf16 = TrainBudget(precision="bf16-mixed")
    assert "precision" in stack_problem("mlp", descents, {}, bf16)
    graphs = make_datamodule(DatasetConfig("g", "graph_properties", {})).spec
    gin = stack_problem("gin", graphs)
    assert gin is not None and "graph" in gin


def test_seeds_of_one_stack_must_be_distinct():
    dm = make_datamodule(DESCENTS)
    cell = make_cell("t", DESCENTS, MLP, 0, TrainBudget(max_epochs=1))
    prepare(cell, dm)
    with pytest.raises(NotStackable, match="distinct"):
        train_stacked("mlp", cell.hparams, [0, 0], dm, dm.spec.for_view(cell.view),
                      cell.budget, Hardware("cpu"))


@pytest.mark.parametrize("workers", [1, 2])
def test_vectorise_seeds_through_the_cli_writes_the_same_records(tmp_path, workers):
    import json

    from benchmarks.cli import main

    suite = tmp_path / "v.toml"
    suite.write_text('seeds = [0, 1, 2]\nbaseline = false\ndata_seeds = "fixed"\n[budget]\nmax_epochs = 4\npatience = 2\n'
                     'batch_size = 64\n[[datasets]]\nname = "descents"\n'
                     'params = { n = 7, n_train = 400, n_val = 100, n_test = 100 }\n'
                     '[[datasets]]\nname = "parity"\n'
                     'params = { n = 8, n_train = 128, n_val = 32, n_test = 64 }\n'
                     '[[models]]\nname = "mlp"\nhparams = { hidden = 16 }\n')
    plain, vec = tmp_path / "plain", tmp_path / "vec"
    assert main(["benchmark", "--suite", str(suite), "--results", str(plain)]) == 0
    assert main(["benchmark", "--suite", str(suite), "--results", str(vec), "--vectorise-seeds",
                 "--workers", str(workers)]) == 0
    for dataset in ("descents", "parity"):
        for seed in range(3):
            a = json.loads((plain / f"runs/v/{dataset}/mlp/seed{seed}.json").read_text())
            b = json.loads((vec / f"runs/v/{dataset}/mlp/seed{seed}.json").read_text())
            assert b["model"]["details"]["vectorised"]["seeds"] == [0, 1, 2]
            assert a["config_hash"] == b["config_hash"] and a["best_epoch"] == b["best_epoch"]
            for split, values in a["metrics"].items():
                for key, value in values.items():
                    assert abs(b["metrics"][split][key] - value) < 1e-5, (dataset, seed, split, key)
