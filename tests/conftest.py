"""Shared fixtures: an isolated dataset cache, a results folder, the registries, and
small instances of every registered dataset for the generic tests."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

# One cache for the whole session, away from the user's: generic tests reuse datasets.
os.environ.setdefault("MLWM_CACHE", tempfile.mkdtemp(prefix="mlwm-test-cache-"))

from benchmarks import registry  # noqa: E402
from benchmarks.contract import choose_view  # noqa: E402

registry.load_plugins()

# Datasets whose smoke instance needs files a test must write first (mnist's IDX files).
NEEDS_FILES = {entry.name for entry in registry.all_dataset_entries()
               if getattr(entry.cls, "needs_files", False)}
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
