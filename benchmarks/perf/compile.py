"""torch.compile of the backbone (`compile = "default"` in a suite's [budget], or
`mlwm benchmark --compile default`) against the eager path, cell by cell through
`run_cell`: what compiling costs once, what it saves per epoch, and where they break even.

    python -m benchmarks.perf.compile [--pairs parity-ood:mlp@100k,...] [--epochs 3,13]
                                      [--mode default] [--threads 1] [--accelerator gpu]

Each pair trains a fixed number of epochs (patience 0) with the default suite's budget
otherwise. Per epoch = slope of training seconds between the two epoch counts; "compile
once" = compiled minus eager training seconds at the small count, measured on a cold
Inductor cache (a fresh TORCHINDUCTOR_CACHE_DIR: the first cell of a suite) and warm (the
same architecture again in the same process: every later cell). "break-even" is the
number of epochs after which a compiled cell is faster, cold and warm. "gap" is the largest
difference of a test metric between eager and compiled at the large count: the same
initial weights and batches, with fused kernels that may round differently.
On a GPU (`--accelerator gpu`), `--mode reduce-overhead` adds CUDA graphs.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from pathlib import Path

import torch

from benchmarks.perf.common import cells_for
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.plan import make_cell
from benchmarks.run.serial import DataModuleCache
from benchmarks.run.suite import load_suite
from benchmarks.train.hardware import Hardware
from benchmarks.train.trainer import quiet_lightning

PAIRS = ("parity-ood:mlp@100k,descents-right-oneline:transformer@100k,"
         "partitions-logdim-ood28:deepsets@100k,semigroups-m4:cnn2d@100k,mnist1d:cnn1d@100k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", default=PAIRS)
    parser.add_argument("--epochs", default="3,13")
    parser.add_argument("--mode", default="default")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--accelerator", default="cpu", help="cpu, or gpu where one is visible")
    args = parser.parse_args()
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = tempfile.mkdtemp(prefix="inductor-")  # cold start
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    suite = load_suite("reference")
    small, big = (int(e) for e in args.epochs.split(","))
    cache = DataModuleCache()
    print(f"| dataset · model | eager s/epoch | compiled s/epoch | per-epoch speedup | "
          f"compile once, cold s | warm s | break-even epochs, cold / warm | gap | "
          f"(mode {args.mode}, threads {torch.get_num_threads()})")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware(args.accelerator))
        for pair in args.pairs.split(","):
            base = cells_for(pair, suite, [0], patience=0, min_epochs=0, max_time_s=0.0)[0]
            dcfg, mcfg, budget = base.dataset, base.model, base.budget
            dm = cache.get(base)

            def cell(epochs: int, compiled: bool, budget=budget, dcfg=dcfg, mcfg=mcfg,
                     dm=dm, pair=pair) -> dict:
                b = dataclasses.replace(budget, max_epochs=epochs,
                                        compile=args.mode if compiled else "")
                rec = run_cell(make_cell("perf", dcfg, mcfg, 0, b), dm, options)
                if rec.status != "ok":
                    raise RuntimeError(f"{pair}: {rec.reason}")
                return rec

            eager_small = cell(small, False)
            cold = cell(small, True)
            warm = cell(small, True)
            eager_big, comp_big = cell(big, False), cell(big, True)
            t = {k: r.time.train_s for k, r in (("es", eager_small), ("cold", cold),
                                                       ("warm", warm), ("eb", eager_big),
                                                       ("cb", comp_big))}
            per_eager = (t["eb"] - t["es"]) / (big - small)
            per_comp = (t["cb"] - t["warm"]) / (big - small)
            once_cold = t["cold"] - t["es"] - small * (per_comp - per_eager)
            once_warm = t["warm"] - t["es"] - small * (per_comp - per_eager)
            saving = per_eager - per_comp
            even = (f"{max(once_cold, 0.0) / saving:.0f} / {max(once_warm, 0.0) / saving:.0f}"
                    if saving > 0 else "never")
            gap = max(abs(v - comp_big.metrics["test"][k])
                      for k, v in eager_big.metrics["test"].items())
            print(f"| {pair.replace(':', ' · ')} | {per_eager:.3f} | {per_comp:.3f} | "
                  f"{per_eager / per_comp:.2f}x | {once_cold:.1f} | {once_warm:.1f} | {even} | "
                  f"{gap:.2g} |", flush=True)


if __name__ == "__main__":
    main()
