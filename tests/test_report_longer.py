"""The section that sets a suite's not-converged rows beside the same cells trained
longer (a suite's `longer`): which rows it pairs, the paired test of each longer run
against the dataset's best at the suite's budget, the verdicts that change, the CSV
columns; and no section where the longer suite has no records."""

from __future__ import annotations

import csv

from test_report import binary_target, record, right_on, with_predictions

from benchmarks.report.build import PlanFacts, build_leaderboard


def _cell(results, suite, model, seed, acc, epochs, best_epoch, cap, stopped):
    target = binary_target("parity", seed, n=1000)
    rec = record(model=model, seed=seed, test=acc, suite=suite)
    rec.update(epochs=epochs, best_epoch=best_epoch, stopped_by=stopped)
    rec["budget"]["max_epochs"] = cap
    with_predictions(results, rec, {"test": (right_on(target, acc, model, seed), target)})


def _suites(results, with_longer=True):
    for seed in range(3):
        _cell(results, "t", "gru", seed, 0.90, 20, 13, 40, "early_stopping")   # the best
        _cell(results, "t", "mlp", seed, 0.70 + seed / 100, 40, 39, 40, "max_epochs")
        _cell(results, "t", "slow", seed, 0.60 + seed / 100, 40, 38, 40, "max_epochs")
        if with_longer:  # mlp catches up and stops early; slow is still at the cap
            _cell(results, "t-long", "mlp", seed, 0.90, 70, 63, 120, "early_stopping")
            _cell(results, "t-long", "slow", seed, 0.62 + seed / 100, 120, 119, 120,
                  "max_epochs")
            _cell(results, "t-long", "gru", seed, 0.95, 30, 23, 120, "early_stopping")


def test_not_converged_rows_sit_beside_their_longer_runs_with_a_paired_verdict(tmp_path):
    _suites(tmp_path)
    board = build_leaderboard(tmp_path, "t", facts=PlanFacts(longer="t-long"), html=True,
                              plots=False)
    section = board.analysis.longer
    assert section is not None and section.suite == "t-long"
    rows = {r.short.model_id: r for r in section.rows}
    assert sorted(rows) == ["mlp", "slow"]  # gru converged at 40: not in the section
    mlp, slow = rows["mlp"], rows["slow"]
    assert mlp.best == "gru" and mlp.vs_best_short.verdict == "loss"
    assert mlp.vs_best_long.verdict == "tie" and mlp.changed  # the budget, not the model
    assert mlp.long.not_converged() is None
    assert slow.vs_best_long.verdict == "loss" and not slow.changed
    assert slow.long.not_converged() is not None
    assert {t.family for t in (mlp.vs_best_long, slow.vs_best_long)} == {2}  # Holm over both
    md = (tmp_path / "suites/t/leaderboard.md").read_text()
    assert "## Not converged: the same rows trained longer" in md
    assert "Of 2 rows, 1 converged when trained longer" in md
    assert "changed for 1: parity · mlp (worse to tie)" in md
    assert "Not converged: the same rows trained longer" in \
        (tmp_path / "suites/t/leaderboard.html").read_text()
    table = {r["model"]: r for r in csv.DictReader(
        (tmp_path / "suites/t/leaderboard.csv").open())}
    assert table["mlp"]["longer_test_mean"] == "0.900000"
    assert table["mlp"]["longer_vs_best"] == "tie" and table["slow"]["longer_vs_best"] == "worse"
    assert table["gru"]["longer_test_mean"] == ""


def test_no_section_without_records_of_the_longer_suite(tmp_path):
    _suites(tmp_path, with_longer=False)
    board = build_leaderboard(tmp_path, "t", facts=PlanFacts(longer="t-long"), plots=False)
    assert board.analysis.longer is None
    assert "trained longer" not in (tmp_path / "suites/t/leaderboard.md").read_text()
