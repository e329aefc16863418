"""Faults a long suite must survive: SIGKILL and resume, Ctrl-C, two runners on one
folder, a diverging model, a missing optional dependency, an unwritable results folder;
and bad input that must stay one line (property-based for the suite parser and the
dataset parameters)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import metrics_by_cell
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from benchmarks import registry
from benchmarks.cli import main
from benchmarks.errors import UserError
from benchmarks.run.records import read_record
from benchmarks.run.suite import parse_suite

FAULTY_PLUGIN = '''
import torch
from torch import nn
from benchmarks import register_model

class Exploding(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.lin = nn.Linear(d, k)
    def forward(self, x):
        out = self.lin(x.flatten(1))
        return out * float("inf") if self.training else out

@register_model("exploding", modalities=("vector",))
def exploding(spec) -> nn.Module:
    """Diverges at once."""
    return Exploding(spec.input_shape[0], spec.num_outputs)

@register_model("needs_missing", modalities=("vector",), requires=("no_such_package_xyz",))
def needs_missing(spec) -> nn.Module:
    """Needs a package nobody has."""
    raise AssertionError("never built")
'''

SUITE = """
seeds = [0, 1, 2]
[budget]
max_epochs = {epochs}
patience = 0
batch_size = 32
[[datasets]]
name = "parity"
params = {{ n = 8, n_train = 128, n_val = 32, n_test = 64 }}
[[datasets]]
name = "descents"
params = {{ n = 7, n_train = 256, n_val = 64, n_test = 64 }}
[[models]]
name = "mlp"
hparams = {{ hidden = 16, depth = 2 }}
"""


def _default_sigint() -> None:
    """In the child: Ctrl-C as a terminal delivers it. A runner started in the background
    of a non-interactive shell (nohup, `&`, some CI) inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler; the tests send SIGINT on purpose."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def cli(results: Path, *args: str, **kw) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "benchmarks.cli", *args, "--results", str(results)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            preexec_fn=_default_sigint, **kw)


