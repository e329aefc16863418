"""The leaderboard's attributions: what the explain files beside a suite's current records
say (benchmarks.run.explaining writes seed<k>.explain.json for every trained cell of a
dataset that declares ground truth, when the suite has `explain = true`).

Per (dataset, model row, method): AUROC and precision at k of the method's attributions
against the inputs the dataset declares relevant, mean and 95% t-interval over seeds
(stats.mean_ci), the seeds behind them, the row's mean test metric, and whether the row
learned anything: a model no better than the constant baseline has nothing for its
attributions to explain. Learned means significantly better than the dataset's baseline
row by its table's paired test (significance.DatasetTests.vs_baseline); where there is no
test, a normalised score (0 = baseline, 1 = perfect) of at least 0.5. Methods that failed
are kept with their error's first line. Per dataset, the best-scoring method of the
best-scoring model that learned gives a heat map: its mean |attribution| per (output,
input), averaged over seeds, relevant inputs outlined.

Worked out once (Analysis.attributions) and rendered by markdown, html and build alike;
the heat map's figure is made here, saved by build with the plots' conventions.
"""

from __future__ import annotations

import itertools
import math
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..run.files import read_explanation
from . import stats
from .aggregates import normalised
from .rows import Row, dataset_label, mean
from .significance import DatasetTests

LEARNED_SCORE = 0.5  # without a paired test: the normalised score that counts as learned
NOT_LEARNED = "did not learn"

#: the sentence under the section's heading (Markdown and HTML)
LEGEND = ("Attributions score how well each method's |attribution| ranks the inputs the "
          "mathematics declares relevant above the others, per test row and output, "
          "averaged over the first test rows of each seed: AUROC (0.5 = chance, 1 = every "
          "relevant input above every other) and precision at k (k = the number of "
          "relevant inputs; chance = their share of the inputs). Mean ± half-width of the "
          "95% t-interval over seeds, best AUROC first. \"did not learn\": the model is not "
          "significantly better than the constant baseline (its table's paired test; "
          "without one, a normalised score below 0.5), so its attributions explain noise. "
          "The heat map shows the mean |attribution| per output and input of the best "
          "method of the best model that learned, averaged over its seeds, with the "
          "relevant inputs outlined.")


@dataclass(frozen=True)
class MethodScore:
    """One method's scores for one model row of a dataset, over that row's seeds."""

    model_id: str
    view: str                              # the input the attributions are over
    method: str                            # "" for a file that failed as a whole
    auroc: stats.MeanCI | None             # None: no seed scored
    precision: stats.MeanCI | None
    seeds: tuple[int, ...]                 # seeds whose file has the method, no error
    test_mean: float                       # the row's mean test metric (every ok seed)
    learned: bool | None                   # None: nothing to judge it by
    learned_why: str                       # the evidence, in words
    errors: tuple[str, ...] = ()           # "seed k: first line of the error"
    unscored: str = ""                     # why some seeds have no score ("" if all do)

    @property
    def note(self) -> str:
        """did not learn, errors, unscored seeds: the table's last column."""
        parts = [f"{NOT_LEARNED} ({self.learned_why})"] if self.learned is False else []
        parts += [f"error: {e}" for e in self.errors]
        parts += [self.unscored] if self.unscored else []
        return "; ".join(parts)


@dataclass(frozen=True)
class Heatmap:
    """What a dataset's heat map draws: one method of one model, per seed its mean
    |attribution| (K outputs x inputs, flat) and, where the file has it, which inputs
    are relevant (K x inputs at the mask's granularity)."""

    model_id: str
    method: str
    view: str
    auroc: stats.MeanCI
    seeds: tuple[int, ...]
    layout: tuple[int, ...]                # the inputs' shape (mean_abs is flat)
    mean_abs: np.ndarray                   # (seeds, K, inputs)
    relevant: np.ndarray | None            # (seeds, K, mask inputs) bool

    @property
    def relevant_varies(self) -> bool:
        """Whether the seeds declare different inputs relevant (each seed draws its own
        instance: then the outline marks those relevant in at least half of them)."""
        return self.relevant is not None and bool((self.relevant != self.relevant[:1]).any())


