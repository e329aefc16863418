"""The leaderboard as Markdown and CSV text (from the table model of
benchmarks.report.tables), and the Attributions section's table model, lines (shared
with the HTML page) and attributions.csv.

Text from records is data, never markup. In Markdown: HTML is written as entities (a
`<script>` shows as text), every kind of line break becomes a space (so neither a table
row nor a paragraph can be ended early, nor a heading started), pipes, backslashes,
backticks, brackets and emphasis markers are backslash-escaped, and a paragraph cannot
open with a block marker (#, >, -, +, =, "1."). In CSV: a text cell that a spreadsheet
would run as a formula (starting with =, +, -, @, tab or CR, and their full-width forms)
gets a leading single quote (OWASP's rule); numbers stay numbers.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path

from ..run.files import ID_PATTERN
from .aggregates import dataset_modality
from .analysis import Analysis
from .attributions import LEGEND as ATTRIBUTIONS_LEGEND
from .attributions import DatasetAttributions
from .rows import mean, std
from .tables import (
    LEGEND,
    VS_BASELINE,
    VS_BEST,
    Table,
    TableCell,
    aggregate_notes,
    aggregate_table,
    ci_half,
    comparison_detail,
    contrast_lines,
    contrast_table,
    dataset_heading,
    dataset_notes,
    dataset_table,
    fmt,
    fmt_ci,
    longer_lines,
    longer_table,
    solved_text,
    status_text,
    summary_table,
)

# every character str.splitlines() breaks at, and the \r\n pair as one
LINE_BREAK = re.compile(r"\r\n|[\n\r\v\f\x1c\x1d\x1e\x85\u2028\u2029]")
# backslash first, so that the escapes added after it are not escaped again
INLINE = [("\\", "\\\\"), ("&", "&amp;"), ("<", "&lt;"), (">", "&gt;"), ("|", "\\|"),
          ("`", "\\`"), ("*", "\\*"), ("[", "\\["), ("]", "\\]"), ("~", "\\~")]
# an underscore can open or close emphasis only beside a non-alphanumeric character, so
# ids such as set_transformer stay as they are
LOOSE_UNDERSCORE = re.compile(r"(?<![A-Za-z0-9])_|_(?![A-Za-z0-9])")
BLOCK_START = re.compile(r"^(#|=|-|\+|\d+[.)])")


def md_escape(text: object) -> str:
    """Record text as inline Markdown (a table cell, a heading, a list item): one line,
    its HTML as entities, the characters of Markdown syntax escaped."""
    out = LINE_BREAK.sub(" ", str(text))
    for raw, escaped in INLINE:
        out = out.replace(raw, escaped)
    return LOOSE_UNDERSCORE.sub(r"\\_", out)


def md_paragraph(text: object) -> str:
    """Record text as a paragraph of its own: inline-escaped, and unable to open a block
    (a heading, a quote, a list, a setext underline) with its first character."""
    out = md_escape(text).strip()
    m = BLOCK_START.match(out)
    if m:
        token = m.group(1)
        out = (token[:-1] + "\\" + token[-1] if token[0].isdigit() else "\\" + token) \
            + out[len(token):]
    return out


def md_table(table: Table) -> list[str]:
    """A table as Markdown lines, the best cells in bold."""

    def text(c: TableCell) -> str:
        return f"**{md_escape(c.text)}**" if c.best and c.text else md_escape(c.text)

    return (["| " + " | ".join(md_escape(h) for h in table.head) + " |",
             "|" + "---|" * len(table.head)]
            + ["| " + " | ".join(text(c) for c in cells) + " |" for cells in table.body])


def md_image(alt: str, path: str) -> str:
    """An image link to a file the leaderboard wrote (a relative path of safe names)."""
    return f"![{md_escape(alt)}]({path})"


# -- the attributions section (shared with the HTML page) ----------------------------------
def attribution_table(section: DatasetAttributions) -> Table:
    """A dataset's (model, method) scores, best AUROC first."""
    body = []
    for s in section.scores:
        body.append([
            TableCell(s.model_id), TableCell(s.view), TableCell(s.method or "-"),
            TableCell(fmt_ci(s.auroc), s.auroc.mean if s.auroc else None),
            TableCell(fmt_ci(s.precision), s.precision.mean if s.precision else None),
            TableCell(str(len(s.seeds)), len(s.seeds)),
            TableCell(fmt(s.test_mean), None if math.isnan(s.test_mean) else s.test_mean),
            TableCell(s.note)])
    return Table(["model", "view", "method", "AUROC (95% CI)", "precision@k (95% CI)",
                  "seeds", f"test {section.metric}", "note"], body)


