"""leaderboard.html: the Markdown leaderboard as one self-contained page.

Same sections and tables (built once in `tables`): per modality the aggregate table and
its critical-difference diagram, the published contrasts, the full grid, the per-dataset
tables, each with its rows' hyperparameters and training budget one click away (a
<details> under the table, and the model cell's hover text) and its plots; the
attributions section where explain files exist (its tables and lines are the Markdown's,
from benchmarks.report.markdown). Plots are
inlined as base64 PNG (large ones linked from plots/ beside the page), with inline CSS and a few lines of JS that sort a table by a
clicked column. No server, no external asset. Every string that comes from a record
goes through `html.escape`: a model name is data, never markup.
"""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path

from .analysis import Analysis
from .attributions import LEGEND as ATTRIBUTIONS_LEGEND
from .markdown import attribution_lines, attribution_table
from .tables import (
    LEGEND,
    Table,
    TableCell,
    aggregate_notes,
    aggregate_table,
    config_text,
    contrast_lines,
    contrast_table,
    dataset_heading,
    dataset_notes,
    dataset_table,
    longer_lines,
    longer_table,
    summary_table,
)

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1200px; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; margin-top: 2em; border-bottom: 1px solid #ddd; }
table { border-collapse: collapse; margin: .8em 0; font-variant-numeric: tabular-nums; }
th, td { padding: .25em .7em; border-bottom: 1px solid #e4e4e4; text-align: left; white-space: nowrap; }
th { background: #f4f4f4; cursor: pointer; user-select: none; position: sticky; top: 0; }
th[data-dir=asc]::after { content: " \\25B2"; } th[data-dir=desc]::after { content: " \\25BC"; }
tbody tr:nth-child(even) { background: #fafafa; } tbody tr:hover { background: #eef5ff; }
td.best { font-weight: bold; } td.dim { color: #999; }
.desc { color: #555; } .metric { font-weight: 600; }
.plots { display: flex; flex-wrap: wrap; gap: 1em; } .plots img { max-width: 100%; height: auto; }
.scroll { overflow-x: auto; } .note { color: #444; margin: .3em 0; }
details { margin: .4em 0 1em; } summary { cursor: pointer; color: #245; }
.cd img { max-width: 100%; height: auto; }
"""

# Click a header: sort the rows by that column (numbers by their data-v), again to reverse;
# cells with nothing to sort by stay at the bottom either way.
JS = """
document.querySelectorAll("table.sortable").forEach(function (table) {
  var heads = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(heads, function (th, col) {
    th.addEventListener("click", function () {
      var asc = th.dataset.dir !== "asc";
      Array.prototype.forEach.call(heads, function (h) { delete h.dataset.dir; });
      th.dataset.dir = asc ? "asc" : "desc";
      var key = function (tr) {
        var td = tr.cells[col], v = td.dataset.v;
        if (v !== undefined) return v === "" ? null : parseFloat(v);
        var t = td.textContent.trim().toLowerCase();
        return t === "" || t === "." || t === "-" ? null : t;
      };
      var body = table.tBodies[0];
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null || y === null) return (x === null) - (y === null);
        return (x < y ? -1 : x > y ? 1 : 0) * (asc ? 1 : -1);
      }).forEach(function (tr) { body.appendChild(tr); });
    });
  });
});
"""


NOT_A_RESULT = (".", "-", "failed", "skipped")


def esc(text: object) -> str:
    """Record text as HTML text: data, never markup."""
    return html.escape(str(text), quote=True)


def html_cell(cell: TableCell) -> str:
    """One <td>, with its sort value and hover title."""
    classes = ["best"] * cell.best + ["dim"] * (cell.text in NOT_A_RESULT)
    attrs = f' class="{" ".join(classes)}"' if classes else ""
    if cell.value is not None and not math.isnan(cell.value):
        attrs += f' data-v="{float(cell.value)!r}"'
    elif cell.value is not None or cell.text in NOT_A_RESULT:
        attrs += ' data-v=""'  # sorts last
    if cell.title:
        attrs += f' title="{esc(cell.title)}"'
    return f"<td{attrs}>{esc(cell.text)}</td>"


def html_table(table: Table) -> str:
    """A sortable <table> of a table model."""
    head = "".join(f"<th>{esc(h)}</th>" for h in table.head)
    body = "\n".join("<tr>" + "".join(html_cell(c) for c in cells) + "</tr>"
                     for cells in table.body)
    return (f'<div class="scroll"><table class="sortable"><thead><tr>{head}</tr></thead>\n'
            f"<tbody>\n{body}\n</tbody></table></div>")


INLINE_MAX_BYTES = 48_000  # larger PNGs are linked: a 19-dataset page inlined was 7.6 MB


def png_data_uri(path: Path) -> str:
    """A PNG file inlined as a data: URI ("" if it is gone: another runner redrawing it);
    one over INLINE_MAX_BYTES is linked instead, relative to the page (plots/ always sits
    beside leaderboard.html), so that the page stays small enough to commit."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError:
        return ""
    if len(data) > INLINE_MAX_BYTES:
        return f"{path.parent.name}/{path.name}"
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _configs(group) -> str:
    """Each row's hyperparameters, budget and input, folded away under the table."""
    items = "".join(f"<li><b>{esc(r.model_id)}</b>: {esc(config_text(r))}</li>" for r in group)
    return (f"<details><summary>Hyperparameters and training budget of each row</summary>"
            f"<ul>{items}</ul></details>")


def html_page(a: Analysis, suite: str, problems: list[tuple[Path, str]] = (),
              plot_files: dict[tuple[str, str], dict[str, Path]] | None = None,
              cannot_run: set[tuple[str, str]] = frozenset(),
              diagrams: dict[str, Path] | None = None,
              incompatible: list[tuple[str, str, str]] = (),
              heatmaps: dict[tuple[str, str], Path] | None = None) -> str:
    """The whole page; `plot_files` ({(dataset, version): {kind: png}}), `diagrams`
    ({modality: png}) and the attribution `heatmaps` ({(dataset, version): png}) are
    inlined."""
    plot_files, diagrams, heatmaps = plot_files or {}, diagrams or {}, heatmaps or {}
    out = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
           '<meta name="viewport" content="width=device-width, initial-scale=1">',
           f"<title>Leaderboard: suite {esc(suite)}</title>", f"<style>{CSS}</style>",
           "</head><body>", f"<h1>Leaderboard: suite <code>{esc(suite)}</code></h1>",
           f"<p>{esc(LEGEND.replace('`', ''))} Click a column header to sort; hover a "
           "model or a comparison for its configuration or the test in full.</p>"]
    devices = sorted({r.device for r in a.rows if r.device})
    if devices:
        out.append(f"<p>Hardware: {esc(', '.join(devices))}.</p>")
    if a.aggregates:
        out.append("<h2>Summary by modality</h2>")
        for agg in a.aggregates:
            notes = aggregate_notes(agg)
            out += [f"<h3>{esc(agg.modality)}</h3>", f'<p class="note">{esc(notes[0])}</p>']
            if agg.models:
                out.append(html_table(aggregate_table(agg)))
            out += [f'<p class="note">{esc(line)}</p>' for line in notes[1:]]
            if agg.modality in diagrams:
                out.append(f'<div class="cd"><img src="{png_data_uri(diagrams[agg.modality])}" '
                           f'alt="critical-difference diagram, {esc(agg.modality)}"></div>')
    if a.contrasts:  # after the aggregates, before the grid: the order of the Markdown
        out.append("<h2>Published contrasts</h2>")
        for c in a.contrasts:
            out.append(f"<h3>{esc(c.name or 'contrast')}</h3>")
            out += [f'<p class="note">{esc(line.replace("`", ""))}</p>'
                    for line in contrast_lines(c)]
            out.append(html_table(contrast_table(c)))
    if a.attributions:  # after the contrasts, before the grid: the order of the Markdown
        out += ["<h2>Attributions</h2>", f'<p class="note">{esc(ATTRIBUTIONS_LEGEND)}</p>']
        for key, section in a.attributions.items():
            png = heatmaps.get(key) if section.heatmap is not None else None
            out.append(f"<h3>{esc(section.label)}</h3>")
            out += [f'<p class="note">{esc(line)}</p>'
                    for line in attribution_lines(section, png is not None)]
            out.append(html_table(attribution_table(section)))
            if png is not None:
                h = section.heatmap
                out.append(f'<div class="plots"><img src="{png_data_uri(png)}" alt="attribution '
                           f'heat map, {esc(section.label)}: {esc(h.model_id)}, '
                           f'{esc(h.method)}"></div>')
    if a.longer is not None:  # after the attributions, before the grid, as in the Markdown
        out.append("<h2>Not converged: the same rows trained longer</h2>")
        out += [f'<p class="note">{esc(line.replace("`", ""))}</p>'
                for line in longer_lines(a.longer)]
        out.append(html_table(longer_table(a.longer)))
    out += ["<h2>Full grid</h2>", html_table(summary_table(a, cannot_run))]
    for key, group in a.groups.items():
        title, metric_line = dataset_heading(group)
        out.append(f"<h2>{esc(title)}</h2>")
        if group[0].description:
            out.append(f'<p class="desc">{esc(group[0].description)}</p>')
        out.append(f'<p class="metric">{esc(metric_line)}</p>')
        out += [f'<p class="note">{esc(line.replace("`", ""))}</p>'
                for line in dataset_notes(a, key)]
        # the configurations folded away: one click, not a wall of text per dataset
        out += [html_table(dataset_table(group, a.tests[key])), _configs(group)]
        images = [f'<img src="{png_data_uri(png)}" alt="{esc(title)}: {esc(kind)} plot">'
                  for kind, png in plot_files.get(key, {}).items()]
        if images:
            out.append('<div class="plots">' + "\n".join(images) + "</div>")
    if incompatible:
        out += ["<h2>Pairs left out</h2>", "<ul>"]
        out += [f"<li>{esc(d)} · {esc(m)}: {esc(why)}</li>" for d, m, why in sorted(incompatible)]
        out.append("</ul>")
    if problems:
        out += ["<h2>Files left out</h2>", "<ul>"]
        out += [f"<li><code>{esc(p)}</code>: {esc(why)}</li>" for p, why in problems]
        out.append("</ul>")
    out += [f"<script>{JS}</script>", "</body></html>", ""]
    return "\n".join(out)
