"""The `mlwm` command line: parsing and orchestration only.

    mlwm list                                        registered datasets and models
    mlwm run --dataset parity --model mlp --seed 0   one cell, prints its test metric
    mlwm benchmark --suite default                   a suite (into results-local/), then its leaderboard
    mlwm leaderboard --suite reference               rebuild the tables from the records (results/)
    mlwm compare --models gru@10k,lstm@10k --datasets 'dyck*'   significance over seeds
    mlwm rerun results/runs/reference/dyck-24-ood40/gru@10k/seed0.json   reproduce one record
    mlwm check --plugin my_plugin.py                 the contract checks on a plugin
    mlwm export --dataset rsk --format parquet OUT   a dataset's splits as files
    mlwm explain --dataset sparse_parity --model mlp   attributions against the truth

Errors a user can cause print one line and exit with code 2. Nothing heavy (torch,
Lightning) is imported before the command's input has been checked.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import signal
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

from .errors import UserError

LOGGERS = ("csv", "tensorboard", "mlflow")
STARTED_NS = time.time_ns()  # when this command began: --force reruns records older than it


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
    """A rich console; not a terminal (CI, a log file): wide lines, no wrapping."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=200)


# -- list -------------------------------------------------------------------------------
def cmd_list(args: argparse.Namespace) -> int:
    """Datasets (parameters, views, task, metric) and models (views, kind, availability).
    --datasets narrows the models to those that accept one of the chosen datasets' views;
    --models narrows the datasets to those one of the chosen models can read."""
    from rich.table import Table

    from . import registry
    from .catalogue import catalogue, parameters_text

    info = catalogue(refresh=args.refresh)
    index = registry.plugin_index()
    datasets = [n for n in registry.list_datasets(args.datasets)]
    models = [n for n in registry.list_models(args.models)]
    if not datasets or not models:
        what = "dataset" if not datasets else "model"
        pattern = args.datasets if not datasets else args.models
        raise UserError(f"no {what} matches {pattern!r}; `mlwm list` shows them all")

    def ds_info(name: str) -> dict[str, Any]:
        if name in info["datasets"]:
            return info["datasets"][name]
        spec = registry.get_dataset_entry(name).cls().spec  # a plugin file's: live
        return {"views": [m.value for m in spec.modalities], "task": spec.task.value,
                "metric": spec.metric, "note": ""}

    def model_info(name: str) -> dict[str, Any]:
        if name in info["models"]:
            return info["models"][name]
        e = registry.get_model_entry(name)
        return {"accepts": [m.value for m in e.modalities], "kind": e.kind,
                "width": e.width or "", "unavailable": e.unavailable_reason() or ""}

    if args.datasets != "*" and args.models == "*":
        views = {v for d in datasets for v in ds_info(d)["views"]}
        models = [m for m in models if views & set(model_info(m)["accepts"])]
    if args.models != "*" and args.datasets == "*":
        accepted = {v for m in models for v in model_info(m)["accepts"]}
        datasets = [d for d in datasets if accepted & set(ds_info(d)["views"])]
    console = _console()
    ds = Table(title="Datasets", title_justify="left")
    for col in ("name", "views (native first)", "task", "metric", "parameters", "description"):
        ds.add_column(col, overflow="fold")
    for name in datasets:
        row = ds_info(name)
        entry = index.get(("dataset", name))
        params = parameters_text(entry) if entry else ", ".join(
            f"{p.name} = {p.default!r}" for p in registry.get_dataset_entry(name).params)
        desc = entry.description if entry else registry.get_dataset_entry(name).description
        ds.add_row(name, ", ".join(row["views"]), row["task"], row["metric"], params,
                   desc + (f" ({row['note']})" if row["note"] else ""))
    console.print(ds)
    ms = Table(title="Models", title_justify="left")
    for col in ("name", "accepts", "kind", "width", "available", "description"):
        ms.add_column(col, overflow="fold")
    for name in models:
        row = model_info(name)
        entry = index.get(("model", name))
        desc = entry.description if entry else registry.get_model_entry(name).description
        ms.add_row(name, ", ".join(row["accepts"]), row["kind"], row["width"],
                   "yes" if not row["unavailable"] else f"no: {row['unavailable']}", desc)
    console.print(ms)
    return 0


# -- options shared by the commands that train ----------------------------------------
def _options(args: argparse.Namespace):
    from .run.execute import RunOptions
    from .train.hardware import Hardware, check_hardware

    hardware = Hardware(accelerator=args.accelerator, devices=args.devices,
                        strategy=args.strategy, num_nodes=args.num_nodes)
    check_hardware(hardware)
    if args.logger:
        _check_logger(args.logger)
    results = Path(args.results)
    check_writable(results)
    return RunOptions(results_dir=results, hardware=hardware, force=args.force,
                      forced_since_ns=STARTED_NS,
                      fresh_data=args.force and not getattr(args, "keeps_data", False),
                      vectorise_seeds=getattr(args, "vectorise_seeds", False),
                      logger=args.logger or "")


