"""The statistics of comparisons against reference implementations: scipy's bootstrap
and t-interval, statsmodels' Holm and McNemar, scipy's Friedman test; and the verdict
rule that no difference inside the noise is ever a win."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.stats

from benchmarks.report import stats

N_BOOT = 4000


def accuracy_pair(rng, n=400, acc_a=0.75, acc_b=0.68):
    """Binary targets and two models' predictions, right with the given rates."""
    target = rng.integers(0, 2, n)
    right_a, right_b = rng.random(n) < acc_a, rng.random(n) < acc_b
    return np.where(right_a, target, 1 - target), np.where(right_b, target, 1 - target), target


def test_one_seed_bootstrap_matches_scipy_paired_bootstrap():
    """One seed: the row bootstrap of acc(A) - acc(B) is scipy's paired percentile
    bootstrap of a difference of means. Both are Monte-Carlo estimates of the same
    quantiles: with B = 4000 resamples the standard error of a 2.5% quantile is about
    0.04 sigma (sigma = the difference's standard error, the bootstrap being close to
    normal at n = 400), 0.06 sigma between two runs, so 0.3 sigma is 5 standard errors.
    The p-value (about 0.005 here) is checked against the normal approximation
    2 Phi(-|d| / sigma) within 0.005: its Monte-Carlo standard error at B = 4000 is
    2 sqrt(p (1 - p) / B) = 0.0016, and the +1 correction adds 0.0005."""
    rng = np.random.default_rng(3)
    y, right_a = rng.integers(0, 2, 400), rng.random(400) < 0.75
    # B mostly right where A is (as two trained models are): pairing halves the interval
    right_b = np.where(right_a, rng.random(400) > 0.08, rng.random(400) < 0.1)
    a, b = np.where(right_a, y, 1 - y), np.where(right_b, y, 1 - y)
    result = stats.paired_bootstrap([(a, b, y)], "acc", n_boot=N_BOOT, seed=1)
    right_a, right_b = right_a.astype(float), right_b.astype(float)
    assert result.difference == pytest.approx(right_a.mean() - right_b.mean())
    assert result.method == "paired bootstrap (test rows)" and result.n_rows == 400
    reference = scipy.stats.bootstrap(
        (right_a, right_b), lambda u, v, axis=-1: u.mean(axis=axis) - v.mean(axis=axis),
        paired=True, vectorized=True, n_resamples=N_BOOT, method="percentile",
        confidence_level=0.95, random_state=np.random.default_rng(7))
    sigma = (right_a - right_b).std(ddof=1) / math.sqrt(len(y))
    assert result.ci[0] == pytest.approx(reference.confidence_interval.low, abs=0.3 * sigma)
    assert result.ci[1] == pytest.approx(reference.confidence_interval.high, abs=0.3 * sigma)
    normal_p = 2 * scipy.stats.norm.sf(abs(result.difference) / sigma)
    assert 0.001 < normal_p < 0.05  # significant, yet within the bootstrap's resolution
    assert result.p == pytest.approx(normal_p, abs=0.005)


def test_bootstrap_weights_match_an_index_resampling_loop():
    """The vectorised hierarchical bootstrap (multinomial weights on contributions) agrees
    with a plain loop that draws seeds, then row indices, and recomputes macro-F1. Both
    have B = 2000: 0.3 sigma of the loop's own spread is 5 quantile standard errors."""
    rng = np.random.default_rng(5)
    samples = []
    for _ in range(3):
        y = rng.integers(0, 3, 60)
        a = np.where(rng.random(60) < 0.7, y, rng.integers(0, 3, 60))
        b = np.where(rng.random(60) < 0.6, y, rng.integers(0, 3, 60))
        samples.append((a, b, y))
    result = stats.paired_bootstrap(samples, "f1_macro", n_boot=2000, seed=2)
    assert result.method.startswith("hierarchical")

    from benchmarks.metrics import metric

    m, loop = metric("f1_macro"), []
    for _ in range(2000):
        diffs = []
        for s in rng.integers(0, 3, 3):
            a, b, y = samples[s]
            idx = rng.integers(0, len(y), len(y))
            diffs.append(m.value(a[idx], y[idx]) - m.value(b[idx], y[idx]))
        loop.append(np.mean(diffs))
    spread = np.std(loop)
    assert result.ci[0] == pytest.approx(np.quantile(loop, 0.025), abs=0.3 * spread)
    assert result.ci[1] == pytest.approx(np.quantile(loop, 0.975), abs=0.3 * spread)


def test_hierarchical_bootstrap_counts_seed_to_seed_variation():
    """Each seed's row-level difference is far from 0, but the seeds disagree in sign:
    resampling rows only would call it; resampling seeds too must not."""
    rng = np.random.default_rng(11)
    seeds = [accuracy_pair(rng, n=300, acc_a=a, acc_b=b) for a, b in
             ((0.9, 0.6), (0.6, 0.9), (0.9, 0.62))]
    single = stats.paired_bootstrap(seeds[:1], "acc", n_boot=1000)
    assert stats.verdict(single) == stats.WIN
    pooled = stats.paired_bootstrap(seeds, "acc", n_boot=1000)
    assert pooled.ci[0] < 0 < pooled.ci[1] and stats.verdict(pooled) == stats.TIE


