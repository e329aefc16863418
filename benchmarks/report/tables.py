"""The leaderboard's tables as a model of cells (text, sort value, bold, hover text),
built once from an Analysis and rendered to Markdown and CSV (benchmarks.report.markdown)
and to HTML (benchmarks.report.html): the aggregate table of each modality, the
published contrasts, the full grid of models by datasets and one table per dataset; and
the formatting of numbers, intervals, counts and statuses they share."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .. import metrics as metric_table
from . import stats
from .aggregates import ModalityAggregate, dataset_modality
from .analysis import Analysis
from .contrasts import Contrast
from .longer import Longer
from .rows import Row, dataset_label, mean
from .significance import DatasetTests, PairTest, cell_text

__all__ = ["dataset_label"]  # re-exported: plots and compare name datasets through here

# the words a verdict takes in each column (a loss against the baseline is not "≈")
VS_BEST = {stats.WIN: "better", stats.TIE: "tie", stats.LOSS: "worse"}
VS_BASELINE = {stats.WIN: "better", stats.TIE: "≈ baseline", stats.LOSS: "below baseline"}
VS_NEXT = {stats.WIN: "better", stats.TIE: "tie", stats.LOSS: "worse"}
GRID_MARK = {stats.TIE: " ≈", stats.LOSS: " ▼"}  # against the baseline, in the grid


def fmt(x: float, digits: int = 3) -> str:
    """A number with `digits` decimals; "" for None or NaN."""
    return "" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def fmt_ci(xs: list[float] | stats.MeanCI | None, digits: int = 3) -> str:
    """mean ± half-width of the 95% t-interval over seeds ("" for no values; no ± for
    one seed, which has no interval)."""
    ci = xs if isinstance(xs, stats.MeanCI) or xs is None else (
        stats.mean_ci(xs) if len(xs) else None)
    if ci is None:
        return ""
    half = "" if math.isnan(ci.half_width) else f" ± {fmt(ci.half_width, digits)}"
    return fmt(ci.mean, digits) + half


def ci_half(xs: list[float]) -> float:
    """The 95% interval's half-width over seeds (NaN with fewer than two)."""
    return stats.mean_ci(xs).half_width if xs else math.nan


def fmt_count(n: int | None) -> str:
    """A parameter count in k or M (3 significant digits)."""
    if n is None:
        return ""
    for div, unit in ((1_000_000, "M"), (1_000, "k")):
        if n >= div:
            return f"{n / div:.3g}{unit}"
    return str(n)


def solved_text(row: Row) -> str:
    """"solved in k of n seeds" where seeds split between solving the task (within
    stats.SOLVED_TOLERANCE of the metric's perfect value) and not, else "". Scores only:
    for errors (mse, mae) the tolerance would be in the target's units, unknown here."""
    try:
        metric = metric_table.metric(row.metric)
    except Exception:
        return ""
    if not row.ok or not metric.higher_is_better or not math.isfinite(metric.best_value):
        return ""
    split = stats.solved_split(row.test, stats.solved_threshold(metric), True)
    return f"solved in {split.solved} of {split.total} seeds" if 0 < split.solved < split.total else ""


def status_text(row: Row) -> str:
    """ok, skipped or failed with the first reason, `not converged`, and the seeds a time
    cap stopped."""
    if row.skipped and not row.ok:
        return f"skipped: {row.skipped[0]}"
    parts = [f"{len(row.failed)} failed: {row.failed[0]}"] if row.failed else []
    stuck = row.not_converged()
    if stuck:  # its metric was still improving: a longer budget may reorder the table
        near, n, margin = stuck
        cap = max(c for c in row.max_epochs if c is not None)
        parts.append(f"not converged: {near} of {n} seeds ran to the {cap}-epoch cap with "
                     f"their best epoch within {margin:g} epochs of it")
    if not parts:
        parts.append("ok")
    if row.time_capped:  # its metric depends on the machine's speed
        parts.append(f"{len(row.time_capped)} of {len(row.seeds)} seeds stopped by the time cap")
    return "; ".join(parts)


def direction(higher_is_better: bool) -> str:
    """The metric's direction in words."""
    return "higher is better" if higher_is_better else "lower is better"