def _check_logger(kind: str) -> None:
    import importlib.util

    needs = {"csv": None, "tensorboard": ("tensorboard", "tensorboardX"), "mlflow": ("mlflow",)}
    if kind not in needs:
        raise UserError(f"--logger {kind!r} is not one of {', '.join(LOGGERS)}")
    packages = needs[kind]
    if packages and not any(importlib.util.find_spec(p) for p in packages):
        raise UserError(f"--logger {kind} needs the package {packages[0]!r}: "
                        f"pip install {packages[0]}")


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


def set_threads(requested: int, workers: int = 1, on_gpu: bool = False) -> int:
    """Torch's intra-op threads for this process. 0 (the default) means one per process:
    on a 2-core machine, 2 threads were at best 1.4x faster than 1 (a CNN, quiet machine)
    and up to 10x slower (a GRU or a GCN beside another process), so one thread is the
    default, measured by `python -m benchmarks.perf.threads` (results/perf.md)."""
    import torch

    threads = requested if requested > 0 else 1
    torch.set_num_threads(threads)
    return threads


def _speed_flags(args: argparse.Namespace) -> dict[str, Any]:
    """Budget fields set by --batch-scale and --compile (they change a cell's identity:
    its record is rerun, not resumed)."""
    return {k: v for k, v in (("batch_scale", args.batch_scale), ("compile", args.compile))
            if v is not None}


# -- run one cell ----------------------------------------------------------------------
def _short_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:8]


def _single_cell(args: argparse.Namespace) -> tuple[Any, Any, Any, str, str | None]:
    """(cell, datamodule, options, label, suite cell's hash) of `run` and `explain`. With
    --suite, the suite's budget (and, for a dataset or model id of the suite, its
    parameters, overrides, seed's data and tuned choice) make exactly that suite cell;
    flags win over it. The record's path names the dataset and model with a hash of their
    parameters, so runs of different parameters never overwrite each other."""
    from . import registry
    from .run.suite import DatasetConfig, ModelConfig, load_suite, make_budget

    suite = load_suite(args.suite) if args.suite else None
    dcfg = next((d for d in suite.datasets if d.id == args.dataset), None) if suite else None
    mcfg = next((m for m in suite.models if m.id == args.model), None) if suite else None
    if dcfg is None:
        registry.check_dataset_name(args.dataset)
        dcfg = DatasetConfig(args.dataset, args.dataset, {})
    if mcfg is None:
        registry.check_model_name(args.model)
        mcfg = ModelConfig(args.model, args.model)
    dcfg = dataclasses.replace(dcfg, params={**dcfg.params,
                                             **parse_assignments(args.param, "--param")})
    mcfg = dataclasses.replace(mcfg, hparams={**mcfg.hparams,
                                              **parse_assignments(args.hparam, "--hparam")})
    registry.check_params("dataset", dcfg.name, dcfg.params)
    registry.check_params("model", mcfg.name, mcfg.hparams)
    base = dataclasses.asdict(suite.budget) if suite else {}
    base.update(dcfg.budget)
    flags = {k: v for k, v in (("max_epochs", args.max_epochs), ("lr", args.lr),
                               ("batch_size", args.batch_size), ("patience", args.patience),
                               ("max_time_s", args.max_time)) if v is not None}
    budget = make_budget("command line", {**base, **flags, **_speed_flags(args)})
    options = _options(args)
    set_threads(args.threads)

    from .run.plan import make_cell, make_datamodule

    suite_hash = None
    if suite is not None:  # exactly the suite's cell: its seed's data and tuned choice
        from .run.plan import SuitePlan, seeded_dataset

        dcfg = seeded_dataset(dcfg, args.seed, suite.data_seeds == "follow")
        dm = make_datamodule(dcfg)
        suite_cell = make_cell(suite.name, dcfg, mcfg, args.seed, budget, dm)
        suite_cell = _tuned(SuitePlan(suite, [suite_cell]), options, reuse_only=True).cells[0]
        suite_hash, mcfg, budget = suite_cell.config_hash, suite_cell.model, suite_cell.budget
    else:
        dm = make_datamodule(dcfg)
    cell = make_cell("run", dcfg, mcfg, args.seed, budget, dm)
    ids = {"dataset": f"{dcfg.id}-{_short_hash(dm.params)}",
           "model": f"{mcfg.id}-{_short_hash([cell.identity['model'], cell.identity['budget']])}"}
    label = f"{dcfg.id} · {mcfg.id} · seed {args.seed}"
    cell = dataclasses.replace(cell, dataset=dataclasses.replace(dcfg, id=ids["dataset"]),
                               model=dataclasses.replace(mcfg, id=ids["model"]))
    if options.fresh_data:
        dm.drop_cache()
    return cell, dm, options, label, suite_hash


