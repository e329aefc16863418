"""Leaderboard plots, per dataset, as PNG and SVG:

    <dataset>.bars     test metric per model, error bars = 95% interval over seeds, the
                       OOD test metric as a second, hatched bar where the dataset has
                       one; baseline dashed
    <dataset>.params   test metric against parameter count (log x), one colour per family
    <dataset>.curves   validation metric per epoch, mean over seeds with a +-std band
    cd-<modality>      the critical-difference diagram of a modality's aggregate

Drawn on matplotlib's Agg canvas through `Figure` objects, never pyplot, so nothing
global changes and no display is needed; matplotlib is imported only here, on first use.
Drawing is most of a large leaderboard's time: a plot whose SVG carries the fingerprint
of its rows is kept as it is, and many datasets are drawn by child processes
(start_plots) while the caller runs the paired tests.
A model family (the registered model name) has one colour and marker in every plot of
every suite: the built-in families from a fixed table, any other name from a hash of it.
"""

from __future__ import annotations

import colorsys
import hashlib
import json
import math
from pathlib import Path
from typing import Any

from ..metrics import METRICS
from ..run.files import ID_PATTERN
from .rows import Row, by_dataset, mean, std
from .tables import ci_half, dataset_label, direction, fmt_count

PLOT_KINDS = ("bars", "params", "curves")
MARKERS = "osD^vP*Xhp<>"
LINESTYLES = ("-", "--", ":", "-.")
DPI = 110
STYLE = {"text.parse_math": False,  # a '$' in a model name is text, not TeX
         "svg.fonttype": "none", "svg.hashsalt": "mlwm",  # selectable text, stable files
         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3, "font.size": 9, "legend.fontsize": 8, "legend.frameon": False}

# The built-in families' colours and markers, fixed so that a family looks the same in
# every plot and every suite (tab20's colours; a family's sizes share its colour).
FAMILY_STYLES: dict[str, tuple[str, str]] = {
    "constant": ("#7f7f7f", "_"), "majority": ("#7f7f7f", "_"),
    "linear": ("#bcbd22", "s"), "logistic": ("#dbdb8d", "s"), "gboost": ("#8c564b", "D"),
    "mlp": ("#1f77b4", "o"), "cnn1d": ("#ff7f0e", "^"), "cnn2d": ("#ffbb78", "v"),
    "lstm": ("#2ca02c", "P"), "gru": ("#98df8a", "X"), "transformer": ("#d62728", "*"),
    "deepsets": ("#9467bd", "h"), "set_transformer": ("#c5b0d5", "H"),
    "gcn": ("#17becf", "<"), "gin": ("#9edae5", ">"), "gat": ("#e377c2", "p"),
    "graphsage": ("#f7b6d2", "8"), "operon": ("#aec7e8", "d"), "gplearn": ("#c49c94", "d"),
    "pysr": ("#ff9896", "d"),
}


def family_style(family: str) -> tuple[str, str]:
    """(colour, marker) of a model family: the table's, or one derived from a hash of the
    name (the same in every run and suite; hue from the hash, fixed saturation and value
    so that it stays readable on white)."""
    if family in FAMILY_STYLES:
        return FAMILY_STYLES[family]
    digest = hashlib.sha256(family.encode()).digest()
    r, g, b = colorsys.hsv_to_rgb(digest[0] / 256 + digest[1] / 65536, 0.65, 0.8)
    return f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}", \
        MARKERS[digest[2] % len(MARKERS)]


def plot_stem(dataset_id: str, version: str) -> str:
    """A file name stem for a dataset: its id made path-safe, plus a short hash of the id
    when cleaning changed it (so that "a/b" and "a_b" never share files)."""
    label = dataset_id if version == "1" else f"{dataset_id}-v{version}"
    if ID_PATTERN.fullmatch(label):
        return label
    stem = "".join(c if c.isalnum() or c in "._-@=+" else "_" for c in label).strip(".") or "_"
    return f"{stem}-{hashlib.sha1(label.encode()).hexdigest()[:6]}"


def family_styles(rows: list[Row]) -> dict[str, tuple[Any, str]]:
    """(colour, marker) per model family of the rows (see family_style)."""
    return {f: family_style(f) for f in sorted({r.model_name for r in rows})}


