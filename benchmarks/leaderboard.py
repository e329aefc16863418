"""The leaderboard builder: run records in, Markdown and CSV tables out.

Records are grouped by (dataset id, dataset version, model id, parameter budget): runs
of different dataset versions or budgets never share a row. A row gives the primary
metric's mean and unbiased std over seeds with the number of seeds, validation beside
test, out-of-distribution test where the dataset has it, parameter count and training
time. Failed and skipped cells appear with their reason, never as zeros. A file in
`runs/` that is not a valid record is reported in one line and left out.

Tables are built once as cells (`Table`) and rendered to Markdown here and to HTML by
`report_html`; `build_leaderboard` writes leaderboard.md, .csv, .html and plots/.
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
    time_capped: list[int] = field(default_factory=list)  # seeds stopped by max_time_s
    device: str = ""
    task: str = ""                      # the dataset's task type, "" in old records
    views: tuple[str, ...] = ()         # the views the dataset offers, () if not recorded
    hparams: dict[str, Any] = field(default_factory=dict)
    histories: list[list[dict[str, Any]]] = field(default_factory=list)  # per seed, per epoch

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
                                  m.get("param_budget"), task=d.get("task") or "",
                                  views=tuple(d.get("views") or ()),
                                  hparams=m.get("hparams") or {})
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
        if rec.get("stopped_by") == "time_cap":
            row.time_capped.append(rec["seed"])
        row.device = rec.get("environment", {}).get("device", "")
        if rec.get("history"):
            row.histories.append(rec["history"])
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
    if row.time_capped:  # its metric depends on the machine's speed
        return f"ok; {len(row.time_capped)} of {len(row.seeds)} seeds stopped by the time cap"
    return "ok"


def dataset_label(dataset_id: str, version: str) -> str:
    """A dataset as tables and plots name it: its id, plus " (vN)" when its version is not 1."""
    return dataset_id if version == "1" else f"{dataset_id} (v{version})"


def direction(higher_is_better: bool) -> str:
    return "higher is better" if higher_is_better else "lower is better"


def arrow(row: Row) -> str:
    return "↑" if row.higher_is_better else "↓"


@dataclass
class Cell:
    """One table cell: its text, the number an HTML page sorts it by, and bold for best."""

    text: str
    value: float | None = None
    best: bool = False
    title: str = ""  # hover text in HTML (a model's hyperparameters)


@dataclass
class Table:
    head: list[str]
    body: list[list[Cell]]


def incompatible(model_name: str, task: str, views: tuple[str, ...]) -> bool | None:
    """Whether the registry says a model cannot run on a dataset of this task and views:
    True (wrong task type, or no view it accepts), False, or None when it cannot tell
    (a model not registered here, a record without the dataset's task or views)."""
    try:
        from .registry import get_model_entry

        entry = get_model_entry(model_name)
    except Exception:  # unknown name, or a plugin that fails to import: the table still builds
        return None
    if task and task not in {t.value for t in entry.tasks}:
        return True
    if views:
        return not set(views) & {m.value for m in entry.modalities}
    return False if task else None


def summary_table(rows: list[Row]) -> Table:
    """Model x dataset grid of the primary test metric; best per dataset marked. A pair
    never run is "." and a pair the model cannot run at all (modality, task) is "-"."""
    groups = tables(rows)
    names = {r.model_id: r.model_name for r in rows}
    ranks = average_ranks(rows)
    head = ["model"] + [f"{dataset_label(d, v)} {g[0].metric} {arrow(g[0])}"
                        for (d, v), g in groups.items()] + ["avg rank"]
    models = sorted(names, key=lambda m: (ranks.get(m, (math.inf, 0))[0], m != "majority", m))
    body = []
    for model in models:
        cells = [Cell(model)]
        for group in groups.values():
            row = next((r for r in group if r.model_id == model), None)
            if row is None:
                ds = next((r for r in group if r.views), group[0])
                cannot = incompatible(names[model], ds.task, ds.views)
                cells.append(Cell("-" if cannot else "."))
            elif not row.ok:
                cells.append(Cell("skipped" if row.skipped else "failed"))
            else:
                m = mean(row.test)
                cells.append(Cell(fmt(m), m, row.sort_key() == group[0].sort_key()))
        r = ranks.get(model)
        cells.append(Cell(f"{r[0]:.2f} ({r[1]})", r[0]) if r else Cell(""))
        body.append(cells)
    return Table(head, body)


def dataset_heading(rows: list[Row]) -> tuple[str, str]:
    """The title of a dataset's section and its line on the metric and its direction."""
    first = rows[0]
    title = dataset_label(first.dataset_id, first.dataset_version)
    baseline = [r.model_id for r in rows if r.baseline]
    return title, (f"Metric: test {first.metric}, {direction(first.higher_is_better)}."
                   + (f" Baseline: {', '.join(baseline)}." if baseline else ""))


def dataset_table(rows: list[Row]) -> Table:
    first = rows[0]
    has_ood = any(r.ood for r in rows)
    head = ["rank", "model", "budget", f"test {first.metric}", "seeds", f"val {first.metric}"]
    head += [f"ood {first.metric}"] if has_ood else []
    head += ["params", "train s", "epochs", "status"]
    body = []
    rank = 0
    for row in rows:
        rank += 1 if row.ok else 0
        hp = ", ".join(f"{k}={v}" for k, v in sorted(row.hparams.items()))
        cells = [Cell(str(rank), rank) if row.ok else Cell(""),
                 Cell(row.model_id + (" (baseline)" if row.baseline else ""), title=hp),
                 Cell(fmt_count(row.param_budget), row.param_budget) if row.param_budget
                 else Cell(""),
                 Cell(fmt_mean_std(row.test), mean(row.test) if row.ok else None),
                 Cell(str(len(row.test)), len(row.test)),
                 Cell(fmt_mean_std(row.val), mean(row.val) if row.val else None)]
        cells += [Cell(fmt_mean_std(row.ood), mean(row.ood) if row.ood else None)] if has_ood else []
        cells += [Cell(fmt_count(row.n_params), row.n_params),
                  Cell(fmt(mean(row.train_s), 1), mean(row.train_s)) if row.train_s else Cell(""),
                  Cell(fmt(mean(row.epochs), 1), mean(row.epochs)) if row.epochs else Cell(""),
                  Cell(status_text(row))]
        body.append(cells)
    return Table(head, body)


def md_table(table: Table) -> list[str]:
    def text(c: Cell) -> str:
        return f"**{md_escape(c.text)}**" if c.best else md_escape(c.text)

    return (["| " + " | ".join(md_escape(h) for h in table.head) + " |",
             "|" + "---|" * len(table.head)]
            + ["| " + " | ".join(text(c) for c in cells) + " |" for cells in table.body])


LEGEND = ("Primary test metric (↑ higher is better, ↓ lower), mean over seeds (std is "
          "unbiased, over seeds). Best per dataset "
          "in bold; `.` not run, `-` the model cannot run on the dataset (no view it accepts, "
          "or another task type), `failed`/`skipped` with the reason in the dataset's table. "
          "Average rank is over the datasets a model ran on (1 = best).")


def markdown(rows: list[Row], suite: str, problems: list[tuple[Path, str]] = ()) -> str:
    out = [f"# Leaderboard: suite `{suite}`", "", LEGEND, ""]
    devices = sorted({r.device for r in rows if r.device})
    if devices:
        out += [f"Hardware: {', '.join(devices)}.", ""]
    out += ["## Summary", ""] + md_table(summary_table(rows)) + [""]
    for group in tables(rows).values():
        title, metric_line = dataset_heading(group)
        out += [f"## {md_escape(title)}", ""]
        if group[0].description:
            out += [md_escape(group[0].description), ""]
        out += [md_escape(metric_line), ""] + md_table(dataset_table(group)) + [""]
    if problems:
        out += ["## Files left out", ""] + [f"- `{p}`: {md_escape(why)}" for p, why in problems] + [""]
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


def write_reports(rows: list[Row], suite: str, problems: list[tuple[Path, str]],
                  out: Path, *, html: bool = True, plots: bool = True) -> list[Path]:
    """leaderboard.md and .csv, then (optionally) plots/ and leaderboard.html, into `out`."""
    from .records import write_text_atomic

    md, csv_path = out / "leaderboard.md", out / "leaderboard.csv"
    write_text_atomic(md, markdown(rows, suite, problems))
    write_text_atomic(csv_path, to_csv(rows))
    paths = [md, csv_path]
    plot_files: dict[tuple[str, str], dict[str, Path]] = {}
    if plots:
        try:
            from .plots import write_plots

            plot_files = write_plots(rows, out / "plots")
        except Exception as exc:  # a plotting bug must not cost the tables
            import sys

            print(f"mlwm: warning: plots not written ({type(exc).__name__}: {exc})",
                  file=sys.stderr)
    if html:
        from .report_html import html_page

        page = out / "leaderboard.html"
        write_text_atomic(page, html_page(rows, suite, problems, plot_files))
        paths.append(page)
    for kinds in plot_files.values():
        for png in kinds.values():
            paths += [png, png.with_suffix(".svg")]
    return paths


def build_leaderboard(results_dir: str | Path, suite: str, out_dir: str | Path | None = None,
                      *, html: bool = True, plots: bool = True
                      ) -> tuple[list[Path], list[tuple[Path, str]], list[Row]]:
    """Write the suite's leaderboard (md, csv; html and plots unless turned off); return
    the paths written (md and csv first), the files left out with why, and the rows."""
    records, problems = load_records(Path(results_dir) / "runs", suite)
    rows = aggregate(records)
    out = Path(out_dir) if out_dir else output_dir(results_dir, suite)
    return write_reports(rows, suite, problems, out, html=html, plots=plots), problems, rows
