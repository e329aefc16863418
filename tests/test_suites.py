"""The built-in suites: each loads; `tuned` searched exactly the datasets, models and
budget of `reference`; every cell of `default` (what `make benchmark` runs) is a cell of
`reference`, so the comparison at its end finds a committed record for each; and the
`extends` mechanism they use."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.errors import UserError
from benchmarks.run.plan import plan_suite
from benchmarks.run.suite import load_suite

BUILT_IN = ("smoke", "default", "reference", "tuned", "full")


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_suite_loads(name):
    suite = load_suite(name)
    assert suite.datasets and suite.models


def test_the_reference_runs_the_datasets_models_and_budget_that_tuned_searched():
    reference, tuned = load_suite("reference"), load_suite("tuned")
    assert reference.tuned_from == "tuned" and tuned.tuning.get("trials", 0) >= 1
    assert not tuned.tuned_from and not tuned.explain and not tuned.contrasts
    strip = lambda d: dataclasses.replace(d, seeds=None)  # noqa: E731  (seeds may differ)
    assert [strip(d) for d in reference.datasets] == [strip(d) for d in tuned.datasets]
    assert reference.models == tuned.models  # parameter budgets included (model@10k, ...)
    assert reference.budget == tuned.budget
    assert reference.data_seeds == tuned.data_seeds == "follow"
    assert tuned.seeds == (0,) and all(d.seeds is None for d in tuned.datasets)


def test_every_cell_of_default_is_a_cell_of_the_reference():
    """Same dataset, model, seed and configuration hash: the record committed in results/
    is the one `make benchmark` reproduces, and the tuned choice it reuses is the same."""
    default, reference = load_suite("default"), load_suite("reference")
    assert default.tuned_from == reference.tuned_from == "tuned"
    key = lambda c: (c.dataset.id, c.model.id, c.seed, c.config_hash)  # noqa: E731
    mine = {key(c) for c in plan_suite(default).cells}
    theirs = {key(c) for c in plan_suite(reference).cells}
    assert mine and mine <= theirs and mine != theirs
    assert {m for _, m, _, _ in mine if "@" in m} == \
        {m for _, m, _, _ in theirs if m.endswith("@10k")}  # one budget, every family
    assert {(d, s) for d, _, s, _ in mine} == {(d, s) for d, _, s, _ in theirs}  # every seed


def test_every_published_contrast_names_models_of_its_suite():
    for name in BUILT_IN:
        suite = load_suite(name)
        ids = {m.id for m in suite.models} | {"constant"}
        for c in suite.contrasts:
            assert c["dataset"] in {d.id for d in suite.datasets}, (name, c["name"])
            for model in c["models"]:
                assert model in ids, (name, c["name"], model)


# -- extends -------------------------------------------------------------------------------
BASE = """description = "base"
seeds = [0, 1, 2]
param_budgets = [1000, 5000]
[budget]
max_epochs = 7
[[datasets]]
name = "parity"
params = { n = 8 }
seeds = [0, 1, 2, 3, 4]
[[datasets]]
name = "descents"
[[models]]
name = "mlp"
[[models]]
name = "mlp"
id = "wide"
param_budgets = [20000]
[[contrasts]]
name = "c"
dataset = "parity"
models = ["mlp", "wide", "constant"]
"""


def test_a_suite_extends_another_with_its_own_keys_winning(tmp_path):
    (tmp_path / "base.toml").write_text(BASE)
    (tmp_path / "child.toml").write_text('extends = "base.toml"\ndescription = "child"\n'
                                         'seeds = [0]\nparam_budgets = [1000]\n'
                                         '[budget]\npatience = 3\n')
    base, child = load_suite(str(tmp_path / "base.toml")), load_suite(str(tmp_path / "child.toml"))
    assert child.name == "child" and child.description == "child"
    assert child.budget == dataclasses.replace(base.budget, patience=3)  # [budget] merged
    assert child.budget.max_epochs == 7
    assert [d.params for d in child.datasets] == [d.params for d in base.datasets]
    assert child.seeds == (0,) and all(d.seeds is None for d in child.datasets)  # seed 0 everywhere
    assert base.datasets[0].seeds == (0, 1, 2, 3, 4)
    assert [m.id for m in base.models] == ["mlp@1k", "mlp@5k", "wide@20k"]
    assert [m.id for m in child.models] == ["mlp@1k", "wide@20k"]  # its own budgets kept
    # a contrast's model without a budget is the suite's largest budget of it
    assert base.contrasts[0]["models"] == ["mlp@5k", "wide@20k", "constant"]
    assert child.contrasts[0]["models"] == ["mlp@1k", "wide@20k", "constant"]


def test_extends_errors_are_one_line(tmp_path):
    (tmp_path / "a.toml").write_text('extends = "b.toml"\n' + BASE)
    (tmp_path / "b.toml").write_text('extends = "a.toml"\n' + BASE)
    (tmp_path / "c.toml").write_text('extends = "no-such-suite"\n' + BASE)
    (tmp_path / "d.toml").write_text('extends = 3\n' + BASE)
    for name, words in (("a", "circle"), ("c", "unknown suite 'no-such-suite'"),
                        ("d", "extends must be a suite name")):
        with pytest.raises(UserError) as err:
            load_suite(str(tmp_path / f"{name}.toml"))
        assert words in str(err.value) and "\n" not in str(err.value), str(err.value)


# -- a cell is its configuration: one suite's cells finished by another are adopted -------
ADOPT_BASE = """seeds = [0, 1]
baseline = false
[budget]
max_epochs = 2
[[datasets]]
name = "parity"
params = { n = 8, n_train = 64, n_val = 16, n_test = 16 }
[[models]]
name = "mlp"
[[models]]
name = "linear"
"""


def test_a_suite_runs_none_of_the_cells_another_suite_of_the_folder_finished(tmp_path, capsys):
    """`default` in results/ finds the reference's records of its cells: it copies them
    (record, predictions) under its own name instead of training; a cell of another
    configuration is trained."""
    from benchmarks.cli import main
    from benchmarks.run.records import read_record

    (tmp_path / "base.toml").write_text(ADOPT_BASE)
    (tmp_path / "child.toml").write_text('extends = "base.toml"\nseeds = [1]\n')
    (tmp_path / "other.toml").write_text('extends = "base.toml"\n[budget]\nmax_epochs = 3\n')
    results = tmp_path / "r"
    assert main(["benchmark", "--suite", str(tmp_path / "base.toml"), "--results", str(results)]) == 0
    capsys.readouterr()
    assert main(["benchmark", "--suite", str(tmp_path / "child.toml"), "--results", str(results)]) == 0
    assert "ran 0 cells" in capsys.readouterr().out
    for model in ("mlp", "linear"):
        base = read_record(results / f"runs/base/parity/{model}/seed1.json")
        child = read_record(results / f"runs/child/parity/{model}/seed1.json")
        assert child.suite == "child" and child.config_hash == base.config_hash
        assert child.metrics == base.metrics and child.predictions == base.predictions
        assert child.predictions_path().read_bytes() == base.predictions_path().read_bytes()
    assert not (results / "runs/child/parity/mlp/seed0.json").exists()  # not its cell
    assert (results / "suites/child/leaderboard.md").is_file()
    assert main(["benchmark", "--suite", str(tmp_path / "other.toml"), "--results", str(results)]) == 0
    assert "ran 4 cells" in capsys.readouterr().out  # another budget: other cells