def _save(fig, png: Path, mark: str = "") -> None:
    """PNG and SVG, with no creation date in either: a rebuilt leaderboard of the same
    records leaves the committed plots byte for byte as they were. The layout computed
    for the PNG is kept for the SVG (laying out again costs a third of the time); the
    SVG carries `mark` (a fingerprint) as its description. Both are written to temporary
    files and renamed into place, the PNG first: a marked SVG means both are new, and a
    reader (another runner building the same leaderboard) never finds a file missing."""
    import os

    svg = png.with_suffix(".svg")
    part_png = png.with_name(f".{png.name}.{os.getpid()}.part")
    part_svg = svg.with_name(f".{svg.name}.{os.getpid()}.part")
    try:
        fig.savefig(part_svg, metadata={"Date": None, "Description": mark or None},
                    format="svg")
        fig.set_layout_engine("none")
        fig.savefig(part_png, dpi=DPI, format="png")
        os.replace(part_png, png)
        os.replace(part_svg, svg)
    finally:
        part_png.unlink(missing_ok=True)
        part_svg.unlink(missing_ok=True)


def write_cd_diagrams(aggregates: list, out_dir: str | Path) -> dict[str, Path]:
    """The critical-difference diagram of each modality whose aggregate has a Friedman
    test, into out_dir as cd-<modality>.png and .svg; {modality: png}."""
    import matplotlib

    from .stats import critical_difference_figure

    out_dir = Path(out_dir)
    written = {}
    with matplotlib.rc_context(STYLE):
        for agg in aggregates:
            if agg.friedman is None or not agg.friedman.tested:
                continue
            out_dir.mkdir(parents=True, exist_ok=True)
            fig = critical_difference_figure(
                agg.friedman, f"{agg.modality}: average rank over {len(agg.datasets)} "
                              f"datasets (1 = best); Friedman p = {agg.friedman.p:.3g}")
            png = out_dir / f"{plot_stem('cd-' + agg.modality, '1')}.png"
            _save(fig, png)
            written[agg.modality] = png
    return written


PER_WORKER = 6  # datasets a child process must have to be worth its start-up (~2 s)


class PlotJob:
    """Plots being drawn: `result()` waits and gives write_plots' result, drawing here
    whatever a child did not; `cancel()` stops the children (the caller failed)."""

    def __init__(self, rows: list[Row], out_dir: str | Path, children=(), tmp=None) -> None:
        self.rows, self.out_dir, self.children, self.tmp = rows, out_dir, list(children), tmp

    def result(self) -> dict[tuple[str, str], dict[str, Path]]:
        import pickle
        import sys

        if not self.children:
            return write_plots(self.rows, self.out_dir)
        written: dict[tuple[str, str], dict[str, Path]] = {}
        try:
            for job, child in self.children:
                done = job.with_suffix(".json")
                if child is not None and child.wait() == 0 and done.is_file():
                    for key, kinds in json.loads(done.read_text()):
                        written[tuple(key)] = {k: Path(p) for k, p in kinds.items()}
                    continue
                if child is not None:  # its error is ours to report, then draw here
                    why = job.with_suffix(".err").read_text(errors="replace").strip().splitlines()
                    print(f"mlwm: warning: a plotting process failed "
                          f"({why[-1] if why else child.returncode}); drawing here",
                          file=sys.stderr)
                written.update(write_plots(pickle.loads(job.read_bytes()), self.out_dir))
            order = list(by_dataset(self.rows))
            return {k: written[k] for k in order if k in written}
        finally:
            self.cancel()

    def cancel(self) -> None:
        for _, child in self.children:
            if child is not None and child.poll() is None:
                child.kill()
                child.wait()
        if self.tmp is not None:
            self.tmp.cleanup()
            self.tmp = None


def start_plots(rows: list[Row], out_dir: str | Path) -> PlotJob:
    """write_plots in the background, in child processes when there are many datasets
    (drawing is most of a large leaderboard's time, and a family's style depends on its
    name alone, so datasets can be drawn apart); few datasets are drawn in result().

    A child is `python -m benchmarks.report.plots` reading its rows from a pickle this
    process wrote in a private temporary folder: it imports the harness and nothing of
    the caller (multiprocessing's spawn would run the caller's unguarded script again,
    and fork would copy the locks of torch's threads)."""
    import os
    import pickle
    import subprocess
    import sys
    import tempfile

    groups = by_dataset(rows)
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cpus = os.cpu_count() or 1
    workers = min(cpus, 8, len(groups) // PER_WORKER)
    if workers < 2:
        return PlotJob(rows, out_dir)
    keys = list(groups)
    tmp = tempfile.TemporaryDirectory(prefix="mlwm-plots-")
    root = str(Path(__file__).resolve().parents[2])  # where `benchmarks` imports from
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [root] + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else []))}
    children = []
    for i in range(workers):
        job = Path(tmp.name) / f"rows{i}.pkl"
        job.write_bytes(pickle.dumps([r for k in keys[i::workers] for r in groups[k]]))
        try:  # stderr to a file, not a pipe: a chatty child must never block on it
            with open(job.with_suffix(".err"), "wb") as err:
                children.append((job, subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.report.plots", str(job), str(out_dir)],
                    env=env, stdout=subprocess.DEVNULL, stderr=err)))
        except OSError:  # no process to be had: those datasets are drawn here
            children.append((job, None))
    return PlotJob(rows, out_dir, children, tmp)

