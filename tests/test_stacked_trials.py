"""Trials as one model: members of one stack that differ in learning rate and weight decay
(as well as seed) give what independent plain runs give, each run as a cell with the
member's lr and weight decay in its budget (run_cell of make_cell), for AdamW, Adam and
SGD; a member whose rate diverges fails alone; seeds that re-draw their data train on
their own splits.

Tolerance, as in tests/test_vectorised.py: vmap does the arithmetic with other kernels,
so weights part from the plain path's by ~1e-9 after a step. On these instances no
prediction comes that close to a decision boundary, so metrics, epochs, best epochs and
class predictions agree exactly; losses agree to ~1e-6. Not everywhere: Adam with an L2
term scales the ~1e-9 up (seed 0, lr 5e-3, weight decay 1e-2 on DESCENTS parts by 7e-6 in
val loss after 6 epochs through torch's own optimiser, one member alone), so the Adam case
keeps clear of it. The per-member optimiser itself is torch's step bit for bit when the
members share one rate (the last test).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from benchmarks.run.execute import RunOptions, prepare, run_cell
from benchmarks.run.plan import make_cell, make_datamodule
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware
from benchmarks.train.stacked import Member, MemberOptimizer, NotStackable, train_stacked
from benchmarks.train.trainer import optimizer_class

DESCENTS = DatasetConfig("descents", "descents", {"n": 7, "n_train": 256, "n_val": 64,
                                                  "n_test": 64})
PARITY = DatasetConfig("parity", "parity", {"n": 8, "n_train": 128, "n_val": 32, "n_test": 64})
SUMS = DatasetConfig("deepsets_sum", "deepsets_sum", {"max_size": 5, "ood_max_size": 12,
                                                      "n_train": 128, "n_val": 32, "n_test": 32})
MLP = ModelConfig("mlp", "mlp", {"hidden": 32})


def close(a: float, b: float) -> bool:
    # abs_tol covers history values rounded to 6 digits, one rounding step apart
    return math.isclose(a, b, rel_tol=1e-5, abs_tol=1.5e-6)


def plain_run(cell, dm, options: RunOptions) -> tuple:
    """A plain cell's record and its test predictions, read back from the file beside it."""
    record = run_cell(cell, dm, options)
    preds = {}
    if record.predictions is not None:
        arrays = np.load(cell.path(options.results_dir).with_name(record.predictions.file))
        preds = {split: arrays[f"{split}/pred"] for split in record.predictions.splits}
    return record, preds


def assert_same(plain: list, stacked: list) -> None:
    """Plain (record, predictions) against stacked outcomes: epochs, best epochs, stop
    reasons, every metric and learning-curve value, and the test predictions."""
    for (p, preds), s in zip(plain, stacked, strict=True):
        assert p.status == "ok" and s.failed is None, (p.reason, s.failed)
        assert (s.epochs, s.best_epoch, s.stopped_by) == (p.epochs, p.best_epoch, p.stopped_by)
        assert s.metrics.keys() == p.metrics.keys()
        for split, values in p.metrics.items():
            got = s.metrics[split]
            assert got.keys() == values.keys()
            assert all(close(got[k], values[k]) for k in values), (p.seed, split, got, values)
        assert len(s.history) == len(p.history)
        for hs, hp in zip(s.history, p.history, strict=True):
            assert hs.keys() == hp.keys() and all(close(hs[k], hp[k]) for k in hp), (hs, hp)
        assert s.n_params == p.model.n_params
        assert s.predictions.keys() == preds.keys() and preds
        for k, want in preds.items():  # classes exactly, regression values to rounding
            got = s.predictions[k]
            same = np.allclose(got, want, rtol=1e-5, atol=1e-6) if want.dtype.kind == "f" \
                else np.array_equal(got, want)
            assert same, (p.seed, k)


def plain_and_stacked(dcfg: DatasetConfig, budget: TrainBudget, members: list[Member],
                      tmp_path, model: ModelConfig = MLP) -> tuple[list, list]:
    """Each member as its own plain cell (its lr and weight decay in the budget), and all
    of them as one stack."""
    dm = make_datamodule(dcfg)
    options = RunOptions(results_dir=tmp_path, hardware=Hardware("cpu"))
    plain = [plain_run(make_cell(f"t{i}", dcfg, model, m.seed, m.budget(budget)), dm, options)
             for i, m in enumerate(members)]  # a suite name each: a record path each
    first = make_cell("t", dcfg, model, members[0].seed, budget)
    prepare(first, dm)
    return plain, train_stacked(first.model.name, first.hparams, members, dm,
                                dm.spec.for_view(first.view), budget, options.hardware)


CASES = {  # optimiser: (budget, members); members share seeds, as a search's trials do
    "adamw": (TrainBudget(max_epochs=6, patience=2, batch_size=32, chunk=1),
              [Member(0, lr=1e-3, weight_decay=0.0), Member(0, lr=3e-3, weight_decay=0.1),
               Member(1, lr=1e-2, weight_decay=1e-3), Member(1)]),
    "adam": (TrainBudget(max_epochs=6, patience=2, batch_size=32, optimizer="adam", chunk=1),
             [Member(0, lr=2e-3), Member(0, lr=3e-3, weight_decay=1e-3),
              Member(2, weight_decay=1e-2)]),
    # batch_scale 2: each member's rate is doubled (SGD's linear rule), as in its plain run
    "sgd": (TrainBudget(max_epochs=5, patience=0, batch_size=16, optimizer="sgd", lr=0.05,
                        batch_scale=2, chunk=1),
            [Member(0, lr=0.02), Member(0, lr=0.1, weight_decay=0.01), Member(1)]),
}


