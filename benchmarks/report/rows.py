"""Rows of the leaderboard: run records aggregated over seeds.

Records are grouped by (dataset id, dataset version, model id, parameter budget): runs
of different dataset versions or budgets never share a row, and a suite's leaderboard
keeps only the records whose configuration is the suite's current one (the others are
counted and named, never mixed in). A row gives the primary metric over seeds, validation
beside test, out-of-distribution test where the dataset has it, the view and encoding it
read, parameter count, training time, how each seed stopped, and where each seed's
per-row predictions are (what the paired tests resample) and its explain files, when
of the record's configuration (what the Attributions section reads). Failed and skipped
cells appear with their reason, never as zeros.
"""

from __future__ import annotations

import json
import math
import re
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run.files import explain_path
from ..run.records import RecordError, RunRecord, read_record

# A row is `not converged` when most seeds ran to the epoch cap with their best
# validation epoch at most this many epochs before it: max(2, 10% of the cap).
NEAR_CAP_EPOCHS, NEAR_CAP_FRACTION = 2, 0.10


@dataclass(frozen=True)
class PredictionFile:
    """One seed's per-row predictions: the .npz beside its record, its recorded hash
    (checked on load) and the splits it holds ("test", "ood_test")."""

    path: Path
    sha256: str
    splits: tuple[str, ...]


RECORD_NAME = re.compile(r"seed[0-9]+\.json")


@dataclass
class Row:
    """One (dataset, model, budget) line of the leaderboard, aggregated over seeds."""

    dataset_id: str
    dataset_version: str
    description: str
    metric: str
    higher_is_better: bool
    model_id: str
    model_name: str
    baseline: bool
    param_budget: int | None
    n_params: int | None = None
    seeds: list[int] = field(default_factory=list)
    test: list[float] = field(default_factory=list)
    val: list[float] = field(default_factory=list)
    ood: list[float] = field(default_factory=list)
    ood_seeds: list[int] = field(default_factory=list)  # the seeds `ood` comes from
    secondary: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    train_s: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    best_epochs: list[int | None] = field(default_factory=list)  # per ok seed, 0-based
    stopped_by: list[str | None] = field(default_factory=list)  # per ok seed
    max_epochs: list[int | None] = field(default_factory=list)  # per ok seed, the cap
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    time_capped: list[int] = field(default_factory=list)  # seeds stopped by max_time_s
    device: str = ""
    task: str = ""                      # the dataset's task type
    views: tuple[str, ...] = ()         # the views the dataset offers, native first
    view: str = ""                      # the view this model read
    encoding: str = ""                  # and its encoding ("onehot": one-hot tokens)
    hparams: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)  # the training budget
    histories: list[list[dict[str, Any]]] = field(default_factory=list)  # per seed, per epoch
    predictions: dict[int, PredictionFile] = field(default_factory=dict)  # per ok seed
    # per ok seed, its seed<k>.explain.json when that file exists and is of the record's
    # configuration (its config_hash); benchmarks.report.attributions reads them
    explanations: dict[int, Path] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return bool(self.test)

    @property
    def view_label(self) -> str:
        """The input the model read, e.g. "sequence" or "vector (onehot)"."""
        return f"{self.view} ({self.encoding})" if self.encoding else self.view

    def split_values(self, split: str) -> tuple[list[int], list[float]]:
        """(seeds, primary metric values) on "test" or "ood_test"."""
        if split == "test":
            return self.seeds, self.test
        if split == "ood_test":
            return self.ood_seeds, self.ood
        raise ValueError(f"unknown split {split!r}: choose test or ood_test")

    def not_converged(self) -> tuple[int, int, float] | None:
        """(seeds near the cap, seeds, margin) when most seeds (more than half) stopped by
        max_epochs with their best epoch within max(2, 10%) of the cap: their metric was
        still improving when training ended. None otherwise (fitted models, early stops,
        seeds whose record lacks the best epoch)."""
        near, margin = 0, 0.0
        for best, how, cap in zip(self.best_epochs, self.stopped_by, self.max_epochs,
                                  strict=True):
            if best is None or cap is None or how != "max_epochs":
                continue
            margin = max(NEAR_CAP_EPOCHS, NEAR_CAP_FRACTION * cap)
            near += cap - (best + 1) <= margin  # epochs run after the best one
        n = len(self.test)
        return (near, n, margin) if n and 2 * near > n else None

    def sort_key(self) -> tuple[int, float]:
        """Best first in the metric's own direction; rows without a result last."""
        if not self.ok:
            return (1, 0.0)
        m = mean(self.test)
        return (0, -m if self.higher_is_better else m)


def mean(xs: list[float]) -> float:
    return statistics.fmean(xs) if xs else math.nan


def std(xs: list[float]) -> float:
    """Unbiased standard deviation over seeds (NaN for fewer than two)."""
    return statistics.stdev(xs) if len(xs) > 1 else math.nan


