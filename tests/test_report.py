"""Reports read by people: the Markdown and CSV tables from fixture records (corrupt files
included), "-" for pairs a model cannot run, the paired tests of the leaderboard and of
`mlwm compare` (the same statistics: a hierarchical paired bootstrap on the records'
per-row predictions, Holm-corrected, never a verdict on one seed or on zero variance),
an HTML page that treats record strings as data and loads nothing from outside, and the
plots on disk."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import re
import zlib

import numpy as np
import pytest
from conftest import built, make_record, write

from benchmarks.errors import UserError
from benchmarks.report import stats
from benchmarks.report.build import PlanFacts, build_leaderboard
from benchmarks.report.compare import compare
from benchmarks.report.plots import FAMILY_STYLES, family_style, mean_curve, plot_stem
from benchmarks.report.rows import aggregate, by_dataset, load_records
from benchmarks.report.significance import PredictionStore, dataset_tests, shared_bootstrap


def record(dataset="parity", model="mlp", seed=0, test=0.9, task="binary", views=None,
           description=None, **kw):
    """A fixture record with the dataset's task and views, as the runner writes them."""
    rec = make_record(dataset=dataset, model=model, seed=seed, test=test, **kw)
    rec["dataset"]["task"] = task
    if views is not None:
        rec["dataset"]["views"] = list(views)
    if description is not None:
        rec["dataset"]["description"] = description
    return rec


# -- records with per-row predictions, as the runner writes them -------------------------
def _rng(*key) -> np.random.Generator:
    """A generator seeded by a key of strings and numbers (stable across runs)."""
    return np.random.default_rng(zlib.crc32(repr(key).encode()))


def binary_target(dataset: str, seed: int, n: int = 400) -> np.ndarray:
    """A seed's test targets: every model of a seed is scored on the same rows."""
    return _rng("target", dataset, seed).integers(0, 2, n)


def right_on(target: np.ndarray, acc: float, *key) -> np.ndarray:
    """Binary predictions right on exactly round(acc * n) rows (which ones: from key)."""
    n = len(target)
    right = np.zeros(n, dtype=bool)
    right[_rng("rows", *key).permutation(n)[:round(acc * n)]] = True
    return np.where(right, target, 1 - target)


def with_predictions(results, rec: dict, splits: dict) -> dict:
    """Write rec with its predictions file beside it ({split: (pred, target)}), hashed
    as the runner hashes it."""
    from benchmarks.run.files import record_path

    path = record_path(results, rec["suite"], rec["dataset"]["id"], rec["model"]["id"],
                       rec["seed"])
    path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{f"{s}/{k}": v for s, (p, t) in splits.items()
                                for k, v in (("pred", p), ("target", t))})
    name = path.name.replace(".json", ".preds.npz")
    (path.parent / name).write_bytes(buf.getvalue())
    rec["predictions"] = {"file": name, "sha256": hashlib.sha256(buf.getvalue()).hexdigest(),
                          "splits": sorted(splits)}
    write(results, rec)
    return rec


def scored(results, model: str, seed: int, acc: float, dataset="parity", n=400,
           ood_acc: float | None = None, **kw) -> dict:
    """An accuracy record whose test predictions are right on acc of the seed's rows
    (and on ood_acc of its out-of-distribution rows, when given)."""
    y = binary_target(dataset, seed, n)
    pred = right_on(y, acc, dataset, model, seed)
    splits = {"test": (pred, y)}
    if ood_acc is not None:
        y_ood = binary_target(dataset + " ood", seed, n)
        splits["ood_test"] = (right_on(y_ood, ood_acc, dataset, model, seed, "ood"), y_ood)
        kw["ood"] = ood_acc
    return with_predictions(results, record(dataset=dataset, model=model, seed=seed,
                                            test=float((pred == y).mean()), **kw), splits)


def regression_scored(results, model: str, seed: int, mse: float, dataset="sums",
                      n=400, **kw) -> dict:
    """An mse record with predictions whose squared error is mse on the seed's rows."""
    y = _rng("y", dataset, seed).normal(size=n)
    noise = _rng("noise", dataset, model, seed).normal(size=n)
    pred = y + noise * np.sqrt(mse / (noise ** 2).mean())
    return with_predictions(results, record(dataset=dataset, model=model, seed=seed,
                                            test=float(((pred - y) ** 2).mean()),
                                            metric="mse", higher=False, task="regression",
                                            **kw), {"test": (pred, y)})


