"""The equal hyperparameter search (benchmarks.tune, benchmarks.run.tuning): it reads the
validation split only (permuted test labels change nothing, and any read of a test split
raises), it is reproducible for a fixed sampler seed, stacked and one-by-one trials agree,
a finished search is reused and a changed one reruns, another suite's committed choices
are read back, and a bad space is one line.

Instances are tiny (descents n=7 with 256 training rows, three epochs), so a trial
costs a few hundredths of a second and the file well under a minute.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch
from torch import nn

from benchmarks import registry
from benchmarks.errors import UserError
from benchmarks.run.execute import RunOptions
from benchmarks.run.plan import make_cell, make_datamodule, plan_suite
from benchmarks.run.suite import DatasetConfig, ModelConfig, parse_suite
from benchmarks.run.tuning import tune_plan, tuned_from
from benchmarks.train import stacked as stacked_training
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware
from benchmarks.tune import search
from benchmarks.tune.search import (
    HiddenSplitRead,
    TrialRecord,
    ValidationOnly,
    read_tuning,
    tune,
    tuning_path,
)
from benchmarks.tune.space import DEFAULT_SPACE, parse_space

DESCENTS = DatasetConfig("descents", "descents", {"n": 7, "n_train": 256, "n_val": 64,
                                                  "n_test": 64})
BUDGET = TrainBudget(max_epochs=3, patience=0, batch_size=32)
MLP = ModelConfig("mlp", "mlp", {"hidden": 32})
LINEAR = ModelConfig("linear", "linear")
CPU = Hardware("cpu")
PROBE = "tuning_probe"  # a plugin model that declares no space: the default one applies


@pytest.fixture(scope="module", autouse=True)
def probe_model():
    @registry.register_model(PROBE, modalities=("vector",))
    def probe(spec, hidden: int = 16) -> nn.Module:
        """A small MLP registered by the test, without a space."""
        import math

        return nn.Sequential(nn.Flatten(), nn.Linear(math.prod(spec.input_shape), hidden),
                             nn.ReLU(), nn.Linear(hidden, spec.num_outputs))

    yield
    registry.unregister("model", PROBE)


def cell_of(model: ModelConfig, dm=None, seed: int = 0):
    return make_cell("t", DESCENTS, model, seed, BUDGET, dm)


def trials_of(result) -> list[tuple]:
    """What must not change: every trial's settings, state, value and epochs."""
    return [(t.number, t.params, t.state, t.value, t.epochs, t.best_epoch)
            for t in result.trials]


def refuse_test_reads(dm, monkeypatch) -> None:
    """Make every read of a test split of `dm` itself raise, beneath the search's guard."""
    for name in ("inputs", "target", "arrays", "split_size", "loader", "_raw_split"):
        real = getattr(dm, name)

        def guarded(split, *args, _real=real, **kwargs):
            if split in ("test", "ood_test"):
                raise HiddenSplitRead(f"the test read {split!r}")
            return _real(split, *args, **kwargs)

        monkeypatch.setattr(dm, name, guarded)


# -- (a) validation only -----------------------------------------------------------------
@pytest.mark.parametrize("model", [MLP, LINEAR], ids=["mlp", "linear"])
def test_search_uses_validation_only(model, monkeypatch):
    """Permuted test labels, and a datamodule that refuses every test read beneath the
    search's own guard: the same trials, values and choice (neural and fitted)."""
    dm = make_datamodule(DESCENTS)
    base = tune(cell_of(model, dm), dm, CPU, trials=4, sampler_seed=0, batch=2)
    assert all(t.state == "complete" for t in base.trials)

    other = make_datamodule(DESCENTS)
    other.setup("fit")
    y = other._raw["test"]["y"]
    perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(0))
    other._raw["test"]["y"] = y[perm]
    assert not torch.equal(other.target("test"), y)  # the labels really moved
    refuse_test_reads(other, monkeypatch)
    again = tune(cell_of(model, other), other, CPU, trials=4, sampler_seed=0, batch=2)
    assert trials_of(again) == trials_of(base)
    assert again.chosen == base.chosen