def fingerprint(group: list[Row]) -> str:
    """What a dataset's plots are drawn from: its rows, this file's code and matplotlib's
    version. Plots whose SVG holds the same fingerprint (and kind) are current. The
    files beside the records (predictions, attributions) are not drawn and their paths
    name the results folder, so they are left out: the same records in another clone or
    folder give the same fingerprint."""
    import dataclasses

    import matplotlib

    # fields one level down (dataclasses.asdict cannot copy the defaultdict of secondary
    # metrics before Python 3.12); json turns the nested values into text
    rows = json.dumps([{f.name: getattr(r, f.name) for f in dataclasses.fields(r)
                        if f.name not in ("predictions", "explanations")}
                       for r in group], sort_keys=True, default=str)
    return hashlib.sha256(b"\0".join([matplotlib.__version__.encode(),
                                       Path(__file__).read_bytes(), rows.encode()])
                          ).hexdigest()[:32]


def _current(png: Path, mark: str) -> bool:
    svg = png.with_suffix(".svg")
    try:
        return png.is_file() and mark in svg.read_text(errors="replace")
    except OSError:
        return False


def write_plots(rows: list[Row], out_dir: str | Path) -> dict[tuple[str, str], dict[str, Path]]:
    """Every plot of every dataset into out_dir; {(dataset, version): {kind: png path}}
    (the SVG sits beside each PNG). A plot with nothing to show is not written; one
    whose files are current (same fingerprint) is kept as it is: drawing is most of a
    rebuild's time, and the same rows give the same bytes anyway."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = family_styles(rows)
    written: dict[tuple[str, str], dict[str, Path]] = {}
    with matplotlib.rc_context(STYLE):
        for key, group in by_dataset(rows).items():
            stem, print_ = plot_stem(*key), fingerprint(group)
            for kind, draw in zip(PLOT_KINDS, (bar_chart, params_scatter, learning_curves),
                                  strict=True):
                png = out_dir / f"{stem}.{kind}.png"
                mark = f"mlwm-plot {kind} {print_}"
                if _current(png, mark):
                    written.setdefault(key, {})[kind] = png
                    continue
                fig = draw(group, styles)
                if fig is None:
                    continue
                _save(fig, png, mark)
                written.setdefault(key, {})[kind] = png
    return written


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _title(row: Row, what: str) -> str:
    return (f"{dataset_label(row.dataset_id, row.dataset_version)}: {what} "
            f"({direction(row.higher_is_better)})")


def _spread(xs: list[float]) -> float:
    """The error bar: the 95% interval's half-width over seeds (0 for one seed)."""
    s = ci_half(xs)
    return 0.0 if math.isnan(s) else s


def _band(xs: list[float]) -> float:
    """A learning curve's band: the std over seeds at an epoch (0 for one seed)."""
    s = std(xs)
    return 0.0 if math.isnan(s) else s


def _near(value: float, lo: float, hi: float) -> bool:
    """Within twice the data's range of it: worth stretching the axis for."""
    return lo - 2 * (hi - lo) <= value <= hi + 2 * (hi - lo)


def _baselines(ax, rows: list[Row], vertical: bool, near: tuple[float, float] | None = None
               ) -> None:
    """Each baseline's mean test metric as a dashed line across the plot. With `near`
    (the data's range), a baseline far outside it is named in the legend but not drawn,
    so that it does not squash the models' differences into a sliver."""
    for i, r in enumerate(r for r in rows if r.baseline and r.ok):
        m = mean(r.test)
        style = {"color": "0.3", "linestyle": LINESTYLES[1 + i % 3], "linewidth": 1.2}
        label = f"{r.model_id} (baseline) {m:.3f}"
        if near is not None and not _near(m, *near):
            ax.plot([], [], label=label + ", off the chart", **style)
        else:
            (ax.axvline if vertical else ax.axhline)(m, label=label, zorder=2.5, **style)


