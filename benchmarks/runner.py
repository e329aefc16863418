"""The runner: expands a suite into cells, trains each through the common Trainer (or fits
a fitted model), and writes one record per cell. A cell whose record already exists with
the same configuration is not run again, so an interrupted suite resumes where it
stopped; a failure in one cell becomes a `failed` record and the suite goes on.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import signal
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import EarlyStopping
from torch import nn

from . import registry
from .budget import fit_width
from .contract import DatasetSpec, Modality, choose_view
from .data import MathDataModule
from .errors import BackendUnavailable, UserError
from .module import BenchModule, Diverged
from .records import (
    SCHEMA_VERSION,
    config_hash,
    environment,
    read_record,
    record_path,
    release_claim,
    remove_debris,
    try_claim,
    uses_gpu,
    write_json_atomic,
)
from .suite import DatasetConfig, ModelConfig, Suite
from .trainer import BestWeights, TrainBudget, build_trainer, compile_backbone


@dataclass(frozen=True)
class RunOptions:
    """Where and on what hardware cells run (not part of a cell's identity)."""

    results_dir: Path = Path("results")
    accelerator: str = "auto"     # Lightning accelerator: auto, cpu, gpu
    devices: int | str = 1        # devices per cell (DDP when > 1)
    strategy: str = "auto"
    num_nodes: int = 1
    retry_failed: bool = True     # rerun cells whose record says failed
    force: bool = False           # rerun every cell, finished or not
    vectorise_seeds: bool = False  # train the seeds of a cell together (torch.func) where supported


@dataclass(frozen=True)
class Cell:
    suite: str
    dataset: DatasetConfig
    model: ModelConfig
    seed: int
    budget: TrainBudget

    @property
    def label(self) -> str:
        return f"{self.dataset.id} · {self.model.id} · seed {self.seed}"

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.dataset.id, self.model.id, self.seed)


@dataclass
class SuitePlan:
    """Cells to run, and the (dataset, model) pairs left out with their reason."""

    cells: list[Cell] = field(default_factory=list)
    incompatible: list[tuple[str, str, str]] = field(default_factory=list)


def cell_config(cell: Cell, dm: MathDataModule) -> dict[str, Any]:
    """Everything that defines a cell's result; its hash decides whether to rerun."""
    entry = registry.get_model_entry(cell.model.name)
    hparams = {**registry.defaults(entry.params), **cell.model.hparams}
    return {"dataset": {"name": dm.name, "version": dm.version, "params": dm.params},
            "model": {"name": cell.model.name, "hparams": hparams,
                      "param_budget": cell.model.param_budget},
            "seed": cell.seed, "budget": cell.budget.to_dict()}


def make_datamodule(cfg: DatasetConfig) -> MathDataModule:
    return registry.create_dataset(cfg.name, **cfg.params)


def incompatibility(spec: DatasetSpec, model_name: str) -> str | None:
    entry = registry.get_model_entry(model_name)
    if spec.task not in entry.tasks:
        return (f"model {model_name!r} applies to {', '.join(t.value for t in entry.tasks)} "
                f"tasks; dataset {spec.name!r} is {spec.task.value}")
    if choose_view(spec, entry.modalities) is None:
        return (f"model {model_name!r} accepts {', '.join(m.value for m in entry.modalities)}; "
                f"dataset {spec.name!r} offers {', '.join(m.value for m in spec.modalities)}")
    return None


def plan_suite(suite: Suite) -> SuitePlan:
    """All compatible cells of a suite, dataset-major so each dataset is generated once.
    Datasets and models are checked (names, parameters) before anything trains."""
    plan = SuitePlan()
    for dcfg in suite.datasets:
        spec = make_datamodule(dcfg).spec
        for mcfg in suite.models:
            registry.get_model_entry(mcfg.name)  # unknown names fail here, before training
            if not mcfg.applies_to(dcfg.id):
                continue
            reason = incompatibility(spec, mcfg.name)
            if reason:
                plan.incompatible.append((dcfg.id, mcfg.id, reason))
                continue
            if mcfg.param_budget is not None:  # an unreachable budget fails before training
                entry = registry.get_model_entry(mcfg.name)
                fit_width(mcfg.name, spec.for_view(choose_view(spec, entry.modalities)),
                          mcfg.param_budget, dict(mcfg.hparams))
            budget = dataclasses.replace(suite.budget, **dcfg.budget)
            for seed in suite.seeds:
                plan.cells.append(Cell(suite.name, dcfg, mcfg, seed, budget))
    return plan


