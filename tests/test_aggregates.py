"""Aggregates that compare like with like: ranks only over the datasets where every
ranked model ran (a model with 2 datasets never outranks one with 24), the rule that
keeps the most results when some did not run everywhere, saturated datasets marked and
left out, datasets a linear model solves marked, normalised scores against the constant
baseline and the perfect value, Friedman with Nemenyi against scipy on a fixed table, one
aggregate per native modality, and the critical-difference diagram on disk."""

from __future__ import annotations

import math

import pytest
import scipy.stats
from conftest import built, make_record, write

from benchmarks.report.aggregates import complete_block
from benchmarks.report.build import build_leaderboard


def rec(dataset, model, test, metric="acc", higher=True, views=("vector",), baseline=False,
        name=None, seed=0):
    r = make_record(dataset=dataset, model=model, test=test, metric=metric, higher=higher,
                    baseline=baseline, seed=seed)
    r["dataset"]["views"] = list(views)
    if name:
        r["model"]["name"] = name
    return r


def board(tmp_path, records, **kw):
    for r in records:
        write(tmp_path, r)
    return build_leaderboard(tmp_path, "t", html=False, plots=kw.pop("plots", False), **kw)


def test_ranks_are_over_common_datasets_only(tmp_path):
    """lstm ran on 2 datasets and is best on both; mlp, gboost and linear ran on all 24.
    Ranked over the datasets each ran on, lstm would be first (rank 1.0 over 2); over
    common datasets it cannot be ranked against them at all, so it is left out, named,
    and the ranks are those of the 24 datasets."""
    records = []
    for i in range(24):
        d = f"d{i:02d}"
        records += [rec(d, "mlp", 0.80 + 0.001 * i), rec(d, "gboost", 0.75), rec(d, "linear", 0.70),
                    rec(d, "majority", 0.5, baseline=True)]
        if i < 2:
            records.append(rec(d, "lstm", 0.99))
    agg = board(tmp_path, records).analysis.aggregates[0]
    assert agg.modality == "vector"
    assert agg.models == ["gboost", "linear", "mlp"] and len(agg.datasets) == 24
    assert agg.friedman.average_ranks == {"mlp": 1.0, "gboost": 2.0, "linear": 3.0}
    assert "lstm" not in agg.friedman.average_ranks
    assert agg.dropped == [("lstm", "ran on 2 of the 24 vector datasets ranked here; keeping "
                                    "it would leave fewer results")]
    assert agg.order()[0] == "mlp"
    md = (tmp_path / "suites" / "t" / "leaderboard.md").read_text()
    assert "Models left out of this aggregate: lstm (ran on 2 of the 24" in md
    assert "| 1 | mlp | 1.00 |" in md


def test_a_dataset_is_left_out_when_that_keeps_more_results(tmp_path):
    """Three models on five datasets, one of them missing on one: dropping that dataset
    keeps 3 x 4 = 12 results, dropping the model 2 x 5 = 10; the dataset goes, named."""
    records = []
    for i, d in enumerate(["a", "b", "c", "d", "e"]):
        records += [rec(d, "x", 0.9 - 0.01 * i), rec(d, "y", 0.8), rec(d, "majority", 0.5,
                                                                          baseline=True)]
        if d != "c":
            records.append(rec(d, "z", 0.7))
    agg = board(tmp_path, records).analysis.aggregates[0]
    assert agg.models == ["x", "y", "z"] and [k[0] for k in agg.datasets] == ["a", "b", "d", "e"]
    assert agg.left_out == [("c", "not every ranked model ran on it (missing: z)")]
    assert not agg.dropped


def test_complete_block_keeps_the_most_results():
    ran = {"m1": {1, 2, 3, 4}, "m2": {1, 2, 3, 4}, "m3": {1, 2}, "m4": {1, 2}, "m5": {1, 2}}
    # {m1..m5} x {1, 2} = 10 beats {m1, m2} x {1..4} = 8
    assert complete_block(ran) == ({"m1", "m2", "m3", "m4", "m5"}, frozenset({1, 2}))
    ran["m6"] = {3, 4, 5, 6, 7, 8}
    ran["m1"] |= {5, 6, 7, 8}
    ran["m2"] |= {5, 6, 7, 8}
    # now {m1, m2, m6} x {3..8} = 18
    assert complete_block(ran) == ({"m1", "m2", "m6"}, frozenset({3, 4, 5, 6, 7, 8}))
    assert complete_block({"only": {1, 2}}) is None  # one model: nothing to rank against


def test_a_saturated_dataset_is_marked_and_left_out_of_aggregates(tmp_path):
    """On `easy` every ranked model is within 0.01 of the top, in the reverse of their
    order elsewhere: included, it would change the ranks; it is left out, so a, b, c
    rank 1, 2, 3 exactly. `lin` is solved by the linear model (not saturated: mlp is
    far below)."""
    records = []
    for d in ("d1", "d2"):
        records += [rec(d, "a", 0.9), rec(d, "b", 0.8), rec(d, "c", 0.7),
                    rec(d, "majority", 0.5, baseline=True)]
    records += [rec("easy", "a", 0.990), rec("easy", "b", 0.995), rec("easy", "c", 0.999),
                rec("easy", "majority", 0.5, baseline=True)]
    records += [rec("lin", "linear", 0.985, name="linear"), rec("lin", "mlp", 0.6),
                rec("lin", "majority", 0.5, baseline=True)]
    b = board(tmp_path, records)
    marks = {k[0]: m for k, m in b.analysis.marks.items()}
    assert marks["easy"].saturated and not marks["d1"].saturated
    assert marks["lin"].solved_by_linear and not marks["lin"].saturated
    assert not marks["easy"].solved_by_linear
    agg = b.analysis.aggregates[0]
    assert [k[0] for k in agg.datasets] == ["d1", "d2"]
    assert ("easy", "saturated: every ranked model within 0.01 of the top") in agg.left_out
    assert agg.friedman.average_ranks == {"a": 1.0, "b": 2.0, "c": 3.0}
    md = b.paths[0].read_text()
    assert "easy acc ↑ (saturated)" in md
    easy = md.split("## easy\n")[1].split("\n## ")[0]
    assert "Saturated: every ranked model is within 0.01 of the top (0.999)" in easy
    lin = md.split("## lin\n")[1].split("\n## ")[0]
    assert "Solved by a linear model" in lin and "Saturated" not in lin


