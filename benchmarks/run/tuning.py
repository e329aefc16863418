"""Tuning a plan before it runs: every (dataset, model) pair gets the same search
(benchmarks.tune) at the plan's first seed, and all its cells then run at the chosen
configuration.

    plan = tune_plan(plan_suite(suite), options, trials=16, sampler_seed=0)
    plan = tuned_from(plan_suite(suite), Path("results/runs/tuned"))  # committed choices

A search is stored as results/runs/<suite>/<dataset id>/<model id>/tuning.json, and one
whose configuration hash matches is reused rather than run again (as a finished record
is), so an interrupted suite resumes its tuning too. The tuned cells are made by
make_cell, so their identities (and the records' config hashes) hold the chosen values:
a changed choice reruns the cells, an unchanged one resumes them. Pairs with nothing to
tune (the constant baseline, a fitted model without a space) and models whose optional
backend is missing keep their cells as planned.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .. import registry
from ..data import MathDataModule
from ..errors import UserError
from ..tune.search import (
    DEFAULT_BATCH,
    TuningResult,
    check_search,
    read_tuning,
    search_config,
    trial_cell,
    tune,
    tuning_path,
)
from ..tune.space import SearchSpace, parse_space
from .execute import RunOptions
from .plan import Cell, SuitePlan
from .records import config_hash
from .serial import DataModuleCache

# event, the pair's first cell, its search: "start" (a search begins), "end" (it ran),
# "reused" (a finished search of this configuration, or a committed one for tuned_from),
# "stale" (tuned_from: committed under another space, used as it is), "missing"
# (tuned_from, reuse_only: none committed, or none current), "untuned" (every trial failed: defaults kept),
# "skipped" (nothing to tune, or the model cannot run here)
TuningProgress = Callable[[str, Cell, TuningResult | None], None]


def _pairs(plan: SuitePlan) -> list[list[int]]:
    """The plan's cell indices per (dataset id, model id), in plan order (the first is
    the first seed's cell, as plan_suite orders them)."""
    groups: dict[tuple[str, str], list[int]] = {}
    for i, cell in enumerate(plan.cells):
        groups.setdefault((cell.dataset.id, cell.model.id), []).append(i)
    return list(groups.values())


def _space(cell: Cell) -> SearchSpace | None:
    """The pair's space, or None when it is not searched."""
    entry = registry.get_model_entry(cell.model.name)
    space = parse_space(entry, cell.model.param_budget)
    return space if space and entry.unavailable_reason() is None else None


def _apply(cells: list[Cell], indices: list[int], params: dict[str, Any],
           space: SearchSpace, dm: MathDataModule | None) -> None:
    """Every cell of one pair at the chosen settings: the model, its fitted width and the
    budget are the first cell's made anew by make_cell; each seed keeps its own seed and
    data (its data_seed) in cell and identity."""
    tuned = trial_cell(cells[indices[0]], params, space, dm)
    for i in indices:
        c = cells[i]
        cells[i] = dataclasses.replace(
            c, model=tuned.model, budget=tuned.budget, hparams=tuned.hparams,
            identity={**c.identity, "model": tuned.identity["model"],
                      "budget": tuned.identity["budget"]})


def _notify(progress: TuningProgress | None, event: str, cell: Cell,
            result: TuningResult | None) -> None:
    if progress:
        progress(event, cell, result)


def tune_plan(plan: SuitePlan, options: RunOptions, trials: int, sampler_seed: int,
              progress: TuningProgress | None = None, *, batch: int = DEFAULT_BATCH,
              stacked: bool = True, reuse_only: bool = False) -> SuitePlan:
    """The plan with every searched pair at its chosen configuration, each search run
    (or reused) at the pair's first seed. options.force searches again. reuse_only
    (a leaderboard or compare of a tuned suite) runs no search: a pair without a current
    one keeps its planned cells ("missing")."""
    check_search(trials, sampler_seed, batch)
    cells = list(plan.cells)
    cache = DataModuleCache()
    for indices in _pairs(plan):
        first = cells[indices[0]]
        space = _space(first)
        if space is None:
            _notify(progress, "skipped", first, None)
            continue
        wanted = config_hash(search_config(first, space, trials, sampler_seed, batch))
        path = tuning_path(options.results_dir, first.suite, first.dataset.id, first.model.id)
        result = None if options.force else read_tuning(path)
        if result is not None and result.config_hash == wanted:
            _notify(progress, "reused", first, result)
        elif reuse_only:
            _notify(progress, "missing", first, None)
            continue
        else:
            _notify(progress, "start", first, None)
            result = tune(first, cache.get(first), options.hardware, trials, sampler_seed,
                          batch=batch, stacked=stacked)
            try:
                result.write(options.results_dir)
            except OSError as exc:
                raise UserError(f"cannot write {path} ({exc.strerror or exc}); the searches "
                                "finished before it are saved: free the space and rerun") from None
            _notify(progress, "end", first, result)
        if result.chosen is None:
            _notify(progress, "untuned", first, result)
            continue
        _apply(cells, indices, result.chosen["params"], space, cache.get(first))
    return dataclasses.replace(plan, cells=cells, incompatible=list(plan.incompatible),
                               cannot_run=set(plan.cannot_run))