def suite_records(results):
    """Two datasets (accuracy up, mse down), three seeds with predictions, a baseline, a
    failed and a skipped cell, a model with one seed on one dataset only, and four
    broken files."""
    scores = {"gru": ([0.95, 0.96, 0.97], [0.10, 0.11, 0.12]),
              "lstm": ([0.80, 0.81, 0.82], [0.30, 0.31, 0.29]),
              "majority": ([0.5, 0.5, 0.5], [2.0, 2.0, 2.0])}
    for model, (acc, mse) in scores.items():
        base = model == "majority"
        for seed in range(3):
            scored(results, model, seed, acc[seed], description="xor of 16 random bits",
                   baseline=base)
            regression_scored(results, model, seed, mse[seed], description="sum of a set",
                              baseline=base)
    write(results, record(model="mlp", status="failed", reason="diverged: loss nan"))
    write(results, record(model="deps", status="skipped", reason="needs pyoperon"))
    folder = write(results, record(model="only_parity", test=0.6)).parent
    (folder / "seed5.json").write_text('{"schema_version": 1, "su')
    (folder / "seed6.json").write_text("\x00not json")
    (folder / "seed7.json").write_text(json.dumps({"hello": "world"}))
    (folder / "seed8.json").write_text(json.dumps(record(seed=8) | {"status": "maybe"}))


def section(md: str, heading: str) -> str:
    """The text of a Markdown section, from its heading to the next one of its level."""
    level = heading.split(" ")[0]
    return md.split(heading + "\n")[1].split(f"\n{level} ")[0]


def grid(md: str) -> dict[str, list[str]]:
    """The full grid's cells by model."""
    cells = [line[2:-2].split(" | ") for line in section(md, "## Full grid").splitlines()
             if line.startswith("| ") and not line.startswith("| model")]
    return {c[0]: c[1:] for c in cells}


def test_tables_content_and_ranking(tmp_path):
    suite_records(tmp_path)
    paths, problems, rows = built(build_leaderboard(tmp_path, "t", plots=False))
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.csv", "leaderboard.html"]
    assert len(problems) == 4
    md = paths[0].read_text()
    summary = section(md, "## Full grid")
    # models by name, baselines last: the grid is a reference, the aggregates rank
    assert summary.index("| gru |") < summary.index("| lstm |") < summary.index("| majority |")
    assert "| gru | **0.960** | **0.110** |" in summary  # best, and beats the baseline
    assert "| lstm | 0.810 | 0.300 |" in summary        # worse than gru: not bold
    assert "| only_parity | 0.600 | . |" in summary  # never run on sums: "."
    assert "| mlp | failed | . |" in summary and "| deps | skipped | . |" in summary
    assert "parity acc ↑" in summary and "sums mse ↓" in summary
    parity = section(md, "## parity")
    assert "xor of 16 random bits" in parity
    assert "Metric: test acc, higher is better. Baseline: majority." in parity
    # 95% t-interval: t(0.975, 2) * 0.01 / sqrt(3) = 0.0248
    assert "| 1 | gru |  | vector | 0.960 ± 0.025 | 3 | best | better (p=" in parity
    assert "| 2 | lstm |  | vector | 0.810 ± 0.025 | 3 | worse (p=" in parity
    assert "| 4 | majority (baseline) |" in parity and "| baseline |" in parity
    assert "| 3 | only_parity |  | vector | 0.600 | 1 | no test (no predictions) |" in parity
    assert "1 failed: seed 0: diverged: loss nan" in parity
    assert "hierarchical paired bootstrap (seeds, then test rows)" in parity
    sums = section(md, "## sums")
    assert "Metric: test mse, lower is better." in sums
    assert sums.index("| 1 | gru") < sums.index("| 2 | lstm") < sums.index("| 3 | majority")
    assert md.count("seed5.json") == 1 and "Files left out" in md
    table = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    keys = [(r["dataset"], r["model"], r["param_budget"]) for r in table]
    assert len(keys) == len(set(keys)) == 9  # tidy: one row per (dataset, model, budget)
    gru = next(r for r in table if r["dataset"] == "parity" and r["model"] == "gru")
    assert gru["vs_best"] == "best" and gru["vs_baseline"] == "better"
    assert float(gru["test_ci95"]) == pytest.approx(0.0248, abs=1e-4)
    assert float(gru["mcnemar_p_vs_baseline"]) < 1e-6  # McNemar beside it, for accuracy


