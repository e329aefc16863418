"""Where records live and how files are written: names checked once so that a path
names exactly one cell, and atomic writes (temporary file, fsync, rename)."""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

# An id is a path component as it stands: letters, digits and . _ - @ = +, starting with a
# letter or digit, at most 100 characters. Nothing is rewritten, so two ids never share a
# path (a cleaned-up name once mapped "p/x" and "p_x" to one file).
ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@=+-]{0,99}")
MAX_SEED = 2**32 - 1  # torch and numpy seeds are 32-bit


def id_problem(text: Any) -> str | None:
    """Why `text` cannot be a suite, dataset or model id, or None."""
    if not isinstance(text, str) or not ID_PATTERN.fullmatch(text):
        return (f"{text!r} is not a valid id: use 1-100 letters, digits and . _ - @ = +, "
                "starting with a letter or digit")
    return None


def record_path(results_dir: str | Path, suite: str, dataset_id: str, model_id: str,
                seed: int) -> Path:
    """results/runs/<suite>/<dataset id>/<model id>/seed<k>.json (ids are checked at parse
    time, so the path is injective)."""
    for part in (suite, dataset_id, model_id):
        problem = id_problem(part)
        if problem:
            raise ValueError(problem)
    return Path(results_dir) / "runs" / suite / dataset_id / model_id / f"seed{int(seed)}.json"


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """As write_text_atomic, for bytes (the predictions beside a record)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`:
    a reader (or a crash) sees the old file or the new one, never half of one. A failed
    write (a full disk) removes its temporary file and raises OSError."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes 0600; results are meant to be shared
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def remove_debris(path: str | Path) -> None:
    """Delete temporary files a killed writer of this record left (call under its claim)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.stem}.*.tmp"):  # the record's and its predictions'
        tmp.unlink(missing_ok=True)


# -- files beside a record: the attribution scores, the kept weights ------------------------
def explain_path(record_path: Path) -> Path:
    """seed<k>.explain.json beside seed<k>.json."""
    return record_path.with_name(record_path.name.replace(".json", ".explain.json"))


def weights_path(record_path: Path) -> Path:
    """seed<k>.weights.safetensors beside seed<k>.json."""
    return record_path.with_name(record_path.name.replace(".json", ".weights.safetensors"))


def read_explanation(path: Path) -> dict[str, Any] | None:
    """An explain file, or None if unreadable (a report leaves it out)."""
    import json

    try:
        data = json.loads(Path(path).read_text())
        return data if isinstance(data, dict) and "methods" in data else None
    except (OSError, ValueError):
        return None
