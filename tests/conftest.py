"""Shared fixtures: an isolated dataset cache, a results folder, the registries, and
small instances of every registered dataset for the generic tests; hand-made run records
and a reader of the metrics a suite wrote."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest

# One cache for the whole session, away from the user's: generic tests reuse datasets.
os.environ.setdefault("MLWM_CACHE", tempfile.mkdtemp(prefix="mlwm-test-cache-"))

from benchmarks import registry  # noqa: E402
from benchmarks.contract import choose_view  # noqa: E402
from benchmarks.run.files import record_path, write_text_atomic  # noqa: E402
from benchmarks.run.records import SCHEMA_VERSION, RunRecord, read_record  # noqa: E402

registry.load_plugins()

# Datasets whose smoke instance needs files a test must write first (mnist's IDX files).
NEEDS_FILES = {entry.name for entry in registry.all_dataset_entries() if entry.cls.needs_files}
DATASETS = [n for n in registry.list_datasets() if n not in NEEDS_FILES]
MODELS = registry.list_models()

_dm_cache: dict[str, object] = {}


def smoke_datamodule(name: str):
    """The smoke instance of a dataset, generated once per session."""
    if name not in _dm_cache:
        entry = registry.get_dataset_entry(name)
        dm = registry.create_dataset(name, **entry.cls.smoke_params)
        dm.prepare_data()
        dm.setup("fit")
        _dm_cache[name] = dm
    return _dm_cache[name]


def compatible_pairs() -> list[tuple[str, str]]:
    """(dataset, model) pairs the runner would run (a dataset whose smoke instance fails
    to build is left out here and fails test_spec_and_views instead)."""
    pairs = []
    for d in DATASETS:
        cls = registry.get_dataset_entry(d).cls
        try:
            spec = cls(**cls.smoke_params).spec
        except Exception:
            continue
        for m in MODELS:
            entry = registry.get_model_entry(m)
            if spec.task in entry.tasks and choose_view(spec, entry.modalities) is not None:
                pairs.append((d, m))
    return pairs


@pytest.fixture
def results_dir(tmp_path: Path) -> Path:
    return tmp_path / "results"


# -- run records -------------------------------------------------------------------------
def make_record(dataset="parity", model="mlp", seed=0, test=0.9, val=None, status="ok",
                reason=None, metric="acc", higher=True, version="1", budget=None,
                suite="t", baseline=False, ood=None):
    metrics = {} if status != "ok" else {"val": {metric: val if val is not None else test},
                                         "test": {metric: test}}
    if ood is not None and status == "ok":
        metrics["ood_test"] = {metric: ood}
    model_id = model if budget is None else f"{model}@{budget // 1000}k"
    return {
        "schema_version": SCHEMA_VERSION, "suite": suite,
        "dataset": {"id": dataset, "name": dataset, "version": version, "params": {},
                    "content_hash": "h", "task": "binary", "metric": metric,
                    "higher_is_better": higher, "view": "vector", "description": "desc"},
        "model": {"id": model_id, "name": model, "hparams": {}, "kind": "neural",
                  "baseline": baseline, "n_params": 1000, "param_budget": budget},
        "seed": seed, "budget": {"max_epochs": 1, "batch_size": 1, "lr": 0.1},
        "status": status, "reason": reason, "metrics": metrics, "epochs": 3,
        "time": {"train_s": 1.5, "total_s": 2.0}, "config_hash": "0" * 16,
        "environment": {"python": "3", "torch": "2", "lightning": "2", "device": "cpu",
                        "git_commit": "x"}, "created": "now",
    }


def write(results: Path, rec: dict) -> Path:
    """A hand-made record (a dict, so a test can break it) written where the runner would."""
    path = record_path(results, rec["suite"], rec["dataset"]["id"], rec["model"]["id"], rec["seed"])
    write_text_atomic(path, json.dumps(rec, indent=1) + "\n")
    return path


def built(board) -> tuple:
    """(paths, problems, rows) of a build_leaderboard result."""
    return board.paths, board.problems, board.rows


def valid(rec: dict) -> RunRecord:
    """A hand-made record as the typed record (it must validate)."""
    return RunRecord.model_validate(rec)


def metrics_by_cell(results: Path) -> dict[str, dict]:
    """The metrics of every record under results/runs, by the record's relative path."""
    return {str(p.relative_to(results)): read_record(p).metrics
            for p in sorted((results / "runs").rglob("*.json"))}