def cmd_run(args: argparse.Namespace) -> int:
    """One cell (see _single_cell for how it is made)."""
    cell, dm, options, label, suite_hash = _single_cell(args)  # bad names fail fast, here
    from .run.execute import run_cell, secondary_rank  # Lightning: only for a real cell

    record = run_cell(cell, dm, options)
    if secondary_rank():
        return 0  # a DDP peer: rank 0 reports
    path = cell.path(options.results_dir)
    same = f"; the configuration of suite {args.suite}'s cell (config hash {suite_hash})" \
        if suite_hash else ""
    if record.status != "ok":
        print(f"{label}: {record.status}: {record.reason}  (record: {path})")
        return 1
    metric = record.dataset.metric
    print(f"{label}: test {metric} = {record.primary_test:.4f}  (val "
          f"{record.metrics['val'].get(metric, float('nan')):.4f}, {record.model.n_params} "
          f"params, {record.time.train_s:.1f} s, {record.environment.threads} thread(s))"
          f"{same}  record: {path}")
    return 0


def cmd_explain(args: argparse.Namespace) -> int:
    """Train (or load the kept weights of) one cell, explain it on the test split, score
    the attributions against the dataset's ground truth, and with --retrain-top K retrain
    it on its K most salient inputs."""
    import torch

    from .explain.trained import default_methods, explain_model
    from .run.execute import prepare, run_cell, train_cell
    from .run.explaining import explain_path, read_explanation, retrain_on_top, weights_path
    from .run.files import write_text_atomic
    from .run.serial import finished_record

    cell, dm, options, label, _ = _single_cell(args)
    methods = tuple(args.method or ())
    options = dataclasses.replace(options, explain=methods or ("saliency", "ig", "shap",
                                                               "permutation"), keep_weights=True,
                                  explain_rows=args.rows)
    path = cell.path(options.results_dir)
    record, model = None, None
    done = None if args.force else finished_record(cell, options)
    if done is not None and done.status == "ok" and weights_path(path).is_file():
        from . import registry
        from .explain.weights import load_weights

        prepare(cell, dm)
        net = registry.create_model(cell.model.name, dm.spec.for_view(cell.view), **cell.hparams)
        if isinstance(net, torch.nn.Module):
            try:
                model, record = load_weights(net, weights_path(path)).eval(), done
            except UserError:
                model = None  # not this cell's weights: train again
    if model is None:
        record = run_cell(cell, dm, options)  # writes the weights and explains
        if record.status != "ok":
            print(f"{label}: {record.status}: {record.reason}")
            return 1
        if not dm.spec.ground_truth:
            print(f"{label}: dataset {cell.dataset.name!r} declares no ground truth; "
                  "attributions are computed but not scored")
    data = read_explanation(explain_path(path)) if model is None else None
    if data is None or methods and set(methods) - set(data.get("methods", {})):
        if model is None:  # a fitted model, or one explained with other methods: refit
            prepare(cell, dm)
            model = train_cell(cell, dm, options).model
        kind = "neural" if isinstance(model, torch.nn.Module) else "fitted"
        chosen = methods or default_methods(kind)
        data = {"config_hash": cell.config_hash,
                **explain_model(model, dm, cell.view, chosen, rows=args.rows, seed=cell.seed)}
    if args.retrain_top:
        method = next(iter(data["methods"]))
        def retrain() -> Any:
            prepare(cell, dm)
            return train_cell(cell, dm, options)

        kept = retrain_on_top(cell, dm, data["methods"][method], args.retrain_top, retrain)
        kept["full"] = record.primary_test if record is not None else None
        kept["method"] = method
        data["retrain_top"] = kept
    write_text_atomic(explain_path(path), json.dumps(data, indent=1) + "\n")
    metric = dm.spec.metric
    print(f"{label}: test {metric} = {record.primary_test:.4f}; ground truth: "
          f"{dm.spec.ground_truth or 'none declared'}; {data['rows']} test rows explained")
    for method, entry in data["methods"].items():
        if "error" in entry:
            print(f"  {method}: {entry['error']}")
            continue
        au, pk = entry.get("auroc"), entry.get("precision_at_k")
        shown = "not scored" if au is None else f"AUROC {au:.3f}, precision at k {pk:.3f}"
        print(f"  {method}: {shown} ({entry['seconds']:.1f} s)")
    if "retrain_top" in data:
        r = data["retrain_top"]
        print(f"  retrained on the {r['k']} most salient inputs ({r['method']}): test {metric} "
              f"{r['test']:.4f}, against {r['full']:.4f} on all of them; inputs {r['inputs']}")
    print(f"  written {explain_path(path)}")
    return 0


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

    def __call__(self, event: str, cell: Any, index: int, total: int, record: Any) -> None:
        """One progress event of the runner: start, end, resumed or busy."""
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