def test_identical_or_constant_models_never_get_a_verdict():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 50)
    same = [(p, p.copy(), y) for p in (rng.integers(0, 2, 50) for _ in range(3))]
    result = stats.paired_bootstrap(same, "acc", n_boot=500)
    assert result.zero_variance and result.difference == 0 and result.ci == (0.0, 0.0)
    assert result.p == 1.0 and stats.verdict(result, alpha=0.99) == stats.TIE
    constant = [(np.ones(50, int), np.ones(50, int), y)] * 2
    constant_test = stats.paired_bootstrap(constant, "f1", n_boot=200)
    assert stats.verdict(constant_test, alpha=0.99) == stats.TIE
    # as many rows won as lost: a zero difference that varies under resampling
    swap = (np.r_[y[:25], 1 - y[25:]], np.r_[1 - y[:25], y[25:]], y)
    assert stats.verdict(stats.paired_bootstrap([swap], "acc", n_boot=500)) == stats.TIE
    regression = [(np.full(20, 1.5), np.full(20, 1.5), np.arange(20.0))]
    assert stats.verdict(stats.paired_bootstrap(regression, "mse", n_boot=200)) == stats.TIE


def test_verdict_rule():
    def test(difference, ci, p, higher=True, zero_variance=False):
        improvement = difference if higher else -difference
        return stats.PairedTest("made up", "m", higher, difference, improvement, ci, 0.95, p,
                                zero_variance, 1, 100)

    assert stats.verdict(test(0.1, (0.05, 0.15), 0.001)) == stats.WIN
    # an error that went up
    assert stats.verdict(test(0.1, (0.05, 0.15), 0.001, higher=False)) == stats.LOSS
    assert stats.verdict(test(0.1, (0.05, 0.15), 0.001), higher_is_better=False) == stats.LOSS
    assert stats.verdict(test(0.1, (-0.01, 0.15), 0.001)) == stats.TIE  # CI holds 0
    assert stats.verdict(test(0.1, (0.05, 0.15), 0.2)) == stats.TIE
    assert stats.verdict(test(0.1, (0.05, 0.15), 0.01), p=0.2) == stats.TIE  # corrected p
    assert stats.verdict(test(0.1, (0.05, 0.15), math.nan)) == stats.TIE
    assert stats.verdict(test(0.0, (0.0, 0.0), 0.0, zero_variance=True)) == stats.TIE
    # always right against always wrong: no variance, yet a real difference
    assert stats.verdict(test(1.0, (1.0, 1.0), 0.001, zero_variance=True)) == stats.WIN
    with pytest.raises(ValueError, match="alpha"):
        stats.verdict(test(0.1, None, 0.01), alpha=5)


def test_bootstrap_direction_for_errors():
    y = np.linspace(0, 1, 40)
    result = stats.paired_bootstrap([(y + 0.01, y + 0.5, y)], "mse", n_boot=500)
    assert result.difference < 0 < result.improvement and stats.verdict(result) == stats.WIN


def test_holm_matches_statsmodels_and_hand_values():
    from statsmodels.stats.multitest import multipletests

    p = [0.01, 0.04, 0.03, 0.005]
    np.testing.assert_allclose(stats.holm(p), multipletests(p, method="holm")[1])
    np.testing.assert_allclose(stats.holm(p), [0.03, 0.06, 0.06, 0.02])  # 3p, max(1p, 2p), 2p, 4p
    assert stats.holm([]).size == 0
    with pytest.raises(ValueError, match="p-value"):
        stats.holm([0.1, math.nan])


def test_mcnemar_matches_statsmodels_pooled_over_seeds():
    from statsmodels.stats.contingency_tables import mcnemar

    # two seeds; pooled: both right 30+20, A only 12+9, B only 3+2, neither 5+4
    def seed(both, a_only, b_only, neither):
        a = np.r_[np.ones(both), np.ones(a_only), np.zeros(b_only), np.zeros(neither)].astype(bool)
        b = np.r_[np.ones(both), np.zeros(a_only), np.ones(b_only), np.zeros(neither)].astype(bool)
        return a, b

    (a1, b1), (a2, b2) = seed(30, 12, 3, 5), seed(20, 9, 2, 4)
    result = stats.mcnemar([a1, a2], [b1, b2])
    table = [[50, 21], [5, 9]]
    assert dict(result.counts) == {"both": 50, "a_only": 21, "b_only": 5, "neither": 9}
    assert result.method == "McNemar, chi-square with continuity correction"  # 26 discordant
    assert result.p == pytest.approx(mcnemar(table, exact=False, correction=True).pvalue)
    assert result.p == pytest.approx(scipy.stats.chi2.sf((abs(21 - 5) - 1) ** 2 / 26, 1))
    assert result.difference == pytest.approx(16 / 85) and stats.verdict(result) == stats.WIN

    small = stats.mcnemar(*seed(40, 7, 1, 2))  # 8 discordant: the exact binomial test
    assert small.method == "McNemar, exact binomial"
    assert small.p == pytest.approx(mcnemar([[40, 7], [1, 2]], exact=True).pvalue)
    assert small.p == pytest.approx(scipy.stats.binomtest(7, 8, 0.5).pvalue)
    same = stats.mcnemar([a1], [a1])
    assert same.p == 1.0 and same.zero_variance and stats.verdict(same) == stats.TIE