@dataclass
class DatasetAttributions:
    """A dataset's part of the section."""

    key: tuple[str, str]
    label: str
    metric: str
    ground_truth: str = ""
    rows: tuple[int, ...] = ()             # test rows explained (distinct counts)
    scores: list[MethodScore] = field(default_factory=list)  # best AUROC first
    heatmap: Heatmap | None = None


def _number(x: Any) -> float | None:
    """A finite JSON number, or None (null, NaN, text, a boolean)."""
    if isinstance(x, bool) or not isinstance(x, int | float):
        return None
    return float(x) if math.isfinite(x) else None


def first_line(text: Any) -> str:
    lines = str(text).strip().splitlines()
    return lines[0] if lines else "failed"


def learned(row: Row, group: list[Row], tests: DatasetTests | None) -> tuple[bool | None, str]:
    """Whether a row learned anything, and why it counts so: its table's paired test
    against the baseline where there is one, else its normalised score."""
    t = tests.vs_baseline(row.model_id) if tests is not None else None
    if t is not None and t.tested:
        words = {stats.WIN: "better than", stats.TIE: "not significantly different from",
                 stats.LOSS: "worse than"}
        return t.verdict == stats.WIN, f"{words[t.verdict]} the baseline, p={stats.fmt_p(t.p_holm)}"
    score = normalised(row, group) if row.ok else math.nan
    if math.isfinite(score):
        return score >= LEARNED_SCORE, f"normalised score {score:.2f}"
    return None, "no baseline to judge by"


def _ci(values: list[float]) -> stats.MeanCI | None:
    return stats.mean_ci(values) if values else None


@dataclass
class _Collected:
    """One (row, method) as read from its seeds' files."""

    view: list[str] = field(default_factory=list)
    auroc: list[float] = field(default_factory=list)
    precision: list[float] = field(default_factory=list)
    seeds: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    unscorable: list[int] = field(default_factory=list)  # every input relevant, or none
    no_mask: list[int] = field(default_factory=list)     # no relevant-input mask at all
    maps: list[tuple[int, tuple[int, ...], Any, Any]] = field(default_factory=list)


def _unscored(c: _Collected) -> str:
    parts = []
    if c.unscorable:
        parts.append(f"not scorable in {_seeds_text(c.unscorable)} (every input or none "
                     "is relevant)")
    if c.no_mask:
        parts.append(f"not scored in {_seeds_text(c.no_mask)} (no relevant-input mask "
                     "for this view)")
    return "; ".join(parts)


def _seeds_text(seeds: list[int]) -> str:
    return ("seed " if len(seeds) == 1 else "seeds ") + ", ".join(map(str, seeds))


def _errors(errors: list[tuple[int, str]]) -> tuple[str, ...]:
    """"seed(s) k: message", seeds with the same message together."""
    by_message: dict[str, list[int]] = {}
    for seed, message in errors:
        by_message.setdefault(message, []).append(seed)
    return tuple(f"{_seeds_text(s)}: {m}" for m, s in by_message.items())


