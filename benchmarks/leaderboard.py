"""The leaderboard builder: run records in, Markdown and CSV tables out.

Records are grouped by (dataset id, dataset version, model id, parameter budget): runs
of different dataset versions or budgets never share a row. A row gives the primary
metric's mean and unbiased std over seeds with the number of seeds, validation beside
test, out-of-distribution test where the dataset has it, parameter count and training
time. Failed and skipped cells appear with their reason, never as zeros. A file in
`runs/` that is not a valid record is reported in one line and left out.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .records import read_record, safe_name


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
    device: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.test)

    def sort_key(self) -> tuple[int, float]:
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
                 ) -> tuple[list[dict[str, Any]], list[tuple[Path, str]]]:
    """Valid records under runs_dir (of one suite, if given) and (path, why) for the rest."""
    runs_dir = Path(runs_dir)
    root = runs_dir / safe_name(suite) if suite else runs_dir
    records, problems = [], []
    for path in sorted(root.rglob("*.json")) if root.is_dir() else []:
        try:
            rec = read_record(path)
        except ValueError as exc:
            problems.append((path, str(exc)))
            continue
        if suite is None or rec["suite"] == suite:
            records.append(rec)
    return records, problems


def aggregate(records: list[dict[str, Any]]) -> list[Row]:
    rows: dict[tuple, Row] = {}
    for rec in sorted(records, key=lambda r: (r["dataset"]["id"], r["model"]["id"], r["seed"])):
        d, m = rec["dataset"], rec["model"]
        key = (d["id"], d["version"], m["id"], m.get("param_budget"))
        row = rows.get(key)
        if row is None:
            row = rows[key] = Row(d["id"], d["version"], d.get("description", ""),
                                  d.get("metric", ""), bool(d.get("higher_is_better", True)),
                                  m["id"], m["name"], bool(m.get("baseline")),
                                  m.get("param_budget"))
        if rec["status"] == "failed":
            row.failed.append(f"seed {rec['seed']}: {rec.get('reason') or 'failed'}")
            continue
        if rec["status"] == "skipped":
            row.skipped.append(rec.get("reason") or "skipped")
            continue
        metrics = rec.get("metrics", {})
        value = metrics.get("test", {}).get(row.metric)
        if value is None:
            row.failed.append(f"seed {rec['seed']}: no test {row.metric} in the record")
            continue
        row.seeds.append(rec["seed"])
        row.test.append(value)
        if metrics.get("val", {}).get(row.metric) is not None:
            row.val.append(metrics["val"][row.metric])
        if metrics.get("ood_test", {}).get(row.metric) is not None:
            row.ood.append(metrics["ood_test"][row.metric])
        for k, v in metrics.get("test", {}).items():
            if k != row.metric and v is not None:
                row.secondary[k].append(v)
        row.n_params = m.get("n_params")
        row.train_s.append(rec.get("time", {}).get("train_s") or 0.0)
        row.epochs.append(rec.get("epochs") or 0)
        row.device = rec.get("environment", {}).get("device", "")
    return list(rows.values())


def tables(rows: list[Row]) -> dict[tuple[str, str], list[Row]]:
    """Rows per (dataset id, version), ranked best first (failed and skipped last)."""
    out: dict[tuple[str, str], list[Row]] = defaultdict(list)
    for row in rows:
        out[(row.dataset_id, row.dataset_version)].append(row)
    return {k: sorted(v, key=lambda r: (r.sort_key(), r.model_id)) for k, v in sorted(out.items())}


def average_ranks(rows: list[Row]) -> dict[str, tuple[float, int]]:
    """Mean rank of each model id over the datasets it ran on (1 = best), and their count.
    Ties share the mean of their ranks."""
    ranks: dict[str, list[float]] = defaultdict(list)
    for group in tables(rows).values():
        ok = [r for r in group if r.ok]
        for r in ok:
            better = sum(1 for o in ok if o.sort_key() < r.sort_key())
            same = sum(1 for o in ok if o.sort_key() == r.sort_key())
            ranks[r.model_id].append(better + (same + 1) / 2)
    return {m: (statistics.fmean(v), len(v)) for m, v in ranks.items()}


# -- formatting -----------------------------------------------------------------------
def fmt(x: float, digits: int = 3) -> str:
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_mean_std(xs: list[float], digits: int = 3) -> str:
    if not xs:
        return ""
    s = std(xs)
    return fmt(mean(xs), digits) + ("" if math.isnan(s) else f" ± {fmt(s, digits)}")


def fmt_count(n: int | None) -> str:
    if n is None:
        return ""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def md_escape(text: str) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def status_text(row: Row) -> str:
    if row.skipped and not row.ok:
        return f"skipped: {row.skipped[0]}"
    if row.failed:
        return f"{len(row.failed)} failed: {row.failed[0]}"
    return "ok"


def summary_grid(rows: list[Row]) -> list[str]:
    """Model x dataset grid of the primary test metric; best per dataset in bold."""
    groups = tables(rows)
    datasets = [k for k in groups]
    models = sorted({r.model_id for r in rows}, key=lambda m: (m != "majority", m))
    ranks = average_ranks(rows)
    head = ["model"] + [d if v == "1" else f"{d} (v{v})" for d, v in datasets] + ["avg rank"]
    lines = ["| " + " | ".join(md_escape(h) for h in head) + " |",
             "|" + "---|" * len(head)]
    for model in sorted(models, key=lambda m: ranks.get(m, (math.inf, 0))[0]):
        cells = [md_escape(model)]
        for key in datasets:
            group = groups[key]
            row = next((r for r in group if r.model_id == model), None)
            if row is None:
                cells.append(".")
            elif not row.ok:
                cells.append("skipped" if row.skipped else "failed")
            else:
                best = group[0]
                text = fmt(mean(row.test))
                cells.append(f"**{text}**" if row.sort_key() == best.sort_key() else text)
        r = ranks.get(model)
        cells.append(f"{r[0]:.2f} ({r[1]})" if r else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def dataset_table(rows: list[Row]) -> list[str]:
    first = rows[0]
    arrow = "higher is better" if first.higher_is_better else "lower is better"
    has_ood = any(r.ood for r in rows)
    head = ["rank", "model", "budget", f"test {first.metric}", "seeds", f"val {first.metric}"]
    head += [f"ood {first.metric}"] if has_ood else []
    head += ["params", "train s", "epochs", "status"]
    lines = [f"**{first.metric}**, {arrow}." + (f" {md_escape(first.description)}."
                                                if first.description else ""), "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    rank = 0
    for row in rows:
        rank += 1 if row.ok else 0
        name = md_escape(row.model_id) + (" (baseline)" if row.baseline else "")
        cells = [str(rank) if row.ok else "", name,
                 fmt_count(row.param_budget) if row.param_budget else "",
                 fmt_mean_std(row.test), str(len(row.test)), fmt_mean_std(row.val)]
        cells += [fmt_mean_std(row.ood)] if has_ood else []
        cells += [fmt_count(row.n_params), fmt(mean(row.train_s), 1) if row.train_s else "",
                  fmt(mean(row.epochs), 1) if row.epochs else "", md_escape(status_text(row))]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def markdown(rows: list[Row], suite: str, problems: list[tuple[Path, str]] = ()) -> str:
    out = [f"# Leaderboard: suite `{suite}`", "",
           "Primary test metric, mean over seeds (std is unbiased, over seeds). Best per dataset "
           "in bold; `.` not run, `failed`/`skipped` with the reason in the dataset's table. "
           "Average rank is over the datasets a model ran on (1 = best).", ""]
    devices = sorted({r.device for r in rows if r.device})
    if devices:
        out += [f"Hardware: {', '.join(devices)}.", ""]
    out += ["## Summary", ""] + summary_grid(rows) + [""]
    for (dataset, version), group in tables(rows).items():
        out += [f"## {dataset}" + ("" if version == "1" else f" (v{version})"), ""]
        out += dataset_table(group) + [""]
    if problems:
        out += ["## Files left out", ""] + [f"- `{p}`: {why}" for p, why in problems] + [""]
    return "\n".join(out)


CSV_FIELDS = ["dataset", "dataset_version", "model", "model_name", "baseline", "param_budget",
              "metric", "higher_is_better", "test_mean", "test_std", "val_mean", "val_std",
              "ood_mean", "ood_std", "n_seeds", "seeds", "n_params", "train_s_mean",
              "epochs_mean", "n_failed", "n_skipped", "status", "secondary"]


def to_csv(rows: list[Row]) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for group in tables(rows).values():
        for r in group:
            writer.writerow({
                "dataset": r.dataset_id, "dataset_version": r.dataset_version,
                "model": r.model_id, "model_name": r.model_name, "baseline": r.baseline,
                "param_budget": r.param_budget or "", "metric": r.metric,
                "higher_is_better": r.higher_is_better,
                "test_mean": fmt(mean(r.test), 6), "test_std": fmt(std(r.test), 6),
                "val_mean": fmt(mean(r.val), 6), "val_std": fmt(std(r.val), 6),
                "ood_mean": fmt(mean(r.ood), 6), "ood_std": fmt(std(r.ood), 6),
                "n_seeds": len(r.test), "seeds": " ".join(map(str, r.seeds)),
                "n_params": r.n_params if r.n_params is not None else "",
                "train_s_mean": fmt(mean(r.train_s), 3), "epochs_mean": fmt(mean(r.epochs), 2),
                "n_failed": len(r.failed), "n_skipped": len(r.skipped), "status": status_text(r),
                "secondary": " ".join(f"{k}={fmt(mean(v), 6)}" for k, v in sorted(r.secondary.items())),
            })
    return buf.getvalue()


def output_dir(results_dir: str | Path, suite: str) -> Path:
    """The default suite's tables sit in results/; other suites' in results/suites/<name>/."""
    results_dir = Path(results_dir)
    return results_dir if suite == "default" else results_dir / "suites" / safe_name(suite)


def build_leaderboard(results_dir: str | Path, suite: str, out_dir: str | Path | None = None
                      ) -> tuple[list[Path], list[tuple[Path, str]], list[Row]]:
    """Write leaderboard.md and leaderboard.csv for a suite; return paths, problems, rows."""
    from .records import write_text_atomic

    records, problems = load_records(Path(results_dir) / "runs", suite)
    rows = aggregate(records)
    out = Path(out_dir) if out_dir else output_dir(results_dir, suite)
    md, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    write_text_atomic(md, markdown(rows, suite, problems))
    write_text_atomic(csv_path, to_csv(rows))
    return [md, csv_path], problems, rows
