"""Hyperparameter trials, and a cell's seeds, trained as one stacked model
(benchmarks.train.stacked, `Member`) against the same runs one after another.

    python -m benchmarks.perf.stacked_trials [--members 4,8,16] [--seeds 3,5] [--threads 1,2]
                                             [--epochs 3] [--repeats 3] [--pairs ...]
                                             [--seed-pairs ...] [--skip-trials] [--skip-seeds]

Trials: S members of one default-suite cell that differ in learning rate (the budget's
times 10^[-0.5, 0.5]), weight decay (10^[-6, -2]) and seed. The sequential side is what a
search without stacking runs: `run_cell` of each member's cell (its lr and weight decay
in the budget); the stacked side is one `train_stacked` call. Seeds: S seeds of a cell,
each on its own data split where the dataset re-draws it (the default suite's
data_seeds = "follow": one datamodule per member), sequential cells against one stack.
Budgets are the default suite's (lr, batch size, dataset overrides) with a fixed number
of epochs and no early stopping, so both sides do the same work. Sides alternate repeat
by repeat, torch thread counts interleave with them, medians reported: the machine is
shared. "gap" is the largest difference of any test metric between a member and its
plain run; "same epochs" counts members whose (epochs, best epoch) agree. A pair that
cannot stack gives the reason (benchmarks.train.stacked.stack_problem) instead.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from benchmarks.perf.common import cells_for
from benchmarks.run.execute import RunOptions, prepare, run_cell
from benchmarks.run.plan import Cell, make_cell, make_datamodule, seeded_dataset
from benchmarks.run.suite import load_suite
from benchmarks.train.hardware import Hardware
from benchmarks.train.stacked import Member, NotStackable, stack_problem, train_stacked
from benchmarks.train.trainer import quiet_lightning

# default-suite cells at its parameter budgets; gru and lstm on mnist1d's vector view
TRIAL_PAIRS = ("parity-ood:mlp@10k,parity-ood:mlp@30k,mnist1d:cnn1d@10k,"
               "partitions-logdim-ood28:deepsets@10k,partitions-logdim-ood28:deepsets@30k")
SEED_PAIRS = ("parity-ood:mlp@10k,parity-ood:mlp@30k,mnist1d:cnn1d@10k,semigroups-m4:cnn2d@10k,"
              "descents-left-matrix:cnn2d@10k,partitions-logdim-ood28:deepsets@10k,"
              "deepsets-sum-ood100:transformer@10k,partitions-logdim-ood28:set_transformer@10k,"
              "mnist1d:gru@10k,mnist1d:lstm@10k")


def trial_members(cell: Cell, size: int) -> list[Member]:
    """`size` trials spread over a search's usual ranges, each with its own seed."""
    steps = [i / max(size - 1, 1) for i in range(size)]
    return [Member(i, lr=cell.budget.lr * 10 ** (t - 0.5), weight_decay=10 ** (-6 + 4 * t))
            for i, t in enumerate(steps)]


def sequential(cells: list[Cell], dms: list, options: RunOptions) -> tuple[float, list]:
    t0 = time.perf_counter()
    records = [run_cell(c, dm, options) for c, dm in zip(cells, dms, strict=True)]
    seconds = time.perf_counter() - t0
    bad = [r.reason for r in records if r.status != "ok"]
    if bad:
        raise RuntimeError(bad[0])
    return seconds, records


def stacked(first: Cell, members: list[Member], dms: list) -> tuple[float, list]:
    t0 = time.perf_counter()
    for dm in dict.fromkeys(dms):  # each datamodule configured once, as the runner would
        prepare(first, dm)
    outs = train_stacked(first.model.name, first.hparams, members,
                         dms if len(set(map(id, dms))) > 1 else dms[0],
                         dms[0].spec.for_view(first.view), first.budget, Hardware("cpu"))
    seconds = time.perf_counter() - t0
    bad = [o.failed for o in outs if o.failed]
    if bad:
        raise RuntimeError(bad[0])
    return seconds, outs


def agreement(records: list, outs: list) -> tuple[float, int]:
    """(largest test-metric gap, members with the same epochs and best epoch)."""
    gap = max((abs(r.metrics[s][k] - o.metrics[s][k]) for r, o in zip(records, outs, strict=True)
               for s in r.metrics if s != "val" for k in r.metrics[s]), default=0.0)
    same = sum((r.epochs, r.best_epoch) == (o.epochs, o.best_epoch)
               for r, o in zip(records, outs, strict=True))
    return gap, same


def measure(cells: list[Cell], members: list[Member], dms: list, threads: list[int],
            repeats: int, options: RunOptions) -> dict[int, dict[str, float]]:
    """Per thread count: median sequential and stacked seconds, their ratio, agreement."""
    times: dict[tuple[int, str], list[float]] = {}
    last: dict[str, list] = {}
    for cell, dm in zip(cells, dms, strict=True):  # data generated or loaded before timing
        prepare(cell, dm)
    for rep in range(repeats):
        for n in (threads if rep % 2 == 0 else threads[::-1]):
            torch.set_num_threads(n)
            sides = ("sequential", "stacked") if rep % 2 == 0 else ("stacked", "sequential")
            for side in sides:  # the first side alternates, so load hits both alike
                if side == "sequential":
                    seconds, last[side] = sequential(cells, dms, options)
                else:
                    seconds, last[side] = stacked(cells[0], members, dms)
                times.setdefault((n, side), []).append(seconds)
    gap, same = agreement(last["sequential"], last["stacked"])
    out = {}
    for n in threads:
        seq = statistics.median(times[(n, "sequential")])
        stk = statistics.median(times[(n, "stacked")])
        out[n] = {"sequential": seq, "stacked": stk, "ratio": seq / stk, "gap": gap,
                  "same": same}
    return out