def _top(metric: str) -> float:
    """The metric's upper bound from the metric table (1 for the scores, inf for errors)."""
    entry = METRICS.get(metric)
    return entry.bounds[1] if entry is not None else math.inf


def _cut(first: Row, values: list[float]) -> float:
    """Where the metric axis stops: -1 for metrics bounded above by 1 (accuracy, R^2), so
    that one diverged model (R^2 = -40) does not flatten the rest; else nowhere."""
    return -1.0 if _top(first.metric) == 1.0 and max(values) <= 1.0 else -math.inf


def bar_chart(rows: list[Row], styles: dict[str, tuple[Any, str]]):
    """Horizontal bars, best model on top; failed and skipped cells listed without a bar.
    Where the dataset has an OOD split, each model gets a second, hatched bar for its
    OOD test metric under the test bar. Metrics that live in [.., 1] (accuracy, R^2) cut
    the axis at -1 and print the value of a bar cut there, so one diverged model does
    not flatten the rest."""
    bars = [r for r in rows if not r.baseline or not r.ok]
    if not any(r.ok for r in rows):
        return None
    first = rows[0]
    has_ood = any(r.ood for r in bars)
    fig = _figure(7.5, 1.4 + (0.5 if has_ood else 0.32) * max(len(bars), 2))
    ax = fig.add_subplot()
    ok = [r for r in rows if r.ok]  # baselines included: their lines must fit too
    values = [(mean(r.test), _spread(r.test)) for r in ok]
    values += [(mean(r.ood), _spread(r.ood)) for r in ok if r.ood]
    cut = _cut(first, [m for m, _ in values])
    lo = max(cut, min([0.0] + [m - e for m, e in values]))
    hi = max([0.0] + [m + e for m, e in values])
    pad = 0.22 * (hi - lo or 1.0)  # room for the value labels
    ys = list(range(len(bars)))[::-1]
    height = 0.4 if has_ood else 0.8

    def bar(y: float, xs: list[float], colour, hatched: bool, n_failed: int = 0) -> None:
        m, e = mean(xs), _spread(xs)
        shown = max(m, lo)
        ax.barh(y, shown, height=height, xerr=e if m >= lo else None, color=colour,
                alpha=0.45 if hatched else 0.85, hatch="///" if hatched else None,
                edgecolor="0.25" if hatched else None, linewidth=0,
                error_kw={"elinewidth": 1, "capsize": 2.5, "ecolor": "0.2"}, zorder=2)
        label = (f"{'OOD ' if hatched else ''}{m:.3f}" + (f" ± {e:.3f}" if len(xs) > 1 else "")
                 + f"  n={len(xs)}" + (f", {n_failed} failed" if n_failed else ""))
        ax.text(max(shown, 0.0) + e + 0.01 * (hi - lo or 1.0), y,
                label + (" (cut)" if m < lo else ""), va="center", fontsize=7, zorder=3)

    for y, r in zip(ys, bars, strict=True):
        colour, _ = styles[r.model_name]
        if not r.ok:
            ax.text(max(lo, 0.0), y, "  " + ("skipped" if r.skipped else "failed"),
                    va="center", color="0.4", style="italic")
            continue
        bar(y + (0.2 if has_ood else 0.0), r.test, colour, False, len(r.failed))
        if r.ood:
            bar(y - 0.2, r.ood, colour, True)
    _baselines(ax, rows, vertical=True)
    ax.set_yticks(ys, [r.model_id for r in bars])
    ax.set_xlim(lo - (0.02 * (hi - lo) if lo < 0 else 0.0), hi + pad)
    ax.set_ylim(-0.7, len(bars) - 0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"{first.metric} (mean over seeds, 95% interval)")
    ax.set_title(_title(first, f"test {first.metric} per model"
                               + (" (hatched: OOD test)" if has_ood else "")))
    if has_ood:  # the two bars' meaning, beside the baselines' lines
        ax.barh([], [], color="0.5", alpha=0.85, label="test")
        ax.barh([], [], color="0.5", alpha=0.45, hatch="///", edgecolor="0.25",
                label="OOD test")
    if has_ood or any(r.baseline and r.ok for r in rows):
        fig.legend(loc="outside lower center", ncols=3)
    return fig