def test_layout_opens_with_legend_hardware_aggregates_contrasts_then_grid(tmp_path):
    """Readable at a glance: the legend, the hardware, per modality the aggregate and its
    diagram, the published contrasts, and only then the full grid and the datasets."""
    suite_records(tmp_path)
    for seed in range(3):  # a third ranked model on both datasets: a Friedman test
        scored(tmp_path, "tcn", seed, 0.9, description="xor of 16 random bits")
        regression_scored(tmp_path, "tcn", seed, 0.2, description="sum of a set")
    facts = PlanFacts(contrasts=[{"name": "GRU over LSTM", "source": "a paper",
                                  "dataset": "parity", "models": ["gru", "lstm"]}])
    paths = built(build_leaderboard(tmp_path, "t", facts=facts))[0]
    md, page = paths[0].read_text(), paths[2].read_text()
    assert 'alt="critical-difference diagram, vector"' in page  # inline in the HTML too
    assert page.index("Summary by modality") < page.index("Published contrasts") < \
        page.index("Full grid")
    marks = ["Primary test metric", "Hardware: cpu.", "## Summary by modality", "### vector",
             "![critical-difference diagram, vector](plots/cd-vector.png)",
             "## Published contrasts", "## Full grid", "## parity", "## sums"]
    assert [md.index(m) for m in marks] == sorted(md.index(m) for m in marks)


# -- significance -----------------------------------------------------------------------
def comparison(tmp_path, a_acc, b_acc, seeds=(0, 1, 2), n=400, **kw):
    """Two models' records on the same seeds and rows, compared by `mlwm compare`."""
    for seed, x, y in zip(seeds, a_acc, b_acc, strict=True):
        scored(tmp_path, "a", seed, x, n=n, **kw)
        scored(tmp_path, "b", seed, y, n=n, **kw)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    return compare(rows, ["a", "b"]).test(("parity", "1"), "a", "b")


