"""Leaderboard plots, per dataset, as PNG and SVG:

    <dataset>.bars     test metric per model, error bars = std over seeds, baseline dashed
    <dataset>.params   test metric against parameter count (log x), one colour per family
    <dataset>.curves   validation metric per epoch, mean over seeds with a +-std band

Drawn on matplotlib's Agg canvas through `Figure` objects, never pyplot, so nothing
global changes and no display is needed; matplotlib is imported only here, on first use.
A model family (the registered model name) keeps one colour and marker in every plot.
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

from ..metrics import METRICS
from ..run.files import ID_PATTERN
from .rows import Row, by_dataset, mean, std
from .tables import dataset_label, direction, fmt_count

PLOT_KINDS = ("bars", "params", "curves")
MARKERS = "osD^vP*Xhp<>"
LINESTYLES = ("-", "--", ":", "-.")
DPI = 110
STYLE = {"text.parse_math": False,  # a '$' in a model name is text, not TeX
         "svg.fonttype": "none", "svg.hashsalt": "mlwm",  # selectable text, stable files
         "axes.spines.top": False, "axes.spines.right": False, "axes.grid": True,
         "grid.alpha": 0.3, "font.size": 9, "legend.fontsize": 8, "legend.frameon": False}


def plot_stem(dataset_id: str, version: str) -> str:
    """A file name stem for a dataset: its id made path-safe, plus a short hash of the id
    when cleaning changed it (so that "a/b" and "a_b" never share files)."""
    label = dataset_id if version == "1" else f"{dataset_id}-v{version}"
    if ID_PATTERN.fullmatch(label):
        return label
    stem = "".join(c if c.isalnum() or c in "._-@=+" else "_" for c in label).strip(".") or "_"
    return f"{stem}-{hashlib.sha1(label.encode()).hexdigest()[:6]}"


def family_styles(rows: list[Row]) -> dict[str, tuple[Any, str]]:
    """(colour, marker) per model family, assigned in name order over the whole suite."""
    from matplotlib import colormaps

    families = sorted({r.model_name for r in rows})
    cmap = colormaps["tab10" if len(families) <= 10 else "tab20"]
    return {f: (cmap(i % cmap.N), MARKERS[i % len(MARKERS)]) for i, f in enumerate(families)}


def write_plots(rows: list[Row], out_dir: str | Path) -> dict[tuple[str, str], dict[str, Path]]:
    """Every plot of every dataset into out_dir; {(dataset, version): {kind: png path}}
    (the SVG sits beside each PNG). A plot with nothing to show is not written."""
    import matplotlib

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    styles = family_styles(rows)
    written: dict[tuple[str, str], dict[str, Path]] = {}
    with matplotlib.rc_context(STYLE):
        for key, group in by_dataset(rows).items():
            stem = plot_stem(*key)
            for kind, draw in zip(PLOT_KINDS, (bar_chart, params_scatter, learning_curves),
                                  strict=True):
                fig = draw(group, styles)
                if fig is None:
                    continue
                png = out_dir / f"{stem}.{kind}.png"
                # no creation date in the files: a rebuilt leaderboard of the same
                # records must leave the committed plots byte for byte as they were
                fig.savefig(png, dpi=DPI)
                fig.savefig(png.with_suffix(".svg"), metadata={"Date": None})
                written.setdefault(key, {})[kind] = png
    return written


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), layout="constrained")


def _title(row: Row, what: str) -> str:
    return (f"{dataset_label(row.dataset_id, row.dataset_version)}: {what} "
            f"({direction(row.higher_is_better)})")


def _spread(xs: list[float]) -> float:
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
    Metrics that live in [.., 1] (accuracy, R^2) cut the axis at -1 and print the value
    of a bar cut there, so one diverged model does not flatten the rest."""
    bars = [r for r in rows if not r.baseline or not r.ok]
    if not any(r.ok for r in rows):
        return None
    first = rows[0]
    fig = _figure(7.5, 1.4 + 0.32 * max(len(bars), 2))
    ax = fig.add_subplot()
    ok = [r for r in rows if r.ok]  # baselines included: their lines must fit too
    cut = _cut(first, [mean(r.test) for r in ok])
    lo = max(cut, min([0.0] + [mean(r.test) - _spread(r.test) for r in ok]))
    hi = max([0.0] + [mean(r.test) + _spread(r.test) for r in ok])
    pad = 0.18 * (hi - lo or 1.0)  # room for the value labels
    ys = list(range(len(bars)))[::-1]
    for y, r in zip(ys, bars, strict=True):
        colour, _ = styles[r.model_name]
        if not r.ok:
            ax.text(max(lo, 0.0), y, "  " + ("skipped" if r.skipped else "failed"),
                    va="center", color="0.4", style="italic")
            continue
        m, e = mean(r.test), _spread(r.test)
        shown = max(m, lo)
        ax.barh(y, shown, xerr=e if m >= lo else None, color=colour, alpha=0.85,
                error_kw={"elinewidth": 1, "capsize": 3, "ecolor": "0.2"}, zorder=2)
        label = (f"{m:.3f}" + (f" ± {e:.3f}" if len(r.test) > 1 else "") + f"  n={len(r.test)}"
                 + (f", {len(r.failed)} failed" if r.failed else ""))
        ax.text(max(shown, 0.0) + e + 0.01 * (hi - lo or 1.0), y,
                label + (" (cut)" if m < lo else ""), va="center", fontsize=7.5, zorder=3)
    _baselines(ax, rows, vertical=True)
    ax.set_yticks(ys, [r.model_id for r in bars])
    ax.set_xlim(lo - (0.02 * (hi - lo) if lo < 0 else 0.0), hi + pad)
    ax.set_ylim(-0.7, len(bars) - 0.3)
    ax.grid(axis="y", visible=False)
    ax.set_xlabel(f"test {first.metric} (mean ± std over seeds)")
    ax.set_title(_title(first, f"test {first.metric} per model"))
    if any(r.baseline and r.ok for r in rows):
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
    ax.set_ylabel(f"test {first.metric} (mean ± std)")
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
            [_spread(list(c)) for c in columns])


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