def test_guard_hides_test_splits():
    """What the training paths see: train and val listed, every test read refused."""
    dm = make_datamodule(DESCENTS)
    dm.setup("fit")
    guard = ValidationOnly(dm)
    assert guard.splits == ("train", "val")
    assert guard.split_size("val") == 64
    for read in (lambda: guard.target("test"), lambda: guard.inputs("ood_test"),
                 lambda: guard.loader("test"), guard.test_dataloader):
        with pytest.raises(HiddenSplitRead):
            read()


# -- (b) reproducible --------------------------------------------------------------------
def test_search_is_reproducible_for_a_fixed_seed():
    """The same sampler seed gives the same trials and choice; another seed other trials."""
    dm = make_datamodule(DESCENTS)
    cell = cell_of(MLP, dm)
    first = tune(cell, dm, CPU, trials=6, sampler_seed=3, batch=3)
    second = tune(cell, dm, CPU, trials=6, sampler_seed=3, batch=3)
    assert trials_of(first) == trials_of(second) and first.chosen == second.chosen
    assert first.config_hash == second.config_hash
    other = tune(cell, dm, CPU, trials=6, sampler_seed=4, batch=3)
    assert [t.params for t in other.trials] != [t.params for t in first.trials]
    assert other.config_hash != first.config_hash


def test_ties_go_to_the_earliest_trial():
    space = parse_space(registry.get_model_entry(PROBE))
    recs = [TrialRecord(i, {"lr": 1e-3 * (i + 1), "weight_decay": 0.0}, "complete", v)
            for i, v in enumerate([0.5, 0.7, 0.7, 0.1])]
    recs.insert(0, TrialRecord(9, {"lr": 1.0, "weight_decay": 0.0}, "failed", None))
    assert search._choose(recs, space, higher_is_better=True)["trial"] == 1
    assert search._choose(recs, space, higher_is_better=False)["trial"] == 3
    assert search._choose(recs[:1], space, higher_is_better=True) is None


# -- (c) stacked and sequential trials ------------------------------------------------------
@pytest.mark.skipif(search.stacked_module() is None,
                    reason="benchmarks.train.stacked has no Member yet (per-trial rates)")
def test_stacked_and_sequential_trials_agree():
    """A lr/weight-decay space: every batch of 4 is one stacked model, and its members'
    values are the one-by-one trials' to rounding."""
    dm = make_datamodule(DESCENTS)
    cell = cell_of(ModelConfig(PROBE, PROBE), dm)
    stacked = tune(cell, dm, CPU, trials=8, sampler_seed=0, batch=4)
    plain = tune(cell, dm, CPU, trials=8, sampler_seed=0, batch=4, stacked=False)
    assert all(t.stacked for t in stacked.trials) and not any(t.stacked for t in plain.trials)
    for s, p in zip(stacked.trials, plain.trials, strict=True):
        assert s.params == p.params and s.epochs == p.epochs
        assert s.value == pytest.approx(p.value, abs=1e-6)
    assert stacked.chosen["params"] == plain.chosen["params"]


class FakeMember:
    def __init__(self, seed, lr=None, weight_decay=None):
        self.seed, self.lr, self.weight_decay = seed, lr, weight_decay


def fake_train_stacked(model_name, hparams, members, dm, spec, budget, hardware):
    """Members one by one through the plain path, each at its own rates: what the real
    stacked path must reproduce to rounding. It sees only what the search shows it."""
    import lightning as L

    from benchmarks.train.neural import train_neural

    assert dm.splits == ("train", "val") and len(members) > 1
    outs = []
    for m in members:
        L.seed_everything(m.seed, verbose=False)
        net = registry.create_model(model_name, spec, **hparams)
        own = dataclasses.replace(budget, lr=m.lr, weight_decay=m.weight_decay)
        outs.append(train_neural(net, dm, spec, own, hardware, test=False))
    return outs


def test_batches_of_trials_go_to_the_stacked_path(monkeypatch):
    """The batching of asks, the grouping of a batch and the mapping of members back to
    trials, against a stand-in for train_stacked with members; and both fallbacks."""
    dm = make_datamodule(DESCENTS)
    cell = cell_of(ModelConfig(PROBE, PROBE), dm)
    plain = tune(cell, dm, CPU, trials=6, sampler_seed=0, batch=3, stacked=False)
    monkeypatch.setattr(stacked_training, "Member", FakeMember, raising=False)
    monkeypatch.setattr(stacked_training, "train_stacked", fake_train_stacked)
    together = tune(cell, dm, CPU, trials=6, sampler_seed=0, batch=3)
    assert all(t.stacked for t in together.trials)
    assert trials_of(together) == trials_of(plain)

    def refuse(*args, **kwargs):
        raise stacked_training.NotStackable("not here")

    monkeypatch.setattr(stacked_training, "train_stacked", refuse)
    fallback = tune(cell, dm, CPU, trials=6, sampler_seed=0, batch=3)
    assert not any(t.stacked for t in fallback.trials)
    assert trials_of(fallback) == trials_of(plain)
    monkeypatch.delattr(stacked_training, "Member")
    assert search.stacked_module() is None