@pytest.mark.parametrize("optimizer", list(CASES))
def test_members_with_their_own_rates_equal_plain_runs(tmp_path, optimizer):
    budget, members = CASES[optimizer]
    plain, stacked = plain_and_stacked(DESCENTS, budget, members, tmp_path)
    assert_same(plain, stacked)
    # the members really trained differently (not one run repeated)
    assert len({round(s.metrics["val"]["loss"], 6) for s in stacked}) == len(members)
    rates = stacked[0].details["vectorised"]["rates"]
    assert [r["lr"] for r in rates] == [m.budget(budget).lr for m in members]


def test_trials_on_parity_regardless_of_early_stopping(tmp_path):
    # members stop at their own epochs; the stack (and its per-member rates) shrinks
    budget = TrainBudget(max_epochs=12, patience=1, batch_size=16, lr=1e-2, chunk=1)
    members = [Member(0, lr=lr) for lr in (3e-3, 1e-2, 3e-2)] + [Member(1, lr=1e-2)]
    plain, stacked = plain_and_stacked(PARITY, budget, members, tmp_path,
                                       ModelConfig("mlp", "mlp", {"hidden": 64}))
    assert_same(plain, stacked)
    assert len({s.epochs for s in stacked}) > 1


def test_a_member_whose_rate_diverges_fails_alone(tmp_path):
    # regression with SGD: at lr 30 the squared error overflows in the first epoch
    budget = TrainBudget(max_epochs=3, patience=0, batch_size=32, optimizer="sgd", lr=0.01,
                         chunk=1)
    members = [Member(0), Member(0, lr=30.0), Member(1, lr=0.02)]
    plain, stacked = plain_and_stacked(SUMS, budget, members, tmp_path)
    assert plain[1][0].status == "failed" and stacked[1].failed == plain[1][0].reason
    assert stacked[1].failed.startswith("diverged: ")
    assert not stacked[1].metrics and not stacked[1].history and not stacked[1].predictions
    assert_same([plain[0], plain[2]], [stacked[0], stacked[2]])
    assert all("ood_test" in s.metrics for s in (stacked[0], stacked[2]))


def test_seeds_that_redraw_their_data_train_on_their_own_splits(tmp_path):
    # data_seeds = "follow": one datamodule per member, stacked on the member axis
    budget = TrainBudget(max_epochs=5, patience=2, batch_size=32, chunk=1)
    options = RunOptions(results_dir=tmp_path, hardware=Hardware("cpu"))
    plain, dms = [], []
    for seed in (0, 1, 2):
        dcfg = dataclasses.replace(DESCENTS, params={**DESCENTS.params, "data_seed": seed})
        dm = make_datamodule(dcfg)
        cell = make_cell("t", dcfg, MLP, seed, budget)
        plain.append(plain_run(cell, dm, options))
        prepare(cell, dm)
        dms.append(dm)
    stacked = train_stacked("mlp", cell.hparams, [0, 1, 2], dms, dms[0].spec.for_view(cell.view),
                            budget, options.hardware)
    assert_same(plain, stacked)


def test_shared_rates_in_the_member_optimiser_are_torch_step():
    # The per-member update with every member at one rate against torch's optimiser on
    # the same stacked tensors and gradients, 20 steps.
    for name, wd in (("adamw", 0.1), ("adam", 0.01), ("sgd", 0.01)):
        g = torch.Generator().manual_seed(0)
        ours = [torch.randn(3, 5, 4, generator=g), torch.randn(3, 4, generator=g)]
        theirs = [t.clone() for t in ours]
        opt = optimizer_class(name)(theirs, lr=3e-3, weight_decay=wd)
        member = MemberOptimizer(name, ours, torch.full((3,), 3e-3, dtype=torch.float64),
                                 torch.full((3,), wd, dtype=torch.float64))
        for _ in range(20):
            for a, b in zip(ours, theirs, strict=True):
                a.grad = torch.randn(a.shape, generator=g)
                b.grad = a.grad.clone()
            member.step()
            opt.step()
        for a, b in zip(ours, theirs, strict=True):  # the same roundings in the same order
            assert torch.equal(a, b), (name, (a - b).abs().max())


def test_members_must_be_distinct_and_valid():
    dm = make_datamodule(DESCENTS)
    cell = make_cell("t", DESCENTS, MLP, 0, TrainBudget(max_epochs=1))
    prepare(cell, dm)
    spec = dm.spec.for_view(cell.view)
    with pytest.raises(NotStackable, match="distinct"):
        # lr None is the budget's lr: the same member twice
        train_stacked("mlp", cell.hparams, [Member(0), Member(0, lr=cell.budget.lr)], dm,
                      spec, cell.budget, Hardware("cpu"))
    with pytest.raises(ValueError, match="lr > 0"):
        Member(0, lr=-1.0)
