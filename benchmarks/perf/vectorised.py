"""Seeds trained as one stacked model (benchmarks.train.stacked) against the same seeds
as plain cells, one after another: wall time and speedup for S = 1, 3, 8 seeds.

    python -m benchmarks.perf.vectorised [--epochs 5] [--repeats 3] [--seeds 1,3,8]
                                         [--widths 256,32] [--threads 1]

The plain side is what a suite runs per cell: `run_cell` (datamodule setup, shared
LightningModule, common Trainer, test pass, record written). The vectorised side is one
`train_stacked` call for all S seeds. Budget: 5 epochs, batch 256, AdamW,
patience 0 (so both sides train every epoch). Cases: the MLP (3 layers) on parity
(n=32, 20k train rows) at width 256 and at width 32, where per-step overhead dominates
(--widths adds others).
Sides are interleaved repeat by repeat and medians reported, because the machine is
shared. The last column is the largest difference of a test metric (acc, f1) between
the sides: parity n=32 stays at chance in 5 epochs, where Adam turns rounding into
different steps; a one-ulp change of the plain path's own initial weights moves them
as far (width 256, 8 seeds, three such changes: acc by up to 0.023-0.028, f1 by up to
0.15-0.24). At width 32 the sides agreed exactly.
One torch thread by default: on a busy 2-core machine two intra-op threads stall each
other's kernels for both sides alike and measure the neighbours, not the harness.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks import registry
from benchmarks.run.execute import RunOptions, prepare, run_cell
from benchmarks.run.plan import Cell, make_cell
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware
from benchmarks.train.stacked import train_stacked
from benchmarks.train.trainer import quiet_lightning

PARITY = DatasetConfig("parity", "parity", {"n": 32, "n_train": 20000, "n_val": 2000,
                                            "n_test": 2000})


def mlp(width: int) -> ModelConfig:
    return ModelConfig("mlp", "mlp", {"hidden": width, "depth": 3})


def plain_side(cells: list[Cell], dm) -> tuple[float, list[dict]]:
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware("cpu"))
        t0 = time.perf_counter()
        records = [run_cell(cell, dm, options) for cell in cells]
        seconds = time.perf_counter() - t0
    bad = [r.reason for r in records if r.status != "ok"]
    if bad:
        raise RuntimeError(bad[0])
    return seconds, [r.metrics["test"] for r in records]


def vectorised_side(cells: list[Cell], dm) -> tuple[float, list[dict]]:
    t0 = time.perf_counter()
    c = cells[0]
    prepare(c, dm)
    outs = train_stacked(c.model.name, c.hparams, [x.seed for x in cells], dm,
                         dm.spec.for_view(c.view), c.budget, Hardware("cpu"))
    return time.perf_counter() - t0, [o.metrics["test"] for o in outs]


def measure(model: ModelConfig, seeds: int, budget: TrainBudget, repeats: int,
            dm) -> dict[str, float]:
    cells = [make_cell("perf", PARITY, model, seed, budget) for seed in range(seeds)]
    runs: dict[str, list[float]] = {"plain": [], "vectorised": []}
    metrics: dict[str, list[dict]] = {}
    sides = {"plain": plain_side, "vectorised": vectorised_side}
    for rep in range(repeats):  # interleaved, the first side alternating, so load hits both
        for name in (list(sides) if rep % 2 == 0 else list(sides)[::-1]):
            seconds, metrics[name] = sides[name](cells, dm)
            runs[name].append(seconds)
    gap = max(abs(a[k] - b[k]) for a, b in zip(metrics["plain"], metrics["vectorised"], strict=True)
              for k in a)
    plain, vec = statistics.median(runs["plain"]), statistics.median(runs["vectorised"])
    return {"plain_s": plain, "vectorised_s": vec, "speedup": plain / vec, "gap": gap}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seeds", default="1,3,8")
    parser.add_argument("--widths", default="256,32", help="MLP widths, one case each")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    budget = TrainBudget(max_epochs=args.epochs, patience=0, batch_size=256)
    dm = registry.create_dataset(PARITY.name, **PARITY.params)
    dm.setup()
    warm = [make_cell("perf", PARITY, mlp(32), 0, TrainBudget(max_epochs=1))]
    plain_side(warm, dm), vectorised_side(warm, dm)  # imports, allocator, caches
    print(f"| case | seeds | plain cells s | vectorised s | speedup | max test gap | "
          f"(epochs {args.epochs}, median of {args.repeats}, threads {torch.get_num_threads()})")
    print("|---|---|---|---|---|---|")
    for width in (int(w) for w in args.widths.split(",")):
        for seeds in (int(s) for s in args.seeds.split(",")):
            r = measure(mlp(width), seeds, budget, args.repeats, dm)
            print(f"| mlp width {width} / parity | {seeds} | {r['plain_s']:.2f} | "
                  f"{r['vectorised_s']:.2f} | {r['speedup']:.2f}x | {r['gap']:.2g} |", flush=True)


if __name__ == "__main__":
    main()
