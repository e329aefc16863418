"""The statistics of comparisons, as pure functions on numpy arrays:

    mean_ci             mean over seeds with a t-interval
    paired_bootstrap    two models on the same test rows, metric difference, CI and p
    mcnemar             two models' per-row correctness, pooled over seeds
    holm                Holm's step-down correction of a family of p-values
    verdict             win / tie / loss from a paired test, never a win inside the noise
    friedman_posthoc    average ranks over datasets, Friedman test, Nemenyi post-hoc
    critical_difference_figure   the ranks as a critical-difference diagram
    normalised_score    0 = the best constant, 1 = perfect
    solved_split        how many seeds solved a task whose seeds either solve it or not

Metric arithmetic (directions, bounds, resampling sums) comes from benchmarks/metrics.py.
scipy, statsmodels, scikit-posthocs and matplotlib are imported inside the functions.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import metrics as metric_table

WIN, TIE, LOSS = "win", "tie", "loss"
ROW_BUDGET = 2_000_000  # bootstrap weights held at once (16 MB of float64)
SOLVED_TOLERANCE = 0.02  # a seed within this of a score's best bound solved the task


def _level(level: float) -> float:
    if not 0.0 < level < 1.0:
        raise ValueError(f"confidence level {level} is not between 0 and 1 (e.g. 0.95)")
    return level


def _metric(m: metric_table.Metric | str) -> metric_table.Metric:
    return m if isinstance(m, metric_table.Metric) else metric_table.metric(m)


# -- one model over seeds ---------------------------------------------------------------
@dataclass(frozen=True)
class MeanCI:
    """Mean over seeds and the half-width of its t-interval (NaN with fewer than 2)."""

    mean: float
    half_width: float
    n: int
    level: float

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width


def mean_ci(values: Sequence[float], level: float = 0.95) -> MeanCI:
    """Mean of per-seed values and Student's t-interval, mean +- t * s / sqrt(n)."""
    from scipy.stats import t

    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if x.size == 0:
        raise ValueError("mean_ci needs at least one value")
    if not np.isfinite(x).all():
        raise ValueError(f"mean_ci: {int((~np.isfinite(x)).sum())} of {x.size} values are not "
                         "finite; leave failed seeds out first")
    n = int(x.size)
    if n < 2:
        return MeanCI(float(x[0]), math.nan, n, _level(level))
    half = float(t.ppf((1 + _level(level)) / 2, n - 1) * x.std(ddof=1) / math.sqrt(n))
    return MeanCI(float(x.mean()), half, n, level)


# -- two models on the same rows --------------------------------------------------------
@dataclass(frozen=True)
class PairedTest:
    """A paired comparison of model A against model B on one dataset."""

    method: str             # the test, in words
    metric: str
    higher_is_better: bool
    difference: float       # metric(A) - metric(B) (mean over seeds; McNemar: pooled)
    improvement: float      # the difference in the metric's better direction: > 0, A better
    ci: tuple[float, float] | None  # interval for `difference`; None if the test has none
    level: float            # of the interval
    p: float                # two-sided
    zero_variance: bool     # every resample gave the same difference (McNemar: no discordance)
    n_seeds: int
    n_rows: int             # test rows over all seeds
    counts: Mapping[str, int] | None = None  # McNemar's table: both, a_only, b_only, neither


def _resampled_differences(m: metric_table.Metric, ca: np.ndarray, cb: np.ndarray,
                           count: int, rng: np.random.Generator) -> np.ndarray:
    """metric(A) - metric(B) on `count` row resamples of one seed, the same rows for both
    (that is the pairing). Each resample is a row of multinomial weights, so the metric is
    from_sums(weights @ contributions); weights are made in blocks to bound memory."""
    n = len(ca)
    out = np.empty(count)
    block = max(1, ROW_BUDGET // max(n, 1))
    for start in range(0, count, block):
        size = min(block, count - start)
        picks = rng.integers(0, n, size=(size, n))
        flat = (np.arange(size)[:, None] * n + picks).ravel()
        weights = np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)
        out[start:start + size] = (np.asarray(m.from_sums(weights @ ca))
                                   - np.asarray(m.from_sums(weights @ cb)))
    return out