def arrow(row: Row) -> str:
    """↑ or ↓ for the row's metric."""
    return "↑" if row.higher_is_better else "↓"


def comparison_detail(t: PairTest | None) -> str:
    """A comparison in full, for hover text and the CSV: method, difference, interval,
    raw and corrected p, McNemar's second opinion; or why there is no test."""
    if t is None:
        return ""
    if not t.tested:
        return f"no test: {t.reason}"
    r = t.result
    text = (f"{r.method}: {t.a} - {t.b} = {r.difference:+.4f}, 95% interval "
            f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}], p = {stats.fmt_p(r.p)}, Holm-corrected over "
            f"{t.family}: {stats.fmt_p(t.p_holm)} ({r.n_seeds} seeds, {r.n_rows} rows)")
    if t.mcnemar is not None:
        text += f"; {t.mcnemar.method}: p = {stats.fmt_p(t.mcnemar.p)} (uncorrected)"
    return text


@dataclass
class TableCell:
    """One table cell: its text, the number an HTML page sorts it by, and bold for best."""

    text: str
    value: float | None = None
    best: bool = False
    title: str = ""  # hover text in HTML (a model's configuration, a test in full)


@dataclass
class Table:
    """A header and rows of cells, rendered alike to Markdown, CSV and HTML."""

    head: list[str]
    body: list[list[TableCell]]


def config_text(row: Row) -> str:
    """A row's hyperparameters, training budget and input, on one line."""
    hp = ", ".join(f"{k}={v}" for k, v in sorted(row.hparams.items()))
    budget = ", ".join(f"{k}={v}" for k, v in sorted(row.budget.items()))
    return (f"hyperparameters: {hp or 'defaults'}; budget: {budget or '-'}; "
            f"input: {row.view_label or '-'}")


def shown_as_best(row: Row, tests: DatasetTests) -> bool:
    """Bold in the grid: the best model or one the paired test cannot tell from it, and
    significantly better than the baseline (a tie with the baseline is never a win)."""
    if not row.ok or row.baseline:
        return False
    if row.model_id != tests.best:
        t = tests.vs_best(row.model_id)
        if t is None or t.verdict != stats.TIE:
            return False
    return tests.beats_baseline(row.model_id)


def grid_datasets(a: Analysis) -> list[tuple[str, str]]:
    """The grid's columns: datasets grouped by native modality, then by id."""
    return sorted(a.groups, key=lambda k: (dataset_modality(a.groups[k]), k))


def summary_table(a: Analysis, cannot_run: set[tuple[str, str]] = frozenset()) -> Table:
    """Model x dataset grid of the primary test metric. A pair never run is "." and a pair
    the model cannot run at all (modality, task; the plan knows them) is "-"."""
    keys = grid_datasets(a)
    # models by name, baselines last: the grid is a reference, ranking is the aggregates'
    # job (a row order by "average rank over the datasets each ran on" would rank unlike
    # things, as the issue found: lstm first on 2 datasets above mlp on 24)
    baseline = {r.model_id: r.baseline for r in a.rows}
    head = ["model"] + [f"{dataset_label(*k)} {a.groups[k][0].metric} {arrow(a.groups[k][0])}"
                        + (" (saturated)" if a.marks[k].saturated else "") for k in keys]
    models = sorted(baseline, key=lambda m: (baseline[m], m))  # baselines last
    body = []
    for model in models:
        cells = [TableCell(model)]
        for key in keys:
            row = next((r for r in a.groups[key] if r.model_id == model), None)
            if row is None:
                cells.append(TableCell("-" if (key[0], model) in cannot_run else "."))
            elif not row.ok:
                cells.append(TableCell("skipped" if row.skipped else "failed"))
            else:
                m = mean(row.test)
                tests = a.tests[key]
                # the mark says what the test says about the baseline; no test, no mark
                vs = tests.vs_baseline(model)
                mark = GRID_MARK.get(vs.verdict, "") if vs is not None and not row.baseline else ""
                cells.append(TableCell(fmt(m) + mark, m, shown_as_best(row, tests),
                                       comparison_detail(vs)))
        body.append(cells)
    return Table(head, body)


