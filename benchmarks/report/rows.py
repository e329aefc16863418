"""Rows of the leaderboard: run records aggregated over seeds.

Records are grouped by (dataset id, dataset version, model id, parameter budget): runs
of different dataset versions or budgets never share a row, and a suite's leaderboard
keeps only the records whose configuration is the suite's current one (the others are
counted and named, never mixed in). A row gives the primary metric over seeds, validation
beside test, out-of-distribution test where the dataset has it, parameter count and
training time. Failed and skipped cells appear with their reason, never as zeros.
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..run.records import RecordError, RunRecord, read_record


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
    secondary: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    train_s: list[float] = field(default_factory=list)
    epochs: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    time_capped: list[int] = field(default_factory=list)  # seeds stopped by max_time_s
    device: str = ""
    task: str = ""                      # the dataset's task type
    views: tuple[str, ...] = ()         # the views the dataset offers
    hparams: dict[str, Any] = field(default_factory=dict)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)  # per seed, per epoch

    @property
    def ok(self) -> bool:
        return bool(self.test)

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
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
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
                                  hparams=m.hparams)
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
        for k, v in rec.metrics.get("test", {}).items():
            if k != row.metric and v is not None:
                row.secondary[k].append(v)
        row.n_params = m.n_params
        row.train_s.append(rec.time.train_s or 0.0)
        row.epochs.append(rec.epochs or 0)
        if rec.stopped_by == "time_cap":
            row.time_capped.append(rec.seed)
        row.device = rec.environment.device
        if rec.history:
            row.histories.append(rec.history)
    return list(rows.values())


def by_dataset(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows per (dataset id, version), ranked best first (failed and skipped last)."""
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        out[(row.dataset_id, row.dataset_version)].append(row)
    return {k: sorted(v, key=lambda r: (r.sort_key(), r.model_id)) for k, v in sorted(out.items())}


def average_ranks(rows: list[Row]) -> dict[str, tuple[float, int]]:
    """Mean rank of each model id over the datasets it ran on (1 = best), and their count.
    Ties share the mean of their ranks."""
    ranks: dict[str, list[float]] = defaultdict(list)
    for group in by_dataset(rows).values():
        ok = [r for r in group if r.ok]
        for r in ok:
            better = sum(1 for o in ok if o.sort_key() < r.sort_key())
            same = sum(1 for o in ok if o.sort_key() == r.sort_key())
            ranks[r.model_id].append(better + (same + 1) / 2)
    return {m: (statistics.fmean(v), len(v)) for m, v in ranks.items()}
