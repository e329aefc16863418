"""The `mlwm` command line: list, run, benchmark, leaderboard, rerun.

    mlwm list                                        registered datasets and models
    mlwm run --dataset parity --model mlp --seed 0   one cell, prints its test metric
    mlwm benchmark --suite default                   a suite, then its leaderboard
    mlwm leaderboard --suite default                 rebuild the tables from the records
    mlwm compare --models gru,lstm --datasets 'dyck*'   significance over seeds
    mlwm rerun results/runs/default/parity/mlp/seed0.json   reproduce one record

Errors a user can cause print one line and exit with code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from .errors import UserError


def parse_assignments(items: list[str] | None, what: str) -> dict[str, Any]:
    """key=value pairs; values are TOML literals (1, 0.5, true, "x", [1, 2]), else strings."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"{what} {item!r} is not key=value (for example n=20)")
        try:
            out[key.strip()] = tomllib.loads(f"v = {value}")["v"]
        except tomllib.TOMLDecodeError:
            out[key.strip()] = value
    return out


def _console():
    from rich.console import Console

    console = Console()
    # not a terminal (CI, a log file): wide lines rather than 80-column wrapping
    return console if console.is_terminal else Console(width=200)


# -- list -------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    import fnmatch

    from rich.table import Table

    from . import registry

    console = _console()
    ds = Table(title="Datasets", title_justify="left")
    for col in ("name", "modality (views)", "task", "metric", "description"):
        ds.add_column(col)
    for entry in registry.all_dataset_entries():
        if not fnmatch.fnmatchcase(entry.name, args.datasets):
            continue
        try:
            spec = entry.cls().spec
            views = ", ".join(m.value for m in spec.modalities)
            arrow = "↑" if spec.higher_is_better else "↓"
            ds.add_row(entry.name, views, spec.task.value, f"{spec.metric} {arrow}",
                       entry.description)
        except UserError as exc:  # a dataset that needs a parameter (a directory, say)
            ds.add_row(entry.name, "", "", "", f"{entry.description} ({exc})")
    console.print(ds)
    ms = Table(title="Models", title_justify="left")
    for col in ("name", "accepts", "kind", "width", "available", "description"):
        ms.add_column(col)
    for entry in registry.all_model_entries():
        if not fnmatch.fnmatchcase(entry.name, args.models):
            continue
        why = entry.unavailable_reason()
        kind = entry.kind + (" baseline" if entry.baseline else "")
        ms.add_row(entry.name, ", ".join(m.value for m in entry.modalities), kind,
                   entry.width or "", "yes" if why is None else f"no: {why}", entry.description)
    console.print(ms)
    return 0


# -- run one cell ----------------------------------------------------------------------
def _options(args: argparse.Namespace):
    from .run.execute import RunOptions
    from .train.hardware import Hardware

    results = Path(args.results)
    check_writable(results)
    hardware = Hardware(accelerator=args.accelerator, devices=args.devices,
                        strategy=args.strategy, num_nodes=args.num_nodes)
    return RunOptions(results_dir=results, hardware=hardware, force=args.force,
                      vectorise_seeds=getattr(args, "vectorise_seeds", False))


def check_writable(results: Path) -> None:
    """Fail before any training when results cannot be written (read-only, disk full)."""
    import tempfile

    try:
        results.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=results, prefix=".write-check-") as f:
            f.write(b"x" * 4096)
            f.flush()
    except OSError as exc:
        raise UserError(f"results folder {results} is not writable ({exc.strerror or exc}); "
                        "pass --results DIR with a writable folder") from exc


def cmd_run(args: argparse.Namespace) -> int:
    from . import registry
    from .run.execute import run_cell, secondary_rank
    from .run.plan import make_cell
    from .run.suite import DatasetConfig, ModelConfig, make_budget

    registry.get_dataset_entry(args.dataset)
    registry.get_model_entry(args.model)
    dcfg = DatasetConfig(args.dataset, args.dataset, parse_assignments(args.param, "--param"))
    mcfg = ModelConfig(args.model, args.model, parse_assignments(args.hparam, "--hparam"))
    budget_kw = {k: v for k, v in (("max_epochs", args.max_epochs), ("lr", args.lr),
                                   ("batch_size", args.batch_size)) if v is not None}
    budget = make_budget("command line", {**budget_kw, **_speed_flags(args)})
    cell = make_cell("run", dcfg, mcfg, args.seed, budget)
    from .run.plan import make_datamodule

    record = run_cell(cell, make_datamodule(dcfg), _options(args))
    if secondary_rank():
        return 0  # a DDP peer: rank 0 reports
    metric = record.dataset.metric
    path = cell.path(Path(args.results))
    if record.status != "ok":
        print(f"{cell.label}: {record.status}: {record.reason}  (record: {path})")
        return 1
    test = record.metrics["test"][metric]
    val = record.metrics["val"].get(metric)
    print(f"{cell.label}: test {metric} = {test:.4f}  (val {val:.4f}, "
          f"{record.model.n_params} params, {record.time.train_s:.1f} s)  record: {path}")
    return 0