def paired_bootstrap(samples: Sequence[tuple[Any, Any, Any]], metric: metric_table.Metric | str,
                     n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> PairedTest:
    """Bootstrap of metric(A) - metric(B), averaged over seeds, for two models scored on the
    same test rows. samples: per seed (preds_a, preds_b, target), preds as made by
    metrics.predictions (each seed has its own split, so rows pair only within a seed).

    With one seed, rows are resampled (the test set is the only randomness measured).
    With two or more, the resampling is hierarchical: seeds are drawn with replacement,
    then each drawn seed's rows, afresh for every draw. Seeds carry the training
    randomness (split, initialisation, optimisation), often the larger part of the
    variance; a rows-only bootstrap would treat the seeds at hand as the only ones
    possible and call differences significant that another set of seeds would not repeat.
    Two levels count row noise in both, so the interval is a little conservative; with
    2-4 seeds the seed level is coarse and widens it further, which is the honest answer.

    The interval is the bootstrap percentile interval. The p-value inverts it: twice the
    smaller share of resampled differences on either side of 0 (ties at 0 on both sides),
    with +1 in numerator and denominator, so it is never below 2 / (n_boot + 1); use
    n_boot >= 2 m / alpha when m comparisons are Holm-corrected at level alpha.
    """
    m = _metric(metric)
    if not samples:
        raise ValueError("paired_bootstrap needs at least one seed of (preds_a, preds_b, target)")
    if n_boot < 1:
        raise ValueError(f"n_boot must be a positive number of resamples, got {n_boot}")
    per_seed, observed = [], []
    for i, (preds_a, preds_b, target) in enumerate(samples):
        if not len(preds_a) == len(preds_b) == len(target) > 0:
            raise ValueError(f"seed {i}: preds_a, preds_b and target must cover the same "
                             f"rows, got {len(preds_a)}, {len(preds_b)} and {len(target)}")
        ca, cb = m.contributions(preds_a, target), m.contributions(preds_b, target)
        per_seed.append((ca, cb))
        observed.append(float(m.from_sums(ca.sum(axis=0))) - float(m.from_sums(cb.sum(axis=0))))
    rng = np.random.default_rng(seed)
    n_seeds = len(per_seed)
    # which seed each of a replicate's draws uses: all seeds once with one seed, else a resample
    draws = (rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds >= 2
             else np.zeros((n_boot, 1), dtype=np.int64))
    totals = np.zeros(n_boot)
    for s, (ca, cb) in enumerate(per_seed):
        replicate_of_draw = np.nonzero(draws == s)[0]
        np.add.at(totals, replicate_of_draw,
                  _resampled_differences(m, ca, cb, len(replicate_of_draw), rng))
    boot = totals / draws.shape[1]
    difference = float(np.mean(observed))
    low, high = np.quantile(boot, [(1 - _level(level)) / 2, (1 + level) / 2])
    below, above = int((boot <= 0).sum()), int((boot >= 0).sum())
    p = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
    method = ("hierarchical paired bootstrap (seeds, then test rows)" if n_seeds >= 2
              else "paired bootstrap (test rows)")
    return PairedTest(method, m.name, m.higher_is_better, difference, m.sign * difference,
                      (float(low), float(high)), level, p, bool(np.ptp(boot) == 0), n_seeds,
                      sum(len(ca) for ca, _ in per_seed))


def _per_seed(values: Any) -> list[np.ndarray]:
    """A list over seeds of 1-d arrays; a single 1-d array is one seed."""
    if isinstance(values, np.ndarray) and values.ndim == 1:
        return [values.astype(bool)]
    return [np.asarray(v, dtype=bool).reshape(-1) for v in values]


def mcnemar(correct_a: Sequence[Any], correct_b: Sequence[Any],
            exact_below: int = 25) -> PairedTest:
    """McNemar's test of per-row correctness (A right where B is wrong, and the reverse).

    correct_a, correct_b: per seed, boolean arrays over the same test rows. The 2x2 table
    is summed over seeds: each row is its own matched pair, so pooling is the stratified
    (Mantel-Haenszel) test. statsmodels computes p: the exact binomial test on the
    discordant pairs when there are fewer than `exact_below` of them, else chi-square with
    continuity correction. The difference is pooled accuracy(A) - accuracy(B).
    """
    from statsmodels.stats.contingency_tables import mcnemar as statsmodels_mcnemar

    seeds_a, seeds_b = _per_seed(correct_a), _per_seed(correct_b)
    if not seeds_a or len(seeds_a) != len(seeds_b):
        raise ValueError(f"mcnemar needs the same number of seeds for A and B (at least one), "
                         f"got {len(seeds_a)} and {len(seeds_b)}")
    counts = {"both": 0, "a_only": 0, "b_only": 0, "neither": 0}
    for i, (a, b) in enumerate(zip(seeds_a, seeds_b, strict=True)):
        if len(a) != len(b):
            raise ValueError(f"seed {i}: A has {len(a)} rows and B {len(b)}; "
                             "they must be the same rows")
        counts["both"] += int((a & b).sum())
        counts["a_only"] += int((a & ~b).sum())
        counts["b_only"] += int((~a & b).sum())
        counts["neither"] += int((~a & ~b).sum())
    discordant = counts["a_only"] + counts["b_only"]
    exact = discordant < exact_below
    if discordant == 0:
        p = 1.0  # no row tells the models apart
    else:
        table = [[counts["both"], counts["a_only"]], [counts["b_only"], counts["neither"]]]
        p = float(statsmodels_mcnemar(table, exact=exact, correction=True).pvalue)
    n = sum(counts.values())
    difference = (counts["a_only"] - counts["b_only"]) / n if n else 0.0
    method = ("McNemar, exact binomial" if exact
              else "McNemar, chi-square with continuity correction")
    return PairedTest(method, "acc", True, difference, difference, None, math.nan, p,
                      discordant == 0, len(seeds_a), n, counts)


def holm(pvalues: Sequence[float]) -> np.ndarray:
    """Holm-adjusted p-values (statsmodels' multipletests), in the order given."""
    from statsmodels.stats.multitest import multipletests

    p = np.asarray(pvalues, dtype=np.float64).reshape(-1)
    if p.size == 0:
        return p
    if not ((p >= 0) & (p <= 1)).all():  # NaN fails both
        raise ValueError("holm: every p-value must be a number in [0, 1]; "
                         "drop untested pairs first")
    return multipletests(p, method="holm")[1]


P_THRESHOLDS = (0.001, 0.01, 0.05, 0.1)


def fmt_p(p: float) -> str:
    """A p-value in two significant digits, or more where two would round it across a
    usual level (0.049956 is 0.04996, not 0.05, which reads as not below 0.05)."""
    for digits in range(2, 7):
        text = f"{p:.{digits}g}"
        if all((float(text) < t) == (p < t) for t in P_THRESHOLDS):
            return text
    return text


def verdict(result: PairedTest, alpha: float = 0.05, higher_is_better: bool | None = None,
            p: float | None = None) -> str:
    """"win" (A better), "loss" (B better) or "tie", from A's side.

    A tie unless all of these hold: the differences vary or their mean is not 0 (zero
    variance at 0 difference is two identical models); the interval, when the test has
    one, excludes 0; p < alpha (p: a corrected p-value such as holm's, else result.p);
    the difference is not 0. Then the sign of the difference in the metric's better
    direction (higher_is_better overrides the result's, for a dataset that flips it)
    decides. The interval is read at its own level, so with level = 1 - alpha both
    rules agree up to resampling noise and the stricter one wins.
    """
    if not 0.0 < alpha < 1.0:
        raise ValueError(f"alpha {alpha} is not a level between 0 and 1 (e.g. 0.05)")
    higher = result.higher_is_better if higher_is_better is None else higher_is_better
    improvement = result.difference if higher else -result.difference
    p = result.p if p is None else p
    if result.zero_variance and result.difference == 0:
        return TIE
    if result.ci is not None and result.ci[0] <= 0 <= result.ci[1]:
        return TIE
    if not p < alpha or improvement == 0:  # NaN p is not evidence
        return TIE
    return WIN if improvement > 0 else LOSS


# -- many models over datasets ----------------------------------------------------------
@dataclass(frozen=True)
class FriedmanResult:
    """Average ranks of models over datasets (1 = best), Friedman's test and Nemenyi's."""

    models: tuple[str, ...]
    datasets: tuple[str, ...]          # those ranked: every model has a score there
    excluded: tuple[str, ...]          # left out because some model has no score there
    average_ranks: dict[str, float]
    higher_is_better: bool
    statistic: float | None            # None: not enough models or datasets
    p: float | None
    posthoc: Any = None                # pandas DataFrame of pairwise p-values (Nemenyi)
    critical_difference: float | None = None  # Nemenyi's, in average-rank units, at alpha
    alpha: float = 0.05
    reason: str = ""                   # why no test ran, "" when one did
    posthoc_method: str = "Nemenyi (Friedman ranks)"

    @property
    def tested(self) -> bool:
        return self.statistic is not None


def friedman_posthoc(scores: Mapping[str, Sequence[float]], higher_is_better: bool = True,
                     datasets: Sequence[str] | None = None, alpha: float = 0.05
                     ) -> FriedmanResult:
    """Rank models within each dataset (ties share the average rank), average the ranks,
    and test them: Friedman's chi-square (scipy), then Nemenyi's all-pairs test
    (scikit-posthocs), whose critical difference is what the diagram draws.

    scores: model -> one score per dataset, in the same dataset order for every model
    (names in `datasets`, else "dataset 0", ...). A dataset where any model's score is
    NaN or None is excluded from every model's ranks and listed in `excluded`. Needs at
    least 3 models and 2 datasets; with fewer, the ranks come back with a `reason`.
    """
    import pandas as pd

    models = tuple(scores)
    lengths = {len(v) for v in scores.values()}
    if len(lengths) > 1:
        raise ValueError("friedman_posthoc: every model needs one score per dataset; got "
                         + ", ".join(f"{m}: {len(v)}" for m, v in scores.items()))
    n_datasets = lengths.pop() if lengths else 0
    names = (tuple(datasets) if datasets is not None
             else tuple(f"dataset {i}" for i in range(n_datasets)))
    if len(names) != n_datasets:
        raise ValueError(f"friedman_posthoc: {len(names)} dataset names "
                         f"for {n_datasets} scores each")
    table = np.array([[np.nan if s is None else float(s) for s in scores[m]] for m in models],
                     dtype=np.float64).reshape(len(models), n_datasets).T  # datasets x models
    complete = np.isfinite(table).all(axis=1)
    used = tuple(n for n, ok in zip(names, complete, strict=True) if ok)
    excluded = tuple(n for n, ok in zip(names, complete, strict=True) if not ok)
    table = table[complete]
    ranks = _ranks(table, higher_is_better)
    average = {m: float(r) for m, r in zip(models, ranks.mean(axis=0), strict=True)} \
        if len(table) else {m: math.nan for m in models}
    base = dict(models=models, datasets=used, excluded=excluded, average_ranks=average,
                higher_is_better=higher_is_better, alpha=alpha)
    if len(models) < 3 or len(table) < 2:
        return FriedmanResult(**base, statistic=None, p=None,
                              reason=f"not enough for a Friedman test: needs >= 3 models and "
                                     f">= 2 complete datasets, got {len(models)} and {len(table)}")
    from scikit_posthocs import posthoc_nemenyi_friedman
    from scipy.stats import friedmanchisquare, studentized_range

    with warnings.catch_warnings():  # every model tied everywhere: 0/0, read as no difference
        warnings.simplefilter("ignore", RuntimeWarning)
        statistic, p = friedmanchisquare(*table.T)
        posthoc = posthoc_nemenyi_friedman(pd.DataFrame(table, columns=list(models)))
    if not math.isfinite(statistic):
        statistic, p = 0.0, 1.0
    posthoc = posthoc.fillna(1.0)
    k, n = len(models), len(table)
    cd = float(studentized_range.ppf(1 - alpha, k, np.inf) / math.sqrt(2)
               * math.sqrt(k * (k + 1) / (6 * n)))
    return FriedmanResult(**base, statistic=float(statistic), p=float(p), posthoc=posthoc,
                          critical_difference=cd)


def _ranks(table: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """Rank 1 = best within each row (dataset); ties share the average rank."""
    from scipy.stats import rankdata

    if not len(table):
        return np.zeros((0, table.shape[1]))
    return rankdata(-table if higher_is_better else table, axis=1)


def critical_difference_figure(result: FriedmanResult, title: str = ""):
    """The average ranks on an axis, models that Nemenyi's test cannot tell apart (at the
    result's alpha) joined by a bar; drawn on a matplotlib Figure, never pyplot state."""
    from matplotlib.figure import Figure
    from scikit_posthocs import critical_difference_diagram

    if not result.tested:
        raise ValueError(f"no critical-difference diagram: {result.reason}")
    fig = Figure(figsize=(7.0, 1.5 + 0.25 * len(result.models)), layout="constrained")
    ax = fig.add_subplot()
    critical_difference_diagram(result.average_ranks, result.posthoc, alpha=result.alpha,
                                cd=result.critical_difference, ax=ax)
    # scikit-posthocs joins a clique's models in set order, which changes with Python's
    # hash seed: the same picture, other bytes. Horizontal bars are drawn left to right.
    for line in ax.get_lines():
        xs, ys = (np.asarray(v, dtype=np.float64) for v in line.get_data())
        if len(xs) > 2 and np.all(ys == ys[0]):
            line.set_data(np.sort(xs), ys)
    # a figure title: the diagram draws its critical-difference bar where an axes title sits
    fig.suptitle(title or f"average rank over {len(result.datasets)} datasets (1 = best); "
                          f"Friedman p = {result.p:.3g}", fontsize=9)
    return fig


# -- scales -----------------------------------------------------------------------------
def normalised_score(value: Any, baseline: Any, perfect: Any) -> Any:
    """(value - baseline) / (perfect - baseline): 0 at the best constant, 1 at perfect,
    negative below the constant, for either direction. perfect is the metric's best bound
    (metrics.metric(name).best_value: 1 for scores, 0 for errors such as mse). NaN where
    the baseline is already perfect (nothing to normalise by)."""
    value, baseline, perfect = (np.asarray(v, dtype=np.float64) for v in (value, baseline, perfect))
    if not np.isfinite(perfect).all():
        raise ValueError("normalised_score needs a finite perfect value (the metric's best bound)")
    span = perfect - baseline
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(span != 0, (value - baseline) / np.where(span != 0, span, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


@dataclass(frozen=True)
class SolvedSplit:
    """Seeds that solved the task (reached the threshold) and those that did not."""

    solved: int
    total: int
    threshold: float
    solved_mean: float    # mean score of the solved seeds (NaN if none)
    unsolved_mean: float  # and of the others

    @property
    def fraction(self) -> float:
        return self.solved / self.total if self.total else math.nan


def solved_threshold(metric: metric_table.Metric | str, tolerance: float = SOLVED_TOLERANCE
                     ) -> float:
    """The score that counts as solved: within `tolerance` of the metric's best bound.
    0.02 suits scores in [0, 1] on parity-like tasks, whose seeds end either near 1 or near
    chance (0.5): any cut in that gap splits them the same way, and 0.02 forgives a few
    hard test rows. For errors (mse, mae) the tolerance is in the target's units: choose it."""
    m = _metric(metric)
    return m.best_value - m.sign * tolerance


def solved_split(values: Sequence[float], threshold: float, higher_is_better: bool = True
                 ) -> SolvedSplit:
    """How many seeds reached `threshold` (>= it when higher is better, else <=), for tasks
    whose seeds are bimodal, where a mean over seeds describes no seed."""
    x = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(x).all():
        raise ValueError("solved_split: every value must be finite; leave failed seeds out first")
    hit = x >= threshold if higher_is_better else x <= threshold
    return SolvedSplit(int(hit.sum()), int(x.size), float(threshold), _mean_or_nan(x[hit]),
                       _mean_or_nan(x[~hit]))


def _mean_or_nan(x: np.ndarray) -> float:
    return float(x.mean()) if x.size else math.nan