def _load_suite(args: argparse.Namespace):
    """The suite, with its dataset and model names and parameters checked against the
    plugins' source (before anything heavy is imported)."""
    from . import registry
    from .run.suite import load_suite

    suite = load_suite(args.suite, getattr(args, "suite_name", None))
    for d in suite.datasets:
        registry.check_dataset_name(d.name)
        registry.check_params("dataset", d.name, d.params)
    for m in suite.models:
        registry.check_model_name(m.name)
        registry.check_params("model", m.name, m.hparams)
    return suite


def _tuned(plan: Any, options: Any, console: Any = None, reuse_only: bool = False,
           workers: int = 1, plugin_files: tuple[str, ...] = ()) -> Any:
    """The plan at its tuned configurations: another suite's committed choices
    (`tuned_from`), or this suite's own search (`[tuning]`; with reuse_only, only the
    searches already finished, as the leaderboard needs to know which cells are
    current)."""
    suite = plan.suite
    if not suite.tuned_from and not suite.tuning:
        return plan
    from .run.tuning import tune_plan, tuned_from

    seen: dict[str, int] = {}

    def progress(event: str, cell: Any, result: Any) -> None:
        seen[event] = seen.get(event, 0) + 1
        if console is not None and event in ("end", "missing", "untuned", "stale"):
            cost = f" in {result.cost_s:.0f} s" if result is not None and event == "end" else ""
            console.print(f"  tuning {cell.dataset.id} · {cell.model.id}: {event}{cost}",
                          markup=False, highlight=False)

    if suite.tuned_from:
        folder = Path(options.results_dir) / "runs" / suite.tuned_from
        if not folder.is_dir():  # the committed reference's choices
            from .run.environment import PROJECT_ROOT

            folder = PROJECT_ROOT / "results" / "runs" / suite.tuned_from
        plan = tuned_from(plan, folder, progress)
    else:
        trials, seed = suite.tuning.get("trials", 16), suite.tuning.get("seed", 0)
        if workers > 1 and not reuse_only:  # the searches in parallel, then applied
            from .run.tuning import search_in_workers

            t0 = time.perf_counter()
            ran = search_in_workers(plan, options, trials, seed, workers, plugin_files,
                                    (lambda line: console.print(f"  tuned {line}", markup=False,
                                                                highlight=False))
                                    if console is not None else None)
            if console is not None and ran:
                console.print(f"tuning: {ran} searches in {time.perf_counter() - t0:.0f} s on "
                              f"{workers} workers", markup=False)
        plan = tune_plan(plan, options, trials, seed, progress, reuse_only=reuse_only)
    if console is not None and seen:
        console.print("tuning: " + ", ".join(f"{n} {e}" for e, n in sorted(seen.items())),
                      markup=False, highlight=False)
    return plan


def _facts(plan: Any, options: Any) -> Any:
    """What the plan knows that the tables show (current configurations, pairs that
    cannot run, compatible pairs per dataset, the suite's published contrasts, and the
    current cells of the suite that trains its not-converged rows longer, where that
    suite has records in the results folder)."""
    from .report.build import PlanFacts

    expected: dict[str, set[str]] = {}
    for c in plan.cells:
        expected.setdefault(c.dataset.id, set()).add(c.model.id)
    longer, longer_current = plan.suite.longer, None
    if longer and (Path(options.results_dir) / "runs" / longer).is_dir():
        from .run.plan import plan_suite
        from .run.suite import load_suite

        long_plan = _tuned(plan_suite(load_suite(longer)), options, reuse_only=True)
        longer_current = long_plan.current_hashes()
    elif longer:
        longer = ""  # no records of it here (results-local/): no section
    return PlanFacts(current=plan.current_hashes(), cannot_run=plan.cannot_run,
                     incompatible=plan.incompatible, expected=expected,
                     contrasts=list(plan.suite.contrasts), longer=longer,
                     longer_current=longer_current)


def _left_out_lines(plan: Any) -> list[str]:
    """The pairs a suite asked for that cannot run, one line per (model, reason)."""
    grouped: dict[tuple[str, str], list[str]] = {}
    for dataset, model, reason in plan.incompatible:
        grouped.setdefault((model, reason.split(";")[0]), []).append(dataset)
    return [f"  left out: {model} on {', '.join(sorted(ds))}: {why}"
            for (model, why), ds in sorted(grouped.items())]