def test_clearly_separated_models_are_a_win(tmp_path):
    t = comparison(tmp_path, [0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    assert t.verdict == stats.WIN and t.p_holm < 0.01
    assert t.result.method == "hierarchical paired bootstrap (seeds, then test rows)"
    assert t.flipped().verdict == stats.LOSS and t.flipped().result.difference < 0


def test_differences_inside_the_noise_are_a_tie(tmp_path):
    """1 point on 400 rows is within the binomial noise (sd about 2 points)."""
    t = comparison(tmp_path, [0.80, 0.81, 0.79], [0.79, 0.80, 0.80])
    assert t.tested and t.verdict == stats.TIE and t.p_holm >= 0.05


def test_one_seed_is_no_test_however_large_the_gap(tmp_path):
    t = comparison(tmp_path, [0.99], [0.10], seeds=(0,))
    assert not t.tested and t.verdict is None and "needs 2" in t.reason
    assert t.short == "no test (1 seed)"


def test_identical_or_deterministic_differences_are_no_test(tmp_path):
    """No verdict rests on zero variance: identical predictions, or a model right on
    every row against one wrong on every row (every resample gives the same difference)."""
    for seed in range(2):
        y = binary_target("parity", seed)
        for model in ("twin1", "twin2"):
            with_predictions(tmp_path / "same", record(model=model, seed=seed, test=0.8),
                             {"test": (right_on(y, 0.8, "shared rows", seed), y)})
    rows = aggregate(load_records(tmp_path / "same" / "runs", "t")[0])
    same = compare(rows, ["twin1", "twin2"]).test(("parity", "1"), "twin1", "twin2")
    assert not same.tested and "identical predictions" in same.reason
    for seed in range(2):
        y = binary_target("parity", seed)
        with_predictions(tmp_path / "all", record(model="right", seed=seed, test=1.0),
                         {"test": (y, y)})
        with_predictions(tmp_path / "all", record(model="wrong", seed=seed, test=0.0),
                         {"test": (1 - y, y)})
    rows = aggregate(load_records(tmp_path / "all" / "runs", "t")[0])
    t = compare(rows, ["right", "wrong"]).test(("parity", "1"), "right", "wrong")
    assert not t.tested and "zero variance" in t.reason


def test_lower_is_better_direction(tmp_path):
    for seed in range(3):
        regression_scored(tmp_path, "low", seed, 0.10)
        regression_scored(tmp_path, "high", seed, 0.50)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    t = compare(rows, ["low", "high"]).test(("sums", "1"), "low", "high")
    assert t.verdict == stats.WIN and t.result.difference < 0  # lower mse wins
    assert t.flipped().verdict == stats.LOSS


def test_alpha_decides_on_the_corrected_p(tmp_path):
    for seed in range(3):  # 3 to 4 points on 400 rows: significant near the 2% level
        scored(tmp_path, "a", seed, 0.83 + 0.005 * seed)
        scored(tmp_path, "b", seed, 0.80)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    p = compare(rows, ["a", "b"]).test(("parity", "1"), "a", "b").p_holm
    assert 0.003 < p < 0.03  # above the resampling floor, below the interval's 5%
    assert compare(rows, ["a", "b"], alpha=p * 1.5).test(
        ("parity", "1"), "a", "b").verdict == stats.WIN
    assert compare(rows, ["a", "b"], alpha=p * 0.9).test(
        ("parity", "1"), "a", "b").verdict == stats.TIE


def test_holm_is_applied_over_the_comparisons_of_a_table(tmp_path):
    """A dataset's table corrects its comparisons together: each model against the best
    and against the baseline, the pair (best, baseline) once."""
    accs = {"a": 0.85, "b": 0.84, "c": 0.80, "d": 0.78, "base": 0.5}
    for seed in range(3):
        for model, acc in accs.items():
            scored(tmp_path, model, seed, acc + 0.005 * seed, baseline=model == "base")
    group = by_dataset(aggregate(load_records(tmp_path / "runs", "t")[0]))[("parity", "1")]
    tests = dataset_tests(group, PredictionStore())
    family = list(tests.family.tests.values())
    assert tests.best == "a" and tests.baseline == "base"
    assert sorted((t.a, t.b) for t in family) == [
        ("b", "a"), ("b", "base"), ("base", "a"), ("c", "a"), ("c", "base"), ("d", "a"),
        ("d", "base")]
    raw = [t.result.p for t in family]
    assert [t.p_holm for t in family] == pytest.approx(list(stats.holm(raw)))
    assert all(t.family == 7 for t in family)
    assert tests.vs_baseline("a").verdict == stats.WIN  # (base, a) flipped to a's side
    assert tests.family.n_boot > 2 * 7 / 0.05 and 2 / (tests.family.n_boot + 1) < 0.05 / 7


def test_shared_resamples_give_exactly_paired_bootstrap(tmp_path):
    """The leaderboard draws each table's row resamples once for all its pairs; every
    pair's result is the one stats.paired_bootstrap gives it, field for field."""
    from benchmarks import metrics

    rng = np.random.default_rng(0)
    for name in ("acc", "f1", "r2", "mae"):
        m = metrics.metric(name)
        samples = []
        for n in (300, 250, 300):  # seeds of different sizes, as re-drawn splits may be
            y = rng.integers(0, 2, n) if name in ("acc", "f1") else rng.normal(size=n)
            preds = {k: (np.where(rng.random(n) < q, y, 1 - y) if name in ("acc", "f1")
                         else y + rng.normal(size=n) * q) for k, q in
                     (("x", 0.8), ("y", 0.75), ("z", 0.7))}
            preds["w"] = preds["x"].copy()
            samples.append((preds, y))
        pairs = [("x", "y"), ("y", "z"), ("x", "w"), ("z", "x")]
        shared = shared_bootstrap(m, [{k: m.contributions(p, y) for k, p in ps.items()}
                                      for ps, y in samples], pairs, 500, seed=3)
        for a, b in pairs:
            alone = stats.paired_bootstrap([(ps[a], ps[b], y) for ps, y in samples], m,
                                           n_boot=500, seed=3)
            mine = shared[(a, b)]
            # integer sums (acc, f1) are exact in any order; float sums of the errors may
            # differ in the last bit, so the interval is compared to 1e-12
            assert dataclasses.replace(mine, ci=None) == dataclasses.replace(alone, ci=None)
            assert mine.ci == pytest.approx(alone.ci, rel=1e-12, abs=1e-15), (name, a, b)
            if name in ("acc", "f1"):
                assert mine == alone


def test_records_without_predictions_get_no_test_with_the_reason(tmp_path):
    for seed in range(3):
        write(tmp_path, record(model="old", seed=seed, test=0.9))
        write(tmp_path, record(model="majority", seed=seed, test=0.5, baseline=True))
    paths = built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0]
    md = paths[0].read_text()
    assert "| 1 | old |  | vector | 0.900 ± 0.000 | 3 | best | no test (no predictions) |" in md
    assert grid(md)["old"] == ["0.900"]  # not bold: nothing shows it beats the baseline
    csv_rows = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    assert "records written before predictions were kept" in csv_rows[0]["vs_baseline_detail"]


def test_a_prediction_file_that_does_not_match_its_record_is_not_tested(tmp_path):
    for seed in range(2):
        scored(tmp_path, "a", seed, 0.9)
        scored(tmp_path, "b", seed, 0.6)
    npz = next((tmp_path / "runs" / "t" / "parity" / "a").glob("seed0.preds.npz"))
    y = binary_target("parity", 0)
    buf = io.BytesIO()
    np.savez_compressed(buf, **{"test/pred": y, "test/target": y})  # "perfect", swapped in
    npz.write_bytes(buf.getvalue())
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    t = compare(rows, ["a", "b"]).test(("parity", "1"), "a", "b")
    assert not t.tested and "does not match the hash in its record" in t.reason


def test_ties_with_the_baseline_are_not_wins(tmp_path):
    """A model the paired test cannot tell from the baseline is "≈ baseline" in its
    table and never bold in the grid, even when it has the best mean."""
    for seed in range(3):
        scored(tmp_path, "chance", seed, 0.51 + 0.01 * (seed % 2))
        scored(tmp_path, "majority", seed, 0.50, baseline=True)
        scored(tmp_path, "worse", seed, 0.35)
    md = built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0][0].read_text()
    parity = section(md, "## parity")
    assert "| 1 | chance |  | vector | 0.513 ± 0.014 | 3 | best | ≈ baseline (p=" in parity
    assert "| 3 | worse |  | vector | 0.350 ± 0.000 | 3 | worse (p=0.003) | below baseline" in parity
    g = grid(md)
    assert g["chance"] == ["0.513 ≈"] and g["worse"] == ["0.350 ▼"]
    assert "**" not in section(md, "## Full grid")


