"""What `mlwm list` shows: every dataset (its parameters with types and defaults, views,
task and primary metric) and every model (the views it accepts, kind, width, whether it
can run here). Names and parameters come from the plugins' source (registry index),
instantly; views, tasks and availability need the plugins imported, so they are kept in
a catalogue file in the cache, keyed by a hash of the plugins' source, and rebuilt when a
plugin file changes (`mlwm list --refresh` rebuilds it on demand)."""

from __future__ import annotations

import hashlib
import json
import platform
from pathlib import Path
from typing import Any

from . import registry
from .cache import cache_dir
from .errors import UserError


def _fingerprint() -> str:
    h = hashlib.sha256(platform.python_version().encode())
    for module in sorted({e.module for e in registry.plugin_index().values()}):
        path = Path(__file__).resolve().parents[1] / Path(*module.split("."))
        h.update(module.encode())
        h.update(path.with_suffix(".py").read_bytes())
    return h.hexdigest()[:16]


def _build() -> dict[str, Any]:
    """Import every plugin and describe it (a dataset at its default parameters)."""
    registry.load_plugins()
    datasets, models = {}, {}
    for entry in registry.all_dataset_entries():
        row: dict[str, Any] = {"views": [], "task": "", "metric": "", "note": ""}
        try:
            spec = entry.cls().spec
            row.update(views=[m.value for m in spec.modalities], task=spec.task.value,
                       metric=spec.metric + (" ↑" if spec.higher_is_better else " ↓"))
        except UserError as exc:  # a dataset that needs a parameter (a directory, say)
            row["note"] = str(exc)
        datasets[entry.name] = row
    for entry in registry.all_model_entries():
        models[entry.name] = {"accepts": [m.value for m in entry.modalities],
                              "kind": entry.kind + (" baseline" if entry.baseline else ""),
                              "width": entry.width or "",
                              "unavailable": entry.unavailable_reason() or ""}
    return {"datasets": datasets, "models": models}


def catalogue(refresh: bool = False) -> dict[str, Any]:
    """The catalogue of the built-in plugins (read from the cache, built when missing)."""
    path = cache_dir() / f"catalogue-{_fingerprint()}.json"
    if not refresh and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass
    data = _build()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only costs rebuilding
    return data


def parameters_text(entry: registry.IndexEntry) -> str:
    """A dataset's parameters as `name: type = default`, comma-separated."""
    return ", ".join(f"{n}: {t or '?'}" + (f" = {d}" if d else "") for n, t, d in entry.params)