def dataset_heading(rows: list[Row]) -> tuple[str, str]:
    """The title of a dataset's section and its line on the metric and its direction."""
    first = rows[0]
    title = dataset_label(first.dataset_id, first.dataset_version)
    baseline = [r.model_id for r in rows if r.baseline]
    return title, (f"Metric: test {first.metric}, {direction(first.higher_is_better)}."
                   + (f" Baseline: {', '.join(baseline)}." if baseline else ""))


def dataset_notes(a: Analysis, key: tuple[str, str]) -> list[str]:
    """The lines under a dataset's metric line: coverage, marks, the test used."""
    out = []
    cov = a.coverage.get(key)
    if cov is not None:
        line = f"Coverage: {len(cov.ran)} of {len(cov.expected)} compatible pairs ran"
        extra = ([f"failed or skipped: {', '.join(cov.failed)}"] if cov.failed else []) + \
                ([f"no record: {', '.join(cov.absent)}"] if cov.absent else [])
        out.append(line + (f" ({'; '.join(extra)})." if extra else "."))
    marks = a.marks[key]
    if marks.saturated:
        out.append(f"Saturated: every ranked model is within 0.01 of the top ({fmt(marks.top)}); "
                   "left out of the aggregates.")
    if marks.solved_by_linear:
        out.append("Solved by a linear model: the linear model is within 0.01 of the top.")
    tests = a.tests[key]
    if tests.family.tests:
        out.append(f"Significance: {tests.family.method()}.")
    return out


def dataset_table(group: list[Row], tests: DatasetTests | None = None) -> Table:
    """One dataset's ranked table: metric over seeds with its 95% interval, the paired
    tests against the best and the baseline, val, ood, size, time, status."""
    tests = tests or DatasetTests()
    first = group[0]
    has_ood = any(r.ood for r in group)
    metric = first.metric
    head = ["rank", "model", "budget", "input", f"test {metric} (95% CI)", "n", "vs best",
            "vs baseline", f"val {metric}"]
    head += [f"ood {metric}"] if has_ood else []
    head += ["params", "train s", "epochs", "status"]
    body = []
    rank = 0
    for row in group:
        rank += 1 if row.ok else 0
        solved = solved_text(row)
        vs_best, vs_base = tests.vs_best(row.model_id), tests.vs_baseline(row.model_id)
        # the best and the baseline name themselves rather than compare with themselves;
        # a second baseline row is not compared with the first
        best_text = "best" if row.ok and row.model_id == tests.best else cell_text(vs_best, VS_BEST)
        base_text = ("baseline" if row.ok and row.model_id == tests.baseline
                     else "" if row.baseline else cell_text(vs_base, VS_BASELINE))
        cells = [TableCell(str(rank), rank) if row.ok else TableCell(""),
                 TableCell(row.model_id + (" (baseline)" if row.baseline else ""),
                           title=config_text(row)),
                 TableCell(fmt_count(row.param_budget), row.param_budget) if row.param_budget
                 else TableCell(""),
                 TableCell(row.view_label),
                 TableCell(fmt_ci(row.test) + (f"; {solved}" if solved else ""),
                           mean(row.test) if row.ok else None),
                 TableCell(str(len(row.test)), len(row.test)),
                 # sorted by corrected p; the hover text holds the test in full
                 TableCell(best_text, vs_best.p_holm if vs_best else None,
                           title=comparison_detail(vs_best)),
                 TableCell(base_text, vs_base.p_holm if vs_base else None,
                           title=comparison_detail(vs_base)),
                 TableCell(fmt_ci(row.val), mean(row.val) if row.val else None)]
        cells += [TableCell(fmt_ci(row.ood), mean(row.ood) if row.ood else None)] if has_ood else []
        cells += [TableCell(fmt_count(row.n_params), row.n_params),
                  TableCell(fmt(mean(row.train_s), 1), mean(row.train_s)) if row.train_s else TableCell(""),
                  TableCell(fmt(mean(row.epochs), 1), mean(row.epochs)) if row.epochs else TableCell(""),
                  TableCell(status_text(row))]
        body.append(cells)
    return Table(head, body)