def attribution_lines(section: DatasetAttributions, heatmap: bool = False) -> list[str]:
    """The lines above a dataset's attribution table: the ground truth, what was
    explained; and, when its heat map was drawn (`heatmap`), what it shows."""
    lines = []
    if section.ground_truth:
        lines.append(f"Ground truth: {section.ground_truth.rstrip('.')}.")
    if section.rows:
        rows = " or ".join(map(str, section.rows))
        lines.append(f"Scored on the first {rows} test rows of each seed.")
    h = section.heatmap
    if heatmap and h is not None:
        n = len(h.seeds)
        lines.append(f"Heat map: {h.model_id}, {h.method} (AUROC {fmt_ci(h.auroc)}), mean "
                     f"|attribution| over {n} seed{'s' * (n != 1)}"
                     + ("; the seeds declare different inputs relevant, outlined are those "
                        "relevant in at least half of them." if h.relevant_varies
                        else "; relevant inputs outlined." if h.relevant is not None
                        else "."))
    elif h is None:
        lines.append("No heat map: no model that learned has a scored method.")
    return lines


def _heatmap_alt(section: DatasetAttributions) -> str:
    h = section.heatmap
    return f"attribution heat map, {section.label}: {h.model_id}, {h.method}"


def markdown(a: Analysis, suite: str, problems: list[tuple[Path, str]] = (),
             cannot_run: set[tuple[str, str]] = frozenset(),
             incompatible: list[tuple[str, str, str]] = (),
             diagrams: dict[str, Path] | None = None, base: Path | None = None,
             heatmaps: dict[tuple[str, str], Path] | None = None) -> str:
    """The whole leaderboard page: legend and hardware, the aggregates of each modality
    with their CD diagrams, the published contrasts, the attributions (where explain
    files exist), the full grid, a table per dataset. diagrams: {modality: png} and
    heatmaps: {(dataset, version): png}, written under `base` (linked relative to it)."""
    diagrams, heatmaps = diagrams or {}, heatmaps or {}
    # a suite name is a checked id (no backtick can end the code span early); anything
    # else (a suite built in memory) is escaped text instead
    name = f"`{suite}`" if ID_PATTERN.fullmatch(suite) else md_escape(suite)
    out = [f"# Leaderboard: suite {name}", "", LEGEND, ""]
    devices = sorted({r.device for r in a.rows if r.device})
    if devices:
        out += [md_paragraph(f"Hardware: {', '.join(devices)}."), ""]
    if a.aggregates:
        out += ["## Summary by modality", ""]
        for agg in a.aggregates:
            out += [f"### {md_escape(agg.modality)}", ""]
            # what the ranks are over, the table, then what was left out and Friedman's
            out += [md_paragraph(line) for line in aggregate_notes(agg)[:1]] + [""]
            if agg.models:
                out += md_table(aggregate_table(agg)) + [""]
            out += [md_paragraph(line) + "\n" for line in aggregate_notes(agg)[1:]]
            png = diagrams.get(agg.modality)
            if png is not None:
                # relative, so the page and its plots/ move together (the path is ours:
                # a modality is one of the contract's names, made path-safe by plot_stem)
                rel = png.relative_to(base).as_posix() if base else png.name
                out += [md_image(f"critical-difference diagram, {agg.modality}", rel), ""]
    if a.contrasts:
        out += ["## Published contrasts", ""]
        for c in a.contrasts:
            out += [f"### {md_escape(c.name or 'contrast')}", ""]
            out += [md_paragraph(line) + "\n" for line in contrast_lines(c)]
            out += md_table(contrast_table(c)) + [""]
    if a.attributions:
        out += ["## Attributions", "", md_paragraph(ATTRIBUTIONS_LEGEND), ""]
        for key, section in a.attributions.items():
            png = heatmaps.get(key) if section.heatmap is not None else None
            out += [f"### {md_escape(section.label)}", ""]
            out += [md_paragraph(line) + "\n" for line in attribution_lines(section, png is not None)]
            out += md_table(attribution_table(section)) + [""]
            if png is not None:  # our own file name (plot_stem), relative to the page
                rel = png.relative_to(base).as_posix() if base else png.name
                out += [md_image(_heatmap_alt(section), rel), ""]
    if a.longer is not None:
        out += ["## Not converged: the same rows trained longer", ""]
        out += [md_paragraph(line) + "\n" for line in longer_lines(a.longer)]
        out += md_table(longer_table(a.longer)) + [""]
    out += ["## Full grid", ""] + md_table(summary_table(a, cannot_run)) + [""]
    for key, group in a.groups.items():
        title, metric_line = dataset_heading(group)
        out += [f"## {md_escape(title)}", ""]
        if group[0].description:
            out += [md_paragraph(group[0].description), ""]
        out += [md_paragraph(metric_line), ""]
        out += [md_paragraph(line) + "\n" for line in dataset_notes(a, key)]
        out += md_table(dataset_table(group, a.tests[key])) + [""]
    if incompatible:
        out += ["## Pairs left out", "",
                "Pairs the suite names that cannot run (no view the model accepts, or "
                "another task type):", ""]
        out += [f"- {md_escape(d)} · {md_escape(m)}: {md_escape(why)}"
                for d, m, why in sorted(incompatible)] + [""]
    if problems:  # a file name is text too: no code span a backtick in it could end
        out += ["## Files left out", ""] + [f"- {md_escape(p)}: {md_escape(why)}"
                                            for p, why in problems] + [""]
    return "\n".join(out)