def finished_record(cell: Cell, dm: MathDataModule, options: RunOptions) -> dict | None:
    """The existing record of this exact cell configuration, if it need not run again."""
    if options.force:
        return None
    path = cell.path(options.results_dir)
    if not path.is_file():
        return None
    try:
        rec = read_record(path)
    except ValueError:
        return None
    if rec.get("config_hash") != config_hash(cell_config(cell, dm)):
        return None
    if rec["status"] == "failed" and options.retry_failed:
        return None
    return rec


def count_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _train_neural(backbone: nn.Module, dm: MathDataModule, spec: DatasetSpec, cell: Cell,
                  options: RunOptions) -> dict[str, Any]:
    budget = cell.budget
    mean, std = dm.target_stats() if spec.task.value == "regression" else (0.0, 1.0)
    eval_splits = tuple(s for s in ("test", "ood_test") if s in dm.splits)
    if budget.compile:
        compile_backbone(backbone, budget.compile, uses_gpu(options.accelerator))
    module = BenchModule(backbone, spec, lr=budget.train_lr, weight_decay=budget.weight_decay,
                         optimizer=budget.optimizer, target_mean=mean, target_std=std,
                         eval_splits=eval_splits)
    monitor = f"val/{spec.metric}"
    best = BestWeights(monitor, spec.higher_is_better)
    trainer = build_trainer(budget, [best], accelerator=options.accelerator,
                            devices=options.devices, strategy=options.strategy,
                            num_nodes=options.num_nodes, monitor=monitor,
                            higher_is_better=spec.higher_is_better)
    t0 = time.perf_counter()
    with _interrupts_propagate(trainer):
        trainer.fit(module, train_dataloaders=dm.loader("train", shuffle=True),
                    val_dataloaders=dm.loader("val"))
    train_s = time.perf_counter() - t0
    best.restore(module)
    t1 = time.perf_counter()
    with _interrupts_propagate(trainer):
        trainer.test(module, dataloaders=[dm.loader(s) for s in eval_splits], verbose=False)
    eval_s = time.perf_counter() - t1
    logged = {k: float(v) for k, v in trainer.callback_metrics.items()}
    metrics: dict[str, dict[str, float]] = {"val": best.best_metrics}
    for split in eval_splits:
        metrics[split] = {k.split("/", 1)[1]: v for k, v in logged.items()
                          if k.startswith(f"{split}/")}
    epochs = trainer.current_epoch
    stopped_early = any(isinstance(c, EarlyStopping) and c.stopped_epoch > 0
                        for c in trainer.callbacks)
    return {"metrics": metrics, "epochs": epochs,
            "best_epoch": best.best_epoch,
            "stopped_by": stop_reason(epochs, budget, stopped_early),
            "train_s": train_s, "eval_s": eval_s,
            "samples_per_s": dm.split_size("train") * max(epochs, 1) / max(train_s, 1e-9),
            "history": module.history}


def stop_reason(epochs: int, budget: TrainBudget, stopped_early: bool) -> str:
    """Why training ended: "max_epochs", "early_stopping", or "time_cap" (budget.max_time_s).
    A time cap makes the metric depend on the machine's speed; the leaderboard says so."""
    if epochs >= budget.max_epochs:
        return "max_epochs"
    return "early_stopping" if stopped_early else "time_cap"


@contextlib.contextmanager
def _interrupts_propagate(trainer: Any) -> Iterator[None]:
    """Lightning turns Ctrl-C inside fit into sys.exit(1) and ignores further SIGINTs;
    give the suite a KeyboardInterrupt back, so it stops cleanly with a resume message."""
    try:
        yield
    except SystemExit as exc:
        if trainer.interrupted:
            signal.signal(signal.SIGINT, signal.default_int_handler)
            raise KeyboardInterrupt("interrupted during training") from exc
        raise