def load_records(runs_dir: str | Path, suite: str | None = None
                 ) -> tuple[list[RunRecord], list[tuple[Path, str]]]:
    """Valid records under runs_dir (of one suite, if given) and (path, why) for the rest."""
    runs_dir = Path(runs_dir)
    root = runs_dir / suite if suite else runs_dir
    records, problems = [], []
    # records are seed<k>.json; beside them live tuning.json and seed<k>.explain.json
    for path in sorted(p for p in root.rglob("*.json") if RECORD_NAME.fullmatch(p.name)) \
            if root.is_dir() else []:
        try:
            rec = read_record(path)
        except RecordError as exc:
            problems.append((path, str(exc)))
            continue
        if suite is None or rec.suite == suite:
            records.append(rec)
    return records, problems


def current_only(records: list[RunRecord], current: dict[tuple[str, str, int], str]
                 ) -> tuple[list[RunRecord], list[RunRecord]]:
    """(records of the plan's current configurations, the others): a record of another
    configuration (changed parameters, an interrupted rerun, a cell the suite no longer
    has) must not join a row of the current one."""
    keep, stale = [], []
    for rec in records:
        ok = current.get((rec.dataset.id, rec.model.id, rec.seed)) == rec.config_hash
        (keep if ok else stale).append(rec)
    return keep, stale


def _joined(current: str, new: str) -> str:
    """A row's view or encoding: one value, or every distinct one joined by " / " (seeds
    that read different inputs are then visible, not hidden behind the first)."""
    parts = [p for p in current.split(" / ") if p]
    if new and new not in parts:
        parts.append(new)
    return " / ".join(parts)


def aggregate(records: list[RunRecord]) -> list[Row]:
    """One Row per (dataset id, version, model id, parameter budget)."""
    rows: dict[tuple, Row] = {}
    for rec in sorted(records, key=lambda r: (r.dataset.id, r.model.id, r.seed)):
        d, m = rec.dataset, rec.model
        key = (d.id, d.version, m.id, m.param_budget)
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(d.id, d.version, d.description, d.metric,
                                  bool(d.higher_is_better), m.id, m.name, bool(m.baseline),
                                  m.param_budget, task=d.task, views=tuple(d.views),
                                  hparams=m.hparams, budget=dict(rec.budget))
        row.view = _joined(row.view, d.view)
        row.encoding = _joined(row.encoding, d.encoding)
        if rec.status == "failed":
            row.failed.append(f"seed {rec.seed}: {rec.reason or 'failed'}")
            continue
        if rec.status == "skipped":
            row.skipped.append(rec.reason or "skipped")
            continue
        value = rec.metrics.get("test", {}).get(row.metric)
        if value is None:
            row.failed.append(f"seed {rec.seed}: no test {row.metric} in the record")
            continue
        row.seeds.append(rec.seed)
        row.test.append(value)
        if rec.metrics.get("val", {}).get(row.metric) is not None:
            row.val.append(rec.metrics["val"][row.metric])
        if rec.metrics.get("ood_test", {}).get(row.metric) is not None:
            row.ood.append(rec.metrics["ood_test"][row.metric])
            row.ood_seeds.append(rec.seed)
        for k, v in rec.metrics.get("test", {}).items():
            if k != row.metric and v is not None:
                row.secondary[k].append(v)
        row.n_params = m.n_params
        row.train_s.append(rec.time.train_s or 0.0)
        row.epochs.append(rec.epochs or 0)
        row.best_epochs.append(rec.best_epoch)
        row.stopped_by.append(rec.stopped_by)
        cap = rec.budget.get("max_epochs")
        row.max_epochs.append(cap if isinstance(cap, int) else None)
        if rec.stopped_by == "time_cap":
            row.time_capped.append(rec.seed)
        row.device = rec.environment.device
        if rec.history:
            row.histories.append(rec.history)
        path = rec.predictions_path()
        if path is not None:
            row.predictions[rec.seed] = PredictionFile(path, rec.predictions.sha256,
                                                       tuple(rec.predictions.splits))
        if rec.path is not None:
            explained = explain_path(rec.path)
            if _explains(explained, rec.config_hash):
                row.explanations[rec.seed] = explained
    return list(rows.values())


def _explains(path: Path, config_hash: str) -> bool:
    """Whether an explain file exists and is of the record's configuration (an older
    run's file beside a rerun record describes another model)."""
    if not path.is_file():
        return False
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("config_hash") == config_hash


def dataset_label(dataset_id: str, version: str) -> str:
    """A dataset as tables and plots name it: its id, plus " (vN)" when its version is not 1."""
    return dataset_id if version == "1" else f"{dataset_id} (v{version})"


def by_dataset(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows per (dataset id, version), ranked best first (failed and skipped last)."""
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        out[(row.dataset_id, row.dataset_version)].append(row)
    return {k: sorted(v, key=lambda r: (r.sort_key(), r.model_id)) for k, v in sorted(out.items())}
