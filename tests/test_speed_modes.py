"""Speed modes for small cells: larger batches with a scaled learning rate, and
torch.compile. Each must give the metrics of the plain path within noise; each changes a
cell's identity (its record reruns) only when it is switched on."""

from __future__ import annotations

import dataclasses
import json
import shutil
import statistics
from pathlib import Path

import jsonschema
import pytest

from benchmarks.cli import main
from benchmarks.errors import UserError
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.plan import make_cell, make_datamodule, plan_suite
from benchmarks.run.records import SCHEMA_PATH
from benchmarks.run.suite import DatasetConfig, ModelConfig, load_suite, with_budget
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware


def test_options_left_at_their_neutral_value_keep_a_records_identity():
    plain = TrainBudget().to_dict()
    assert "batch_scale" not in plain and "compile" not in plain  # old records still resume
    assert TrainBudget(batch_scale=4).to_dict()["batch_scale"] == 4
    assert TrainBudget(compile="default").to_dict()["compile"] == "default"


def test_scaled_batch_and_rate():
    adam = TrainBudget(batch_size=64, lr=1e-3, batch_scale=4)
    assert adam.train_batch_size == 256 and adam.train_lr == pytest.approx(2e-3)  # sqrt rule
    sgd = TrainBudget(batch_size=64, lr=1e-2, optimizer="sgd", batch_scale=4)
    assert sgd.train_batch_size == 256 and sgd.train_lr == pytest.approx(4e-2)  # linear rule
    assert TrainBudget(batch_size=64, lr=1e-3).train_lr == 1e-3


def test_command_line_budget_wins_over_per_dataset_budgets(tmp_path):
    path = tmp_path / "s.toml"
    path.write_text('seeds = [0]\n[budget]\nlr = 2e-3\n[[datasets]]\nname = "parity"\n'
                    'id = "parity-ood"\nbudget = { lr = 1e-2 }\n[[datasets]]\nname = "descents"\n'
                    '[[models]]\nname = "mlp"\n')
    suite = load_suite(str(path))
    assert any("lr" in d.budget for d in suite.datasets)  # parity-ood sets its own
    scaled = with_budget(suite, batch_scale=4, compile="default")
    cells = plan_suite(scaled).cells
    assert cells and all(c.budget.batch_scale == 4 and c.budget.compile == "default" for c in cells)
    parity = next(c for c in cells if c.dataset.id == "parity-ood")
    assert parity.budget.lr == 1e-2 and parity.budget.train_lr == pytest.approx(2e-2)


@pytest.mark.parametrize("changes, message", [
    ({"batch_scale": 0}, "batch_scale must be an integer >= 1"),
    ({"compile": "fast"}, "reduce-overhead"),
])
def test_bad_speed_settings_are_one_line(changes, message):
    with pytest.raises(UserError, match=message):
        with_budget(load_suite("smoke"), **changes)


def test_bad_speed_flags_on_the_command_line(capsys, tmp_path):
    assert main(["benchmark", "--suite", "smoke", "--batch-scale", "0",
                 "--results", str(tmp_path)]) == 2
    assert main(["run", "--dataset", "parity", "--model", "mlp", "--compile", "turbo",
                 "--results", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and "batch_scale must be an integer >= 1" in err[0] and "max-autotune" in err[1]


# Learnable in a few epochs, so the metric is a property of the model and budget rather
# than of one lucky seed: right descents of S_8 from one-line notation (7 positions, multi-label).
DESCENTS = DatasetConfig("descents", "descents", {"n": 8, "n_train": 3000, "n_val": 500,
                                                  "n_test": 1000})
MLP = ModelConfig("mlp", "mlp", {"hidden": 64, "depth": 2})


def _test_metric(budget: TrainBudget, seeds: range, results: Path) -> list[float]:
    dm = make_datamodule(DESCENTS)
    out = []
    for seed in seeds:
        rec = run_cell(make_cell("speed", DESCENTS, MLP, seed, budget, dm), dm,
                       RunOptions(results_dir=results, hardware=Hardware("cpu")))
        assert rec.status == "ok", rec.reason
        out.append(rec.primary_test)
    return out


def test_larger_batches_with_a_scaled_rate_give_the_same_metric_within_noise(tmp_path):
    base = TrainBudget(max_epochs=12, patience=0, batch_size=32, lr=2e-3)
    seeds = range(3)
    plain = _test_metric(base, seeds, tmp_path / "plain")
    scaled = _test_metric(dataclasses.replace(base, batch_scale=4), seeds, tmp_path / "scaled")
    noise = max(statistics.stdev(plain), statistics.stdev(scaled), 0.01)
    gap = abs(statistics.mean(scaled) - statistics.mean(plain))
    assert statistics.mean(plain) > 0.9  # learnt, so the comparison means something
    assert gap <= 3 * noise, (plain, scaled)
    record = json.loads(next((tmp_path / "scaled").rglob("seed0.json")).read_text())
    jsonschema.validate(record, json.loads(SCHEMA_PATH.read_text()))
    assert record["budget"]["batch_scale"] == 4 and record["budget"]["batch_size"] == 32


def test_compile_without_a_cpp_compiler_is_one_line(tmp_path, monkeypatch):
    import benchmarks.train.trainer

    monkeypatch.setattr(benchmarks.train.trainer.shutil, "which", lambda name: None)
    with pytest.raises(UserError, match="needs a C\\+\\+ compiler"):
        _test_metric(TrainBudget(max_epochs=1, compile="default"), range(1), tmp_path)


def test_compiled_backbone_gives_the_same_metric(tmp_path):
    pytest.importorskip("torch._inductor")
    if not any(shutil.which(c) for c in ("c++", "g++", "clang++")):
        pytest.skip("torch.compile on CPU needs a C++ compiler")
    base = TrainBudget(max_epochs=4, patience=0, batch_size=128, lr=2e-3)
    plain = _test_metric(base, range(1), tmp_path / "plain")
    compiled = _test_metric(dataclasses.replace(base, compile="default"), range(1),
                            tmp_path / "compiled")
    # The same initial weights and batches; fused kernels may round differently, so
    # the trajectories agree closely rather than bit for bit.
    assert abs(compiled[0] - plain[0]) <= 0.01, (plain, compiled)