def test_friedman_matches_scipy_and_excludes_nothing_silently():
    scores = {"a": [0.9, 0.8, 0.95, 0.7, math.nan], "b": [0.85, 0.82, 0.9, 0.6, 0.5],
              "c": [0.5, 0.6, 0.55, 0.65, 0.4], "d": [0.7, 0.7, 0.6, 0.6, 0.3]}
    names = ["d0", "d1", "d2", "d3", "d4"]
    result = stats.friedman_posthoc(scores, higher_is_better=True, datasets=names)
    assert result.excluded == ("d4",) and result.datasets == ("d0", "d1", "d2", "d3")
    reference = scipy.stats.friedmanchisquare(*(v[:4] for v in scores.values()))
    assert result.statistic == pytest.approx(reference.statistic)
    assert result.p == pytest.approx(reference.pvalue)
    # ranks by hand, 1 = best: a 1,2,1,1  b 2,1,2,3.5  c 4,4,4,2  d 3,3,3,3.5 (b, d tie on d3)
    assert result.average_ranks == pytest.approx(
        {"a": 1.25, "b": 8.5 / 4, "c": 14 / 4, "d": 12.5 / 4})
    posthoc = result.posthoc
    assert set(posthoc.index) == set(scores) and (posthoc.values == posthoc.values.T).all()
    flipped = stats.friedman_posthoc(scores, higher_is_better=False, datasets=names)
    assert flipped.average_ranks["a"] == pytest.approx(5 - 1.25)
    assert flipped.p == pytest.approx(result.p)

    from matplotlib import pyplot
    from matplotlib.figure import Figure

    before = pyplot.get_fignums()
    fig = stats.critical_difference_figure(result, "toy")
    assert isinstance(fig, Figure) and pyplot.get_fignums() == before

    two = stats.friedman_posthoc({"a": [1, 2], "b": [2, 1]})
    assert not two.tested and "needs >= 3 models" in two.reason
    with pytest.raises(ValueError, match="no critical-difference diagram"):
        stats.critical_difference_figure(two)
    with pytest.raises(ValueError, match="one score per dataset"):
        stats.friedman_posthoc({"a": [1, 2], "b": [2], "c": [1, 1]})


def test_mean_ci_matches_scipy_t_interval():
    values = [0.8, 0.82, 0.79, 0.85]
    ci = stats.mean_ci(values)
    low, high = scipy.stats.t.interval(0.95, 3, loc=np.mean(values), scale=scipy.stats.sem(values))
    assert (ci.low, ci.high) == pytest.approx((low, high))
    assert math.isnan(stats.mean_ci([0.8]).half_width)
    with pytest.raises(ValueError, match="not finite"):
        stats.mean_ci([0.8, math.nan])


def test_normalised_score_and_solved_split():
    assert stats.normalised_score(0.75, 0.5, 1.0) == pytest.approx(0.5)
    assert stats.normalised_score(0.5, 2.0, 0.0) == pytest.approx(0.75)  # mse: 2 -> 0.5 of 0
    assert math.isnan(stats.normalised_score(1.0, 1.0, 1.0))
    threshold = stats.solved_threshold("acc")
    assert threshold == pytest.approx(0.98) and stats.solved_threshold("mse") == pytest.approx(0.02)
    split = stats.solved_split([1.0, 0.99, 0.51, 0.5, 0.985], threshold)
    assert (split.solved, split.total) == (3, 5) and split.unsolved_mean == pytest.approx(0.505)


def test_p_values_are_never_rounded_across_a_usual_level():
    """0.049956 passes alpha = 0.05; printed as 0.05 it would read as failing it."""
    assert stats.fmt_p(0.049956) == "0.04996"
    assert stats.fmt_p(0.0333) == "0.033" and stats.fmt_p(0.5) == "0.5"
    assert stats.fmt_p(0.0104) == "0.01" and stats.fmt_p(0.009996) == "0.009996"
    assert stats.fmt_p(1.0) == "1" and stats.fmt_p(0.05) == "0.05"
    for p in (0.0009999, 0.00999, 0.0999, 0.04951, 0.0501):
        text = stats.fmt_p(p)
        assert all((float(text) < t) == (p < t) for t in stats.P_THRESHOLDS), (p, text)
