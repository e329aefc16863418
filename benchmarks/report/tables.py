"""The leaderboard's tables as a model of cells (text, sort value, best-of-column), built
once and rendered to Markdown and CSV (benchmarks.report.markdown) and to HTML
(benchmarks.report.html): the summary grid of models by datasets and one table per
dataset; and the formatting of numbers, counts and statuses they share."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .rows import Row, average_ranks, by_dataset, mean, std


def fmt(x: float, digits: int = 3) -> str:
    """A number with `digits` decimals; "" for None or NaN."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_mean_std(xs: list[float], digits: int = 3) -> str:
    """mean ± unbiased std over seeds ("" for no values; no ± for one)."""
    if not xs:
        return ""
    s = std(xs)
    return fmt(mean(xs), digits) + ("" if math.isnan(s) else f" ± {fmt(s, digits)}")


def fmt_count(n: int | None) -> str:
    """A parameter count in k or M (3 significant digits)."""
    if n is None:
        return ""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def status_text(row: Row) -> str:
    """ok, skipped or failed with the first reason, or ok with the seeds a cap stopped."""
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
    """The metric's direction in words."""
    return "higher is better" if higher_is_better else "lower is better"


def arrow(row: Row) -> str:
    """↑ or ↓ for the row's metric."""
    return "↑" if row.higher_is_better else "↓"


@dataclass
class TableCell:
    """One table cell: its text, the number an HTML page sorts it by, and bold for best."""

    text: str
    value: float | None = None
    best: bool = False
    title: str = ""  # hover text in HTML (a model's hyperparameters)


@dataclass
class Table:
    """A header and rows of cells, rendered alike to Markdown, CSV and HTML."""

    head: list[str]
    body: list[list[TableCell]]


def summary_table(rows: list[Row], cannot_run: set[tuple[str, str]] = frozenset()) -> Table:
    """Model x dataset grid of the primary test metric; best per dataset marked. A pair
    never run is "." and a pair the model cannot run at all (modality, task; the plan
    knows them) is "-"."""
    groups = by_dataset(rows)
    baseline = {r.model_id: r.baseline for r in rows}
    ranks = average_ranks(rows)
    head = ["model"] + [f"{dataset_label(d, v)} {g[0].metric} {arrow(g[0])}"
                        for (d, v), g in groups.items()] + ["avg rank"]
    models = sorted(baseline, key=lambda m: (ranks.get(m, (math.inf, 0))[0], not baseline[m], m))
    body = []
    for model in models:
        cells = [TableCell(model)]
        for group in groups.values():
            row = next((r for r in group if r.model_id == model), None)
            if row is None:
                cells.append(TableCell("-" if (group[0].dataset_id, model) in cannot_run
                                       else "."))
            elif not row.ok:
                cells.append(TableCell("skipped" if row.skipped else "failed"))
            else:
                m = mean(row.test)
                cells.append(TableCell(fmt(m), m, row.sort_key() == group[0].sort_key()))
        r = ranks.get(model)
        cells.append(TableCell(f"{r[0]:.2f} ({r[1]})", r[0]) if r else TableCell(""))
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
    """One dataset's ranked table: metric over seeds, val, ood, params, time, status."""
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
        cells = [TableCell(str(rank), rank) if row.ok else TableCell(""),
                 TableCell(row.model_id + (" (baseline)" if row.baseline else ""), title=hp),
                 TableCell(fmt_count(row.param_budget), row.param_budget) if row.param_budget
                 else TableCell(""),
                 TableCell(fmt_mean_std(row.test), mean(row.test) if row.ok else None),
                 TableCell(str(len(row.test)), len(row.test)),
                 TableCell(fmt_mean_std(row.val), mean(row.val) if row.val else None)]
        cells += [TableCell(fmt_mean_std(row.ood), mean(row.ood) if row.ood else None)] if has_ood else []
        cells += [TableCell(fmt_count(row.n_params), row.n_params),
                  TableCell(fmt(mean(row.train_s), 1), mean(row.train_s)) if row.train_s else TableCell(""),
                  TableCell(fmt(mean(row.epochs), 1), mean(row.epochs)) if row.epochs else TableCell(""),
                  TableCell(status_text(row))]
        body.append(cells)
    return Table(head, body)


#: the sentence under the leaderboard's title, in Markdown and HTML
LEGEND = ("Primary test metric (↑ higher is better, ↓ lower), mean over seeds (std is "
          "unbiased, over seeds). Best per dataset "
          "in bold; `.` not run, `-` the model cannot run on the dataset (no view it accepts, "
          "or another task type), `failed`/`skipped` with the reason in the dataset's table. "
          "Average rank is over the datasets a model ran on (1 = best).")