# -- CSV --------------------------------------------------------------------------------
CSV_FIELDS = ["dataset", "dataset_version", "modality", "model", "model_name", "baseline",
              "param_budget", "view", "encoding", "metric", "higher_is_better",
              "test_mean", "test_std", "test_ci95", "val_mean", "val_std", "val_ci95",
              "ood_mean", "ood_std", "ood_ci95", "n_seeds", "seeds", "solved",
              "vs_best", "vs_best_p_holm", "vs_baseline", "vs_baseline_p_holm",
              "vs_best_detail", "vs_baseline_detail", "mcnemar_p_vs_best",
              "mcnemar_p_vs_baseline", "saturated", "solved_by_linear", "not_converged",
              "longer_test_mean", "longer_epochs_mean", "longer_vs_best", "longer_vs_best_p_holm",
              "n_params", "train_s_mean", "epochs_mean", "n_failed", "n_skipped", "status",
              "secondary", "hparams", "budget"]
FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "\n", "＝", "＋", "－", "＠")


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def csv_cell(value: object) -> object:
    """A value as a safe CSV cell: text a spreadsheet would evaluate is prefixed with a
    single quote (OWASP: cells starting with = + - @ tab CR); numbers, written as
    numbers or as number text ("-0.25"), stay numbers. A CR inside text becomes LF: the
    csv module quotes a cell holding an LF (our line terminator) but not one holding a
    bare CR, which a reader would take for the end of the row."""
    if not isinstance(value, str):
        return value
    if value.startswith(FORMULA_START) and not _is_number(value):
        value = "'" + value
    return value.replace("\r\n", "\n").replace("\r", "\n")


ATTRIBUTION_FIELDS = ["dataset", "dataset_version", "model", "view", "method", "metric",
                      "test_mean", "learned", "learned_why", "auroc_mean", "auroc_ci95",
                      "auroc_n", "precision_at_k_mean", "precision_at_k_ci95",
                      "precision_at_k_n", "n_seeds", "seeds", "heatmap", "error", "note"]