def params_scatter(rows: list[Row], styles: dict[str, tuple[Any, str]]):
    """Test metric against parameter count, budgets of one family joined by a line."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    points = [r for r in rows if r.ok and r.n_params and not r.baseline]
    if len(points) < 2:
        return None
    first = rows[0]
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    for family in sorted({r.model_name for r in points}):
        fam = sorted((r for r in points if r.model_name == family), key=lambda r: r.n_params)
        colour, marker = styles[family]
        ax.errorbar([r.n_params for r in fam], [mean(r.test) for r in fam],
                    yerr=[_spread(r.test) for r in fam], color=colour, marker=marker,
                    markersize=6, capsize=3, linewidth=1, label=family, zorder=3)
    cut = _cut(first, [mean(r.test) for r in points])
    shown = [r for r in points if mean(r.test) >= cut]
    lo = min((mean(r.test) - _spread(r.test) for r in shown), default=cut)
    hi = max((mean(r.test) + _spread(r.test) for r in shown), default=cut)
    _baselines(ax, rows, vertical=False, near=(lo, hi))
    if len(shown) < len(points):  # a point below the cut: the axis ends, the legend names it
        for r in points:
            if r not in shown:
                ax.plot([], [], marker="v", linestyle="none", color=styles[r.model_name][0],
                        label=f"{r.model_id} {mean(r.test):.3f}, below the axis")
        near = [mean(b.test) for b in rows if b.baseline and b.ok and _near(mean(b.test), lo, hi)]
        lo, hi = min([lo] + near), max([hi] + near)
        ax.set_ylim(lo - 0.08 * (hi - lo or 1.0), hi + 0.08 * (hi - lo or 1.0))
    ax.set_xscale("log")
    # 1k, 2k, 5k, 10k ...: labelled ticks even when the budgets span less than a decade
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda x, _: fmt_count(round(x))))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_xlabel("parameters (log scale)")
    ax.set_ylabel(f"test {first.metric} (mean, 95% interval)")
    ax.set_title(_title(first, f"test {first.metric} vs parameters"))
    handles, labels = ax.get_legend_handles_labels()  # families first, then the notes
    order = sorted(range(len(labels)), key=lambda i: labels[i] not in styles)
    fig.legend([handles[i] for i in order], [labels[i] for i in order],
               loc="outside right upper", title="model family")
    return fig


def mean_curve(histories: list[list[dict[str, Any]]], key: str
               ) -> tuple[list[int], list[float], list[float]]:
    """Epochs (from 1), mean and std over seeds of `key`. A seed that stopped early holds
    its last value, so the mean does not jump when it leaves."""
    series = [[h[key] for h in hist if h.get(key) is not None] for hist in histories]
    series = [s for s in series if s]
    if not series:
        return [], [], []
    length = max(len(s) for s in series)
    padded = [s + [s[-1]] * (length - len(s)) for s in series]
    columns = list(zip(*padded, strict=True))
    return (list(range(1, length + 1)), [mean(list(c)) for c in columns],
            [_band(list(c)) for c in columns])


def learning_curves(rows: list[Row], styles: dict[str, tuple[Any, str]]):
    """Validation metric per epoch for every model with recorded histories."""
    first = rows[0]
    key = f"val/{first.metric}"
    curves = [(r, *mean_curve(r.histories, key)) for r in rows if r.histories]
    curves = [c for c in curves if c[1]]
    if not curves:
        return None
    fig = _figure(7.5, 4.2)
    ax = fig.add_subplot()
    seen: dict[str, int] = {}
    for r, epochs, m, s in curves:
        colour, _ = styles[r.model_name]
        style = LINESTYLES[seen.get(r.model_name, 0) % len(LINESTYLES)]
        seen[r.model_name] = seen.get(r.model_name, 0) + 1
        ax.plot(epochs, m, color=colour, linestyle=style, linewidth=1.4,
                label=f"{r.model_id} (n={len(r.histories)})")
        top = _top(first.metric)  # a band past 100% is noise
        ax.fill_between(epochs, [a - b for a, b in zip(m, s, strict=True)],
                        [min(a + b, top) for a, b in zip(m, s, strict=True)],
                        color=colour, alpha=0.15, linewidth=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"val {first.metric} (mean ± std over seeds)")
    ax.set_title(_title(first, f"val {first.metric} learning curves"))
    fig.legend(loc="outside right upper", title="model (seeds)")
    return fig


if __name__ == "__main__":  # a child of start_plots: python -m benchmarks.report.plots JOB OUT
    import pickle
    import sys

    _job, _out = Path(sys.argv[1]), sys.argv[2]
    _rows = pickle.loads(_job.read_bytes())  # written by start_plots, in its private folder
    _done = write_plots(_rows, _out)
    _job.with_suffix(".json").write_text(json.dumps(
        [[list(k), {kind: str(p) for kind, p in kinds.items()}] for k, kinds in _done.items()]))