def wait_for_records(results: Path, count: int, proc: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        if len(list((results / "runs").rglob("seed*.json"))) >= count:
            return
        if proc.poll() is not None:
            pytest.fail(f"runner ended early: {proc.communicate()}")
        time.sleep(0.05)
    pytest.fail("no records appeared")


def no_debris(results: Path) -> None:
    assert not list(results.rglob("*.tmp")), "a temporary file was left behind"
    for path in (results / "runs").rglob("*.json"):
        json.loads(path.read_text())  # every record parses: none is half-written


@pytest.fixture
def suite_file(tmp_path: Path) -> Path:
    path = tmp_path / "faults.toml"
    path.write_text(SUITE.format(epochs=3))
    return path


def test_sigkill_then_resume_equals_an_uninterrupted_run(tmp_path, suite_file):
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    assert cli(clean, "benchmark", "--suite", str(suite_file)).wait() == 0
    proc = cli(killed, "benchmark", "--suite", str(suite_file))
    wait_for_records(killed, 3, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for path in (killed / "runs").rglob("*.json"):
        json.loads(path.read_text())  # whatever was killed, no record is half-written
    before = {p: p.read_bytes() for p in (killed / "runs").rglob("*.json")}
    assert 3 <= len(before) < 12
    assert cli(killed, "benchmark", "--suite", str(suite_file)).wait() == 0
    for path, content in before.items():
        assert path.read_bytes() == content, "a record finished before the kill was changed"
    assert not list(killed.rglob("*.lock")), "stale claims of the killed run are cleared"
    no_debris(killed)
    assert metrics_by_cell(killed) == metrics_by_cell(clean)


def test_ctrl_c_stops_cleanly_with_a_resume_message(tmp_path, suite_file):
    results = tmp_path / "r"
    suite_file.write_text(SUITE.format(epochs=1000))  # long cells: the signal lands mid-suite even on a fast machine
    proc = cli(results, "benchmark", "--suite", str(suite_file))
    wait_for_records(results, 1, proc)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, (out, err)
    assert "run the same command again to resume" in err
    assert "Traceback" not in err
    no_debris(results)
    assert not list(results.rglob("*.lock"))


def _children(pid: int) -> list[int]:
    """The live child processes of pid (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(c) for c in path.read_text().split()] if path.exists() else []


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc")
def test_ctrl_c_during_searches_in_workers_stops_them(tmp_path):
    """The searches run in a process pool; Lightning takes the pool's SIGTERM for a failed
    trial, so the runner must kill its workers for Ctrl-C to stop anything."""
    suite = tmp_path / "t.toml"
    suite.write_text('seeds = [0]\nbaseline = false\n[tuning]\ntrials = 2\n[budget]\n'
                     'max_epochs = 5000\npatience = 0\nbatch_size = 32\n'
                     '[[datasets]]\nname = "parity"\n'
                     'params = { n = 8, n_train = 128, n_val = 32, n_test = 64 }\n'
                     '[[models]]\nname = "mlp"\nhparams = { hidden = 16 }\n'
                     '[[models]]\nname = "cnn1d"\nhparams = { channels = 8 }\n')
    proc = cli(tmp_path / "r", "benchmark", "--suite", str(suite), "--workers", "2")
    try:
        deadline = time.time() + 60
        while time.time() < deadline and len(_children(proc.pid)) < 2:
            time.sleep(0.2)
        workers = _children(proc.pid)
        assert workers, "no worker started"
        time.sleep(10)  # well inside the searches' training (spawned workers import ~4 s)
        proc.send_signal(signal.SIGINT)  # to the runner only, as a supervisor would
        out, err = proc.communicate(timeout=60)
    finally:  # a hung runner must not outlive the test, nor its workers
        for pid in [*_children(proc.pid), proc.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        proc.wait()
    assert proc.returncode == 130, (out, err)
    time.sleep(0.5)
    alive = [w for w in workers if Path(f"/proc/{w}").exists()
             and "Z" not in Path(f"/proc/{w}/stat").read_text().split()[2]]
    assert not alive, f"workers still running after Ctrl-C: {alive}"
    assert not list((tmp_path / "r").rglob("tuning.json"))  # no search finished


def test_two_runners_on_one_folder_split_the_cells(tmp_path, suite_file):
    results = tmp_path / "shared"
    procs = [cli(results, "benchmark", "--suite", str(suite_file)) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), outs
    ran = [int(o.split("ran ")[1].split(" cells")[0]) for o in outs]
    assert sum(ran) == 12, outs  # every cell ran exactly once, by one of the two
    assert len(list((results / "runs").rglob("seed*.json"))) == 12
    no_debris(results)


def test_diverging_and_unavailable_models_are_recorded_and_the_suite_goes_on(tmp_path, capsys):
    plugin = tmp_path / "faulty.py"
    plugin.write_text(FAULTY_PLUGIN)
    suite = tmp_path / "div.toml"
    suite.write_text('seeds = [0]\n[budget]\nmax_epochs = 3\n[[datasets]]\nname = "parity"\n'
                     'params = { n = 8, n_train = 64, n_val = 16, n_test = 16 }\n'
                     '[[models]]\nname = "exploding"\n[[models]]\nname = "needs_missing"\n'
                     '[[models]]\nname = "mlp"\nhparams = { hidden = 8 }\n')
    results = tmp_path / "r"
    try:
        assert main(["--plugin", str(plugin), "benchmark", "--suite", str(suite),
                     "--results", str(results)]) == 0
        runs = results / "runs" / "div" / "parity"
        exploding = read_record(runs / "exploding" / "seed0.json")
        assert exploding.status == "failed"
        assert exploding.reason.startswith("diverged: training loss became nan at epoch 0")
        missing = read_record(runs / "needs_missing" / "seed0.json")
        assert missing.status == "skipped" and "no_such_package_xyz" in missing.reason
        assert read_record(runs / "mlp" / "seed0.json").status == "ok"
        capsys.readouterr()
        main(["list", "--models", "needs_missing"])
        assert "no: needs the optional package 'no_such_package_xyz'" in capsys.readouterr().out
    finally:
        registry.unregister("model", "exploding")
        registry.unregister("model", "needs_missing")


def test_unwritable_results_folder_fails_before_training(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    assert main(["benchmark", "--suite", "smoke", "--results", str(blocker / "results")]) == 2
    err = capsys.readouterr().err
    assert "is not writable" in err and len(err.strip().splitlines()) == 1


def test_incompatible_pair_asked_for_explicitly(capsys, tmp_path):
    argv = ["run", "--dataset", "parity", "--model", "deepsets"]
    assert main(argv + ["--results", str(tmp_path)]) == 2
    assert "cannot run this pair: model 'deepsets' accepts set" in capsys.readouterr().err


def test_unreachable_parameter_budget_is_one_line(tmp_path, capsys):
    suite = tmp_path / "b.toml"
    suite.write_text('seeds = [0]\nparam_budgets = [3]\n[[datasets]]\nname = "parity"\n'
                     '[[models]]\nname = "mlp"\n')
    assert main(["benchmark", "--suite", str(suite), "--results", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert "cannot reach a budget of 3 parameters" in err and len(err.strip().splitlines()) == 1


# -- property-based: the suite parser and dataset parameters never crash ------------------
toml_values = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 10**6) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8)
suite_like = st.fixed_dictionaries({}, optional={
    "seeds": toml_values, "budget": toml_values, "description": toml_values,
    "datasets": st.lists(st.fixed_dictionaries({"name": st.sampled_from(["parity", "descents"])},
                                               optional={"params": toml_values, "id": toml_values}),
                         max_size=2) | toml_values,
    "models": st.lists(st.fixed_dictionaries({"name": st.just("mlp")},
                                             optional={"hparams": toml_values}), max_size=2) | toml_values,
    "extra_key": toml_values,
})


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(suite_like)
def test_suite_parser_accepts_or_explains(data):
    try:
        suite = parse_suite(data, "prop")
    except UserError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert suite.datasets and suite.models and suite.seeds


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(st.sampled_from(["n", "n_train", "n_val", "n_test", "side", "encoding", "data_seed"]),
                       st.integers(-3, 40) | st.sampled_from(["left", "right", "matrix", "oneline", "x"]),
                       max_size=4),
       st.sampled_from(["parity", "descents"]))
def test_dataset_parameters_construct_or_explain(params, name):
    try:
        dm = registry.create_dataset(name, **params)
    except UserError as exc:
        assert "\n" not in str(exc) and (name in str(exc) or "parameter" in str(exc))
    else:
        assert dm.spec.name == name
