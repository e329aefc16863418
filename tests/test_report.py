"""Reports read by people: the Markdown and CSV tables from fixture records (corrupt files
included), "-" for pairs a model cannot run, significance verdicts of `mlwm compare`,
an HTML page that treats record strings as data and loads nothing from outside, and
the plots on disk."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from conftest import built, make_record, write

from benchmarks.errors import UserError
from benchmarks.report.build import PlanFacts, build_leaderboard
from benchmarks.report.compare import compare, significance
from benchmarks.report.plots import mean_curve, plot_stem
from benchmarks.report.rows import aggregate, load_records


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


def suite_records(results):
    """Two datasets (accuracy up, mse down), three seeds, a baseline, a failed and a
    skipped cell, a model that never ran on one dataset, and four broken files."""
    scores = {"gru": ([0.95, 0.96, 0.97], [0.10, 0.11, 0.12]),
              "lstm": ([0.80, 0.81, 0.82], [0.30, 0.31, 0.29])}
    for model, (acc, mse) in scores.items():
        for seed in range(3):
            write(results, record(model=model, seed=seed, test=acc[seed],
                                  description="xor of 16 random bits"))
            write(results, record(dataset="sums", model=model, seed=seed, test=mse[seed],
                                  metric="mse", higher=False, task="regression",
                                  description="sum of a set"))
    write(results, record(model="majority", test=0.5, baseline=True))
    write(results, record(dataset="sums", model="majority", test=2.0, metric="mse",
                          higher=False, task="regression", baseline=True))
    write(results, record(model="mlp", status="failed", reason="diverged: loss nan"))
    write(results, record(model="deps", status="skipped", reason="needs pyoperon"))
    folder = write(results, record(model="only_parity", test=0.6)).parent
    (folder / "seed5.json").write_text('{"schema_version": 1, "su')
    (folder / "seed6.json").write_text("\x00not json")
    (folder / "seed7.json").write_text(json.dumps({"hello": "world"}))
    (folder / "seed8.json").write_text(json.dumps(record(seed=8) | {"status": "maybe"}))


def test_tables_content_and_ranking(tmp_path):
    suite_records(tmp_path)
    paths, problems, rows = built(build_leaderboard(tmp_path, "t", plots=False))
    assert [p.name for p in paths] == ["leaderboard.md", "leaderboard.csv", "leaderboard.html"]
    assert len(problems) == 4
    md = paths[0].read_text()
    summary = md.split("## Summary")[1].split("\n## ")[0]
    assert summary.index("| gru |") < summary.index("| lstm |") < summary.index("| majority |")
    assert "| gru | **0.960** | **0.110** | 1.00 (2) |" in summary
    assert "| only_parity | 0.600 | . |" in summary  # never run on sums: "."
    assert "| mlp | failed | . |" in summary and "| deps | skipped | . |" in summary
    assert "parity acc ↑" in summary and "sums mse ↓" in summary
    parity = md.split("## parity")[1].split("## sums")[0]
    assert "xor of 16 random bits" in parity
    assert "Metric: test acc, higher is better. Baseline: majority." in parity
    assert "| 1 | gru |  | 0.960 ± 0.010 | 3 |" in parity
    assert "| 4 | majority (baseline) |" in parity
    assert "1 failed: seed 0: diverged: loss nan" in parity
    sums = md.split("## sums")[1]
    assert "Metric: test mse, lower is better." in sums
    assert sums.index("| 1 | gru") < sums.index("| 2 | lstm") < sums.index("| 3 | majority")
    assert md.count("seed5.json") == 1 and "Files left out" in md
    table = list(csv.DictReader(io.StringIO(paths[1].read_text())))
    keys = [(r["dataset"], r["model"], r["param_budget"]) for r in table]
    assert len(keys) == len(set(keys)) == 9  # tidy: one row per (dataset, model, budget)


def test_grid_marks_pairs_a_model_cannot_run(tmp_path):
    """The plan knows which pairs cannot run (no view the model accepts, another task type):
    those are "-"; a pair the suite did not ask for is "."."""
    write(tmp_path, record(dataset="parity", model="mlp"))
    write(tmp_path, record(dataset="graphs", model="graphnet"))
    write(tmp_path, record(dataset="formula", model="symreg", task="regression"))
    facts = PlanFacts(cannot_run={("graphs", "mlp"), ("parity", "graphnet"),
                                  ("formula", "graphnet"), ("parity", "symreg"),
                                  ("graphs", "symreg")})
    md = built(build_leaderboard(tmp_path, "t", plots=False, html=False,
                                 facts=facts))[0][0].read_text()
    grid = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:-1]
            for line in md.split("## Summary")[1].split("\n## ")[0].splitlines()
            if line.startswith("| ") and not line.startswith("| model")}
    # columns: formula, graphs, parity
    assert grid["mlp"] == [".", "-", "**0.900**"]
    assert grid["graphnet"] == ["-", "**0.900**", "-"]
    assert grid["symreg"] == ["**0.900**", "-", "-"]


def test_records_of_another_configuration_are_left_out(tmp_path):
    """A row never mixes configurations: only records whose config hash is the plan's
    current one join the tables (an interrupted rerun with new parameters, say)."""
    for seed, h in enumerate(["a" * 16, "b" * 16, "a" * 16]):
        write(tmp_path, record(model="mlp", seed=seed, test=0.5 + seed / 10) | {"config_hash": h})
    current = {("parity", "mlp", s): "a" * 16 for s in range(3)}
    board = build_leaderboard(tmp_path, "t", plots=False, html=False,
                              facts=PlanFacts(current=current))
    assert board.stale == 1 and [r.test for r in board.rows] == [[0.5, 0.7]]


# -- significance -----------------------------------------------------------------------
def test_clearly_separated_seeds_are_a_win():
    v = significance([0.90, 0.91, 0.92], [0.80, 0.81, 0.82])
    assert v.outcome == 1 and v.p < 0.01 and "Welch" in v.test
    assert significance([0.80, 0.81, 0.82], [0.90, 0.91, 0.92]).outcome == -1


def test_overlapping_noisy_seeds_are_a_tie():
    v = significance([0.90, 0.70, 0.85], [0.80, 0.88, 0.72])
    assert v.outcome == 0 and v.p >= 0.05 and "Welch" in v.test


def test_one_seed_is_a_tie_however_large_the_gap():
    v = significance([0.99], [0.10])
    assert v.outcome == 0 and v.p is None and "needs 2" in v.test
    assert significance([0.99, 0.98], [0.1]).outcome == 0


def test_lower_is_better_direction():
    low, high = [0.10, 0.11, 0.12], [0.50, 0.52, 0.48]
    assert significance(low, high, higher_is_better=False).outcome == 1
    assert significance(high, low, higher_is_better=False).outcome == -1
    assert significance(low, high, higher_is_better=True).outcome == -1


def test_noiseless_seeds():
    assert significance([1.0, 1.0], [1.0, 1.0]).outcome == 0
    assert significance([1.0, 1.0], [0.5, 0.5]).outcome == 1


def test_alpha_decides():
    a, b = [0.90, 0.93, 0.91], [0.88, 0.90, 0.89]
    p = significance(a, b).p
    assert significance(a, b, alpha=p * 1.01).outcome == 1
    assert significance(a, b, alpha=p * 0.99).outcome == 0


def test_compare_matrix_and_command(tmp_path, capsys):
    suite_records(tmp_path)
    rows = aggregate(load_records(tmp_path / "runs", "t")[0])
    cmp = compare(rows, ["gru", "lstm", "majority"])
    assert cmp.record("gru", "lstm") == (2, 0, 0)   # both datasets, mse direction respected
    assert cmp.record("lstm", "gru") == (0, 0, 2)
    assert cmp.record("gru", "majority") == (0, 2, 0)  # one baseline seed: ties
    assert compare(rows, ["gru", "lstm"], datasets="su*").datasets == [("sums", "1")]
    assert compare(rows, ["*"]).models[:2] == ["deps", "gru"]
    with pytest.raises(UserError, match="did you mean gru"):
        compare(rows, ["gru", "gruu"])
    with pytest.raises(UserError, match="no dataset matches"):
        compare(rows, ["gru", "lstm"], datasets="dyck*")

    from rich.console import Console

    from benchmarks.report.compare import print_comparison

    buf = io.StringIO()
    print_comparison(compare(rows, ["gru", "lstm"], alpha=0.01), 0.01, Console(file=buf, width=200))
    out = buf.getvalue()
    assert "Welch's t-test" in out and "gru better" in out and "2/0/0" in out
    assert "0.960 ± 0.010 (3)" in out


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
    for text in ("0.960 ± 0.010", "1 failed: seed 0: diverged: loss nan", "xor of 16 random bits",
                 "Metric: test mse, lower is better."):
        assert text in md and text in page
    assert page.count("<table") == 3  # summary grid and one table per dataset
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


def test_learning_curve_holds_a_stopped_seed_at_its_last_value():
    epochs, m, s = mean_curve([[{"val/acc": 0.5}, {"val/acc": 0.7}],
                               [{"val/acc": 0.6}, {"val/acc": 0.8}, {"val/acc": 0.9}]], "val/acc")
    assert epochs == [1, 2, 3]
    assert m == pytest.approx([0.55, 0.75, 0.8])
    assert mean_curve([[{"train/loss": 1.0}]], "val/acc") == ([], [], [])
