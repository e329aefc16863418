"""The leaderboard builder on fixture records: ranking by the metric's direction, mean,
unbiased std and 95% interval over seeds, versions and budgets never mixed, failed and
skipped cells shown with their reason, rows that did not converge or whose seeds split
flagged, each row's input named, coverage of the plan, corrupt or foreign files reported
and left out."""

from __future__ import annotations

import csv
import io
import json
import statistics

import pytest
import scipy.stats
from conftest import built, make_record, write
from test_report import scored

from benchmarks.report.build import PlanFacts, build_leaderboard
from benchmarks.report.rows import aggregate, load_records


def test_ranking_mean_std_and_interval(tmp_path):
    for seed, (a, b) in enumerate([(0.90, 0.80), (0.94, 0.82), (0.92, 0.84)]):
        scored(tmp_path, "good", seed, a, n=500)
        scored(tmp_path, "worse", seed, b, n=500)
        scored(tmp_path, "majority", seed, 0.5, n=500, baseline=True)
    paths, problems, rows = built(build_leaderboard(tmp_path, "t"))
    assert not problems
    by = {r.model_id: r for r in rows}
    assert abs(statistics.fmean(by["good"].test) - 0.92) < 1e-12
    assert abs(statistics.stdev(by["good"].test) - 0.02) < 1e-12
    half = scipy.stats.t.ppf(0.975, 2) * 0.02 / 3 ** 0.5  # the 95% t-interval: 0.0497
    text = paths[0].read_text()
    assert f"| 1 | good |  | vector | 0.920 ± {half:.3f} | 3 | best | better (p=" in text
    assert "| 3 | majority (baseline) |" in text
    assert text.index("| 1 | good") < text.index("| 2 | worse")
    assert "| good | **0.920** |" in text  # full grid: best and better than the baseline
    table = {r["model"]: r for r in csv.DictReader(io.StringIO(paths[1].read_text()))}
    assert float(table["good"]["test_ci95"]) == pytest.approx(half, abs=1e-6)
    assert float(table["good"]["test_std"]) == pytest.approx(0.02, abs=1e-6)


def test_lower_is_better_metrics_rank_ascending(tmp_path):
    write(tmp_path, make_record(model="a", test=0.3, metric="mse", higher=False))
    write(tmp_path, make_record(model="b", test=0.1, metric="mse", higher=False))
    board = build_leaderboard(tmp_path, "t", plots=False, html=False)
    text = board.paths[0].read_text()
    assert text.index("| 1 | b |") < text.index("| 2 | a |")
    ranks = board.analysis.aggregates[0].friedman.average_ranks
    assert ranks == {"a": 2.0, "b": 1.0}


def test_versions_and_budgets_are_never_mixed(tmp_path):
    write(tmp_path, make_record(model="m", test=0.9, version="1"))
    write(tmp_path, make_record(model="m", test=0.1, version="2", seed=1))
    write(tmp_path, make_record(model="m", test=0.5, budget=10_000))
    rows = aggregate(load_records(tmp_path / "runs")[0])
    assert sorted((r.dataset_version, r.model_id, tuple(r.test)) for r in rows) == [
        ("1", "m", (0.9,)), ("1", "m@10k", (0.5,)), ("2", "m", (0.1,))]


def test_failed_and_skipped_cells_show_their_reason_not_zeros(tmp_path):
    write(tmp_path, make_record(model="ok", test=0.7))
    write(tmp_path, make_record(model="boom", status="failed", reason="diverged: loss nan at epoch 3"))
    write(tmp_path, make_record(model="nodep", status="skipped", reason="needs torch_geometric"))
    paths, _, rows = built(build_leaderboard(tmp_path, "t"))
    text = paths[0].read_text()
    assert "1 failed: seed 0: diverged: loss nan at epoch 3" in text
    assert "skipped: needs torch_geometric" in text
    csv_rows = {r["model"]: r for r in csv.DictReader(io.StringIO(paths[1].read_text()))}
    assert csv_rows["boom"]["test_mean"] == "" and csv_rows["boom"]["n_failed"] == "1"
    assert csv_rows["ok"]["test_mean"] == "0.700000"


def test_seeds_stopped_by_the_time_cap_are_flagged(tmp_path):
    """A wall-clock cap makes a metric depend on the machine's speed: the row says so."""
    for seed, why in enumerate(["time_cap", "early_stopping", "max_epochs"]):
        write(tmp_path, {**make_record(model="capped", seed=seed), "stopped_by": why})
    write(tmp_path, {**make_record(model="free"), "stopped_by": "early_stopping"})
    paths, _, _ = built(build_leaderboard(tmp_path, "t"))
    assert "ok; 1 of 3 seeds stopped by the time cap" in paths[0].read_text()
    csv_rows = {r["model"]: r for r in csv.DictReader(io.StringIO(paths[1].read_text()))}
    assert csv_rows["free"]["status"] == "ok" and "time cap" in csv_rows["capped"]["status"]