# -- (d) reuse and rerun ---------------------------------------------------------------------
def suite_of(name: str, models: list[dict], budget: dict | None = None):
    return parse_suite({"seeds": [0, 1], "budget": budget or {"max_epochs": 3, "patience": 0,
                                                              "batch_size": 32},
                        "datasets": [{"name": "descents", "params": DESCENTS.params}],
                        "models": models}, name)


MODELS = [{"name": "mlp", "hparams": {"hidden": 32}}, {"name": "linear"}]


@pytest.fixture
def count_trainings(monkeypatch):
    """The labels of the trials trained, one by one or as members of a stacked model."""
    calls = []
    one, together = search._train_one, search._train_stacked

    def counted_one(*args, **kwargs):
        calls.append(args[0].label)
        return one(*args, **kwargs)

    def counted_together(cells, *args, **kwargs):
        outcomes = together(cells, *args, **kwargs)
        calls.extend(c.label for c in cells if outcomes is not None)
        return outcomes

    monkeypatch.setattr(search, "_train_one", counted_one)
    monkeypatch.setattr(search, "_train_stacked", counted_together)
    return calls


def test_a_finished_search_is_reused_and_a_changed_one_reruns(tmp_path, count_trainings,
                                                               monkeypatch):
    """tune_plan: tuning.json written, every seed's cell at the choice (identity too), the
    constant baseline untouched; a second call trains nothing; a changed trial count, a
    changed space or a torn file searches again."""
    options = RunOptions(results_dir=tmp_path, hardware=CPU)
    plan = plan_suite(suite_of("tuned", MODELS))
    events = []
    tuned = tune_plan(plan, options, trials=4, sampler_seed=0,
                      progress=lambda e, c, r: events.append((e, c.model.id)), batch=2)
    assert ("skipped", "constant") in events and ("end", "mlp") in events
    assert len(count_trainings) == 8  # 4 trials each of mlp and linear, none of constant
    path = tuning_path(tmp_path, "tuned", "descents", "mlp")
    data = json.loads(path.read_text())
    assert {"config", "config_hash", "trials", "chosen", "cost_s", "metric",
            "direction"} <= set(data) and len(data["trials"]) == 4
    assert data["config"]["space"]["depth"] == ["int", 2, 4] and data["metric"] == "exact_match"
    chosen = data["chosen"]
    for cell in (c for c in tuned.cells if c.model.id == "mlp"):  # both seeds, tuned
        assert cell.hparams["depth"] == chosen["hparams"]["depth"]
        assert cell.budget.lr == chosen["budget"]["lr"]
        assert cell.identity["model"]["hparams"]["depth"] == chosen["hparams"]["depth"]
    for planned, cell in zip(plan.cells, tuned.cells, strict=True):  # each seed's own data
        assert (cell.seed, cell.dataset, cell.identity["dataset"]) == \
            (planned.seed, planned.dataset, planned.identity["dataset"])
    assert {c.seed for c in tuned.cells if c.model.id == "mlp"} == {0, 1}
    linear = next(c for c in tuned.cells if c.model.id == "linear")
    assert linear.hparams["l2"] == read_tuning(tuning_path(tmp_path, "tuned", "descents",
                                                           "linear")).chosen["params"]["l2"]
    untouched = [c for c in tuned.cells if c.model.id == "constant"]
    assert untouched == [c for c in plan.cells if c.model.id == "constant"]

    count_trainings.clear()
    again = tune_plan(plan, options, trials=4, sampler_seed=0, batch=2)
    assert count_trainings == [] and again.current_hashes() == tuned.current_hashes()
    events.clear()  # a leaderboard's view: the same cells, and nothing searched for one
    read = tune_plan(plan, options, trials=4, sampler_seed=0, batch=2, reuse_only=True,
                     progress=lambda e, c, r: events.append((e, c.model.id)))
    assert read.current_hashes() == tuned.current_hashes() and ("reused", "mlp") in events
    other = tune_plan(plan, options, trials=7, sampler_seed=0, batch=2, reuse_only=True,
                      progress=lambda e, c, r: events.append((e, c.model.id)))
    assert count_trainings == [] and ("missing", "mlp") in events
    assert other.current_hashes() == plan.current_hashes()

    tune_plan(plan, options, trials=5, sampler_seed=0, batch=2)  # a changed trial count
    assert len(count_trainings) == 10
    count_trainings.clear()
    entry = registry.get_model_entry("mlp")
    monkeypatch.setitem(registry._MODELS, "mlp", dataclasses.replace(
        entry, space={**entry.space, "depth": ("int", 2, 3)}))  # a changed space
    tune_plan(plan, options, trials=5, sampler_seed=0, batch=2)
    assert len(count_trainings) == 5 and all("mlp" in label for label in count_trainings)
    count_trainings.clear()
    path.write_text("{torn")  # an unreadable search runs again
    tune_plan(plan, options, trials=5, sampler_seed=0, batch=2)
    assert len(count_trainings) == 5


