"""Seconds per cell and peak memory against n_train at 1x, 4x and 16x the default suite's
size, for one dataset of each modality, each cell in a fresh process.

    python -m benchmarks.perf.scaling [--scales 1,4,16] [--epochs 2] [--repeats 1]
                                      [--cases descents-right-oneline:mlp,...] [--threads 1]

A case is a default-suite cell (its budget, with a fixed number of epochs and no early
stopping, so that every size does the same number of passes) whose dataset's n_train
is multiplied; validation and test splits keep their size. Each (case, scale) first
generates its data in one child process (cached on disk), then runs `run_cell` in a
fresh one, so that peak RSS (getrusage maxrss) is that cell's alone: the interpreter,
torch and Lightning, the data, and training. "s/cell" is run_cell's wall time, "train
s/epoch" the training seconds per epoch, "per row" that divided by n_train relative to
1x (1.00: linear), "RSS" the peak resident set and "+MiB" its growth over 1x.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {  # modality: a default-suite pair (its smaller parameter budget) that takes n_train
    "vector": "descents-right-oneline:mlp@10k",
    "sequence": "descents-right-oneline:gru@10k",
    "set": "deepsets-sum-ood100:deepsets@10k",
    "image": "descents-left-matrix:cnn2d@10k",
    "graph": "graph-planar:gin@10k",
}


def scaled_cell(pair: str, scale: int, epochs: int):
    """The pair's cell (seed 0) with n_train times `scale` and a fixed number of epochs."""
    from benchmarks.perf.common import cells_for
    from benchmarks.run.plan import make_cell
    from benchmarks.run.suite import load_suite

    cell = cells_for(pair, load_suite("reference"), [0], max_epochs=epochs, min_epochs=0,
                     patience=0, max_time_s=0.0)[0]
    params = dict(cell.dataset.params)
    if "n_train" not in params:
        from benchmarks import registry

        entry = registry.get_dataset_entry(cell.dataset.name)
        params["n_train"] = next(p.default for p in entry.params if p.name == "n_train")
    params["n_train"] = int(params["n_train"]) * scale
    dcfg = dataclasses.replace(cell.dataset, params=params)
    return make_cell("perf-scaling", dcfg, cell.model, 0, cell.budget)


def child(pair: str, scale: int, epochs: int, threads: int, generate_only: bool) -> dict:
    """One cell in this process; its measurements as a dict."""
    import torch

    from benchmarks.run.execute import RunOptions, run_cell
    from benchmarks.run.plan import make_datamodule
    from benchmarks.train.hardware import Hardware
    from benchmarks.train.trainer import quiet_lightning

    torch.set_num_threads(threads)
    quiet_lightning()
    cell = scaled_cell(pair, scale, epochs)
    dm = make_datamodule(cell.dataset)
    t0 = time.perf_counter()
    dm.prepare_data()
    dm.setup("fit")
    data_s = time.perf_counter() - t0
    if generate_only:
        return {"data_s": data_s}
    rss_data = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    with tempfile.TemporaryDirectory() as tmp:
        t1 = time.perf_counter()
        rec = run_cell(cell, dm, RunOptions(results_dir=Path(tmp), hardware=Hardware("cpu")))
        cell_s = time.perf_counter() - t1
    if rec.status != "ok":
        raise SystemExit(f"{pair} x{scale}: {rec.reason}")
    return {"n_train": dm.split_size("train"), "data_s": data_s, "cell_s": cell_s,
            "train_s": rec.time.train_s, "epochs": rec.epochs, "rss_data_mib": rss_data,
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(pair: str, scale: int, epochs: int, threads: int, generate_only: bool) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.perf.scaling", "--child", pair, "--scale",
           str(scale), "--epochs", str(epochs), "--threads", str(threads)]
    if generate_only:
        cmd.append("--generate-only")
    proc = subprocess.run(cmd, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": str(threads)})
    if proc.returncode != 0:
        raise SystemExit(f"{pair} x{scale} failed:\n{proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4,16")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=1, help="fresh processes per size (median)")
    parser.add_argument("--cases", default=",".join(CASES.values()))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scale", type=int, default=1, help=argparse.SUPPRESS)
    parser.add_argument("--generate-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args.child, args.scale, args.epochs, args.threads,
                               args.generate_only)))
        return
    modality = {pair: m for m, pair in CASES.items()}
    scales = [int(s) for s in args.scales.split(",")]
    print(f"| modality | dataset · model | scale | n_train | s/cell | train s/epoch | per row | "
          f"peak RSS MiB | +MiB | ({args.epochs} epochs, median of "
          f"{args.repeats}, threads {args.threads}) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for pair in args.cases.split(","):
        base: dict | None = None
        for scale in scales:
            run_child(pair, scale, args.epochs, args.threads, generate_only=True)  # cached
            runs = [run_child(pair, scale, args.epochs, args.threads, generate_only=False)
                    for _ in range(args.repeats)]
            r = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
            per_epoch = r["train_s"] / max(r["epochs"], 1)
            base = base or {**r, "per_epoch": per_epoch}
            per_row = (per_epoch / r["n_train"]) / (base["per_epoch"] / base["n_train"])
            print(f"| {modality.get(pair, '')} | {pair.replace(':', ' · ')} | {scale}x | "
                  f"{int(r['n_train'])} | {r['cell_s']:.1f} | {per_epoch:.2f} | {per_row:.2f} | "
                  f"{r['peak_rss_mib']:.0f} | {r['peak_rss_mib'] - base['peak_rss_mib']:+.0f} | |",
                  flush=True)


if __name__ == "__main__":
    main()
