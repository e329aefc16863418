"""The leaderboard builder on fixture records: ranking by the metric's direction, mean and
unbiased std over seeds, versions and budgets never mixed, failed and skipped cells shown
with their reason, corrupt or foreign files reported and left out."""

from __future__ import annotations

import csv
import io
import json
import statistics

from conftest import built, make_record, write

from benchmarks.report.build import build_leaderboard
from benchmarks.report.rows import aggregate, average_ranks, load_records


def test_ranking_mean_and_unbiased_std(tmp_path):
    for seed, (a, b) in enumerate([(0.90, 0.80), (0.94, 0.82), (0.92, 0.84)]):
        write(tmp_path, make_record(model="good", seed=seed, test=a))
        write(tmp_path, make_record(model="worse", seed=seed, test=b))
    write(tmp_path, make_record(model="majority", test=0.5, baseline=True))
    paths, problems, rows = built(build_leaderboard(tmp_path, "t"))
    assert not problems
    by = {r.model_id: r for r in rows}
    assert abs(statistics.fmean(by["good"].test) - 0.92) < 1e-12
    assert abs(statistics.stdev(by["good"].test) - 0.02) < 1e-12
    text = paths[0].read_text()
    assert "| 1 | good |  | 0.920 ± 0.020 | 3 |" in text
    assert "| 3 | majority (baseline) |" in text
    assert text.index("| 1 | good") < text.index("| 2 | worse")
    assert "| good | **0.920** |" in text  # summary grid, best in bold


def test_lower_is_better_metrics_rank_ascending(tmp_path):
    write(tmp_path, make_record(model="a", test=0.3, metric="mse", higher=False))
    write(tmp_path, make_record(model="b", test=0.1, metric="mse", higher=False))
    ranks = average_ranks(aggregate(load_records(tmp_path / "runs")[0]))
    assert ranks["b"][0] == 1 and ranks["a"][0] == 2


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
