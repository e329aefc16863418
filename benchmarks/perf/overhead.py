"""Trainer overhead: steps per second of the full harness path divided by a hand-written
PyTorch loop on the same model, data and batch size, measured in the same process.

    python -m benchmarks.perf.overhead [--epochs 5] [--repeats 3]

Both sides do the same work per epoch: one shuffled pass over the training split and one
evaluation pass over the validation split. The harness side is what a suite cell runs:
datamodule, shared LightningModule, common Trainer (early stopping, best weights), then a
test pass and a record; its time is the whole `run_cell`, so nothing is left out of the
ratio. Cases: MLP (3 layers, width 256, batch 256) on parity, GIN on graph_properties.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

from benchmarks import registry
from benchmarks.contract import choose_view
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.plan import make_cell
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.evaluation import shape_outputs, task_loss
from benchmarks.train.hardware import Hardware
from benchmarks.train.module import call_backbone

CASES = {
    "mlp/parity": (DatasetConfig("parity", "parity", {"n": 32, "n_train": 20000, "n_val": 2000,
                                                       "n_test": 2000}),
                   ModelConfig("mlp", "mlp", {"hidden": 256, "depth": 3})),
    "gin/graph_properties": (DatasetConfig("graph_properties", "graph_properties", {}),
                             ModelConfig("gin", "gin", {})),
}


def plain_loop(dm, model_name: str, hparams: dict, epochs: int, batch_size: int, seed: int) -> tuple[float, int]:
    """The plainest training loop: slices of a permutation, forward, loss, step; then an
    evaluation pass over the validation split. Returns (seconds, steps)."""
    entry = registry.get_model_entry(model_name)
    spec = dm.spec.for_view(choose_view(dm.spec, entry.modalities))
    dm.configure(view=spec.view, batch_size=batch_size, seed=seed,
                 chunk=1)  # one minibatch per step (run_cell on the same dm sets its own)
    torch.manual_seed(seed)
    net = registry.create_model(model_name, spec, **hparams)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    train, val = dm.loader("train", shuffle=True), dm.loader("val")
    steps = 0
    t0 = time.perf_counter()
    for _ in range(epochs):
        net.train()
        for inputs, target in train:
            loss = task_loss(shape_outputs(call_backbone(net, inputs), spec), target, spec)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            steps += 1
        net.eval()
        with torch.no_grad():
            for inputs, _ in val:
                call_backbone(net, inputs)
    return time.perf_counter() - t0, steps


def harness(dm, dcfg: DatasetConfig, mcfg: ModelConfig, epochs: int, batch_size: int,
            seed: int) -> tuple[float, int]:
    budget = TrainBudget(max_epochs=epochs, patience=0, batch_size=batch_size)
    cell = make_cell("perf", dcfg, mcfg, seed, budget)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        record = run_cell(cell, dm, RunOptions(results_dir=Path(tmp), hardware=Hardware("cpu")))
        seconds = time.perf_counter() - t0
    if record.status != "ok":
        raise RuntimeError(record.reason)
    steps = epochs * -(-dm.split_size("train") // batch_size)
    return seconds, steps


def measure(name: str, epochs: int, repeats: int, batch_size: int = 256) -> dict[str, float]:
    dcfg, mcfg = CASES[name]
    dm = registry.create_dataset(dcfg.name, **dcfg.params)
    dm.setup()
    runs: dict[str, list[float]] = {"plain": [], "harness": []}
    sides: dict[str, Callable[[], tuple[float, int]]] = {
        "plain": lambda: plain_loop(dm, mcfg.name, mcfg.hparams, epochs, batch_size, 0),
        "harness": lambda: harness(dm, dcfg, mcfg, epochs, batch_size, 0),
    }
    sides["plain"](), sides["harness"]()  # warm-up: imports, allocator, caches
    for _ in range(repeats):  # interleaved, so load changes hit both sides alike
        for side, fn in sides.items():
            seconds, steps = fn()
            runs[side].append(steps / seconds)
    plain, full = statistics.median(runs["plain"]), statistics.median(runs["harness"])
    return {"plain_steps_s": plain, "harness_steps_s": full, "ratio": full / plain}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--cases", default=",".join(CASES))
    args = parser.parse_args()
    from benchmarks.train.trainer import quiet_lightning

    quiet_lightning()
    print(f"| case | plain loop steps/s | harness steps/s | ratio | (epochs {args.epochs}, "
          f"median of {args.repeats}, threads {torch.get_num_threads()}) |")
    print("|---|---|---|---|---|")
    for name in args.cases.split(","):
        reason = registry.get_model_entry(CASES[name][1].name).unavailable_reason()
        if reason:  # gin needs torch_geometric
            print(f"| {name} | skipped: {reason} | | | |")
            continue
        r = measure(name, args.epochs, args.repeats)
        print(f"| {name} | {r['plain_steps_s']:.0f} | {r['harness_steps_s']:.0f} | "
              f"{r['ratio']:.2f} | |", flush=True)


if __name__ == "__main__":
    main()
