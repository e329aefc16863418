"""Summaries over datasets that compare like with like, per modality (the datasets'
native modality, the first view each offers):

- which datasets discriminate: a dataset on which every ranked model is within
  SATURATION of the top is `saturated`, marked in its table and left out here; one on
  which the `linear` model is within SATURATION of the top is "solved by a linear model";
- average ranks (1 = best) over the datasets where every ranked model ran, Friedman's
  test with Nemenyi's post-hoc (stats.friedman_posthoc; the CD diagram is drawn from it);
- a normalised score per dataset, 0 = the constant baseline's test metric and 1 = the
  metric's perfect value (stats.normalised_score), averaged per model over the same
  datasets.

Ranked models are the non-baseline model ids with a result. Where some did not run on
every dataset, a rank over "the datasets each ran on" would compare different things (a
model with 2 easy datasets above one with 24). So the aggregate keeps a complete block:
the set of models M and datasets D, every model of M run on every dataset of D, that
keeps the most results |M| x |D| (ties: more datasets, then more models), which is never
less than either fixed rule (drop every incomplete model, or every incomplete dataset).
What is left out is named with the reason.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from .. import metrics as metric_table
from . import stats
from .rows import Row, dataset_label, mean

SATURATION = 0.01      # within this of the top, in the metric's units
LINEAR_FAMILY = "linear"
MAX_CANDIDATES = 4096  # complete blocks examined before falling back to a greedy rule


@dataclass(frozen=True)
class DatasetMarks:
    """What a dataset's table says about the dataset itself."""

    saturated: bool = False       # every ranked model within SATURATION of the top
    solved_by_linear: bool = False
    top: float = math.nan         # the best ranked model's mean test metric
    ranked: int = 0               # models with a result, baselines excluded


def ranked_rows(group: list[Row]) -> list[Row]:
    """Rows that take part in ranks: a result, and not a baseline."""
    return [r for r in group if r.ok and not r.baseline]


def dataset_marks(group: list[Row]) -> DatasetMarks:
    """Saturation and a linear model's solution, from the ranked rows' mean test metric."""
    ranked = ranked_rows(group)
    if not ranked:
        return DatasetMarks()
    higher = ranked[0].higher_is_better
    means = {r.model_id: mean(r.test) for r in ranked}
    top = max(means.values()) if higher else min(means.values())
    near = {m for m, v in means.items() if abs(v - top) <= SATURATION + 1e-12}
    return DatasetMarks(saturated=len(ranked) >= 2 and len(near) == len(ranked),
                        solved_by_linear=any(r.model_name == LINEAR_FAMILY and r.model_id in near
                                             for r in ranked),
                        top=top, ranked=len(ranked))


def baseline_value(group: list[Row]) -> float:
    """The constant baseline's mean test metric (the best baseline row's), NaN if none."""
    base = [r for r in group if r.baseline and r.ok]
    return mean(min(base, key=Row.sort_key).test) if base else math.nan


def dataset_modality(group: list[Row]) -> str:
    """A dataset's native modality: the first view it offers, from any of its records
    (older records without the list: the view its first row read)."""
    return next((r.views[0] for r in group if r.views), group[0].view or "unknown")


def normalised(row: Row, group: list[Row]) -> float:
    """0 = the constant baseline, 1 = the metric's perfect value; NaN without either."""
    try:
        perfect = metric_table.metric(row.metric).best_value
    except Exception:  # a metric the table does not know (an older record)
        return math.nan
    base = baseline_value(group)
    if not math.isfinite(base) or not math.isfinite(perfect):
        return math.nan
    return float(stats.normalised_score(mean(row.test), base, perfect))


@dataclass
class ModalityAggregate:
    """One modality's summary: what was ranked, what was left out and why."""

    modality: str
    datasets: list[tuple[str, str]] = field(default_factory=list)   # ranked over
    models: list[str] = field(default_factory=list)                 # ranked
    left_out: list[tuple[str, str]] = field(default_factory=list)   # (dataset label, why)
    dropped: list[tuple[str, str]] = field(default_factory=list)    # (model id, why)
    friedman: stats.FriedmanResult | None = None
    normalised: dict[str, float] = field(default_factory=dict)      # mean over `datasets`
    normalised_n: dict[str, int] = field(default_factory=dict)      # datasets it is over
    reason: str = ""                                                # why no ranks at all

    def order(self) -> list[str]:
        """Models best first: average rank, then normalised score, then id."""
        ranks = self.friedman.average_ranks if self.friedman else {}
        return sorted(self.models, key=lambda m: (ranks.get(m, math.inf),
                                                  -self.normalised.get(m, -math.inf), m))