def cmd_benchmark(args: argparse.Namespace) -> int:
    from .run.suite import ModelConfig, with_budget

    suite = with_budget(_load_suite(args), **_speed_flags(args))
    if args.model:  # models added on the command line (a plugin's model, say)
        from . import registry

        extra = []
        for name in args.model:
            registry.check_model_name(name)
            if all(m.id != name for m in suite.models):
                extra.append(ModelConfig(name, name))
        suite = dataclasses.replace(suite, models=suite.models + tuple(extra))
    options = dataclasses.replace(_options(args), explain=suite.explain)
    if args.against and not Path(args.against, "runs").is_dir():
        raise UserError(f"--against {args.against}: no runs/ folder of records there")
    set_threads(args.threads, args.workers, options.hardware.on_gpu)
    from .report.build import build_leaderboard
    from .run.plan import plan_suite

    plan = plan_suite(suite)  # widths and views resolved, pairs checked, before training
    console = _console()
    plan = _tuned(plan, options, console, workers=args.workers, plugin_files=tuple(args.plugin))
    if args.tune_only:
        if not plan.suite.tuning:
            raise UserError(f"--tune-only: suite {plan.suite.name} has no [tuning] to run")
        print(f"searches of suite {plan.suite.name} done (--tune-only: its cells are not run)")
        return 0
    if args.launcher != "none":
        return _benchmark_on_cluster(args, plan, options)
    note = options.hardware.note()
    if note:
        console.print(note, markup=False)
    console.print(f"suite [bold]{suite.name}[/]: {len(plan.cells)} cells "
                  f"({len(suite.datasets)} datasets, {len(suite.models)} models, "
                  f"{len(suite.seeds)} seeds) into {options.results_dir}; "
                  f"{len(plan.incompatible)} incompatible pairs left out")
    for line in _left_out_lines(plan):
        console.print(line, markup=False, highlight=False)
    t0 = time.perf_counter()
    ran = 0
    statuses: dict[str, int] = {}
    with SuiteProgress() as progress:
        if args.workers > 1 or args.cells_per_device > 1:
            from .run.workers import iter_suite_parallel

            cells = iter_suite_parallel(plan, options, args.workers, tuple(args.plugin),
                                        args.cells_per_device, progress=progress)
        else:
            from .run.serial import iter_suite

            cells = iter_suite(plan, options, progress=progress)
        for _, record, was_run in cells:
            ran += was_run
            status = record.status if record else "left to another process"
            statuses[status] = statuses.get(status, 0) + 1
    wall = time.perf_counter() - t0
    t1 = time.perf_counter()
    board = build_leaderboard(options.results_dir, suite.name, facts=_facts(plan, options))
    if ran == len(plan.cells):  # only a whole run's timing stands for the suite's cost:
        # a resumed or rebuilt run never overwrites it (read by benchmarks.perf.suite_time)
        from .run.files import write_text_atomic

        write_text_atomic(board.paths[0].parent / "suite_run.json", json.dumps({
            "suite": suite.name, "wall_s": wall, "leaderboard_s": time.perf_counter() - t1,
            "workers": args.workers, "cells": len(plan.cells), "ran": ran,
            "statuses": statuses}, indent=1) + "\n")
    for path, why in board.problems:
        console.print(f"left out {path}: {why}", markup=False)
    if board.stale:
        console.print(f"left out {board.stale} records of other configurations of these "
                      "cells (not the suite's current one)", markup=False)
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    paths = board.paths
    console.print(f"ran {ran} cells in {wall:.0f} s ({summary}); leaderboard: "
                  f"{', '.join(str(p) for p in paths[:3])} (and plots in {paths[0].parent / 'plots'})",
                  markup=False)
    if args.against:
        from .report.agreement import compare_runs

        agreed = compare_runs(options.results_dir, args.against, suite.name, args.tolerance)
        for line in agreed.lines(args.against):
            console.print(line, markup=False, highlight=False)
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
    board = build_leaderboard(options.results_dir, suite.name, facts=_facts(plan, options))
    summary = ", ".join(f"{n} {s}" for s, n in sorted(statuses.items()))
    print(f"{len(jobs)} cells ({summary or 'none'}); leaderboard: {board.paths[0]}")
    return 0