def aggregate_table(agg: ModalityAggregate) -> Table:
    """A modality's models by average rank over its common datasets, with the
    normalised score over the same datasets."""
    ranks = agg.friedman.average_ranks if agg.friedman else {}
    body = []
    for i, m in enumerate(agg.order(), 1):  # the position, then what it rests on
        score = agg.normalised.get(m, math.nan)
        body.append([TableCell(str(i), i), TableCell(m),
                     TableCell(fmt(ranks.get(m, math.nan), 2), ranks.get(m)),
                     TableCell(fmt(score), None if math.isnan(score) else score),
                     TableCell(str(agg.normalised_n.get(m, 0)), agg.normalised_n.get(m, 0))])
    return Table(["", "model", "average rank (1 = best)",
                  "normalised score (0 = constant, 1 = perfect)", "datasets scored"], body)


def aggregate_notes(agg: ModalityAggregate) -> list[str]:
    """What an aggregate is over, what it leaves out and why, and Friedman's result."""
    # the first line goes above the table (what it ranks over), the rest below it
    if agg.reason:
        lines = [f"No aggregate: {agg.reason}."]
    else:
        lines = [f"Ranked over the {len(agg.datasets)} datasets on which all {len(agg.models)} "
                 f"ranked models ran: {', '.join(dataset_label(*k) for k in agg.datasets)}."]
    if agg.left_out:
        lines.append("Datasets left out: " + "; ".join(f"{d} ({why})" for d, why in agg.left_out)
                     + ".")
    if agg.dropped:
        lines.append("Models left out of this aggregate: "
                     + "; ".join(f"{m} ({why})" for m, why in agg.dropped) + ".")
    f = agg.friedman
    if f is not None and f.tested:
        lines.append(f"Friedman test: chi-square = {f.statistic:.2f}, p = {stats.fmt_p(f.p)} "
                     f"({len(f.models)} models, {len(f.datasets)} datasets); post-hoc "
                     f"{f.posthoc_method}, critical difference {f.critical_difference:.2f} in "
                     f"average rank at alpha = {f.alpha:g}.")
    elif f is not None:
        lines.append(f"No Friedman test: {f.reason}.")
    return lines


def contrast_table(c: Contrast) -> Table:
    """A contrast's models in the published order, their interval on its split and the
    paired verdict of each against the next."""
    body = []
    for i, (m, ci) in enumerate(zip(c.models, c.cis, strict=True)):
        step = c.steps[i] if i < len(c.steps) else None
        # the last model has no next; a pair with a model missing has no test at all
        nxt = "" if i == len(c.models) - 1 else (
            cell_text(step, VS_NEXT) if step is not None else "no test (no result)")
        text = f"{fmt_ci(ci)} (n={ci.n})" if ci is not None else "no result"
        body.append([TableCell(str(i + 1), i + 1), TableCell(m),
                     TableCell(text, ci.mean if ci else None),
                     TableCell(nxt, step.p_holm if step else None, title=comparison_detail(step))])
    return Table(["published order", "model", f"{c.split} {c.metric} (95% CI)",
                  "vs the next"], body)


def contrast_lines(c: Contrast) -> list[str]:
    """A contrast's facts and its reading."""
    facts = [f"Dataset: {c.dataset}", f"split: {c.split}"]
    if c.source:
        facts.insert(0, f"Source: {c.source}")
    if c.expected:
        facts.append(f"published: {c.expected}")
    lines = ["; ".join(facts) + "."]
    lines.append(f"Ordering: {c.outcome}" + (f" ({c.why})." if c.why else "."))
    if c.family.tests:
        lines.append(f"Significance: {c.family.method()}.")
    return lines


#: the paragraph under the leaderboard's title, in Markdown and HTML
LEGEND = ("Primary test metric (↑ higher is better, ↓ lower), mean over seeds; each seed "
          "re-draws the data split and the initialisation. Intervals are 95% t-intervals "
          "over seeds (mean ± half-width, n seeds). Differences are called only by a paired "
          "test on the same seeds and test rows (hierarchical paired bootstrap), "
          "Holm-corrected over the comparisons of each table: `tie`, `better` and `worse` "
          "with the corrected p; `no test` with its reason where fewer than 2 seeds have "
          "predictions or the differences have no variance. In the grid, bold marks the best "
          "model and those tied with it, if significantly better than the baseline; `≈` a "
          "model not significantly different from the baseline, `▼` one significantly "
          "worse; `.` not run, `-` the model cannot run on the dataset (no view it accepts, "
          "or another task type), `failed`/`skipped` with the reason in the dataset's "
          "table. Aggregates rank models per modality over the datasets where every ranked "
          "model ran; saturated datasets (every model within 0.01 of the top) are left out.")