def _search_one(job: tuple[Any, RunOptions, int, int, int, bool, tuple[str, ...]]) -> str:
    """One pair's search in a worker process (search_in_workers): run it, write it."""
    import torch

    first, options, trials, sampler_seed, batch, stacked, plugin_files = job
    torch.set_num_threads(1)
    registry.load_plugins(plugin_files)
    from .plan import make_datamodule

    result = tune(first, make_datamodule(first.dataset), options.hardware, trials,
                  sampler_seed, batch=batch, stacked=stacked)
    result.write(options.results_dir)
    return f"{first.dataset.id} · {first.model.id}: {result.cost_s:.0f} s"


def search_in_workers(plan: SuitePlan, options: RunOptions, trials: int, sampler_seed: int,
                      workers: int, plugin_files: tuple[str, ...] = (),
                      progress: Callable[[str], None] | None = None, *,
                      batch: int = DEFAULT_BATCH, stacked: bool = True) -> int:
    """Run the plan's missing searches in `workers` processes (one torch thread each),
    writing each tuning.json; tune_plan then finds them all and applies them. Returns
    how many ran. The searches are independent, so they parallelise as cells do."""
    import multiprocessing as mp

    check_search(trials, sampler_seed, batch)
    jobs = []
    for indices in _pairs(plan):
        first = plan.cells[indices[0]]
        space = _space(first)
        if space is None:
            continue
        wanted = config_hash(search_config(first, space, trials, sampler_seed, batch))
        path = tuning_path(options.results_dir, first.suite, first.dataset.id, first.model.id)
        found = None if options.force else read_tuning(path)
        if found is None or found.config_hash != wanted:
            jobs.append((first, options, trials, sampler_seed, batch, stacked,
                         tuple(plugin_files)))
    if not jobs:
        return 0
    from .workers import die_with_parent

    with mp.get_context("spawn").Pool(workers, initializer=die_with_parent,
                                      maxtasksperchild=20) as pool:
        try:
            for line in pool.imap_unordered(_search_one, jobs):
                if progress:
                    progress(line)
        except BaseException:  # Ctrl-C, SIGTERM, an error: stop the searches now.
            # Pool.terminate's SIGTERM is caught by Lightning inside fit (a failed trial,
            # and the search goes on), so the workers are killed; finished searches are
            # written, the ones in progress run again next time.
            for proc in getattr(pool, "_pool", ()):
                proc.kill()
            raise
    return len(jobs)


def tuned_from(plan: SuitePlan, folder: str | Path,
               progress: TuningProgress | None = None) -> SuitePlan:
    """The plan at the configurations another suite's searches chose: `folder` holds
    <dataset id>/<model id>/tuning.json (e.g. results/runs/tuned). A pair without one
    keeps its planned cells ("missing"); one whose search was of another dataset or
    model is a UserError, as is a choice the model no longer accepts."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UserError(f"tuned_from: {folder} is not a folder of tuning results "
                        "(results/runs/<tuned suite>)")
    cells = list(plan.cells)
    cache = DataModuleCache()
    for indices in _pairs(plan):
        first = cells[indices[0]]
        space = _space(first)
        if space is None:
            _notify(progress, "skipped", first, None)
            continue
        path = folder / first.dataset.id / first.model.id / "tuning.json"
        result = read_tuning(path)
        if result is None:
            _notify(progress, "missing", first, None)
            continue
        dataset = result.config.get("dataset", {}).get("name")
        if (result.model, dataset) != (first.model.name, first.identity["dataset"]["name"]):
            raise UserError(f"{path} is a search of model {result.model!r} on dataset "
                            f"{dataset!r}, not of {first.model.name!r} on "
                            f"{first.identity['dataset']['name']!r}; give the pair another id")
        if result.chosen is None:
            _notify(progress, "untuned", first, result)
            continue
        unknown = sorted(set(result.chosen["params"]) - {d.name for d in space.dims})
        if unknown:
            raise UserError(f"{path} chose {', '.join(unknown)}, which model "
                            f"{first.model.name!r} no longer searches; tune that suite again")
        stale = result.config.get("space") != space.to_json()
        _notify(progress, "stale" if stale else "reused", first, result)
        _apply(cells, indices, result.chosen["params"], space, cache.get(first))
    return dataclasses.replace(plan, cells=cells, incompatible=list(plan.incompatible),
                               cannot_run=set(plan.cannot_run))
