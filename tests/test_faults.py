"""Reliability, round two: each defect an adversarial user found, as a test that failed
before its fix (issue "no silent loss, no bogus ok, no hang"). Items 7 (claims) and 11
(Markdown and CSV injection) live in test_claims.py and test_escaping.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import make_record, write

from benchmarks import registry
from benchmarks.cli import main
from benchmarks.errors import UserError
from benchmarks.report.build import build_leaderboard
from benchmarks.run.files import record_path
from benchmarks.run.records import RecordError, parse_record, read_record
from benchmarks.run.suite import load_suite, parse_suite

TINY = '{ n = 8, n_train = 64, n_val = 16, n_test = 16 }'
PLUGIN = '''
import sys, time
import torch
from torch import nn
from benchmarks import register_model

class Net(nn.Module):
    def __init__(self, d, k, how):
        super().__init__()
        self.lin, self.how = nn.Linear(d, k), how
    def forward(self, x):
        if self.how == "sleep":
            time.sleep(1000)
        if self.how == "exit":
            sys.exit(3)
        if self.how == "memory":
            raise MemoryError()
        out = self.lin(x.flatten(1))
        return out * float("nan") if self.how == "nan_in_eval" and not self.training else out

def make(how):
    def factory(spec) -> nn.Module:
        """A faulty model (test only)."""
        return Net(spec.input_shape[0], spec.num_outputs, how)
    return factory

for how in ("sleep", "exit", "memory", "nan_in_eval"):
    register_model(f"faulty_{how}", modalities=("vector",))(make(how))
'''


@pytest.fixture
def plugin(tmp_path):
    path = tmp_path / "faulty.py"
    path.write_text(PLUGIN)
    yield str(path)
    for how in ("sleep", "exit", "memory", "nan_in_eval"):
        registry.unregister("model", f"faulty_{how}")


def suite_file(tmp_path: Path, models: list[str], budget: str = "max_epochs = 2",
               name: str = "f", seeds: str = "[0]") -> Path:
    body = [f"seeds = {seeds}", "baseline = false", "[budget]", budget,
            "[[datasets]]", 'name = "parity"', f"params = {TINY}"]
    for m in models:
        body += ["[[models]]", f'name = "{m}"']
    path = tmp_path / f"{name}.toml"
    path.write_text("\n".join(body) + "\n")
    return path


def one_line_error(capsys, *fragments: str) -> None:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("mlwm: error: "), err
    for f in fragments:
        assert f in err, err


# -- 1. a cell's identity on disk is injective ------------------------------------------
@pytest.mark.parametrize("ids", [("p/x", "p_x"), ("m x", "m_x"), ("", ".."), ("Parity", "parity"),
                                 ("a" * 101, "b")])
def test_ids_that_would_share_a_path_are_refused_at_parse_time(ids):
    data = {"datasets": [{"name": "parity", "id": i} for i in ids], "models": [{"name": "mlp"}]}
    with pytest.raises(UserError, match="id"):
        parse_suite(data, "s")


def test_valid_ids_map_to_distinct_paths():
    ids = ["p_x", "p-x", "p.x", "p@x", "p=x", "p+x", "px"]
    paths = {record_path("r", "s", i, "m", 0) for i in ids}
    assert len(paths) == len(ids)
    with pytest.raises(ValueError):
        record_path("r", "s", "p/x", "m", 0)


# -- 2. a row never mixes configurations; a suite's name is not its identity --------------
def test_a_row_keeps_only_records_of_the_current_configuration(tmp_path, capsys):
    results = tmp_path / "r"
    two = suite_file(tmp_path, ["mlp"], seeds="[0, 1]")
    assert main(["benchmark", "--suite", str(two), "--results", str(results)]) == 0
    # the parameters change and the rerun is interrupted after seed 0
    changed = two.read_text().replace("n_train = 64", "n_train = 48")
    two.write_text(changed.replace("seeds = [0, 1]", "seeds = [0]"))
    assert main(["benchmark", "--suite", str(two), "--results", str(results)]) == 0
    two.write_text(changed)  # the suite as it now stands: two seeds at n_train = 48
    capsys.readouterr()
    assert main(["leaderboard", "--suite", str(two), "--results", str(results)]) == 0
    assert "left out 1 records of other configurations" in capsys.readouterr().err
    row = (results / "suites/f/leaderboard.csv").read_text().splitlines()
    mlp = next(line for line in row if ",mlp," in line)
    assert ",1,0," in mlp or ",1,\"0\"," in mlp or ",1,0" in mlp  # one seed (0), not two


def test_a_suite_file_named_like_a_built_in_needs_an_explicit_name(tmp_path, capsys):
    path = suite_file(tmp_path, ["mlp"], name="default")
    with pytest.raises(UserError, match="--suite-name"):
        load_suite(str(path))
    assert load_suite(str(path), "mine").name == "mine"
    assert main(["benchmark", "--suite", str(path), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "built-in suite 'default'")


# -- 3. non-finite outputs are a failure, never a bogus ok --------------------------------
def test_nan_outputs_at_evaluation_fail_the_cell(tmp_path, plugin):
    suite = suite_file(tmp_path, ["faulty_nan_in_eval", "mlp"])
    assert main(["--plugin", plugin, "benchmark", "--suite", str(suite),
                 "--results", str(tmp_path / "r")]) == 0
    rec = read_record(tmp_path / "r/runs/f/parity/faulty_nan_in_eval/seed0.json")
    assert rec.status == "failed" and "non-finite model outputs" in rec.reason
    assert read_record(tmp_path / "r/runs/f/parity/mlp/seed0.json").status == "ok"


@pytest.mark.parametrize("budget, fragment", [
    ("lr = inf", "lr must be a finite number > 0"), ("lr = nan", "lr must be a finite"),
    ("weight_decay = -1.0", "weight_decay must be"), ('precision = "bogus"', "precision must be"),
    ("max_time_s = -1.0", "max_time_s must be"), ("patience = -2", "patience must be"),
    ("min_epochs = 99", "min_epochs must be"), ('stop_on = "loss"', "stop_on must be"),
])
def test_every_budget_field_is_checked_at_parse_time(tmp_path, capsys, budget, fragment):
    suite = suite_file(tmp_path, ["mlp"], budget=f"max_epochs = 2\n{budget}")
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "r" / "runs").exists()  # nothing ran


# -- 4. cached data is verified on load ----------------------------------------------------
def test_a_tampered_cache_file_is_regenerated_not_trusted(tmp_path, monkeypatch):
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "cache"))
    dm = registry.create_dataset("parity", n=8, n_train=64, n_val=16, n_test=16)
    dm.setup()
    good = dm.content_hash
    blob = torch.load(dm.cache_path, weights_only=True)
    blob["raw"]["test"]["y"] = 1 - blob["raw"]["test"]["y"]  # flipped labels, old hash kept
    torch.save(blob, dm.cache_path)
    again = registry.create_dataset("parity", n=8, n_train=64, n_val=16, n_test=16)
    again.setup()
    assert again.content_hash == good and torch.equal(again.target("test"), dm.target("test"))
    torch.save({"raw": {"train": {"bits": torch.zeros(2, 8)}}, "content_hash": "x"},
               dm.cache_path)  # a file of another structure: no KeyError, regenerated
    third = registry.create_dataset("parity", n=8, n_train=64, n_val=16, n_test=16)
    third.setup()
    assert third.content_hash == good


def test_changed_generating_code_never_reuses_the_cache(tmp_path, monkeypatch):
    from benchmarks import data

    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "cache"))
    dm = registry.create_dataset("parity", n=8, n_train=64, n_val=16, n_test=16)
    before = dm.cache_path
    data.code_fingerprint.cache_clear()
    monkeypatch.setattr(data, "code_fingerprint", lambda cls: "edited0000")
    assert dm.cache_path != before  # the code's fingerprint is in the key


# -- 5. a stuck step is stopped; SIGTERM stops promptly -------------------------------------
def test_a_step_that_never_ends_is_stopped_at_the_hard_cap(tmp_path, plugin, monkeypatch):
    monkeypatch.setenv("MLWM_HARD_CAP_GRACE_S", "2")
    suite = suite_file(tmp_path, ["faulty_sleep", "mlp"], budget="max_epochs = 2\nmax_time_s = 1.0")
    t0 = time.perf_counter()
    assert main(["--plugin", plugin, "benchmark", "--suite", str(suite),
                 "--results", str(tmp_path / "r")]) == 0
    assert time.perf_counter() - t0 < 60
    rec = read_record(tmp_path / "r/runs/f/parity/faulty_sleep/seed0.json")
    assert rec.status == "failed" and rec.reason.startswith("time_cap") and rec.stopped_by == "time_cap"
    assert read_record(tmp_path / "r/runs/f/parity/mlp/seed0.json").status == "ok"  # went on


@pytest.mark.parametrize("workers", ["1", "2"])
def test_sigterm_stops_a_run_promptly_and_frees_its_claims(tmp_path, plugin, workers):
    suite = suite_file(tmp_path, ["faulty_sleep"], seeds="[0, 1]")
    results = tmp_path / "r"
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.cli", "--plugin", plugin,
                             "benchmark", "--suite", str(suite), "--results", str(results),
                             "--workers", workers], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while not list(results.rglob("*.lock")) and time.time() < deadline:
        time.sleep(0.2)  # wait until a cell is claimed (and sleeping in its forward)
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    t0 = time.time()
    proc.wait(timeout=30)
    assert time.time() - t0 < 10 and proc.returncode == 130
    time.sleep(0.5)
    from benchmarks.run.claims import try_claim

    for lock in results.rglob("*.lock"):  # a killed worker's lock file may stay: unheld
        claim = try_claim(lock.with_name(lock.name.removesuffix(".lock")))
        assert claim is not None, f"{lock} is still held"
        claim.release()
    assert not list(results.rglob("seed*.json"))  # nothing recorded as if it had finished


# -- 6. one bad record blocks nothing --------------------------------------------------------
BAD = {
    "NaN metric": lambda r: r["metrics"]["test"].update(acc=float("nan")),
    "Infinity": lambda r: r["metrics"]["test"].update(acc=float("inf")),
    "a string metric": lambda r: r["metrics"]["test"].update(acc="0.9"),
    "a list metric": lambda r: r["metrics"]["test"].update(acc=[0.9]),
    "true for a number": lambda r: r["metrics"]["test"].update(acc=True),
    "time null": lambda r: r.update(time=None),
    "environment null": lambda r: r.update(environment=None),
    "epochs a string": lambda r: r.update(epochs="3"),
    "param_budget a string": lambda r: r["model"].update(param_budget="10k"),
    "hparams a list": lambda r: r["model"].update(hparams=[1, 2]),
    "no budget": lambda r: r.pop("budget"),
}


@pytest.mark.parametrize("kind", list(BAD))
def test_a_bad_record_is_one_line_and_left_out(tmp_path, kind):
    rec = make_record()
    BAD[kind](rec)
    text = json.dumps(rec).replace("NaN", "NaN").replace("Infinity", "1e999")
    with pytest.raises(RecordError) as err:
        parse_record(text)
    assert "\n" not in str(err.value)
    write(tmp_path, make_record(model="good", test=0.8))
    path = record_path(tmp_path, "t", "parity", "mlp", 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    board = build_leaderboard(tmp_path, "t", plots=False, html=False)
    assert [p for p, _ in board.problems] == [path] and [r.model_id for r in board.rows] == ["good"]


def test_a_bad_record_is_retrained_by_the_next_benchmark(tmp_path, capsys):
    suite = suite_file(tmp_path, ["mlp"])
    results = tmp_path / "r"
    assert main(["benchmark", "--suite", str(suite), "--results", str(results)]) == 0
    path = results / "runs/f/parity/mlp/seed0.json"
    path.write_text(path.read_text().replace('"epochs": 2', '"epochs": "2"'))
    capsys.readouterr()
    assert main(["benchmark", "--suite", str(suite), "--results", str(results)]) == 0
    assert "ran 1 cells" in capsys.readouterr().out and read_record(path).epochs == 2


def test_rerun_of_a_record_without_budget_is_one_line(tmp_path, capsys):
    rec = make_record()
    rec.pop("budget")
    path = tmp_path / "seed0.json"
    path.write_text(json.dumps(rec))
    assert main(["rerun", str(path)]) == 2
    one_line_error(capsys, "is not a run record", "budget")


# -- 8. full disks ---------------------------------------------------------------------------
def test_a_failed_cache_write_leaves_no_temp_file_and_the_cell_runs(tmp_path, monkeypatch):
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "cache"))
    real = torch.save

    def full_disk(obj, f, *a, **k):
        real(obj, f, *a, **k)
        raise RuntimeError("[enforce fail at inline_container.cc] unexpected pos 1472 vs 1302")

    monkeypatch.setattr(torch, "save", full_disk)
    suite = suite_file(tmp_path, ["mlp"])
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 0
    assert read_record(tmp_path / "r/runs/f/parity/mlp/seed0.json").status == "ok"
    assert not [p for p in (tmp_path / "cache").rglob("*") if ".tmp" in p.name]


def test_a_results_disk_filling_mid_suite_is_one_line_and_keeps_finished_cells(
        tmp_path, monkeypatch, capsys):
    from benchmarks.run import records

    suite = suite_file(tmp_path, ["mlp", "linear"])
    real, calls = records.RunRecord.write, []

    def write_then_full(self, path):
        calls.append(path)
        if len(calls) > 1:
            raise OSError(28, "No space left on device")
        real(self, path)

    monkeypatch.setattr(records.RunRecord, "write", write_then_full)
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "No space left on device", "resume")
    assert read_record(calls[0]).status == "ok"  # the cell finished before is saved


# -- 9 and 10. user input that used to fail every cell, or end in a traceback -------------------
@pytest.mark.parametrize("text, fragment", [
    ("seeds = [4294967296]", "seeds must be"),
    ("seeds = [0, 0]", "seeds repeat"),
    ('[[datasets]]\nname = "parity"\nid = "' + "x" * 150 + '"', "not a valid id"),
])
def test_bad_suite_values_are_exit_2_before_any_cell(tmp_path, capsys, text, fragment):
    path = tmp_path / "bad.toml"
    path.write_text(text + '\n[[models]]\nname = "mlp"\n' +
                    ('[[datasets]]\nname = "parity"\n' if "datasets" not in text else ""))
    assert main(["benchmark", "--suite", str(path), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, fragment)


def test_a_suite_file_that_is_not_utf8_is_one_line(tmp_path, capsys):
    path = tmp_path / "latin.toml"
    path.write_bytes('description = "caf\xe9"\n'.encode("latin-1"))
    assert main(["benchmark", "--suite", str(path), "--results", str(tmp_path / "r")]) == 2
    one_line_error(capsys, "not UTF-8")


@pytest.mark.parametrize("argv, fragment", [
    (["--accelerator", "gpu"], "no GPU"),
    (["--devices", "999"], "--devices 999"),
])
def test_impossible_hardware_is_one_line_before_any_cell(tmp_path, capsys, argv, fragment):
    if argv[0] == "--accelerator" and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    assert main(["benchmark", "--suite", "smoke", "--results", str(tmp_path / "r")] + argv) == 2
    one_line_error(capsys, fragment)
    assert not (tmp_path / "r" / "runs").exists()


# -- 12. messages that misled ------------------------------------------------------------------
def test_a_model_calling_sys_exit_fails_its_cell_and_the_suite_goes_on(tmp_path, plugin):
    suite = suite_file(tmp_path, ["faulty_exit", "faulty_memory", "mlp"])
    assert main(["--plugin", plugin, "benchmark", "--suite", str(suite),
                 "--results", str(tmp_path / "r")]) == 0
    runs = tmp_path / "r/runs/f/parity"
    exited = read_record(runs / "faulty_exit/seed0.json")
    assert exited.status == "failed" and "sys.exit(3)" in exited.reason
    memory = read_record(runs / "faulty_memory/seed0.json")
    assert memory.status == "failed" and "out of memory" in memory.reason
    assert read_record(runs / "mlp/seed0.json").status == "ok"


def test_two_force_runners_at_once_never_train_a_cell_twice(tmp_path):
    suite = suite_file(tmp_path, ["mlp", "linear"], seeds="[0, 1, 2]")
    results = tmp_path / "r"
    assert main(["benchmark", "--suite", str(suite), "--results", str(results)]) == 0
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "benchmarks.cli", "benchmark", "--suite", str(suite),
           "--results", str(results), "--force"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=env) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    ran = [int(out.split("ran ")[1].split(" cells")[0]) for out in outs]
    assert sum(ran) == 6, outs  # every cell once, between the two runners