def cmd_leaderboard(args: argparse.Namespace) -> int:
    """Rebuild a suite's tables from its current records."""
    from .report.build import build_leaderboard
    from .run.execute import RunOptions
    from .run.plan import plan_suite

    plan = plan_suite(_load_suite(args))
    options = RunOptions(results_dir=Path(args.results))
    plan = _tuned(plan, options, reuse_only=True)
    board = build_leaderboard(args.results, plan.suite.name, facts=_facts(plan, options))
    for path, why in board.problems:
        print(f"left out {path}: {why}", file=sys.stderr)
    if board.stale:
        print(f"left out {board.stale} records of other configurations of these cells",
              file=sys.stderr)
    if not board.rows:
        raise UserError(f"no records of suite {plan.suite.name!r} under "
                        f"{Path(args.results) / 'runs'}; run `mlwm benchmark --suite "
                        f"{args.suite}` first")
    print(f"{len(board.rows)} rows written to {', '.join(str(p) for p in board.paths[:3])} "
          f"(and plots in {board.paths[0].parent / 'plots'})")
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Chosen models on chosen datasets with their differences tested."""
    from .report.compare import compare, print_comparison
    from .report.rows import aggregate, current_only, load_records
    from .run.plan import plan_suite

    if not 0.0 < args.alpha < 1.0:
        raise UserError(f"--alpha {args.alpha} is not a level between 0 and 1 (for example 0.05)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    from .run.execute import RunOptions

    plan = plan_suite(_load_suite(args))
    plan = _tuned(plan, RunOptions(results_dir=Path(args.results)), reuse_only=True)
    records, problems = load_records(Path(args.results) / "runs", plan.suite.name)
    records, _ = current_only(records, plan.current_hashes())
    console = _console()
    for path, why in problems:
        console.print(f"left out {path}: {why}", markup=False, highlight=False)
    if not records:
        raise UserError(f"no current records of suite {plan.suite.name!r} under "
                        f"{Path(args.results) / 'runs'}; run `mlwm benchmark --suite "
                        f"{args.suite}` first")
    cmp = compare(aggregate(records), models, args.datasets, args.alpha)
    print_comparison(cmp, args.alpha, console)
    return 0


def cmd_rerun(args: argparse.Namespace) -> int:
    """Rerun the cell a record describes and compare its metrics with the record's."""
    import tempfile

    from .run.execute import RunOptions, run_cell
    from .run.plan import Cell, make_datamodule
    from .run.records import RecordError, read_record
    from .train.hardware import Hardware, device_name

    try:
        old = read_record(args.record)
    except RecordError as exc:
        raise UserError(f"{args.record} is not a run record: {exc}") from exc
    cell = Cell.from_record(old)
    threads = set_threads(old.environment.threads or 1)  # the recorded reduction order
    keep = args.results is not None
    with contextlib.ExitStack() as stack:
        results = Path(args.results) if keep else Path(
            stack.enter_context(tempfile.TemporaryDirectory(prefix="mlwm-rerun-")))
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
    where = f"rerun record under {results}" if keep else "pass --results DIR to keep the record"
    print(f"{cell.label}: {'reproduced' if same else 'NOT reproduced'} (largest difference "
          f"{worst:.2g}, tolerance {args.tolerance:g}); {where}")
    if not same:
        here = device_name(args.accelerator)
        if old.environment.device != here:
            print(f"  recorded on {old.environment.device}, rerun on {here}: float results "
                  "depend on the CPU")
        if old.environment.threads is None:
            print(f"  the record does not say its torch thread count; rerun with {threads}")
        if old.environment.torch != new.environment.torch:
            print(f"  torch {old.environment.torch} then, {new.environment.torch} now")
    return 0 if same else 1


def cmd_export(args: argparse.Namespace) -> int:
    """A dataset's splits as Parquet or NPZ files with a datasheet."""
    from . import registry
    from .export.writer import FORMATS, export

    if args.format not in FORMATS:
        raise UserError(f"--format {args.format!r} is not one of {', '.join(FORMATS)}")
    params = parse_assignments(args.param, "--param")
    registry.check_dataset_name(args.dataset)
    registry.check_params("dataset", args.dataset, params)
    dm = registry.create_dataset(args.dataset, **params)
    try:
        paths = export(dm, args.out, args.format)
    except OSError as exc:
        raise UserError(f"cannot write to {args.out} ({exc.strerror or exc})") from None
    sizes = ", ".join(f"{s} {dm.split_size(s)}" for s in dm.splits)
    print(f"{args.dataset}: {sizes} rows written to {Path(args.out)} ({len(paths)} files, "
          f"datasheet {Path(args.out) / 'datasheet.json'})")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    """The contract checks of the built-in plugins, on the datasets and models that the
    --plugin files register (or on named ones), as a pass/fail table."""
    from rich.table import Table

    from . import checks, registry

    datasets = list(args.dataset or [])
    models = list(args.model or [])
    for path in args.plugin:
        module = registry.load_plugin_file(path)
        datasets += [e.name for e in registry.all_dataset_entries()
                     if e.module == module.__name__]
        models += [e.name for e in registry.all_model_entries() if e.module == module.__name__]
    datasets, models = list(dict.fromkeys(datasets)), list(dict.fromkeys(models))  # once each
    if not datasets and not models:
        raise UserError("nothing to check: pass --plugin FILE.py (its datasets and models), "
                        "or --dataset NAME / --model NAME")
    for name in datasets:
        registry.check_dataset_name(name)
    for name in models:
        registry.check_model_name(name)
    set_threads(1)
    from .train.trainer import quiet_lightning

    quiet_lightning()
    results: list[checks.CheckResult] = []
    for name in datasets:
        results += checks.dataset_checks(name)
        if registry.get_dataset_entry(name).cls.needs_files:
            continue
        results += checks.model_checks("mlp", name)  # the reference family trains on it
    pool = registry.list_datasets()
    for name in models:
        on = checks.datasets_for(name, datasets + pool) if not datasets else [
            d for d in datasets if d in checks.datasets_for(name, datasets)]
        if not on:
            results.append(checks.CheckResult(f"model {name}", "runs on a dataset", False,
                                              "no registered dataset offers a view it accepts"))
        for dataset in on:
            results += checks.model_checks(name, dataset)
    table = Table(title="Contract checks", title_justify="left")
    for col in ("subject", "check", "result", "detail"):
        table.add_column(col, overflow="fold")
    for r in results:
        table.add_row(r.subject, r.check, "pass" if r.ok else "FAIL", r.detail)
    _console().print(table)
    failed = sum(not r.ok for r in results)
    print(f"{len(results) - failed} passed, {failed} failed")
    return 1 if failed else 0