def attributions_csv(a: Analysis) -> str:
    """attributions.csv: one line per (dataset, model, method) of the Attributions
    section, means and 95% half-widths over seeds as fixed-point text (6 digits)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=ATTRIBUTION_FIELDS, lineterminator="\n")
    writer.writeheader()
    for (dataset, version), section in a.attributions.items():
        h = section.heatmap
        for s in section.scores:
            line = {
                "dataset": dataset, "dataset_version": version, "model": s.model_id,
                "view": s.view, "method": s.method, "metric": section.metric,
                "test_mean": fmt(s.test_mean, 6),
                "learned": "" if s.learned is None else s.learned,
                "learned_why": s.learned_why,
                "auroc_mean": fmt(s.auroc.mean, 6) if s.auroc else "",
                "auroc_ci95": fmt(s.auroc.half_width, 6) if s.auroc else "",
                "auroc_n": s.auroc.n if s.auroc else 0,
                "precision_at_k_mean": fmt(s.precision.mean, 6) if s.precision else "",
                "precision_at_k_ci95": fmt(s.precision.half_width, 6) if s.precision else "",
                "precision_at_k_n": s.precision.n if s.precision else 0,
                "n_seeds": len(s.seeds), "seeds": " ".join(map(str, s.seeds)),
                "heatmap": h is not None and (h.model_id, h.method) == (s.model_id, s.method),
                "error": "; ".join(s.errors), "note": s.note,
            }
            writer.writerow({k: csv_cell(v) for k, v in line.items()})
    return buf.getvalue()


def _verdict_word(t, words: dict[str, str]) -> str:
    if t is None:
        return ""
    return words[t.verdict] if t.tested else "no test"


def to_csv(a: Analysis) -> str:
    """Every row with every aggregated figure, one line per (dataset, model, budget)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    longer = {(x.short.dataset_id, x.short.dataset_version, x.short.model_id): x
              for x in (a.longer.rows if a.longer else [])}
    for key, group in a.groups.items():
        tests, marks = a.tests[key], a.marks[key]
        for r in group:
            vs_best, vs_base = tests.vs_best(r.model_id), tests.vs_baseline(r.model_id)
            stuck = r.not_converged()
            long = longer.get((*key, r.model_id))
            long_t = long.vs_best_long if long else None
            # numbers as fixed-point text (6 digits) so that the file diffs cleanly;
            # verdict words beside corrected p's; the test in full for who wants it
            line = {
                "dataset": r.dataset_id, "dataset_version": r.dataset_version,
                "modality": dataset_modality(group), "model": r.model_id,
                "model_name": r.model_name, "baseline": r.baseline,
                "param_budget": r.param_budget or "", "view": r.view, "encoding": r.encoding,
                "metric": r.metric, "higher_is_better": r.higher_is_better,
                "test_mean": fmt(mean(r.test), 6), "test_std": fmt(std(r.test), 6),
                "test_ci95": fmt(ci_half(r.test), 6),
                "val_mean": fmt(mean(r.val), 6), "val_std": fmt(std(r.val), 6),
                "val_ci95": fmt(ci_half(r.val), 6),
                "ood_mean": fmt(mean(r.ood), 6), "ood_std": fmt(std(r.ood), 6),
                "ood_ci95": fmt(ci_half(r.ood), 6),
                "n_seeds": len(r.test), "seeds": " ".join(map(str, r.seeds)),
                "solved": solved_text(r),
                "vs_best": "best" if r.ok and r.model_id == tests.best
                else _verdict_word(vs_best, VS_BEST),
                "vs_best_p_holm": fmt(vs_best.p_holm, 6) if vs_best and vs_best.tested else "",
                "vs_baseline": "baseline" if r.ok and r.model_id == tests.baseline
                else _verdict_word(vs_base, VS_BASELINE),
                "vs_baseline_p_holm": fmt(vs_base.p_holm, 6) if vs_base and vs_base.tested
                else "",
                "vs_best_detail": comparison_detail(vs_best),
                "vs_baseline_detail": comparison_detail(vs_base),
                "mcnemar_p_vs_best": fmt(vs_best.mcnemar.p, 6) if vs_best and vs_best.mcnemar
                else "",
                "mcnemar_p_vs_baseline": fmt(vs_base.mcnemar.p, 6)
                if vs_base and vs_base.mcnemar else "",
                "saturated": marks.saturated, "solved_by_linear": marks.solved_by_linear,
                "not_converged": bool(stuck),
                "longer_test_mean": fmt(mean(long.long.test), 6) if long else "",
                "longer_epochs_mean": fmt(mean(long.long.epochs), 2) if long else "",
                "longer_vs_best": _verdict_word(long_t, VS_BEST) if long else "",
                "longer_vs_best_p_holm": fmt(long_t.p_holm, 6) if long_t and long_t.tested
                else "",
                "n_params": r.n_params if r.n_params is not None else "",
                "train_s_mean": fmt(mean(r.train_s), 3), "epochs_mean": fmt(mean(r.epochs), 2),
                "n_failed": len(r.failed), "n_skipped": len(r.skipped), "status": status_text(r),
                "secondary": " ".join(f"{k}={fmt(mean(v), 6)}"
                                      for k, v in sorted(r.secondary.items())),
                "hparams": json.dumps(r.hparams, sort_keys=True, default=str),
                "budget": json.dumps(r.budget, sort_keys=True, default=str),
            }
            writer.writerow({k: csv_cell(v) for k, v in line.items()})  # every cell
    return buf.getvalue()

