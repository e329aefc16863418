"""One cell's execution: train (or fit) the model the plan resolved, evaluate it, and
write its record atomically. A failure in the cell becomes a `failed` record and the
suite goes on; a model whose optional backend is missing is `skipped` with the reason."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import registry
from ..contract import DatasetSpec
from ..data import MathDataModule
from ..errors import BackendUnavailable, UserError
from ..train.hardware import Hardware, secondary_rank  # noqa: F401 (re-exported)
from ..train.outcome import TrainOutcome
from .environment import environment
from .files import write_bytes_atomic
from .plan import Cell
from .records import SCHEMA_VERSION, RunRecord


@dataclass(frozen=True)
class RunOptions:
    """Where and on what hardware cells run (not part of a cell's identity)."""

    results_dir: Path = Path("results")
    hardware: Hardware = field(default_factory=Hardware)
    retry_failed: bool = True     # rerun cells whose record says failed
    force: bool = False           # rerun every cell whose record predates ...
    forced_since_ns: int = 0      # ... this moment (the command's start): a record written
                                  # after it, by this run or another --force runner
                                  # started at the same time, is done
    fresh_data: bool = False      # regenerate each dataset's cached files first (--force)
    vectorise_seeds: bool = False  # train the seeds of a cell together (torch.func) where supported
    logger: str = ""              # a Lightning logger per cell: csv, tensorboard or mlflow
    explain: tuple[str, ...] = ()  # attribution methods to run after each cell of a
                                   # dataset that declares ground truth (explain = true)
    keep_weights: bool = False    # keep each trained network's weights beside its record
    explain_rows: int = 500       # test rows explained (the first ones)


def _spec_fields(spec: DatasetSpec) -> dict[str, Any]:
    s = spec.summary()
    return {k: s[k] for k in ("task", "metric", "higher_is_better", "description", "view",
                              "encoding", "views", "num_outputs", "input_shape")} | {
        "has_ood": spec.has_ood}


def new_record(cell: Cell, dm: MathDataModule, options: RunOptions, **fields: Any) -> RunRecord:
    """The record of a cell, from its plan: identity, configuration and environment; the
    outcome's fields are given by the caller."""
    entry = registry.get_model_entry(cell.model.name)
    spec = dm.spec.for_view(cell.view)
    data = {
        "schema_version": SCHEMA_VERSION, "suite": cell.suite,
        "dataset": {"id": cell.dataset.id, "name": dm.name, "version": dm.version,
                    "params": dm.params, "content_hash": dm.content_hash or "",
                    **_spec_fields(spec)},
        "model": {"id": cell.model.id, "name": cell.model.name, "hparams": cell.hparams,
                  "kind": entry.kind, "baseline": entry.baseline, "n_params": None,
                  "param_budget": cell.model.param_budget},
        "seed": cell.seed, "budget": cell.budget.to_dict(),
        "status": "ok", "reason": None, "metrics": {}, "epochs": 0, "best_epoch": None,
        "stopped_by": None, "time": {"total_s": 0.0}, "samples_per_s": None, "history": [],
        "config_hash": cell.config_hash,
        "environment": environment(options.hardware.accelerator),
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    for key, value in fields.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            data[key] = {**data[key], **value}
        else:
            data[key] = value
    return RunRecord.model_validate(data)


def outcome_fields(out: TrainOutcome) -> dict[str, Any]:
    """A TrainOutcome as record fields."""
    return {"metrics": out.metrics, "epochs": out.epochs, "best_epoch": out.best_epoch,
            "stopped_by": out.stopped_by, "samples_per_s": out.samples_per_s,
            "history": out.history, "model": {"n_params": out.n_params, "details": out.details},
            "time": {"train_s": out.train_s, "eval_s": out.eval_s}}


def _logger(kind: str, cell: Cell, results_dir: Path) -> Any:
    """A Lightning logger for one cell under results/logs/<suite>/<dataset>/<model>/seed<k>."""
    if not kind:
        return False
    save = Path(results_dir) / "logs" / cell.suite / cell.dataset.id / cell.model.id
    name = f"seed{cell.seed}"
    if kind == "csv":
        from lightning.pytorch.loggers import CSVLogger

        return CSVLogger(save, name=name, version="")
    if kind == "tensorboard":
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save, name=name, version="")
    from lightning.pytorch.loggers import MLFlowLogger

    return MLFlowLogger(experiment_name=cell.suite, run_name=f"{cell.label}",
                        tracking_uri=f"file:{Path(results_dir).resolve() / 'mlruns'}")


class CellTimeout(Exception):
    """A cell ran past its hard wall-clock cap (inside a step: a stuck forward)."""


def hard_cap_s(budget: Any) -> float:
    """The hard wall-clock cap of a cell: Lightning's own max_time stops training at a
    step's end; this one also stops a step that never ends (0: none). The grace beyond
    1.5 x max_time_s covers data and testing ($MLWM_HARD_CAP_GRACE_S, default 30 s)."""
    grace = float(os.environ.get("MLWM_HARD_CAP_GRACE_S", 30.0))
    return 1.5 * budget.max_time_s + grace if budget.max_time_s > 0 else 0.0


@contextlib.contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """CellTimeout in this (main) thread after `seconds` (SIGALRM: interrupts sleeps and
    Python code; a worker's parent kills what even that cannot stop)."""
    if seconds <= 0 or threading.current_thread() is not threading.main_thread():
        yield
        return

    def expire(signum: int, frame: Any) -> None:
        raise CellTimeout(f"the cell ran past its hard cap of {seconds:.0f} s "
                          "(1.5 x max_time_s + grace) inside a step")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def train_cell(cell: Cell, dm: MathDataModule, options: RunOptions) -> TrainOutcome:
    """Build the model of a cell and train or fit it (the datamodule is set up)."""
    import lightning as L

    from ..train.fitted import fit_model
    from ..train.neural import train_neural

    spec = dm.spec.for_view(cell.view)
    L.seed_everything(cell.seed, workers=False, verbose=False)
    model = registry.create_model(cell.model.name, spec, **cell.hparams)
    if registry.get_model_entry(cell.model.name).kind == "fitted":
        return fit_model(model, dm, spec, cell.seed)
    return train_neural(model, dm, spec, cell.budget, options.hardware,
                        _logger(options.logger, cell, options.results_dir))


def prepare(cell: Cell, dm: MathDataModule) -> None:
    """Generate (or load) the data and configure it for this cell's view and batches."""
    dm.prepare_data()
    dm.setup("fit")
    dm.configure(view=cell.view, batch_size=cell.budget.train_batch_size, seed=cell.seed,
                 chunk=cell.budget.chunk or 1 << 30)


def run_cell(cell: Cell, dm: MathDataModule, options: RunOptions,
             trained: TrainOutcome | None = None) -> RunRecord:
    """Train and evaluate one cell; return its record (written atomically to disk).
    `trained`: the outcome of a stacked run of several seeds, recorded through the same
    code instead of training here."""
    from ..train.evaluation import NonFiniteOutputs
    from ..train.module import Diverged

    entry = registry.get_model_entry(cell.model.name)
    unavailable = entry.unavailable_reason()
    t0 = time.perf_counter()
    fields: dict[str, Any] = {}
    out: TrainOutcome | None = None
    try:
        if unavailable:
            fields = {"status": "skipped", "reason": unavailable}
        else:
            prepare(cell, dm)
            fields["dataset"] = {"content_hash": dm.content_hash,
                                 "sizes": {s: dm.split_size(s) for s in dm.splits}}
            if trained is not None:
                out = trained
            else:
                with deadline(hard_cap_s(cell.budget)):
                    out = train_cell(cell, dm, options)
            if out.failed:  # a stacked member's failure, worded as the plain path's
                fields.update(status="failed", reason=out.failed, model={"n_params": out.n_params})
            else:
                fields.update(outcome_fields(out))
    except UserError:
        raise
    except BackendUnavailable as exc:
        fields.update(status="skipped", reason=_one_line(exc))
    except Diverged as exc:  # its message is the reason ("diverged: ...")
        fields.update(status="failed", reason=str(exc))
    except NonFiniteOutputs as exc:  # at test: the model, not the harness, is at fault
        fields.update(status="failed", reason=_one_line(exc))
    except CellTimeout as exc:
        fields.update(status="failed", reason=f"time_cap: {exc}", stopped_by="time_cap")
    except SystemExit as exc:  # a model that calls sys.exit fails its cell, not the suite
        fields.update(status="failed", reason=f"the model called sys.exit({exc.code})")
    except MemoryError:
        fields.update(status="failed", reason="MemoryError: the cell ran out of memory")
    except Exception as exc:  # any bug or failure in one cell must not lose the others
        fields.update(status="failed", reason=_one_line(exc),
                      traceback=traceback.format_exc(limit=8))
    if fields.get("status", "ok") == "ok" and not unavailable:
        problem = _non_finite_primary(fields, dm.spec.metric)
        if problem:
            fields.update(status="failed", reason=problem)
    if fields.get("status") in ("failed", "skipped"):
        for key in ("metrics", "history", "epochs", "best_epoch", "samples_per_s"):
            fields.pop(key, None)  # a failed record holds no partial results
        if fields.get("stopped_by") != "time_cap":
            fields.pop("stopped_by", None)
        fields.get("model", {}).pop("details", None)
    fields.setdefault("time", {})["total_s"] = time.perf_counter() - t0
    fields = _finite(fields)
    if fields.get("status", "ok") == "ok" and out is not None and out.predictions and \
            not secondary_rank():
        try:
            fields["predictions"] = write_predictions(cell.path(options.results_dir), out, dm)
        except OSError as exc:
            raise UserError(f"cannot write the predictions of {cell.label} ({exc.strerror or exc});"
                            " free the space and run the same command to resume") from None
    if fields.get("status", "ok") == "ok" and out is not None and not secondary_rank() \
            and (options.explain or options.keep_weights):
        from .explaining import after_training

        after_training(cell, dm, out, cell.path(options.results_dir), cell.config_hash,
                       options.explain, options.keep_weights, options.explain_rows)
    try:
        record = new_record(cell, dm, options, **fields)
    except ValueError as exc:  # a bug here must still leave a record of the cell
        record = new_record(cell, dm, options, status="failed", time=fields["time"],
                            reason=f"the record did not validate: {_one_line(exc)}")
    if not secondary_rank():  # under DDP, rank 0 alone writes
        path = cell.path(options.results_dir)
        try:
            record.write(path)
        except OSError as exc:
            raise UserError(f"cannot write the record {path} ({exc.strerror or exc}); the "
                            "cells finished before it are saved: free the space or fix the "
                            "folder and run the same command to resume") from None
    return record


def write_predictions(record_path: Path, out: TrainOutcome, dm: MathDataModule
                      ) -> dict[str, Any]:
    """The per-row test predictions (and targets) beside the record, written before it
    (atomically), so that a record never names a missing file."""
    import hashlib
    import io

    import numpy as np

    arrays = {}
    for split, pred in out.predictions.items():
        arrays[f"{split}/pred"] = np.asarray(pred)
        arrays[f"{split}/target"] = dm.target(split).numpy()
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    data = buf.getvalue()
    name = record_path.name.replace(".json", ".preds.npz")
    write_bytes_atomic(record_path.with_name(name), data)
    return {"file": name, "sha256": hashlib.sha256(data).hexdigest(),
            "splits": sorted(out.predictions)}


def _non_finite_primary(fields: dict[str, Any], metric: str) -> str | None:
    """Why an otherwise ok cell's primary metric cannot be trusted (NaN or infinite on
    validation or test), or None."""
    for split, values in fields.get("metrics", {}).items():
        value = values.get(metric)
        if split in ("val", "test") and (value is None or not _is_finite(value)):
            return f"non-finite {split} {metric} ({value})"
    return None


def _is_finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and x == x and abs(x) != float("inf")


def _finite(obj: Any) -> Any:
    """NaN and inf become None (a secondary metric, a learning-curve point): records are
    strict JSON, and the primary metric was checked above."""
    if isinstance(obj, float):
        return obj if _is_finite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__