def test_a_grid_covers_a_small_discrete_space(monkeypatch):
    """A discrete space smaller than the trial count: each grid point once, no repeats."""
    entry = registry.get_model_entry(PROBE)
    monkeypatch.setitem(registry._MODELS, PROBE, dataclasses.replace(
        entry, space={"hidden": ("choice", [8, 16]), "lr": ("choice", [1e-3, 3e-3])}))
    dm = make_datamodule(DESCENTS)
    result = tune(cell_of(ModelConfig(PROBE, PROBE), dm), dm, CPU, trials=10, sampler_seed=0,
                  batch=4, stacked=False)
    assert result.config["sampler"] == "grid" and len(result.trials) == 4
    assert {(t.params["hidden"], t.params["lr"]) for t in result.trials} == \
        {(8, 1e-3), (8, 3e-3), (16, 1e-3), (16, 3e-3)}


# -- (e) committed choices ------------------------------------------------------------------
def test_tuned_from_reads_committed_choices(tmp_path, count_trainings):
    """Another suite (other budget, one more model) takes the tuned suite's choices
    without training; a pair without one stays as planned; a mislabelled file is refused."""
    options = RunOptions(results_dir=tmp_path, hardware=CPU)
    tune_plan(plan_suite(suite_of("tuned", MODELS)), options, trials=3, sampler_seed=0)
    count_trainings.clear()
    quick = plan_suite(suite_of("quick", MODELS + [{"name": "gboost", "hparams": {
        "max_iter": 5}}], budget={"max_epochs": 2, "batch_size": 32}))
    events = []
    plan = tuned_from(quick, tmp_path / "runs" / "tuned",
                      progress=lambda e, c, r: events.append((e, c.model.id)))
    assert count_trainings == [] and ("missing", "gboost") in events
    chosen = read_tuning(tuning_path(tmp_path, "tuned", "descents", "mlp")).chosen
    mlp = [c for c in plan.cells if c.model.id == "mlp"]
    assert len(mlp) == 2 and all(c.hparams["depth"] == chosen["hparams"]["depth"]
                                 and c.budget.lr == chosen["budget"]["lr"]
                                 and c.budget.max_epochs == 2 for c in mlp)
    assert [c for c in plan.cells if c.model.id == "gboost"] == \
        [c for c in quick.cells if c.model.id == "gboost"]

    other = tmp_path / "runs" / "tuned" / "descents" / "gboost" / "tuning.json"
    other.parent.mkdir()
    other.write_text((tmp_path / "runs" / "tuned" / "descents" / "linear" /
                      "tuning.json").read_text())  # a search of linear filed as gboost
    with pytest.raises(UserError, match="search of model 'linear'") as err:
        tuned_from(quick, tmp_path / "runs" / "tuned")
    assert "\n" not in str(err.value)
    with pytest.raises(UserError, match="not a folder"):
        tuned_from(quick, tmp_path / "nowhere")


