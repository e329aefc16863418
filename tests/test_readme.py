"""The README's promises, executed as written: the model defined in "Adding a model" runs
from a file outside the package through `--plugin` and finds its row in the leaderboard."""

from __future__ import annotations

import csv
import re
import shlex
from pathlib import Path

from benchmarks import registry
from benchmarks.cli import main

README = Path(__file__).resolve().parents[1] / "README.md"


def readme_section(title: str) -> str:
    text = README.read_text()
    return text.split(f"## {title}", 1)[1].split("\n## ", 1)[0]


def test_readme_opens_with_the_two_commands():
    text = README.read_text()
    first_block = text.split("```bash", 1)[1].split("```", 1)[0]
    assert "make benchmark" in first_block and "make test" in first_block


def test_the_readme_plugin_model_joins_the_leaderboard(tmp_path):
    section = readme_section("Adding a model")
    code = re.search(r"```python\n# my_model.py\n(.*?)```", section, re.S).group(1)
    plugin = tmp_path / "my_model.py"
    plugin.write_text(code)
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()
    bench = next(c for c in commands if " benchmark " in c).split("#")[0]
    argv = shlex.split(bench)[1:]  # drop .venv/bin/mlwm
    argv[argv.index("my_model.py")] = str(plugin)
    argv[argv.index("--suite") + 1] = "smoke"  # the README's command on the quick suite
    try:
        assert main(argv + ["--results", str(tmp_path / "results")]) == 0
    finally:
        registry.unregister("model", "wide_mlp")
    rows = list(csv.DictReader((tmp_path / "results/suites/smoke/leaderboard.csv").open()))
    mine = [r for r in rows if r["model"] == "wide_mlp"]
    assert {r["dataset"] for r in mine} == {"parity", "descents"}
    # two epochs of the smoke suite: trained and scored, flagged as not converged
    assert all((r["status"] == "ok" or r["status"].startswith("not converged")) and r["test_mean"]
               for r in mine), [r["status"] for r in mine]


def test_the_readme_plugin_dataset_passes_the_checks_and_runs(tmp_path, monkeypatch):
    section = readme_section("Adding a dataset")
    code = re.search(r"```python\n# my_dataset.py\n(.*?)```", section, re.S).group(1)
    plugin = tmp_path / "my_dataset.py"
    plugin.write_text(code)
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "cache"))
    commands = re.search(r"```bash\n(.*?)```", section, re.S).group(1).splitlines()
    assert len(commands) == 2
    try:
        for command in commands:
            argv = shlex.split(command.split("#")[0])[1:]  # drop .venv/bin/mlwm
            argv[argv.index("my_dataset.py")] = str(plugin)
            if " run " in command:
                argv += ["--results", str(tmp_path / "results")]
            assert main(argv) == 0, command
    finally:
        registry.unregister("dataset", "coprime")
    records = list((tmp_path / "results").rglob("seed0.json"))
    assert len(records) == 1 and '"status": "ok"' in records[0].read_text()