def test_compare_matrix_and_command(tmp_path, capsys):
    suite_records(tmp_path)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    cmp = compare(rows, ["gru", "lstm", "majority"])
    assert cmp.record("gru", "lstm") == (2, 0, 0)   # both datasets, mse direction respected
    assert cmp.record("lstm", "gru") == (0, 0, 2)
    assert cmp.record("gru", "majority") == (2, 0, 0)
    one = compare(rows, ["gru", "only_parity"])     # one seed: no test, in no column
    assert one.record("gru", "only_parity") == (0, 0, 0) and one.untested("gru", "only_parity") == 1
    # Holm over every comparison shown: 3 pairs x 2 datasets
    assert {t.family for t in cmp.tests.values()} == {6}
    from benchmarks.report.significance import boot_count

    assert boot_count(1000) == 40_001 and 2 / (boot_count(1000) + 1) < 0.05 / 1000
    assert compare(rows, ["gru", "lstm"], datasets="su*").datasets == [("sums", "1")]
    assert compare(rows, ["*"]).models[:2] == ["deps", "gru"]
    with pytest.raises(UserError, match="did you mean gru"):
        compare(rows, ["gru", "gruu"])
    with pytest.raises(UserError, match="no dataset matches"):
        compare(rows, ["gru", "lstm"], datasets="dyck*")

    from rich.console import Console

    from benchmarks.report.compare import print_comparison

    buf = io.StringIO()
    print_comparison(compare(rows, ["gru", "lstm"], alpha=0.01), 0.01, Console(file=buf, width=250))
    out = buf.getvalue()
    assert "hierarchical paired bootstrap" in out and "Holm" in out and "Welch" not in out
    assert "gru better" in out and "2/0/0" in out
    assert "0.960 ± 0.025 (3)" in out


def test_compare_and_the_leaderboard_give_the_same_verdicts(tmp_path):
    """One statistic: the leaderboard's vs-best test and compare's, on the same pair and
    the same family size, are the same test."""
    for seed in range(3):
        scored(tmp_path, "a", seed, 0.84 + 0.01 * seed)
        scored(tmp_path, "b", seed, 0.80)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    board = dataset_tests(by_dataset(rows)[("parity", "1")], PredictionStore()).vs_best("b")
    cmp = compare(rows, ["b", "a"]).test(("parity", "1"), "b", "a")
    assert board.result == cmp.result and board.verdict == cmp.verdict == stats.LOSS