# -- parser -----------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlwm", description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", action="append", default=[], metavar="FILE.py",
                        help="import a plugin file that registers datasets or models (repeatable)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("list", help="registered datasets and models")
    p.add_argument("--datasets", default="*", metavar="PATTERN", help="wildcard filter")
    p.add_argument("--models", default="*", metavar="PATTERN", help="wildcard filter")
    p.add_argument("--refresh", action="store_true", help="rebuild the cached views and tasks")
    p.set_defaults(func=cmd_list)

    def hardware(p: argparse.ArgumentParser, results: str = "results") -> None:
        p.add_argument("--results", default=results, help=f"results folder (default: {results})")
        p.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (default)")
        p.add_argument("--devices", default=1, type=int, help="devices per cell (DDP when > 1)")
        p.add_argument("--strategy", default="auto", help="Lightning strategy, e.g. ddp")
        p.add_argument("--num-nodes", default=1, type=int, help="nodes per cell (multi-node DDP)")
        p.add_argument("--threads", default=0, type=int,
                       help="torch threads per process (default 0: one per process, measured "
                            "fastest on small cells; with --workers each worker gets one)")
        p.add_argument("--force", action="store_true",
                       help="rerun cells that have a record, and regenerate their data")
        p.add_argument("--logger", choices=LOGGERS,
                       help="attach a Lightning logger to each neural cell (results/logs, or "
                            "results/mlruns for mlflow); tensorboard and mlflow need their package")
        p.add_argument("--batch-scale", type=int, metavar="K",
                       help="train on batches K times larger, the rate scaled to match "
                            "(sqrt(K) for Adam/AdamW, K for SGD); see results/perf.md")
        p.add_argument("--compile", metavar="MODE",
                       help="torch.compile each backbone: default, reduce-overhead (CUDA "
                            "graphs on GPU) or max-autotune")

    def suite_arguments(p: argparse.ArgumentParser, default: str = "default") -> None:
        p.add_argument("--suite", default=default,
                       help=f"built-in suite name or a .toml path (default: {default})")
        p.add_argument("--suite-name", metavar="NAME",
                       help="the name a suite file's records go under (default: its file "
                            "name; a file named like a built-in suite needs it)")

    p = sub.add_parser("run", help="train one (dataset, model, seed) cell")
    p.add_argument("--dataset", required=True, help="a dataset name, or a dataset id of --suite")
    p.add_argument("--model", required=True, help="a model name, or a model id of --suite")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suite", help="take this suite's budget (and its dataset's or model's "
                                   "settings when --dataset or --model is one of its ids)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="dataset parameter")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="model hyperparameter")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patience", type=int, help="early-stopping patience in epochs (0: off)")
    p.add_argument("--max-time", type=float, metavar="S", help="wall-clock cap of the cell")
    hardware(p)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("explain", help="explain one cell: attributions scored against the "
                                       "known mathematics")
    p.add_argument("--dataset", required=True, help="a dataset name, or a dataset id of --suite")
    p.add_argument("--model", required=True, help="a model name, or a model id of --suite")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--suite", help="take this suite's settings for the cell (as run --suite)")
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="dataset parameter")
    p.add_argument("--hparam", action="append", metavar="KEY=VALUE", help="model hyperparameter")
    p.add_argument("--method", action="append", choices=("saliency", "ig", "shap", "permutation"),
                   help="attribution method (repeatable; default: saliency, ig and shap for "
                        "networks, permutation for fitted models)")
    p.add_argument("--rows", type=int, default=500, help="test rows to explain (default 500)")
    p.add_argument("--retrain-top", type=int, metavar="K",
                   help="retrain on the K most salient inputs and record the metric kept")
    p.add_argument("--max-epochs", type=int)
    p.add_argument("--lr", type=float)
    p.add_argument("--batch-size", type=int)
    p.add_argument("--patience", type=int)
    p.add_argument("--max-time", type=float, metavar="S")
    hardware(p)
    p.set_defaults(func=cmd_explain)

    p = sub.add_parser("benchmark", help="run a suite and build its leaderboard")
    suite_arguments(p)
    p.add_argument("--model", action="append", metavar="NAME",
                   help="add a registered model to the suite's models (repeatable)")
    p.add_argument("--workers", type=int, default=1,
                   help="cells run at once in worker processes (on GPUs: one per device)")
    p.add_argument("--tune-only", action="store_true",
                   help="run the suite's [tuning] searches and stop (another suite reuses "
                        "them through tuned_from)")
    p.add_argument("--cells-per-device", type=int, default=1,
                   help="workers sharing one GPU, for small cells")
    p.add_argument("--vectorise-seeds", action="store_true",
                   help="train the seeds of a cell as one stacked model where supported "
                        "(pays for small models; with --workers, a worker takes all seeds of a cell)")
    p.add_argument("--against", metavar="DIR",
                   help="at the end, compare the records cell by cell with those in DIR "
                        "(e.g. the committed reference, results)")
    p.add_argument("--tolerance", type=float, default=0.01,
                   help="--against: largest difference of the primary test metric that "
                        "counts as agreement (default 0.01)")
    g = p.add_argument_group("cluster (submitit)")
    g.add_argument("--launcher", choices=["none", "slurm", "local"], default="none",
                   help="submit the cells as a SLURM job array (local: submitit's local executor)")
    g.add_argument("--partition", help="SLURM partition")
    g.add_argument("--timeout-min", type=int, default=60, help="minutes per array task")
    g.add_argument("--gpus-per-node", type=int, default=0)
    g.add_argument("--cpus-per-task", type=int, default=2)
    g.add_argument("--mem-gb", type=int, default=8)
    g.add_argument("--no-wait", action="store_true", help="submit and return")
    hardware(p, results="results-local")  # the committed reference only when asked
    p.set_defaults(func=cmd_benchmark)

    p = sub.add_parser("rerun", help="rerun the cell of a record and compare its metrics")
    p.add_argument("record", help="path to a run record (results/runs/.../seed0.json)")
    p.add_argument("--results", help="where to keep the new record (default: not kept)")
    p.add_argument("--accelerator", default="cpu")
    p.add_argument("--tolerance", type=float, default=1e-6)
    p.set_defaults(func=cmd_rerun)

    p = sub.add_parser("leaderboard", help="rebuild the leaderboard from the records")
    suite_arguments(p, default="reference")
    p.add_argument("--results", default="results")
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("compare", help="compare models over seeds, with significance")
    p.add_argument("--models", required=True, metavar="A,B,...",
                   help="comma-separated model ids (wildcards allowed, e.g. 'gru@*')")
    p.add_argument("--datasets", default="*", metavar="PATTERN",
                   help="wildcard over dataset ids (default: all)")
    suite_arguments(p, default="reference")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level (default: 0.05)")
    p.set_defaults(func=cmd_compare)

    p = sub.add_parser("export", help="write a dataset's splits as Parquet or NPZ files")
    p.add_argument("--dataset", required=True)
    p.add_argument("--param", action="append", metavar="KEY=VALUE", help="dataset parameter")
    p.add_argument("--format", default="parquet", help="parquet (default) or npz")
    p.add_argument("out", help="the folder to write into")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("check", help="run the contract checks on a plugin's datasets and models")
    p.add_argument("--dataset", action="append", metavar="NAME", help="check this dataset too")
    p.add_argument("--model", action="append", metavar="NAME", help="check this model too")
    # also after the subcommand (mlwm check --plugin FILE.py), as well as before it
    p.add_argument("--plugin", action="append", default=[], dest="check_plugin",
                   metavar="FILE.py", help="the plugin file to check (repeatable)")
    p.set_defaults(func=cmd_check)
    return parser


def _terminate(signum: int, frame: Any) -> None:
    """SIGTERM stops a run as Ctrl-C does: the cell in progress is not recorded, finished
    ones are, and the claim of the cell is released with the process."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    global STARTED_NS
    STARTED_NS = time.time_ns()
    parser = build_parser()
    args = parser.parse_args(argv)
    args.plugin = [*args.plugin, *getattr(args, "check_plugin", [])]
    from .train.hardware import secondary_rank

    quiet = open(os.devnull, "w") if secondary_rank() else None  # DDP peers: rank 0 speaks
    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        with contextlib.redirect_stdout(quiet) if quiet else contextlib.nullcontext():
            from . import registry

            for path in args.plugin:
                registry.load_plugin_file(path)
            return int(args.func(args) or 0)
    except UserError as exc:
        print(f"mlwm: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("mlwm: interrupted; finished cells are saved, run the same command again to "
              "resume", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)
        if quiet:
            quiet.close()


if __name__ == "__main__":
    sys.exit(main())