def _fit_model(model: Any, dm: MathDataModule, spec: DatasetSpec, cell: Cell) -> dict[str, Any]:
    from .evaluation import evaluate_outputs

    view = spec.modality
    x, y = dm.arrays("train", view)
    t0 = time.perf_counter()
    model.fit(x, y, seed=cell.seed)
    train_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    metrics = {}
    for split in dm.splits:
        if split == "train":
            continue
        xs, _ = dm.arrays(split, view)
        out = torch.as_tensor(model.predict(xs)).float()
        metrics[split] = evaluate_outputs(out, dm.target(split), spec)
    eval_s = time.perf_counter() - t1
    return {"metrics": metrics, "epochs": 1, "best_epoch": 0, "train_s": train_s,
            "eval_s": eval_s, "samples_per_s": len(x) / max(train_s, 1e-9), "history": [],
            "details": model.describe() if hasattr(model, "describe") else {}}


def model_setup(cell: Cell, dm: MathDataModule
                ) -> tuple[registry.ModelEntry, Modality, DatasetSpec, dict[str, Any]]:
    """(model entry, view, spec narrowed to it, factory hparams with a budget's width)."""
    entry = registry.get_model_entry(cell.model.name)
    view = choose_view(dm.spec, entry.modalities)
    if view is None:
        raise UserError(incompatibility(dm.spec, cell.model.name) or "incompatible pair")
    spec = dm.spec.for_view(view)
    given = dict(cell.model.hparams)
    if cell.model.param_budget is not None:
        given[entry.width] = fit_width(cell.model.name, spec, cell.model.param_budget, given)[0]
    return entry, view, spec, given


def new_record(cell: Cell, dm: MathDataModule, spec: DatasetSpec, given: dict[str, Any],
               options: RunOptions) -> dict[str, Any]:
    """A record of the cell before it runs: identity, configuration and environment."""
    entry = registry.get_model_entry(cell.model.name)
    return {
        "schema_version": SCHEMA_VERSION, "suite": cell.suite,
        "dataset": {"id": cell.dataset.id, "name": dm.name, "version": dm.version,
                    "params": dm.params, "content_hash": "", **_spec_fields(spec)},
        "model": {"id": cell.model.id, "name": cell.model.name,
                  "hparams": {**registry.defaults(entry.params), **given},
                  "kind": entry.kind, "baseline": entry.baseline, "n_params": None,
                  "param_budget": cell.model.param_budget},
        "seed": cell.seed, "budget": cell.budget.to_dict(),
        "status": "ok", "reason": None, "metrics": {}, "epochs": 0, "best_epoch": None,
        "stopped_by": None,  # neural cells: max_epochs, early_stopping or time_cap
        "time": {}, "samples_per_s": None, "history": [],
        "config_hash": config_hash(cell_config(cell, dm)),
        "environment": environment(options.accelerator), "created": _now(),
    }


def run_cell(cell: Cell, dm: MathDataModule, options: RunOptions,
             trained: dict[str, Any] | None = None) -> dict[str, Any]:
    """Train and evaluate one cell; return its record (written atomically to disk).
    `trained`: the outcome of a vectorised run of several seeds (benchmarks.vectorised),
    recorded through the same code instead of training here."""
    import lightning as L

    entry, view, spec, given = model_setup(cell, dm)
    record = new_record(cell, dm, spec, given, options)
    unavailable = entry.unavailable_reason()
    t0 = time.perf_counter()
    try:
        if unavailable:
            record.update(status="skipped", reason=unavailable)
        else:
            dm.prepare_data()
            dm.setup("fit")
            record["dataset"]["content_hash"] = dm.content_hash
            record["dataset"]["sizes"] = {s: dm.split_size(s) for s in dm.splits}
            dm.configure(view=view, batch_size=cell.budget.train_batch_size, seed=cell.seed,
                         chunk=cell.budget.chunk or 1 << 30)
            if trained is not None:
                record["model"]["n_params"] = trained["n_params"]
                if trained.get("failed"):
                    raise Diverged(trained["failed"].removeprefix("diverged: "))
                out = {k: v for k, v in trained.items() if k not in ("n_params", "failed")}
            else:
                L.seed_everything(cell.seed, workers=False, verbose=False)
                model = registry.create_model(cell.model.name, spec, **given)
                if isinstance(model, nn.Module):
                    record["model"]["n_params"] = count_params(model)
                    out = _train_neural(model, dm, spec, cell, options)
                else:
                    out = _fit_model(model, dm, spec, cell)
                    record["model"]["n_params"] = int(getattr(model, "n_params", 0) or 0)
            record["model"]["details"] = _recovery_gate(out.pop("details", {}), out["metrics"])
            record.update(metrics=out["metrics"], epochs=out["epochs"],
                          best_epoch=out["best_epoch"], samples_per_s=out["samples_per_s"],
                          history=out["history"], stopped_by=out.get("stopped_by"))
            record["time"] = {"train_s": out["train_s"], "eval_s": out["eval_s"]}
    except UserError:
        raise
    except BackendUnavailable as exc:
        record.update(status="skipped", reason=str(exc).splitlines()[0] if str(exc) else
                      type(exc).__name__)
    except Diverged as exc:
        record.update(status="failed", reason=f"diverged: {exc}")
    except Exception as exc:  # any bug or failure in one cell must not lose the others
        record.update(status="failed", reason=f"{type(exc).__name__}: {exc}".splitlines()[0],
                      traceback=traceback.format_exc(limit=8))
    record["time"]["total_s"] = time.perf_counter() - t0
    record = _finite(record)
    if not secondary_rank():  # under DDP, rank 0 alone writes
        write_json_atomic(cell.path(options.results_dir), record)
    return record