# -- published contrasts --------------------------------------------------------------
def test_published_contrasts_hold_reverse_or_stay_unresolved(tmp_path):
    """Each contrast: the models in the published order with their interval, the paired
    verdict of each adjacent pair, and whether the order holds, is reversed, or is not
    resolved by the data; on the test or the OOD split."""
    accs = {"cnn": (0.95, 0.90), "gru": (0.85, 0.60), "mlp": (0.845, 0.59), "linear": (0.60, 0.55)}
    for seed in range(3):
        for model, (acc, ood) in accs.items():
            scored(tmp_path, model, seed, acc, ood_acc=ood)
    specs = [
        {"name": "CNN > GRU > logistic", "source": "Greydanus (2020)", "dataset": "parity",
         "models": ["cnn", "gru", "linear"], "expected": "CNN > GRU > logistic"},
        {"name": "linear first", "dataset": "parity", "models": ["linear", "cnn"]},
        {"name": "GRU > MLP", "dataset": "parity", "models": ["gru", "mlp"]},
        {"name": "missing", "dataset": "parity", "models": ["cnn", "absent"]},
        {"name": "OOD: GRU > linear", "dataset": "parity", "models": ["gru", "linear"],
         "split": "ood_test"},
        {"name": "GRU = MLP", "dataset": "parity", "models": ["gru", "mlp"], "expected": "tie"},
        {"name": "CNN = linear", "dataset": "parity", "models": ["cnn", "linear"],
         "expected": "tie"},
    ]
    board = build_leaderboard(tmp_path, "t", plots=False, html=False,
                              facts=PlanFacts(contrasts=specs))
    got = {c.name: c for c in board.analysis.contrasts}
    assert got["CNN > GRU > logistic"].outcome == "holds"
    assert [t.verdict for t in got["CNN > GRU > logistic"].steps] == [stats.WIN, stats.WIN]
    assert got["linear first"].outcome == "reversed"
    assert "cnn is significantly better than linear" in got["linear first"].why
    assert got["GRU > MLP"].outcome == "not resolved by the data"
    assert "gru ≈ mlp" in got["GRU > MLP"].why
    assert got["missing"].outcome == "not resolved by the data"
    assert got["missing"].why == "no result for absent"
    ood = got["OOD: GRU > linear"]
    assert ood.outcome == "holds" and ood.cis[0].mean == pytest.approx(0.60)
    assert ood.steps[0].split == "ood_test"
    assert got["GRU = MLP"].outcome == "holds" and got["CNN = linear"].outcome == "does not hold"
    md = board.paths[0].read_text()
    part = section(md, "### CNN &gt; GRU &gt; logistic")  # suite text is data: > as &gt;
    assert "Source: Greydanus (2020); Dataset: parity; split: test" in part
    assert "Ordering: holds (every adjacent pair is a significant win" in part
    assert "| 1 | cnn | 0.950 ± 0.000 (n=3) | better (p=" in part
    assert "| 3 | linear | 0.600 ± 0.000 (n=3) |  |" in part
    assert "| ood_test acc (95% CI) |" in section(md, "### OOD: GRU &gt; linear")


# -- HTML ---------------------------------------------------------------------------------
HOSTILE_HPARAM = "<script>alert(1)</script>"
HOSTILE_DESC = '<img src=x onerror="alert(2)"> & co'


def test_html_escapes_record_strings_and_loads_nothing_external(tmp_path):
    for seed, value in enumerate([0.7, 0.72]):
        rec = record(model="mlp", seed=seed, test=value, description=HOSTILE_DESC)
        rec["model"]["hparams"] = {"act": "<i>relu</i>", "note": '"quoted"',
                                   "code": HOSTILE_HPARAM}
        write(tmp_path, rec)
    write(tmp_path, record(model="boom", status="failed", reason="<b>bad</b> input",
                           description=HOSTILE_DESC))
    (tmp_path / "runs" / "t" / "parity" / "broken.json").write_text("<svg onload=alert(3)>")
    paths, _, _ = built(build_leaderboard(tmp_path, "t", plots=False))
    page = paths[2].read_text()
    for raw in (HOSTILE_HPARAM, "<img src=x", "<i>relu</i>", "<b>bad</b>", "<svg onload"):
        assert raw not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;img src=x onerror=&quot;alert(2)&quot;&gt; &amp; co" in page
    assert "&lt;b&gt;bad&lt;/b&gt; input" in page and "&lt;i&gt;relu&lt;/i&gt;" in page
    assert page.count("<script>") == 1  # the page's own sorting script, nothing else
    assert not re.search(r"(src|href)\s*=\s*[\"']?\s*(https?:)?//", page, re.I)
    assert "http" not in page.lower()


def test_html_has_the_same_tables_and_inline_plots(tmp_path):
    suite_records(tmp_path)
    paths, _, _ = built(build_leaderboard(tmp_path, "t"))
    page = next(p for p in paths if p.suffix == ".html").read_text()
    md = paths[0].read_text()
    for text in ("0.960 ± 0.025", "1 failed: seed 0: diverged: loss nan", "xor of 16 random bits",
                 "Metric: test mse, lower is better.", "better (p="):
        assert text in md and text in page
    assert page.count("<table") == 4  # the vector aggregate, the grid, one per dataset
    # each row's hyperparameters and budget one click away
    assert page.count("<details>") == 2 and "budget: batch_size=1, lr=0.1, max_epochs=1" in page
    srcs = re.findall(r'src="([^"]*)"', page)
    assert srcs and all(s.startswith("data:image/png;base64,") for s in srcs)
    assert "http" not in page.lower()


