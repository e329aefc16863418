"""Larger batches with a scaled learning rate (`batch_scale = k` in a suite's [budget], or
`mlwm benchmark --batch-scale k`): training time and test metric against k = 1, on cells
of the default suite with that suite's budgets.

    python -m benchmarks.perf.batch_scale [--scales 1,4] [--seeds 0,1,2]
                                          [--pairs mnist1d:cnn1d@100k,digits:cnn2d@10k] [--threads 1]
                                          [--accelerator gpu]

Each cell runs through `run_cell` exactly as `make benchmark` runs it; only the budget's
batch_scale differs (batch_size * k; rate * sqrt(k) for Adam/AdamW, * k for SGD). Scales
are interleaved seed by seed so load on the machine hits them alike. "speedup" is the
ratio of summed training seconds; the metric columns are mean ± std over seeds; "verdict"
is `mlwm compare`'s test of k against 1: the hierarchical paired bootstrap over the seeds
and the test rows both share (their prediction files), "same" unless p < 0.05 and the
interval excludes 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch

from benchmarks.perf.common import cells_for
from benchmarks.report import stats
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.serial import DataModuleCache
from benchmarks.run.suite import load_suite
from benchmarks.train.hardware import Hardware
from benchmarks.train.trainer import quiet_lightning

PAIRS = ("parity-ood:mlp@100k,descents-right-oneline:transformer@100k,"
         "partitions-logdim-ood28:deepsets@100k,semigroups-m4:cnn2d@100k,"
         "graph-triangles-ood24:gin@100k,mnist1d:mlp@100k,mnist1d:cnn1d@100k")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scales", default="1,4")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--pairs", default=PAIRS)
    parser.add_argument("--suite", default="reference")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (0: torch's default)")
    parser.add_argument("--accelerator", default="cpu", help="cpu, or gpu where one is visible")
    args = parser.parse_args()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    quiet_lightning()
    suite = load_suite(args.suite)
    scales = [int(k) for k in args.scales.split(",")]
    seeds = [int(s) for s in args.seeds.split(",")]
    cache = DataModuleCache()
    print(f"| dataset · model | k | batch | lr | train s | epochs | test metric | speedup | "
          f"verdict | (seeds {len(seeds)}, threads {torch.get_num_threads()})")
    print("|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware(args.accelerator))
        for pair in args.pairs.split(","):
            by_scale = {k: cells_for(pair, suite, seeds, batch_scale=k) for k in scales}
            dm = cache.get(by_scale[scales[0]][0])
            records: dict[int, list] = {k: [] for k in scales}
            preds: dict[int, list[tuple]] = {k: [] for k in scales}  # per seed (pred, target)
            for i in range(len(seeds)):
                for k in (scales if i % 2 == 0 else scales[::-1]):
                    rec = run_cell(by_scale[k][i], dm, options)
                    if rec.status != "ok":
                        raise RuntimeError(f"{pair} k={k}: {rec.reason}")
                    records[k].append(rec)
                    preds[k].append(test_predictions(rec, by_scale[k][i], options.results_dir))
            spec = records[scales[0]][0].dataset
            metric, hib = spec.metric, spec.higher_is_better
            base = records[scales[0]]
            base_s = sum(r.time.train_s for r in base)
            for k in scales:
                recs = records[k]
                ms = [r.metrics["test"][metric] for r in recs]
                train_s = sum(r.time.train_s for r in recs)
                b = by_scale[k][0].budget
                verdict = "" if k == scales[0] else _verdict(stats.paired_bootstrap(
                    [(a[0], b[0], a[1]) for a, b in zip(preds[k], preds[scales[0]], strict=True)],
                    metric), hib)
                sd = statistics.stdev(ms) if len(ms) > 1 else 0.0
                print(f"| {pair.replace(':', ' · ')} | {k} | {b.train_batch_size} | {b.train_lr:.3g} | "
                      f"{train_s / len(recs):.1f} | {statistics.mean(r.epochs for r in recs):.0f} | "
                      f"{metric} {statistics.mean(ms):.3f} ± {sd:.3f} | "
                      f"{base_s / train_s:.2f}x | {verdict} |", flush=True)


def test_predictions(rec, cell, results_dir: Path) -> tuple[np.ndarray, np.ndarray]:
    """A record's test predictions and targets, from the file beside it."""
    arrays = np.load(cell.path(results_dir).with_name(rec.predictions.file))
    return arrays["test/pred"], arrays["test/target"]


def _verdict(test: stats.PairedTest, higher_is_better: bool) -> str:
    v = stats.verdict(test, 0.05, higher_is_better)
    if v == stats.TIE:
        return f"same (p={test.p:.2f})"
    better = v == stats.WIN
    return f"{'better' if better else 'worse'} by {abs(test.difference):.3f} (p={test.p:.3f})"


if __name__ == "__main__":
    main()