def _read(row: Row) -> tuple[dict[str, _Collected], dict[str, list], list[dict[str, Any]]]:
    """Per method what a row's explain files hold; the top-level failures (as a method
    ""); and the files themselves (for the ground truth and row counts)."""
    methods: dict[str, _Collected] = {}
    errors: dict[str, list] = {}
    files = []
    for seed, path in sorted(row.explanations.items()):
        data = read_explanation(Path(path))
        if data is None:
            errors.setdefault("", []).append((seed, "explain file unreadable"))
            continue
        files.append(data)
        if data.get("error"):
            errors.setdefault("", []).append((seed, first_line(data["error"])))
            methods.setdefault("", _Collected()).view.append(str(data.get("view", "")))
        entries = data.get("methods")
        if not isinstance(entries, dict):
            continue
        relevant = data.get("relevant")
        for method, entry in entries.items():
            c = methods.setdefault(str(method), _Collected())
            if not isinstance(entry, dict):
                errors.setdefault(str(method), []).append((seed, "not a method entry"))
                continue
            if "error" in entry:
                errors.setdefault(str(method), []).append((seed, first_line(entry["error"])))
                continue
            c.seeds.append(seed)
            c.view.append(str(data.get("view", "")))
            auroc, precision = _number(entry.get("auroc")), _number(entry.get("precision_at_k"))
            if auroc is not None:
                c.auroc.append(auroc)
            elif "auroc" in entry:
                c.unscorable.append(seed)
            else:
                c.no_mask.append(seed)
            if precision is not None:
                c.precision.append(precision)
            layout = entry.get("layout")
            if entry.get("mean_abs") is not None and isinstance(layout, list):
                c.maps.append((seed, tuple(int(x) for x in layout), entry["mean_abs"], relevant))
    for method in errors:
        methods.setdefault(method, _Collected())
    return methods, errors, files


def _heatmap(score: MethodScore, c: _Collected) -> Heatmap | None:
    """The seeds' mean |attribution| maps of one (row, method) stacked: those of the
    first one's shape (a file of another shape is left out), with their relevant masks
    where every one of those seeds has one of a common shape."""
    shaped = []
    for seed, layout, values, relevant in c.maps:
        try:
            arr = np.asarray(values, dtype=np.float64)
        except (TypeError, ValueError):
            continue
        if arr.ndim != 2 or not np.isfinite(arr).all() or arr.shape[1] != math.prod(layout):
            continue
        shaped.append((seed, layout, arr, relevant))
    if not shaped or score.auroc is None:
        return None
    shape = (shaped[0][1], shaped[0][2].shape)
    shaped = [s for s in shaped if (s[1], s[2].shape) == shape]
    masks = []
    for *_, relevant in shaped:
        try:
            m = np.asarray(relevant, dtype=bool) if relevant is not None else None
        except (TypeError, ValueError):
            m = None
        masks.append(m)
    mask = None
    if all(m is not None and m.ndim == 2 and m.shape[0] == shape[1][0] for m in masks) and \
            len({m.shape for m in masks}) == 1:
        mask = np.stack(masks)
    return Heatmap(score.model_id, score.method, score.view, score.auroc,
                   tuple(s[0] for s in shaped), shape[0], np.stack([s[2] for s in shaped]),
                   mask)


def _order(s: MethodScore) -> tuple:
    """Best AUROC first, then precision; unscored last; then by model and method."""
    return (s.auroc is None, -(s.auroc.mean if s.auroc else 0.0),
            -(s.precision.mean if s.precision else 0.0), s.model_id, s.method)


def dataset_attributions(key: tuple[str, str], group: list[Row],
                         tests: DatasetTests | None = None) -> DatasetAttributions | None:
    """A dataset's scores and heat map from its rows' explain files; None without any."""
    explained = [r for r in group if r.explanations]
    if not explained:
        return None
    out = DatasetAttributions(key, dataset_label(*key), group[0].metric)
    collected: dict[tuple[str, str], _Collected] = {}
    rows = set()
    for row in explained:
        methods, errors, files = _read(row)
        for data in files:
            if not out.ground_truth and data.get("ground_truth"):
                out.ground_truth = str(data["ground_truth"])
            n = _number(data.get("rows"))
            if n is not None:
                rows.add(int(n))
        is_learned, why = learned(row, group, tests)
        for method, c in sorted(methods.items()):
            views = list(dict.fromkeys(v for v in c.view if v))
            score = MethodScore(row.model_id, " / ".join(views) or row.view, method,
                                _ci(c.auroc), _ci(c.precision), tuple(c.seeds),
                                mean(row.test), is_learned, why,
                                _errors(errors.get(method, [])), _unscored(c))
            out.scores.append(score)
            collected[(row.model_id, method)] = c
    out.rows = tuple(sorted(rows))
    out.scores.sort(key=_order)
    for score in out.scores:  # the first that learned (or cannot be judged), scored
        if score.auroc is not None and score.learned is not False:
            out.heatmap = _heatmap(score, collected[(score.model_id, score.method)])
            if out.heatmap is not None:
                break
    return out