# -- plots ----------------------------------------------------------------------------------
def test_plots_are_written_as_png_and_svg(tmp_path):
    for seed in range(2):
        for model, budget, value in (("gru", 10_000, 0.8), ("gru", 100_000, 0.9),
                                     ("mlp", None, 0.7)):
            rec = record(dataset="dyck-2-words", model=model, budget=budget, seed=seed,
                         test=value + 0.01 * seed)
            rec["model"]["n_params"] = budget or 3000
            rec["history"] = [{"epoch": e, "train/loss": 1.0 / (e + 1),
                               "val/acc": value * (1 - 0.5 ** (e + 1))} for e in range(5 + seed)]
            write(tmp_path, rec)
    write(tmp_path, record(dataset="dyck-2-words", model="majority", test=0.5, baseline=True,
                           description="$x^2$ is text, not TeX"))
    paths, _, _ = built(build_leaderboard(tmp_path, "t", html=False))
    plots = paths[0].parent / "plots"
    stem = plot_stem("dyck-2-words", "1")
    odd = plot_stem("dyck/2 words", "1")  # only an old record could hold such an id
    assert "/" not in odd and " " not in odd and odd != plot_stem("dyck_2_words", "1")
    for kind in ("bars", "params", "curves"):
        for suffix in (".png", ".svg"):
            path = plots / f"{stem}.{kind}{suffix}"
            assert path in paths and path.stat().st_size > 1000
        assert (plots / f"{stem}.{kind}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = (plots / f"{stem}.bars.svg").read_text()
    assert "dyck-2-words" in svg and "higher is better" in svg
    assert "<dc:date>" not in svg  # no creation date: rebuilt plots stay byte for byte


def test_bars_show_the_ood_metric_as_a_second_hatched_bar(tmp_path):
    for seed in range(2):
        write(tmp_path, record(dataset="dyck", model="gru", seed=seed, test=0.9, ood=0.61))
        write(tmp_path, record(dataset="dyck", model="mlp", seed=seed, test=0.8, ood=0.42))
    paths, _, _ = built(build_leaderboard(tmp_path, "t", html=False))
    svg = (paths[0].parent / "plots" / "dyck.bars.svg").read_text()
    assert "OOD 0.610" in svg and "OOD 0.420" in svg and "OOD test" in svg
    assert svg.count('id="h') >= 1 and "hatch" in svg.lower()  # a hatch pattern is defined
    assert "| ood acc |" in paths[0].read_text().replace(" (95% CI)", "")


def test_family_colours_are_fixed_across_suites_and_plots():
    """A family's colour depends on its name only: the same whatever else a suite runs."""
    from benchmarks.report.plots import family_styles
    from benchmarks.report.rows import Row

    def rows(*names):
        return [Row("d", "1", "", "acc", True, n, n, False, None) for n in names]

    assert family_styles(rows("mlp", "gru"))["mlp"] == family_styles(rows("zzz", "mlp"))["mlp"]
    assert family_style("mlp") == FAMILY_STYLES["mlp"]
    assert len({c for c, _ in FAMILY_STYLES.values()}) >= len(FAMILY_STYLES) - 1  # distinct
    mine = family_style("my_plugin_model")
    assert mine == family_style("my_plugin_model") and re.fullmatch(r"#[0-9a-f]{6}", mine[0])


def test_learning_curve_holds_a_stopped_seed_at_its_last_value():
    epochs, m, s = mean_curve([[{"val/acc": 0.5}, {"val/acc": 0.7}],
                               [{"val/acc": 0.6}, {"val/acc": 0.8}, {"val/acc": 0.9}]], "val/acc")
    assert epochs == [1, 2, 3]
    assert m == pytest.approx([0.55, 0.75, 0.8])
    assert mean_curve([[{"train/loss": 1.0}]], "val/acc") == ([], [], [])


def test_when_the_baseline_is_best_each_pair_is_tested_once(tmp_path):
    """Models worse than the constant: the best is the baseline, so each model's "vs
    best" and "vs baseline" are one comparison, counted once in the Holm family."""
    for seed in range(3):
        scored(tmp_path, "majority", seed, 0.6, baseline=True)
        scored(tmp_path, "bad", seed, 0.4)
        scored(tmp_path, "worse", seed, 0.3)
    group = by_dataset(aggregate(load_records(tmp_path / "runs", "t")[0]))[("parity", "1")]
    tests = dataset_tests(group, PredictionStore())
    assert tests.best == tests.baseline == "majority"
    assert sorted(tests.family.tests) == [("bad", "majority"), ("worse", "majority")]
    assert {t.family for t in tests.family.tests.values()} == {2}
    assert tests.vs_best("bad") == tests.vs_baseline("bad") and not tests.beats_baseline("bad")


def test_plots_are_reproducible_and_redrawn_only_when_their_rows_change(tmp_path):
    """The same records draw the same bytes (no date in any file); a rebuild keeps the
    plots of datasets whose rows did not change and redraws the others."""
    for seed in range(2):
        for d in ("a", "b"):
            for model, value in (("gru", 0.9), ("mlp", 0.8)):
                write(tmp_path, record(dataset=d, model=model, seed=seed, test=value + seed / 100))
    plots = built(build_leaderboard(tmp_path, "t", html=False))[0][0].parent / "plots"
    first = {p.name: p.read_bytes() for p in plots.iterdir()}
    stamps = {p.name: p.stat().st_mtime_ns for p in plots.iterdir()}
    write(tmp_path, record(dataset="b", model="mlp", seed=1, test=0.5))
    build_leaderboard(tmp_path, "t", html=False)
    changed = {p.name for p in plots.iterdir() if p.stat().st_mtime_ns != stamps[p.name]}
    assert changed and all(n.startswith("b.") for n in changed)
    for p in plots.iterdir():
        p.unlink()
    write(tmp_path, record(dataset="b", model="mlp", seed=1, test=0.81))
    build_leaderboard(tmp_path, "t", html=False)
    assert {p.name: p.read_bytes() for p in plots.iterdir()} == first


def test_the_same_records_in_another_folder_draw_the_same_plot_files(tmp_path):
    """A fresh clone rebuilds the committed plots byte for byte: nothing of the results
    folder's path (the prediction files' paths beside the records) enters a plot or its
    fingerprint, so a rebuild there leaves `git status` clean."""
    import shutil

    one = tmp_path / "one" / "results"
    for seed in range(2):
        for model, value in (("gru", 0.9), ("mlp", 0.8)):
            target = binary_target("parity", seed)
            with_predictions(one, record(model=model, seed=seed, test=value + seed / 100),
                             {"test": (right_on(target, value, model, seed), target)})
    two = tmp_path / "elsewhere" / "copy"
    shutil.copytree(one / "runs", two / "runs")
    build_leaderboard(one, "t", html=False)
    build_leaderboard(two, "t", html=False)
    files = lambda root: {p.relative_to(root).as_posix(): p.read_bytes()  # noqa: E731
                          for p in sorted((root / "suites" / "t" / "plots").iterdir())}
    assert files(one) and files(one) == files(two)


def test_plots_drawn_in_child_processes_match_those_drawn_here(tmp_path, monkeypatch, capsys):
    """Many datasets are drawn by child processes (python -m benchmarks.report.plots);
    their files are those this process would draw, and a child that fails is replaced
    by drawing here, with a warning."""
    import sys

    from benchmarks.report import plots as plotting

    def records(root):
        for d in ("a", "b", "c"):
            for seed in range(2):
                write(root, record(dataset=d, model="gru", seed=seed, test=0.9 - seed / 50))
                write(root, record(dataset=d, model="mlp", seed=seed, test=0.7, ood=0.5))

    def files(root):
        plots = root / "suites" / "t" / "plots"
        return {p.name: p.read_bytes() for p in sorted(plots.iterdir())}

    import os

    monkeypatch.setattr(os, "sched_getaffinity", lambda _: {0, 1}, raising=False)  # 2 CPUs
    records(tmp_path / "here")
    build_leaderboard(tmp_path / "here", "t", html=False)
    monkeypatch.setattr(plotting, "PER_WORKER", 1)  # 3 datasets: 2 children
    records(tmp_path / "children")
    build_leaderboard(tmp_path / "children", "t", html=False)
    assert files(tmp_path / "children") == files(tmp_path / "here")
    records(tmp_path / "failing")
    monkeypatch.setattr(sys, "executable", "/bin/false")
    capsys.readouterr()
    build_leaderboard(tmp_path / "failing", "t", html=False)
    assert "a plotting process failed" in capsys.readouterr().err
    assert files(tmp_path / "failing") == files(tmp_path / "here")


def test_large_plots_are_linked_beside_the_page_not_inlined(tmp_path):
    from benchmarks.report.html import INLINE_MAX_BYTES, png_data_uri

    small, large = tmp_path / "plots" / "a.png", tmp_path / "plots" / "b.png"
    small.parent.mkdir()
    small.write_bytes(b"\x89PNG" + b"0" * 100)
    large.write_bytes(b"\x89PNG" + b"0" * (INLINE_MAX_BYTES + 1))
    assert png_data_uri(small).startswith("data:image/png;base64,")
    assert png_data_uri(large) == "plots/b.png"