# -- rows trained longer ------------------------------------------------------------------
def _short_cap(row: Row) -> str:
    caps = sorted({c for c in row.max_epochs if c is not None})
    return "/".join(map(str, caps)) or "?"


def longer_table(section: Longer) -> Table:
    body = []
    for r in section.rows:
        stuck = r.long.not_converged()
        epochs = mean(r.long.epochs) if r.long.epochs else None
        status = (f"not converged ({stuck[0]} of {stuck[1]} seeds near the cap)" if stuck
                  else "converged")
        vs_short = "best" if r.best == r.short.model_id else cell_text(r.vs_best_short, VS_BEST)
        vs_long = cell_text(r.vs_best_long, VS_BEST) if r.vs_best_long else "no test (no best)"
        delta = (mean(r.long.test) - mean(r.short.test)) if r.long.test and r.short.test else None
        body.append([
            TableCell(r.short.dataset_id), TableCell(r.short.model_id),
            TableCell(f"{fmt_ci(r.short.test)} ({_short_cap(r.short)} epochs)",
                      mean(r.short.test) if r.short.test else None),
            TableCell(vs_short, r.vs_best_short.p_holm if r.vs_best_short else None,
                      title=comparison_detail(r.vs_best_short)),
            TableCell(f"{fmt_ci(r.long.test)} (cap {r.long_cap})",
                      mean(r.long.test) if r.long.test else None),
            TableCell("" if delta is None else f"{delta:+.3f}", delta),
            TableCell("" if epochs is None else f"{epochs:.0f}", epochs),
            TableCell(status),
            TableCell(vs_long + (" (changed)" if r.changed else ""),
                      r.vs_best_long.p_holm if r.vs_best_long else None,
                      title=comparison_detail(r.vs_best_long)),
        ])
    return Table(["dataset", "model", "test at the suite's budget", "vs best there",
                  "test trained longer", "change", "epochs run", "longer run",
                  "longer vs that best"], body)


def longer_lines(section: Longer) -> list[str]:
    """What the section shows, and its reading in numbers."""
    n = len(section.rows)
    caps = sorted({r.long_cap for r in section.rows if r.long_cap})
    converged = sum(r.long.not_converged() is None for r in section.rows)
    changed = [r for r in section.rows if r.changed]
    gains = [mean(r.long.test) - mean(r.short.test) for r in section.rows
             if r.long.test and r.short.test]
    lines = [f"The rows flagged `not converged` (most seeds ended at the epoch cap with their "
             f"best epoch near it), trained again by suite `{section.suite}`: the same cells "
             f"(datasets, seeds and their data, tuned configurations, widths) with an epoch "
             f"cap of {'/'.join(map(str, caps)) or '?'}. `longer vs that best` tests the "
             "longer run against the dataset's best row at the suite's own budget, on the "
             "same seeds and test rows (hierarchical paired bootstrap, "
             f"{section.n_boot} resamples, Holm-corrected over the {n} comparisons of this "
             "section)."]
    if n:
        lines.append(
            f"Of {n} rows, {converged} converged when trained longer; the metric changed by "
            f"{min(gains):+.3f} to {max(gains):+.3f} (mean {sum(gains) / len(gains):+.3f}); "
            f"the verdict against the best changed for {len(changed)}"
            + (": " + ", ".join(f"{r.short.dataset_id} · {r.short.model_id} "
                                f"({VS_BEST[r.vs_best_short.verdict]} to "
                                f"{VS_BEST[r.vs_best_long.verdict]})"
                                for r in changed) if changed else "") + ".")
    if section.missing:
        lines.append(f"{len(section.missing)} flagged rows have no longer run in "
                     f"`{section.suite}`: " + ", ".join(f"{r.dataset_id} · {r.model_id}"
                                                        for r in section.missing) + ".")
    return lines
