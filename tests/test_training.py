"""The training path itself: chunked minibatches (one Lightning call for many optimiser
steps) give exactly the metrics of one minibatch per call; testing uses the best
validation weights; the whole-tensor loader covers every row once per epoch."""

from __future__ import annotations

import torch

from benchmarks.data import BatchChunk, TensorBatches
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.plan import Cell, make_cell, make_datamodule
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware

CPU = Hardware("cpu")


def _cell(chunk: int, epochs: int = 3) -> Cell:
    return make_cell("t", DatasetConfig("descents", "descents",
                                        {"n": 7, "n_train": 500, "n_val": 100, "n_test": 100}),
                     ModelConfig("mlp", "mlp", {"hidden": 32}), 0,
                     TrainBudget(max_epochs=epochs, patience=0, batch_size=64, chunk=chunk))


def test_chunked_steps_match_one_minibatch_per_call(tmp_path):
    records = [run_cell(_cell(chunk), make_datamodule(_cell(chunk).dataset),
                        RunOptions(results_dir=tmp_path / str(chunk), hardware=CPU))
               for chunk in (1, 3, 0)]
    assert all(r.status == "ok" for r in records), [r.reason for r in records]
    assert records[0].metrics == records[1].metrics == records[2].metrics
    assert [h["train/loss"] for h in records[0].history] == \
        [h["train/loss"] for h in records[2].history]


def test_test_metrics_come_from_the_best_validation_epoch(tmp_path):
    record = run_cell(_cell(0, epochs=6), make_datamodule(_cell(0).dataset),
                      RunOptions(results_dir=tmp_path, hardware=CPU))
    curve = [h["val/exact_match"] for h in record.history]
    best = max(range(len(curve)), key=lambda i: (curve[i], -i))
    assert record.best_epoch == best
    assert abs(record.metrics["val"]["exact_match"] - curve[best]) < 1e-6


def test_loader_visits_every_row_once_per_epoch_in_a_seeded_order():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    loader = TensorBatches(x, y, batch_size=3, shuffle=True, seed=5)
    first = torch.cat([t for _, t in loader])
    second = torch.cat([t for _, t in loader])
    assert sorted(first.tolist()) == list(range(10)) and not torch.equal(first, second)
    again = TensorBatches(x, y, batch_size=3, shuffle=True, seed=5)
    assert torch.equal(torch.cat([t for _, t in again]), first)
    chunked = TensorBatches(x, y, batch_size=3, shuffle=True, seed=5, chunk=2)
    items = list(chunked)
    assert len(chunked) == len(items) == 2 and all(isinstance(c, BatchChunk) for c in items)
    assert torch.equal(torch.cat([t for c in items for _, t in c]), first)
    assert len(TensorBatches(x, y, batch_size=3, shuffle=False)) == 4


def test_budget_is_part_of_the_cell_identity():
    same = _cell(1).config_hash
    assert _cell(1).config_hash == same  # stable for one configuration
    assert _cell(0).config_hash != same  # another budget is another cell
    c = _cell(1)
    other_seed = make_cell(c.suite, c.dataset, c.model, 1, c.budget)
    assert other_seed.config_hash != same


def test_a_falling_loss_keeps_a_flat_run_going_but_not_a_solved_one():
    from benchmarks.train.selection import Selection

    def run(acc: float) -> int:
        sel = Selection("acc", True, patience=3, stop_on="metric_or_loss", perfect=1.0)
        for epoch in range(50):
            loss = 1.0 / (epoch + 1)  # falls every epoch
            if sel.end_epoch(epoch, loss, {"acc": acc, "loss": loss}, state=lambda: None):
                break
        return sel.epochs

    assert run(0.5) == 50      # flat at chance, loss still falling: not stopped
    assert run(1.0) == 4       # solved at epoch 0: patience 3, then stop