def _speed_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Budget fields set by --batch-scale and --compile (they change a cell's identity:
    its record is rerun, not resumed)."""
    return {k: v for k, v in (("batch_scale", args.batch_scale), ("compile", args.compile))
            if v is not None}


# -- suites ------------------------------------------------------------------------------
class SuiteProgress:
    """A rich progress bar on a terminal; one line per finished cell elsewhere (CI, logs)."""

    def __init__(self) -> None:
        self.console = _console()
        self.interactive = self.console.is_terminal
        self.progress = None
        self.task = None

    def __enter__(self) -> SuiteProgress:
        if self.interactive:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(),
                                     MofNCompleteColumn(), TimeElapsedColumn(),
                                     TimeRemainingColumn(), console=self.console)
            self.progress.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def __call__(self, event: str, cell: Any, index: int, total: int, record: dict | None) -> None:
        if self.progress is not None and self.task is None:
            self.task = self.progress.add_task("", total=total)
        if event == "busy":
            self._line(f"[{index + 1}/{total}] {cell.label}: running in another process, left to it")
            if self.progress is not None:
                self.progress.update(self.task, advance=1)
            return
        if event == "start":
            if self.progress is not None:
                self.progress.update(self.task, description=f"{cell.label}")
            return
        resumed = event == "resumed"  # its record was finished before this run
        status = record.status if record else "?"
        if self.progress is not None:
            self.progress.update(self.task, advance=1)
        if not self.interactive or status != "ok":
            value = record.primary_test if record else None
            metric = record.dataset.metric if record else ""
            shown = f"test {metric} {value:.4f}" if isinstance(value, float) else (
                record.reason or "" if record else "")
            tag = "done before" if resumed else status
            self._line(f"[{index + 1}/{total}] {cell.label}: {tag} {shown}")

    def _line(self, text: str) -> None:
        (self.progress.console if self.progress else self.console).print(
            text, markup=False, highlight=False)


def _facts(plan: Any) -> Any:
    from .report.build import PlanFacts

    return PlanFacts(current=plan.current_hashes(), cannot_run=plan.cannot_run)


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .report.build import build_leaderboard
    from .run.plan import plan_suite
    from .run.serial import iter_suite
    from .run.suite import load_suite, with_budget

    suite = with_budget(load_suite(args.suite), **_speed_flags(args))
    if args.model:  # models added on the command line (a plugin's model, say)
        import dataclasses

        from . import registry
        from .run.suite import ModelConfig

        extra = []
        for name in args.model:
            registry.get_model_entry(name)
            if all(m.id != name for m in suite.models):
                extra.append(ModelConfig(name, name))
        suite = dataclasses.replace(suite, models=suite.models + tuple(extra))
    options = _options(args)
    plan = plan_suite(suite)  # names, parameters and budgets checked before training
    if args.launcher != "none":
        return _benchmark_on_cluster(args, plan, options)
    console = _console()
    console.print(f"suite [bold]{suite.name}[/]: {len(plan.cells)} cells "
                  f"({len(suite.datasets)} datasets, {len(suite.models)} models, "
                  f"{len(suite.seeds)} seeds); {len(plan.incompatible)} incompatible pairs left out")
    t0 = time.perf_counter()
    ran = 0
    statuses: dict[str, int] = {}
    with SuiteProgress() as progress:
        if args.workers > 1 or args.cells_per_device > 1:
            from .run.workers import iter_suite_parallel

            cells = iter_suite_parallel(plan, options, args.workers, tuple(args.plugin),
                                        args.cells_per_device, progress=progress)
        else:
            cells = iter_suite(plan, options, progress=progress)
        for _, record, was_run in cells:
            ran += was_run
            status = record.status if record else "left to another process"
            statuses[status] = statuses.get(status, 0) + 1
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    board = build_leaderboard(options.results_dir, suite.name, facts=_facts(plan))
    from .run.files import write_text_atomic

    if ran == len(plan.cells):  # only a whole run's timing stands for the suite's cost:
        # a resumed or rebuilt run never overwrites it (read by benchmarks.perf.suite_time)
        write_text_atomic(board.paths[0].parent / "suite_run.json", json.dumps({
            "suite": suite.name, "wall_s": wall, "leaderboard_s": time.perf_counter() - t1,
            "workers": args.workers, "cells": len(plan.cells), "ran": ran,
            "statuses": statuses}, indent=1) + "\n")
    for path, why in board.problems:
        console.print(f"left out {path}: {why}", markup=False)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    paths = board.paths
    console.print(f"ran {ran} cells in {wall:.0f} s ({summary}); leaderboard: "
                  f"{', '.join(str(p) for p in paths[:3])} (and plots in {paths[0].parent / 'plots'})",
                  markup=False)
    return 0


def _benchmark_on_cluster(args: argparse.Namespace, plan: Any, options: Any) -> int:
    from .report.build import build_leaderboard
    from .run.launchers import ClusterOptions, submit_suite

    suite = plan.suite
    cluster = ClusterOptions(launcher=args.launcher, partition=args.partition,
                             timeout_min=args.timeout_min, gpus_per_node=args.gpus_per_node,
                             cpus_per_task=args.cpus_per_task, mem_gb=args.mem_gb,
                             folder=str(Path(args.results) / "slurm"), wait=not args.no_wait)
    jobs = submit_suite(plan, options, cluster, tuple(args.plugin))
    if not jobs:
        print(f"suite {suite.name}: every cell has a record; nothing submitted")
    else:
        print(f"suite {suite.name}: submitted {len(jobs)} cells as array {jobs[0].job_id} "
              f"({args.launcher}); logs in {cluster.folder}")
    if not cluster.wait:
        print("not waiting: rerun `mlwm leaderboard` when the array has finished")
        return 0
    statuses: dict[str, int] = {}
    for job in jobs:
        try:
            out = job.result()
            statuses[out["status"]] = statuses.get(out["status"], 0) + 1
        except Exception as exc:  # a task that died: its cell has no record, rerun resumes it
            print(f"array task {job.job_id} failed: {str(exc).strip().splitlines()[-1][:300]}")
            statuses["task failed"] = statuses.get("task failed", 0) + 1
    board = build_leaderboard(options.results_dir, suite.name, facts=_facts(plan))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    print(f"{len(jobs)} cells ({summary or 'none'}); leaderboard: {board.paths[0]}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from .report.build import build_leaderboard
    from .run.plan import plan_suite
    from .run.suite import load_suite

    plan = plan_suite(load_suite(args.suite))
    board = build_leaderboard(args.results, plan.suite.name, facts=_facts(plan))
    for path, why in board.problems:
        print(f"left out {path}: {why}", file=sys.stderr)
    if not board.rows:
        raise UserError(f"no records of suite {plan.suite.name!r} under "
                        f"{Path(args.results) / 'runs'}; run `mlwm benchmark --suite "
                        f"{args.suite}` first")
    print(f"{len(board.rows)} rows written to {', '.join(str(p) for p in board.paths[:3])} "
          f"(and plots in {board.paths[0].parent / 'plots'})")
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """Rerun the cell a record describes and compare its metrics with the record's."""
    import tempfile

    from .run.execute import RunOptions, run_cell
    from .run.plan import Cell, make_datamodule
    from .run.records import RecordError, read_record
    from .train.hardware import Hardware

    try:
        old = read_record(args.record)
    except RecordError as exc:
        raise UserError(f"{args.record} is not a run record: {exc}") from exc
    cell = Cell.from_record(old)
    threads = old.environment.threads
    if threads:  # the same reduction order as the recorded run
        import torch

        torch.set_num_threads(int(threads))
    results = Path(args.results) if args.results else Path(tempfile.mkdtemp(prefix="mlwm-rerun-"))
    new = run_cell(cell, make_datamodule(cell.dataset),
                   RunOptions(results_dir=results, hardware=Hardware(args.accelerator),
                              force=True))
    if new.status != "ok" or old.status != "ok":
        print(f"{cell.label}: recorded {old.status}, rerun {new.status} {new.reason or ''}")
        return 0 if new.status == old.status else 1
    worst = 0.0
    for split, values in old.metrics.items():
        for key, value in values.items():
            again = new.metrics.get(split, {}).get(key)
            if value is None or again is None:
                continue
            worst = max(worst, abs(value - again))
            print(f"{split}/{key}: recorded {value:.6f}, rerun {again:.6f}")
    same = worst <= args.tolerance
    print(f"{cell.label}: {'reproduced' if same else 'NOT reproduced'} (largest difference "
          f"{worst:.2g}, tolerance {args.tolerance:g}); rerun record under {results}")
    return 0 if same else 1


