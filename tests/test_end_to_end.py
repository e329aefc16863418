"""End to end through the CLI: the smoke suite writes valid records and a leaderboard, a
second run resumes (skips finished cells), a cell is deterministic for a seed, bad input
is one line with exit code 2."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import jsonschema
import pytest

from benchmarks.cli import main
from benchmarks.run.records import SCHEMA_PATH, read_record, schema_text

SCHEMA = json.loads(SCHEMA_PATH.read_text())


def records_under(results: Path) -> list[Path]:
    return sorted((results / "runs").rglob("*.json"))


def test_smoke_suite_end_to_end(results_dir, capsys):
    assert main(["benchmark", "--suite", "smoke", "--results", str(results_dir)]) == 0
    paths = records_under(results_dir)
    assert len(paths) == 4  # 2 datasets x (mlp + constant baseline) x 1 seed
    for path in paths:
        record = json.loads(path.read_text())
        jsonschema.validate(record, SCHEMA)
        assert record["status"] == "ok", record.get("reason")
        assert record["dataset"]["content_hash"] and record["model"]["n_params"] > 0
        assert path == results_dir / "runs" / "smoke" / record["dataset"]["id"] / \
            record["model"]["id"] / f"seed{record['seed']}.json"
    mlp = read_record(results_dir / "runs/smoke/parity/mlp/seed0.json")
    assert mlp.epochs == 2 and len(mlp.history) == 2 and mlp.stopped_by == "max_epochs"
    assert read_record(results_dir / "runs/smoke/parity/constant/seed0.json").stopped_by is None
    assert mlp.environment.torch and mlp.environment.git_commit
    assert not list(results_dir.rglob("*.tmp")), "no temporary files are left behind"

    board = results_dir / "suites" / "smoke" / "leaderboard.md"
    text = board.read_text()
    assert "## parity" in text and "## descents" in text and "constant (baseline)" in text
    rows = list(csv.DictReader((board.parent / "leaderboard.csv").open()))
    assert {(r["dataset"], r["model"]) for r in rows} == {
        ("parity", "mlp"), ("parity", "constant"), ("descents", "mlp"), ("descents", "constant")}

    capsys.readouterr()
    assert main(["compare", "--models", "mlp,constant", "--suite", "smoke",
                 "--results", str(results_dir)]) == 0
    assert "mlp" in capsys.readouterr().out
    before = {p: p.stat().st_mtime_ns for p in paths}
    capsys.readouterr()
    assert main(["benchmark", "--suite", "smoke", "--results", str(results_dir)]) == 0
    assert "ran 0 cells" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in records_under(results_dir)} == before


def test_changed_configuration_is_rerun(results_dir, tmp_path, capsys):
    suite = tmp_path / "mini.toml"
    body = ('seeds = [0]\nbaseline = false\n[budget]\nmax_epochs = {e}\n'
            '[[datasets]]\nname = "parity"\nparams = {{ n = 8, n_train = 64, n_val = 16, n_test = 16 }}\n'
            '[[models]]\nname = "mlp"\nhparams = {{ hidden = 8 }}\n')
    suite.write_text(body.format(e=1))
    assert main(["benchmark", "--suite", str(suite), "--results", str(results_dir)]) == 0
    suite.write_text(body.format(e=2))
    capsys.readouterr()
    assert main(["benchmark", "--suite", str(suite), "--results", str(results_dir)]) == 0
    assert "ran 1 cells" in capsys.readouterr().out
    assert read_record(results_dir / "runs/mini/parity/mlp/seed0.json").epochs == 2


def _run_records(results: Path) -> dict[tuple[str, int], Path]:
    """The records `mlwm run` wrote, by (model folder, seed)."""
    return {(p.parent.name, int(p.stem[4:])): p for p in (results / "runs/run").rglob("*.json")}


def test_same_seed_gives_the_same_test_metric(results_dir):
    args = ["run", "--dataset", "descents", "--model", "mlp", "--param", "n=7",
            "--param", "n_train=400", "--param", "n_val=50", "--param", "n_test=100",
            "--max-epochs", "3", "--results", str(results_dir)]
    assert main(args + ["--seed", "0"]) == 0
    (path,) = _run_records(results_dir).values()
    first = read_record(path).metrics
    assert main(args + ["--seed", "0"]) == 0
    assert read_record(path).metrics == first and len(_run_records(results_dir)) == 1
    assert main(args + ["--seed", "1"]) == 0
    seed1 = next(p for (_, seed), p in _run_records(results_dir).items() if seed == 1)
    assert read_record(seed1).metrics != first


def test_runs_of_different_parameters_never_share_a_record(results_dir):
    base = ["run", "--dataset", "parity", "--model", "mlp", "--param", "n=8", "--param",
            "n_train=100", "--param", "n_val=20", "--param", "n_test=20", "--max-epochs", "1",
            "--results", str(results_dir)]
    for extra in ([], ["--hparam", "hidden=16"], ["--hparam", "hidden=32"], ["--lr", "0.01"],
                  ["--param", "data_seed=1"]):
        assert main(base + extra) == 0
    paths = list((results_dir / "runs/run").rglob("*.json"))
    assert len(paths) == 5 == len(set(paths))


def test_run_prints_the_test_metric(results_dir, capsys):
    assert main(["run", "--dataset", "parity", "--model", "mlp", "--seed", "0",
                 "--param", "n=8", "--param", "n_train=100", "--param", "n_val=20",
                 "--param", "n_test=20", "--max-epochs", "2", "--results", str(results_dir)]) == 0
    assert "parity · mlp · seed 0: test acc = " in capsys.readouterr().out


def test_leaderboard_command_rebuilds_from_records(results_dir, capsys):
    main(["benchmark", "--suite", "smoke", "--results", str(results_dir)])
    board = results_dir / "suites" / "smoke" / "leaderboard.md"
    board.unlink()
    assert main(["leaderboard", "--suite", "smoke", "--results", str(results_dir)]) == 0
    assert board.is_file()


@pytest.mark.parametrize(("argv", "message"), [
    (["run", "--dataset", "parrity", "--model", "mlp"], "unknown dataset 'parrity'; did you mean parity"),
    (["run", "--dataset", "parity", "--model", "mpl"], "unknown model 'mpl'; did you mean mlp"),
    (["run", "--dataset", "parity", "--model", "mlp", "--param", "n=1"], "n=1 is out of range"),
    (["run", "--dataset", "parity", "--model", "mlp", "--hparam", "depth=x"], "'depth' must be int"),
    (["run", "--dataset", "parity", "--model", "mlp", "--param", "n"], "is not key=value"),
    (["benchmark", "--suite", "defualt"], "unknown suite 'defualt'; did you mean default"),
    (["leaderboard", "--suite", "smoke"], "no records of suite 'smoke'"),
    (["leaderboard", "--suite", "nothing-here"], "unknown suite 'nothing-here'"),
    (["--plugin", "/no/such/file.py", "list"], "plugin file /no/such/file.py does not exist"),
])
def test_bad_input_is_one_line_and_exit_code_2(argv, message, capsys, results_dir):
    if argv[0] in ("run", "benchmark", "leaderboard"):
        argv = argv + ["--results", str(results_dir)]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1 and err.startswith("mlwm: error: ")


def test_suite_file_errors_name_the_file_and_key(tmp_path, capsys, results_dir):
    cases = {
        "syntax.toml": ("seeds = [0\n", "TOML syntax error"),
        "key.toml": ('seeds = [0]\nepochs = 3\n', "unknown key 'epochs'"),
        "type.toml": ('seeds = [0]\n[budget]\nmax_epochs = "many"\n', "'max_epochs' must be an integer"),
        "empty.toml": ("seeds = [0]\n", "at least one [[datasets]]"),
    }
    for name, (body, message) in cases.items():
        path = tmp_path / name
        path.write_text(body)
        assert main(["benchmark", "--suite", str(path), "--results", str(results_dir)]) == 2
        err = capsys.readouterr().err
        assert message in err and str(path) in err, err


def test_dataset_budget_overrides_are_typed_like_the_suite_budget():
    from benchmarks.run.suite import parse_suite

    suite = parse_suite({"budget": {"max_time_s": 30.0},
                         "datasets": [{"name": "parity", "budget": {"max_time_s": 60, "lr": 1}}],
                         "models": [{"name": "mlp"}]}, "typed")
    assert suite.datasets[0].budget == {"max_time_s": 60.0, "lr": 1.0}
    assert all(isinstance(v, float) for v in suite.datasets[0].budget.values())


def test_the_committed_json_schema_is_generated_from_the_record_type():
    """One definition of a record: the schema file is RunRecord's, regenerated by
    `python -m benchmarks.run.records`."""
    assert SCHEMA_PATH.read_text() == schema_text()
