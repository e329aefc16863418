"""Scaling of `mlwm benchmark --workers N`: cells per minute and speedup over one worker,
on one suite of small cells, each N measured in the same run into a fresh results folder.

    python -m benchmarks.perf.workers [--workers 1,2] [--seeds 12] [--accelerator gpu]

With --accelerator gpu, workers are pinned round-robin to the visible devices: on k GPUs,
`--workers 1,2,4,...` measures 1..k devices (and more workers than devices share them).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from benchmarks.run.execute import RunOptions
from benchmarks.run.plan import plan_suite
from benchmarks.run.serial import iter_suite
from benchmarks.run.suite import parse_suite
from benchmarks.run.workers import iter_suite_parallel
from benchmarks.train.hardware import Hardware
from benchmarks.train.trainer import quiet_lightning


def suite(seeds: int):
    return parse_suite({
        "seeds": list(range(seeds)), "baseline": False,
        "budget": {"max_epochs": 40, "patience": 0, "batch_size": 64},
        "datasets": [{"name": "parity", "params": {"n": 16, "n_train": 8000, "n_val": 1000, "n_test": 1000}},
                     {"name": "descents", "params": {"n": 8, "n_train": 8000, "n_val": 1000, "n_test": 1000}}],
        "models": [{"name": "mlp", "hparams": {"hidden": 256}}],
    }, "perf-workers")


def run(workers: int, seeds: int, accelerator: str) -> tuple[int, float]:
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware(accelerator))
        t0 = time.perf_counter()
        if workers == 1:
            cells = sum(1 for _ in iter_suite(plan_suite(suite(seeds)), options))
        else:
            cells = sum(1 for _ in iter_suite_parallel(plan_suite(suite(seeds)), options, workers))
        return cells, time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seeds", type=int, default=12)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    quiet_lightning()
    print("| workers | cells | wall s | cells/min | speedup |")
    print("|---|---|---|---|---|")
    base = None
    for n in [int(w) for w in args.workers.split(",")]:
        cells, wall = run(n, args.seeds, args.accelerator)
        rate = cells / wall * 60
        base = base or rate
        print(f"| {n} | {cells} | {wall:.1f} | {rate:.1f} | {rate / base:.2f} |", flush=True)


if __name__ == "__main__":
    main()