def cmd_compare(args: argparse.Namespace) -> int:
    from .report.compare import compare, print_comparison
    from .report.rows import aggregate, load_records

    if not 0.0 < args.alpha < 1.0:
        raise UserError(f"--alpha {args.alpha} is not a level between 0 and 1 (for example 0.05)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    records, problems = load_records(Path(args.results) / "runs", args.suite)
    console = _console()
    for path, why in problems:
        console.print(f"left out {path}: {why}", markup=False, highlight=False)
    if not records:
        raise UserError(f"no records of suite {args.suite!r} under {Path(args.results) / 'runs'}; "
                        f"run `mlwm benchmark --suite {args.suite}` first")
    cmp = compare(aggregate(records), models, args.datasets, args.alpha)
    print_comparison(cmp, args.alpha, console)
    return 0


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlwm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import a plugin file that registers datasets or models (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered datasets and models")
    p.add_argument("--datasets", default="*", metavar="PATTERN", help="wildcard filter")
    p.add_argument("--models", default="*", metavar="PATTERN", help="wildcard filter")
    p.set_defaults(func=cmd_list)

    def hardware(p: argparse.ArgumentParser) -> None:
        p.add_argument("--results", default="results", help="results folder (default: results)")
        p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (default)")
        p.add_argument("--devices", default=1, type=int, help="devices per cell (DDP when > 1)")
        p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
        p.add_argument("--num-nodes", default=1, type=int, help="nodes per cell (multi-node DDP)")
        p.add_argument("--force", action="store_true", help="rerun cells that have a record")
        p.add_argument("--batch-scale", type=int, metavar="K",
                       help="train on batches K times larger, the rate scaled to match "
                            "(sqrt(K) for Adam/AdamW, K for SGD); see results/perf.md")
        p.add_argument("--compile", metavar="MODE",
                       help="torch.compile each backbone: default, reduce-overhead (CUDA "
                            "graphs on GPU) or max-autotune")

    p = sub.add_parser("run", help="train one (dataset, model, seed) cell")
    p.add_argument("--dataset", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="dataset parameter")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="model hyperparameter")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    hardware(p)
    p.set_defaults(func=cmd_run, force=True)

    p = sub.add_parser("benchmark", help="run a suite and build its leaderboard")
    p.add_argument("--suite", default="default", help="built-in suite name or a .toml path")
    p.add_argument("--model", action="append", metavar="NAME",
                   help="add a registered model to the suite's models (repeatable)")
    p.add_argument("--workers", type=int, default=1,
                   help="cells run at once in worker processes (on GPUs: one per device)")
    p.add_argument("--cells-per-device", type=int, default=1,
                   help="workers sharing one GPU, for small cells")
    p.add_argument("--vectorise-seeds", action="store_true",
                   help="train the seeds of a cell as one vectorised model where supported "
                        "(pays for small models; with --workers, a worker takes all seeds of a cell)")
    g = p.add_argument_group("cluster (submitit)")
    g.add_argument("--launcher", choices=["none", "slurm", "local"], default="none",
                   help="submit the cells as a SLURM job array (local: submitit's local executor)")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--timeout-min", type=int, default=60, help="minutes per array task")
    g.add_argument("--gpus-per-node", type=int, default=0)
    g.add_argument("--cpus-per-task", type=int, default=2)
    g.add_argument("--mem-gb", type=int, default=8)
    g.add_argument("--no-wait", action="store_true", help="submit and return")
    hardware(p)
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("rerun", help="rerun the cell of a record and compare its metrics")
    p.add_argument("record", help="path to a run record (results/runs/.../seed0.json)")
    p.add_argument("--results", help="where to write the new record (default: a temp folder)")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("leaderboard", help="rebuild the leaderboard from the records")
    p.add_argument("--suite", default="default")
    p.add_argument("--results", default="results")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("compare", help="compare models over seeds, with significance")
    p.add_argument("--models", required=True, metavar="A,B,...",
                   help="comma-separated model ids (wildcards allowed, e.g. 'gru@*')")
    p.add_argument("--datasets", default="*", metavar="PATTERN",
                   help="wildcard over dataset ids (default: all)")
    p.add_argument("--suite", default="default")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of Welch's t-test (default: 0.05)")
    p.set_defaults(func=cmd_compare)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        from . import registry

        registry.load_plugins(args.plugin)
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mlwm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlwm: interrupted; finished cells are saved, run the same command again to "
              "resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