def secondary_rank() -> bool:
    """True in a DDP process other than global rank 0 (Lightning sets these variables
    for the processes it launches)."""
    return any(os.environ.get(v, "0") not in ("", "0") for v in ("LOCAL_RANK", "NODE_RANK"))


def _recovery_gate(details: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """SRBench's rule: exact recovery counts only when test R^2 > 0.5 (a model never sees
    the test split, so the gate is applied here, after scoring)."""
    r2 = metrics.get("test", {}).get("r2")
    if details.get("exact_recovery") and (r2 is None or r2 <= 0.5):
        details = {**details, "exact_recovery": False,
                   "recovery_check": f"not credited: test r2 {r2} <= 0.5"}
    return details


def _spec_fields(spec: DatasetSpec) -> dict[str, Any]:
    s = spec.summary()
    return {k: s[k] for k in ("task", "metric", "higher_is_better", "description", "view",
                              "views", "num_outputs", "input_shape")} | {
        "has_ood": spec.has_ood}


def _now() -> str:
    from datetime import datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def _finite(obj: Any) -> Any:
    """NaN and inf become None: records are strict JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and abs(obj) != float("inf") else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


ProgressFn = Callable[[str, Cell, int, int, dict[str, Any] | None], None]


def claim_unfinished(cell: Cell, dm: MathDataModule, options: RunOptions
                     ) -> tuple[Path | None, dict[str, Any] | None]:
    """(claim, None) when this process now holds the unfinished cell (debris of a killed
    writer cleared); (None, record) when it is finished; (None, None) when another
    process holds it."""
    done = finished_record(cell, dm, options)
    if done is not None:
        return None, done
    path = cell.path(options.results_dir)
    claim = try_claim(path)
    if claim is None:
        return None, None
    done = finished_record(cell, dm, options)  # it may have finished meanwhile
    if done is not None:
        release_claim(claim)
        return None, done
    remove_debris(path)
    return claim, None


def run_claimed(cell: Cell, dm: MathDataModule, options: RunOptions,
                on_start: Callable[[], None] | None = None) -> tuple[str, dict[str, Any] | None]:
    """Run a cell unless it is finished or another process holds it: ("done", record),
    ("busy", None) or ("ran", record). The claim is released however the cell ends."""
    if secondary_rank():  # a DDP peer follows rank 0 cell by cell, which holds the claim
        done = finished_record(cell, dm, options)
        return ("done", done) if done is not None else ("ran", run_cell(cell, dm, options))
    claim, done = claim_unfinished(cell, dm, options)
    if done is not None:
        return "done", done
    if claim is None:
        return "busy", None
    try:
        if on_start:
            on_start()
        return "ran", run_cell(cell, dm, options)
    finally:
        release_claim(claim)


class DataModuleCache:
    """One dataset in memory at a time: cells are ordered dataset-major."""

    def __init__(self) -> None:
        self.key: str | None = None
        self.dm: MathDataModule | None = None

    def get(self, cfg: DatasetConfig) -> MathDataModule:
        key = f"{cfg.name}:{sorted(cfg.params.items())}"
        if key != self.key:
            self.key, self.dm = key, make_datamodule(cfg)
        return self.dm


def same_but_seed(cell: Cell) -> tuple[Any, ...]:
    return (cell.dataset, cell.model, cell.budget)


WorkItem = list[tuple[int, Cell]]  # (index in the plan, cell): what a runner takes at once

PROGRESS_EVENT = {"ran": "end", "done": "resumed", "busy": "busy"}  # run_claimed's outcomes


def work_items(cells: list[Cell], vectorise_seeds: bool) -> list[WorkItem]:
    """A cell each, or with vectorise_seeds all the seeds of a cell (same dataset, model and
    budget), which may then train as one vectorised model."""
    indexed = list(enumerate(cells))
    if not vectorise_seeds:
        return [[ic] for ic in indexed]
    return [list(g) for _, g in itertools.groupby(indexed, key=lambda ic: same_but_seed(ic[1]))]


def run_item(item: WorkItem, dm: MathDataModule, options: RunOptions,
             on_start: Callable[[int], None] = lambda index: None
             ) -> Iterator[tuple[int, str, dict[str, Any] | None]]:
    """Run the cells of one work item, yielding (index, outcome, record) per cell with
    run_claimed's outcomes; `on_start(index)` is called before a cell trains. With
    options.vectorise_seeds the item's seeds train together where supported."""
    together: dict[int, dict[str, Any]] = {}
    if options.vectorise_seeds and len(item) > 1:
        index_of = {cell.seed: index for index, cell in item}
        together = run_vectorised([c for _, c in item], dm, options,
                                  on_start=lambda cells: [on_start(index_of[c.seed])
                                                          for c in cells])
    for index, cell in item:
        if cell.seed in together:
            yield index, "ran", together[cell.seed]
        else:
            yield (index, *run_claimed(cell, dm, options, on_start=lambda i=index: on_start(i)))


def run_vectorised(group: list[Cell], dm: MathDataModule, options: RunOptions,
                   on_start: Callable[[list[Cell]], None] | None = None
                   ) -> dict[int, dict[str, Any]]:
    """Train the unfinished seeds of one (dataset, model, budget) together when the model
    supports it (benchmarks.vectorised); the records of the cells it ran, by seed. Cells
    it did not take (finished, claimed elsewhere, unsupported) run the usual way after.
    `on_start(cells)` is called once the cells to train together are claimed."""
    from .vectorised import (
        NotVectorisable,
        device_for,
        supports_vectorised,
        train_seeds_vectorised,
    )

    entry = registry.get_model_entry(group[0].model.name)
    if entry.kind != "neural" or entry.unavailable_reason() or secondary_rank():
        return {}
    pending = [c for c in group if finished_record(c, dm, options) is None]
    if len(pending) < 2:
        return {}
    try:
        device_for(options)
        _, _, spec, given = model_setup(pending[0], dm)
        if supports_vectorised(entry.name, spec, given, pending[0].budget):
            return {}
    except (NotVectorisable, UserError):
        return {}
    claims: list[tuple[Cell, Path]] = []
    try:
        for c in pending:
            lock, _ = claim_unfinished(c, dm, options)
            if lock is not None:
                claims.append((c, lock))
        cells = [c for c, _ in claims]
        if len(cells) < 2:
            return {}
        if on_start:
            on_start(cells)
        try:
            outs = train_seeds_vectorised(cells, dm, options)
        except NotVectorisable:
            return {}
        return {c.seed: run_cell(c, dm, options, trained=o)
                for c, o in zip(cells, outs, strict=True)}
    finally:
        for _, lock in claims:
            release_claim(lock)


def iter_suite(suite: Suite, options: RunOptions, progress: ProgressFn | None = None,
               plan: SuitePlan | None = None
               ) -> Iterator[tuple[Cell, dict[str, Any] | None, bool]]:
    """Run a suite cell by cell, yielding (cell, record, was_run); record is None for a cell
    another process is running. `progress(event, cell, index, total, record)` is called
    with event "start" before and "end" after a cell, "resumed" for one finished before,
    "busy" for one claimed elsewhere. `plan`: the suite's plan, if already made.
    With options.vectorise_seeds, the seeds of a cell train together where supported."""
    plan = plan or plan_suite(suite)
    total = len(plan.cells)
    cache = DataModuleCache()

    def notify(event: str, index: int, record: dict[str, Any] | None) -> None:
        if progress:
            progress(event, plan.cells[index], index, total, record)

    for item in work_items(plan.cells, options.vectorise_seeds):
        dm = cache.get(item[0][1].dataset)
        for index, outcome, record in run_item(item, dm, options,
                                               on_start=lambda i: notify("start", i, None)):
            notify(PROGRESS_EVENT[outcome], index, record)
            yield plan.cells[index], record, outcome == "ran"