def complete_block(ran: dict[str, set], min_models: int = 2
                   ) -> tuple[set[str], frozenset] | None:
    """(models, datasets) with every model run on every dataset, keeping the most
    (model, dataset) results; None when no dataset has min_models models.

    The best block's datasets are the intersection of its models' coverage, so the
    candidates are the intersections of coverage sets, closed under intersection: few
    in practice (models that ran everywhere share one). Past MAX_CANDIDATES the rule
    falls back to dropping, one at a time, the model that ran on the fewest datasets."""
    candidates = {frozenset(s) for s in ran.values() if s}
    frontier = set(candidates)
    while frontier and len(candidates) <= MAX_CANDIDATES:
        new = {a & b for a in frontier for b in candidates} - candidates - {frozenset()}
        candidates |= new
        frontier = new
    if len(candidates) > MAX_CANDIDATES:
        return _greedy_block(ran, min_models)
    best, best_key = None, None
    for datasets in candidates:
        models = {m for m, s in ran.items() if datasets <= s}
        if len(models) < min_models:
            continue
        key = (len(models) * len(datasets), len(datasets), len(models), sorted(datasets))
        if best_key is None or key > best_key:
            best, best_key = (models, datasets), key
    return best


def _greedy_block(ran: dict[str, set], min_models: int) -> tuple[set[str], frozenset] | None:
    models = {m for m, s in ran.items() if s}
    while len(models) >= min_models:
        common = frozenset.intersection(*(frozenset(ran[m]) for m in models))
        if common:
            return models, common
        models.remove(min(models, key=lambda m: (len(ran[m]), m)))
    return None


def modality_aggregate(modality: str, groups: dict[tuple[str, str], list[Row]],
                       marks: dict[tuple[str, str], DatasetMarks], alpha: float = 0.05
                       ) -> ModalityAggregate:
    """Ranks, Friedman/Nemenyi and normalised scores over one modality's datasets."""
    agg = ModalityAggregate(modality)
    usable: dict[tuple[str, str], list[Row]] = {}
    for key, group in groups.items():
        label = dataset_label(*key)
        if marks[key].saturated:
            agg.left_out.append((label, f"saturated: every ranked model within "
                                        f"{SATURATION:g} of the top"))
        elif not ranked_rows(group):
            agg.left_out.append((label, "no ranked model has a result"))
        else:
            usable[key] = group
    ran: dict[str, set] = {}
    for key, group in usable.items():
        for r in ranked_rows(group):
            ran.setdefault(r.model_id, set()).add(key)
    block = complete_block(ran)
    if block is None:
        agg.reason = ("fewer than 2 ranked models on any common dataset" if usable
                      else "no dataset to rank on")
        agg.dropped = [(m, "no common dataset with another model") for m in sorted(ran)]
        agg.left_out += [(dataset_label(*k), "fewer than 2 ranked models")
                         for k in sorted(usable)]
        return agg
    models, datasets = block
    agg.models, agg.datasets = sorted(models), sorted(datasets)
    n_usable = len(usable)
    for m in sorted(set(ran) - models):
        agg.dropped.append((m, f"ran on {len(ran[m])} of the {n_usable} {modality} datasets "
                               "ranked here; keeping it would leave fewer results"))
    for key in sorted(set(usable) - datasets):
        missing = sorted(m for m in models if key not in ran[m])
        agg.left_out.append((dataset_label(*key), "not every ranked model ran on it (missing: "
                                                  + ", ".join(missing) + ")"))
    # one score per (model, dataset), in "higher is better" units so that datasets whose
    # metric runs the other way (mse) rank in the same direction
    cell = {(r.model_id, key): r for key in agg.datasets for r in ranked_rows(usable[key])}
    scores = {m: [(1.0 if cell[(m, k)].higher_is_better else -1.0) * mean(cell[(m, k)].test)
                  for k in agg.datasets] for m in agg.models}
    agg.friedman = stats.friedman_posthoc(scores, higher_is_better=True,
                                          datasets=[dataset_label(*k) for k in agg.datasets],
                                          alpha=alpha)
    for m in agg.models:
        values = [normalised(cell[(m, k)], usable[k]) for k in agg.datasets]
        values = [v for v in values if math.isfinite(v)]
        agg.normalised[m] = sum(values) / len(values) if values else math.nan
        agg.normalised_n[m] = len(values)
    return agg


def aggregates(groups: dict[tuple[str, str], list[Row]],
               marks: dict[tuple[str, str], DatasetMarks], alpha: float = 0.05
               ) -> list[ModalityAggregate]:
    """One aggregate per native modality, in name order."""
    by_modality: dict[str, dict[tuple[str, str], list[Row]]] = {}
    for key, group in groups.items():
        by_modality.setdefault(dataset_modality(group), {})[key] = group
    return [modality_aggregate(mod, g, marks, alpha) for mod, g in sorted(by_modality.items())]