# -- (f) one-line errors --------------------------------------------------------------------
BAD_SPACES = [
    ({"depht": ("int", 2, 4)}, "did you mean depth"),
    ({"depth": ("integer", 2, 4)}, "unknown kind 'integer'"),
    ({"depth": ("int", 4, 2)}, "lo must be below hi"),
    ({"depth": ("int", 2.0, 4)}, "must be integers"),
    ({"depth": ("float", 2, 4)}, "must be int"),
    ({"depth": "int"}, "is not a tuple"),
    ({"lr": ("logfloat", 0, 1e-2)}, "needs lo > 0"),
    ({"lr": ("float", -1.0, 1e-2)}, "lr must be a finite number > 0"),
    ({"batch_size": ("float", 16, 64)}, "takes integers"),
    ({"dropout": ("choice", [])}, "non-empty list"),
    ({"dropout": ("choice", [0.0, 0.0])}, "choices repeat"),
    ({"depth": ("int", 2)}, "needs (kind, lo, hi)"),
]


@pytest.mark.parametrize(("space", "needle"), BAD_SPACES, ids=[n for _, n in BAD_SPACES])
def test_bad_space_specs_are_one_line(space, needle):
    """Each mistake is named in one line that starts with the model and the dimension."""
    entry = dataclasses.replace(registry.get_model_entry("mlp"), space=space)
    with pytest.raises(UserError) as err:
        parse_space(entry)
    assert needle in str(err.value) and "\n" not in str(err.value)
    assert str(err.value).startswith("model 'mlp': space ")


def test_spaces_that_cannot_apply_are_one_line():
    """Budget fields on a fitted model, the width under a parameter budget, no trials,
    nothing to tune."""
    fitted = dataclasses.replace(registry.get_model_entry("linear"),
                                 space={"lr": ("logfloat", 1e-4, 1e-2)})
    with pytest.raises(UserError, match="fitted model has no training budget"):
        parse_space(fitted)
    wide = dataclasses.replace(registry.get_model_entry("mlp"),
                               space={"hidden": ("int", 16, 64)})
    with pytest.raises(UserError, match="the width a parameter budget"):
        parse_space(wide, param_budget=10_000)
    assert parse_space(wide)  # without a budget the width may be searched
    dm = make_datamodule(DESCENTS)
    with pytest.raises(UserError, match="trials must be an integer >= 1"):
        tune(cell_of(MLP, dm), dm, CPU, trials=0, sampler_seed=0)
    with pytest.raises(UserError, match="no hyperparameters to tune"):
        tune(cell_of(ModelConfig("constant", "constant"), dm), dm, CPU, trials=2,
             sampler_seed=0)


def test_declared_spaces():
    """Every neural family searches the same budget dimensions; a plugin without a space
    gets the default; the constant baseline has nothing to tune."""
    assert parse_space(registry.get_model_entry(PROBE)).to_json() == \
        {k: list(v) for k, v in DEFAULT_SPACE.items()}
    assert not parse_space(registry.get_model_entry("constant"))
    for entry in registry.all_model_entries():
        space = parse_space(entry)  # every declared space parses
        if entry.kind == "neural":
            budget = {d.name: d.to_json() for d in space.dims if d.in_budget}
            assert budget == {k: list(v) for k, v in DEFAULT_SPACE.items()}, entry.name
            assert len([d for d in space.dims if not d.in_budget]) <= 2, entry.name


def test_tune_only_writes_the_searches_and_trains_no_cell(tmp_path, capsys):
    from benchmarks.cli import main

    suite = tmp_path / "t.toml"
    suite.write_text('seeds = [0]\nbaseline = false\n[tuning]\ntrials = 2\n[budget]\n'
                     'max_epochs = 2\n[[datasets]]\nname = "parity"\n'
                     'params = { n = 8, n_train = 128, n_val = 32, n_test = 64 }\n'
                     '[[models]]\nname = "mlp"\nhparams = { hidden = 8 }\n')
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path), "--tune-only"]) == 0
    assert len(list(tmp_path.rglob("tuning.json"))) == 1
    assert not list(tmp_path.rglob("seed*.json"))
    plain = tmp_path / "p.toml"
    plain.write_text(suite.read_text().replace("[tuning]\ntrials = 2\n", ""))
    assert main(["benchmark", "--suite", str(plain), "--results", str(tmp_path), "--tune-only"]) == 2
    assert "has no [tuning]" in capsys.readouterr().err