def fixed_work(pair: str, suite, epochs: int) -> Cell:
    """The pair's default-suite cell (seed 0) with a fixed number of epochs."""
    return cells_for(pair, suite, [0], max_epochs=epochs, min_epochs=0, patience=0,
                     max_time_s=0.0)[0]


def problem(cell: Cell, dm) -> str | None:
    return stack_problem(cell.model.name, dm.spec.for_view(cell.view), cell.hparams,
                         cell.budget)


def trials_table(args, suite, options: RunOptions) -> None:
    print(f"| dataset · model | S | threads | sequential s | stacked s | ratio | gap | "
          f"same epochs | (trials: lr and weight decay and seed; {args.epochs} epochs, "
          f"median of {args.repeats}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    threads = [int(t) for t in args.threads.split(",")]
    for pair in args.pairs.split(","):
        base = fixed_work(pair, suite, args.epochs)
        dm = make_datamodule(base.dataset)
        reason = problem(base, dm)
        if reason:
            print(f"| {pair.replace(':', ' · ')} | | | | | cannot stack: {reason} | | | |",
                  flush=True)
            continue
        for size in (int(s) for s in args.members.split(",")):
            members = trial_members(base, size)
            cells = [make_cell(f"perf{i}", base.dataset, base.model, m.seed, m.budget(base.budget))
                     for i, m in enumerate(members)]  # a suite name each: a record each
            for n, r in measure(cells, members, [dm] * size, threads, args.repeats,
                                options).items():
                print(f"| {pair.replace(':', ' · ')} | {size} | {n} | {r['sequential']:.2f} | "
                      f"{r['stacked']:.2f} | {r['ratio']:.2f}x | {r['gap']:.2g} | "
                      f"{r['same']}/{size} | |", flush=True)


def seeds_table(args, suite, options: RunOptions) -> None:
    print(f"\n| dataset · model | S seeds | threads | sequential s | stacked s | ratio | gap | "
          f"same epochs | (seeds, data_seeds = {suite.data_seeds}; {args.epochs} epochs, "
          f"median of {args.repeats}) |")
    print("|---|---|---|---|---|---|---|---|---|")
    threads = [int(t) for t in args.threads.split(",")]
    follow = suite.data_seeds == "follow"
    for pair in args.seed_pairs.split(","):
        base = fixed_work(pair, suite, args.epochs)
        first_dm = make_datamodule(base.dataset)
        reason = problem(base, first_dm)
        if reason:
            print(f"| {pair.replace(':', ' · ')} | | | | | cannot stack: {reason} | | | |",
                  flush=True)
            continue
        for size in (int(s) for s in args.seeds.split(",")):
            dcfgs = [seeded_dataset(base.dataset, s, follow) for s in range(size)]
            cells = [make_cell("perf", d, base.model, s, base.budget)
                     for s, d in enumerate(dcfgs)]
            dms = [make_datamodule(d) for d in dcfgs]
            try:
                rows = measure(cells, [Member(s) for s in range(size)], dms, threads,
                               args.repeats, options)
            except NotStackable as exc:  # e.g. data seeds that split into other sizes
                print(f"| {pair.replace(':', ' · ')} | {size} | | | | cannot stack: {exc} "
                      "| | | |", flush=True)
                continue
            for n, r in rows.items():
                print(f"| {pair.replace(':', ' · ')} | {size} | {n} | {r['sequential']:.2f} | "
                      f"{r['stacked']:.2f} | {r['ratio']:.2f}x | {r['gap']:.2g} | "
                      f"{r['same']}/{size} | |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--members", default="4,8,16", help="trials per stack")
    parser.add_argument("--seeds", default="3,5", help="seeds per stack")
    parser.add_argument("--threads", default="1,2", help="torch thread counts, interleaved")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", default=TRIAL_PAIRS)
    parser.add_argument("--seed-pairs", default=SEED_PAIRS)
    parser.add_argument("--skip-trials", action="store_true")
    parser.add_argument("--skip-seeds", action="store_true")
    args = parser.parse_args()
    quiet_lightning()
    suite = load_suite("reference")
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware("cpu"))
        warm = fixed_work(args.pairs.split(",")[0], suite, 1)  # imports, allocator, caches
        dm = make_datamodule(warm.dataset)
        sequential([warm], [dm], options), stacked(warm, [Member(0), Member(1)], [dm, dm])
        if not args.skip_trials:
            trials_table(args, suite, options)
        if not args.skip_seeds:
            seeds_table(args, suite, options)


if __name__ == "__main__":
    main()