def attributions(groups: dict[tuple[str, str], list[Row]],
                 tests: dict[tuple[str, str], DatasetTests] | None = None
                 ) -> dict[tuple[str, str], DatasetAttributions]:
    """Every dataset with explain files, in the groups' order."""
    tests = tests or {}
    out = {}
    for key, group in groups.items():
        section = dataset_attributions(key, group, tests.get(key))
        if section is not None:
            out[key] = section
    return out


# -- the heat map's figure ------------------------------------------------------------------
X_LABELS = {"sequence": "position", "set": "element", "graph": "node"}
MAX_TICKS = 32  # cells along an axis that each get a tick


def _mask_layout(layout: tuple[int, ...], size: int) -> tuple[int, ...] | None:
    """The layout of a mask of `size` inputs over attributions of `layout`: the layout
    itself, or it with some axes at 1 (a Cayley table's mask per cell, attributions per
    cell and value channel), fewest and first axes first. None when no such layout fits."""
    for count in range(len(layout) + 1):
        for axes in itertools.combinations(range(len(layout)), count):
            shape = tuple(1 if i in axes else n for i, n in enumerate(layout))
            if math.prod(shape) == size:
                return shape
    return None


def heatmap_figure(h: Heatmap, title: str = "") -> Any:
    """The heat map as a matplotlib Figure (benchmarks.explain.heatmap): outputs x inputs
    for flat layouts, one panel per output for (C, H, W) ones; relevant inputs outlined
    where they are relevant in at least half of the seeds."""
    import torch

    from ..explain.heatmap import output_by_input, table_grid

    n, k = h.mean_abs.shape[:2]
    attr = torch.as_tensor(h.mean_abs, dtype=torch.float32)  # seeds stand for rows
    mask = None
    if h.relevant is not None:
        shape = _mask_layout(h.layout, h.relevant.shape[2])
        if shape is not None and h.relevant.shape[1] in (1, k):
            mask = torch.as_tensor(h.relevant).reshape(n, h.relevant.shape[1], *shape)
    title = title or (f"{h.model_id}, {h.method}: mean |attribution| over "
                      f"{n} seed{'s' * (n != 1)}")
    if len(h.layout) == 3:  # the figure's width as table_grid makes it, ~11 characters an inch
        fig = table_grid(attr.reshape(n, k, *h.layout), mask,
                         title=textwrap.fill(title, int(11 * 3.0 * min(k, 4))))
    else:
        if mask is not None:  # a mask coarser than the layout covers the axes it lacks
            mask = mask.expand(n, k, *h.layout).reshape(n, k, -1)
        modality = h.view.split(":")[0].split(" ")[0]
        width = max(4.0, 0.25 * attr.shape[2] + 2)  # output_by_input's
        fig = output_by_input(attr, mask, title=textwrap.fill(title, int(11 * width)),
                              xlabel=X_LABELS.get(modality, "feature"))
    _cells_not_grid(fig)
    return fig


def _cells_not_grid(fig: Any) -> None:
    """Integer ticks on the cells, and no grid lines across them (the plots' style has
    a grid, which suits curves, not a heat map)."""
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        ax.grid(False)
        if not ax.images:  # a colour bar
            continue
        rows, cols = ax.images[0].get_array().shape[:2]
        for axis, count in ((ax.xaxis, cols), (ax.yaxis, rows)):
            if count <= MAX_TICKS:  # every cell named
                axis.set_ticks(range(count))
            else:
                axis.set_major_locator(MaxNLocator(integer=True))