def test_normalised_scores(tmp_path):
    """0 = the constant baseline's test metric, 1 = the metric's perfect value, for both
    directions, averaged per model over the aggregate's datasets."""
    records = [rec("acc1", "m", 0.75), rec("acc1", "n", 0.5), rec("acc1", "o", 0.6),
               rec("acc1", "majority", 0.5, baseline=True),
               rec("mse1", "m", 0.5, "mse", False), rec("mse1", "n", 2.0, "mse", False),
               rec("mse1", "o", 3.0, "mse", False),
               rec("mse1", "majority", 2.0, "mse", False, baseline=True)]
    agg = board(tmp_path, records).analysis.aggregates[0]
    # m: acc (0.75 - 0.5) / (1 - 0.5) = 0.5; mse (0.5 - 2) / (0 - 2) = 0.75
    assert agg.normalised["m"] == pytest.approx((0.5 + 0.75) / 2)
    assert agg.normalised["n"] == pytest.approx(0.0)  # the constant, on both
    assert agg.normalised["o"] == pytest.approx((0.2 - 0.5) / 2)  # worse than constant: < 0
    assert agg.normalised_n == {"m": 2, "n": 2, "o": 2}


FIXED = {  # dataset: (metric, higher is better, {model: score}); ranks worked by hand
    "d1": ("acc", True, {"A": 0.90, "B": 0.85, "C": 0.80, "D": 0.75}),  # 1 2 3 4
    "d2": ("acc", True, {"A": 0.88, "B": 0.89, "C": 0.70, "D": 0.72}),  # 2 1 4 3
    "d3": ("acc", True, {"A": 0.95, "B": 0.80, "C": 0.85, "D": 0.60}),  # 1 3 2 4
    "d4": ("mse", False, {"A": 0.10, "B": 0.20, "C": 0.30, "D": 0.40}),  # 1 2 3 4
    "d5": ("mse", False, {"A": 0.50, "B": 0.10, "C": 0.40, "D": 0.45}),  # 4 1 2 3
}


def fixed_records():
    out = []
    for d, (metric, higher, scores) in FIXED.items():
        out += [rec(d, m, v, metric, higher) for m, v in scores.items()]
        out.append(rec(d, "majority", 0.5 if higher else 1.0, metric, higher, baseline=True))
    return out


def test_friedman_on_a_fixed_table(tmp_path):
    """Average ranks by hand; Friedman's statistic and p as scipy computes them on the
    same table (errors negated, so that rank 1 is the lowest mse); Nemenyi's critical
    difference q(0.05; 4) / sqrt(2) * sqrt(k (k + 1) / 6N) = 2.569 * sqrt(20 / 30)."""
    f = board(tmp_path, fixed_records()).analysis.aggregates[0].friedman
    assert f.average_ranks == pytest.approx({"A": 1.8, "B": 1.8, "C": 2.8, "D": 3.6})
    columns = [[(1 if FIXED[d][1] else -1) * FIXED[d][2][m] for d in sorted(FIXED)]
               for m in "ABCD"]
    reference = scipy.stats.friedmanchisquare(*columns)
    assert f.statistic == pytest.approx(reference.statistic)
    assert f.p == pytest.approx(reference.pvalue)
    assert f.critical_difference == pytest.approx(2.569 * math.sqrt(20 / 30), abs=2e-3)
    assert f.posthoc.shape == (4, 4)


def test_critical_difference_diagram_is_written_and_linked(tmp_path):
    b = board(tmp_path, fixed_records(), plots=True)
    plots = b.paths[0].parent / "plots"
    png, svg = plots / "cd-vector.png", plots / "cd-vector.svg"
    assert png in b.paths and svg in b.paths
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = svg.read_text()
    assert "<dc:date>" not in text and "average rank over 5 datasets" in text
    md = b.paths[0].read_text()
    assert "![critical-difference diagram, vector](plots/cd-vector.png)" in md
    assert "Friedman test: chi-square = " in md and "Nemenyi" in md


def test_one_aggregate_per_native_modality(tmp_path):
    """A dataset belongs to its native modality (the first view it offers), whatever view
    a model read: an MLP on a sequence dataset ranks among the sequence models."""
    records = []
    for d in ("s1", "s2"):
        records += [rec(d, "gru", 0.9, views=("sequence", "vector")),
                    rec(d, "mlp", 0.8, views=("sequence", "vector"))]
    for d in ("g1", "g2"):
        records += [rec(d, "gin", 0.9, views=("graph",)), rec(d, "gcn", 0.85, views=("graph",))]
    aggs = {a.modality: a for a in board(tmp_path, records).analysis.aggregates}
    assert sorted(aggs) == ["graph", "sequence"]
    assert aggs["sequence"].models == ["gru", "mlp"] and aggs["graph"].models == ["gcn", "gin"]
    assert "No Friedman test" in "\n".join(
        built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0][0].read_text()
        .splitlines())  # two models: ranks, but too few for the test, and it says so