def test_corrupt_truncated_and_foreign_files_are_reported_and_left_out(tmp_path):
    good = write(tmp_path, make_record(model="m", test=0.8))
    folder = good.parent
    (folder / "seed7.json").write_text(json.dumps(make_record(seed=7))[:40])  # truncated
    (folder / "seed8.json").write_text("\x00\x01garbage")
    (folder / "seed9.json").write_text(json.dumps({"hello": "world"}))  # foreign JSON
    (folder / "seed10.json").write_text(json.dumps([1, 2, 3]))
    paths, problems, rows = built(build_leaderboard(tmp_path, "t"))
    assert len(problems) == 4
    assert all(isinstance(why, str) and "\n" not in why for _, why in problems)
    assert [r.test for r in rows] == [[0.8]]
    assert "Files left out" in paths[0].read_text()


def test_ood_column_appears_only_where_a_dataset_has_it(tmp_path):
    write(tmp_path, make_record(dataset="dyck", model="gru", test=0.9, ood=0.6))
    write(tmp_path, make_record(dataset="parity", model="gru", test=0.9))
    text = built(build_leaderboard(tmp_path, "t"))[0][0].read_text()
    dyck, parity = text.split("## dyck")[1].split("## parity")
    assert "ood acc" in dyck and "0.600" in dyck and "ood acc" not in parity


def test_rows_not_converged_are_flagged(tmp_path):
    """`not converged`: most seeds ran to the epoch cap (stopped by max_epochs) with
    their best epoch within max(2, 10%) of it: 30 epochs, best at 27 of 30 (0-based 26)
    is in; 26 of 30 is not; an early stop never is."""
    def rec(model, seed, best, stopped="max_epochs", cap=30):
        r = make_record(model=model, seed=seed)
        r["budget"]["max_epochs"] = cap
        return {**r, "epochs": cap if stopped == "max_epochs" else best + 9,
                "best_epoch": best, "stopped_by": stopped}

    for seed, best in enumerate([29, 26, 10]):  # 2 of 3 near the cap: most
        write(tmp_path, rec("rising", seed, best))
    for seed, best in enumerate([29, 25, 10]):  # 1 of 3 near (epoch 26 of 30 is 4 away)
        write(tmp_path, rec("settled", seed, best))
    for seed in range(3):  # best at the cap, but stopped early: flat, not cut off
        write(tmp_path, rec("stopped", seed, 29, "early_stopping"))
    for seed, best in enumerate([98, 95]):  # cap 100: 10% is 10 epochs
        write(tmp_path, rec("long", seed, best, cap=100))
    paths, _, rows = built(build_leaderboard(tmp_path, "t", plots=False, html=False))
    text = paths[0].read_text()
    assert ("not converged: 2 of 3 seeds ran to the 30-epoch cap with their best epoch "
            "within 3 epochs of it") in text
    assert "not converged: 2 of 2 seeds ran to the 100-epoch cap" in text
    status = {r["model"]: r for r in csv.DictReader(io.StringIO(paths[1].read_text()))}
    assert status["rising"]["not_converged"] == "True" and status["long"]["not_converged"] == "True"
    assert status["settled"]["status"] == "ok" and status["stopped"]["status"] == "ok"


def test_seeds_that_split_say_solved_in_k_of_n(tmp_path):
    """Parity-like tasks: seeds end near 1 or near chance; the row says how many solved
    it beside a mean that describes no seed."""
    for seed, value in enumerate([1.0, 0.99, 0.51]):
        write(tmp_path, make_record(model="split", seed=seed, test=value))
    for seed, value in enumerate([1.0, 0.995, 0.99]):
        write(tmp_path, make_record(model="all", seed=seed, test=value))
    text = built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0][0].read_text()
    half = scipy.stats.t.ppf(0.975, 2) * statistics.stdev([1.0, 0.99, 0.51]) / 3 ** 0.5
    assert f"0.833 ± {half:.3f}; solved in 2 of 3 seeds |" in text
    assert "solved in 3 of 3" not in text  # only where seeds split


def test_each_row_names_the_input_it_read(tmp_path):
    """MLP against GRU at equal input: the row says the view and the encoding."""
    one_hot = make_record(model="mlp", test=0.8)
    one_hot["dataset"]["encoding"] = "onehot"
    write(tmp_path, one_hot)
    seq = make_record(model="gru", test=0.9)
    seq["dataset"]["view"] = "sequence"
    write(tmp_path, seq)
    paths = built(build_leaderboard(tmp_path, "t", plots=False, html=False))[0]
    text = paths[0].read_text()
    assert "| mlp |  | vector (onehot) |" in text and "| gru |  | sequence |" in text
    table = {r["model"]: r for r in csv.DictReader(io.StringIO(paths[1].read_text()))}
    assert (table["mlp"]["view"], table["mlp"]["encoding"]) == ("vector", "onehot")


def test_coverage_line_counts_the_compatible_pairs_that_ran(tmp_path):
    write(tmp_path, make_record(model="mlp"))
    write(tmp_path, make_record(model="gru"))
    write(tmp_path, make_record(model="lstm", status="failed", reason="diverged"))
    facts = PlanFacts(expected={"parity": {"mlp", "gru", "lstm", "cnn1d"}})
    text = built(build_leaderboard(tmp_path, "t", plots=False, html=False,
                                   facts=facts))[0][0].read_text()
    assert ("Coverage: 2 of 4 compatible pairs ran (failed or skipped: lstm; no record: "
            "cnn1d).") in text
