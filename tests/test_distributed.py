"""Exact metrics under DDP (two CPU processes over gloo): the test split is sharded without
the padding a DistributedSampler adds, and torchmetrics syncs its states, so the DDP test
metric equals the single-process one. Also `--workers 2` through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import lightning as L
import pytest
import torch
from conftest import metrics_by_cell

from benchmarks import registry
from benchmarks.cli import main
from benchmarks.train.module import BenchModule
from benchmarks.train.selection import Selection
from benchmarks.train.trainer import quiet_lightning


def _module_and_loader():
    dm = registry.create_dataset("descents", n=7, n_train=300, n_val=50, n_test=101)  # odd size
    dm.setup()
    dm.configure(view="vector", seed=0, eval_batch_size=16)
    spec = dm.spec.for_view("vector")
    torch.manual_seed(0)
    net = registry.create_model("mlp", spec, hidden=16)
    return BenchModule(net, spec, Selection(spec.metric, True, 0)), dm.loader("test")


@pytest.mark.slow
def test_ddp_test_metric_equals_single_process():
    quiet_lightning()
    module, loader = _module_and_loader()
    single = L.Trainer(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False,
                       enable_model_summary=False)
    single.test(module, dataloaders=loader, verbose=False)
    expected = {k: float(v) for k, v in single.callback_metrics.items()}
    ddp = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_spawn", logger=False,
                    enable_progress_bar=False, enable_model_summary=False,
                    use_distributed_sampler=False)
    ddp.test(module, dataloaders=loader, verbose=False)
    got = {k: float(v) for k, v in ddp.callback_metrics.items()}
    assert got.keys() == expected.keys() and expected
    for key in expected:
        assert abs(got[key] - expected[key]) < 1e-6, (key, got[key], expected[key])


@pytest.mark.slow
def test_ddp_cell_through_the_cli(tmp_path):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    cmd = [sys.executable, "-m", "benchmarks.cli", "run", "--dataset", "parity", "--model", "mlp",
           "--param", "n=8", "--param", "n_train=128", "--param", "n_val=33", "--param", "n_test=65",
           "--max-epochs", "2", "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
           "--results", str(tmp_path)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("test acc = ") == 1  # rank 0 alone reports and writes
    (path,) = (tmp_path / "runs/run").rglob("seed0.json")
    assert json.loads(path.read_text())["status"] == "ok"


def test_workers_two_gives_the_records_of_one(tmp_path):
    args = ["benchmark", "--suite", "smoke"]
    assert main(args + ["--results", str(tmp_path / "one")]) == 0
    assert main(args + ["--results", str(tmp_path / "two"), "--workers", "2"]) == 0
    assert metrics_by_cell(tmp_path / "one") == metrics_by_cell(tmp_path / "two")


KILLER_PLUGIN = '''
import os, signal
from torch import nn
from benchmarks import register_model

class Killer(nn.Module):
    def __init__(self, d, k):
        super().__init__()
        self.lin = nn.Linear(d, k)
    def forward(self, x):
        os.kill(os.getpid(), signal.SIGKILL)  # as an out-of-memory kill would

@register_model("killer", modalities=("vector",))
def killer(spec) -> nn.Module:
    """Kills its own process."""
    return Killer(spec.input_shape[0], spec.num_outputs)
'''


@pytest.mark.parametrize("vectorise", [False, True])
def test_a_dead_worker_loses_only_its_own_cell(tmp_path, vectorise):
    """With --vectorise-seeds a worker takes all seeds of a cell; it dies in the killer's
    vectorised probe before starting any, so they go back to the queue one by one."""
    plugin = tmp_path / "killer.py"
    plugin.write_text(KILLER_PLUGIN)
    suite = tmp_path / "k.toml"
    # data_seeds fixed: seeds share their data, so they can be stacked
    suite.write_text('seeds = [0, 1]\ndata_seeds = "fixed"\n[budget]\nmax_epochs = 2\n'
                     '[[datasets]]\nname = "parity"\n'
                     'params = { n = 8, n_train = 64, n_val = 16, n_test = 16 }\n'
                     '[[models]]\nname = "killer"\n[[models]]\nname = "mlp"\nhparams = { hidden = 8 }\n')
    try:
        assert main(["--plugin", str(plugin), "benchmark", "--suite", str(suite), "--workers", "2",
                     "--results", str(tmp_path / "r")] + ["--vectorise-seeds"] * vectorise) == 0
    finally:
        registry.unregister("model", "killer")
    runs = tmp_path / "r" / "runs" / "k" / "parity"
    for seed in (0, 1):
        dead = json.loads((runs / "killer" / f"seed{seed}.json").read_text())
        assert dead["status"] == "failed" and "worker process died (killed by signal 9)" in dead["reason"]
        mlp = json.loads((runs / "mlp" / f"seed{seed}.json").read_text())
        assert mlp["status"] == "ok"
        assert ("vectorised" in mlp["model"].get("details", {})) == vectorise
        assert json.loads((runs / "constant" / f"seed{seed}.json").read_text())["status"] == "ok"
    assert not list((tmp_path / "r").rglob("*.lock"))


@pytest.mark.slow
def test_submitit_local_executor_runs_the_suite_as_an_array(tmp_path, capsys):
    pytest.importorskip("submitit")
    results = tmp_path / "r"
    assert main(["benchmark", "--suite", "smoke", "--launcher", "local", "--results", str(results)]) == 0
    out = capsys.readouterr().out
    assert "submitted 4 cells" in out and "4 ok" in out
    assert len(list((results / "runs" / "smoke").rglob("seed*.json"))) == 4
    assert (results / "suites" / "smoke" / "leaderboard.md").is_file()
    assert main(["benchmark", "--suite", "smoke", "--launcher", "local", "--results", str(results)]) == 0
    assert "nothing submitted" in capsys.readouterr().out
    # what the command line adds reaches the array tasks: a model, a budget change
    assert main(["benchmark", "--suite", "smoke", "--launcher", "local", "--results", str(results),
                 "--model", "linear", "--batch-scale", "2"]) == 0
    assert "submitted 6 cells" in capsys.readouterr().out
    records = [json.loads(p.read_text()) for p in (results / "runs" / "smoke").rglob("seed*.json")]
    assert len(records) == 6 and {r["model"]["name"] for r in records} == {"mlp", "constant", "linear"}
    assert all(r["budget"]["batch_scale"] == 2 and r["status"] == "ok" for r in records)


def test_workers_that_die_in_start_up_stop_the_suite_with_one_line(tmp_path, capsys):
    plugin = tmp_path / "crash.py"  # imports fine in the runner, kills every worker process
    plugin.write_text("import multiprocessing, os\n"
                      "if multiprocessing.current_process().name != 'MainProcess':\n"
                      "    os._exit(3)\n")
    code = main(["--plugin", str(plugin), "benchmark", "--suite", "smoke", "--workers", "2",
                 "--results", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert "die during start-up (exit code 3)" in err[0] and "--workers 1" in err[0]
