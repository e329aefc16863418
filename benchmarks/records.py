"""Run records: one JSON file per (suite, dataset, model, seed), written atomically.

A record holds everything needed to read, trust and rerun a cell: the dataset's name,
version, parameters and content hash; the model's name, hyperparameters and parameter
count; seed and training budget; metrics per split; times, throughput and status; the
hardware and package versions. `record_schema.json` beside this file is its JSON Schema.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
STATUSES = ("ok", "failed", "skipped")
SCHEMA_PATH = Path(__file__).with_name("record_schema.json")  # JSON Schema of a record
PROJECT_ROOT = Path(__file__).resolve().parents[1]


def config_hash(config: dict[str, Any]) -> str:
    """Stable hash of what defines a cell; a record with the same hash is a finished cell."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def safe_name(text: str) -> str:
    """A path component from a label (letters, digits, . _ - @ = and +)."""
    cleaned = "".join(c if c.isalnum() or c in "._-@=+" else "_" for c in text)
    return cleaned.strip(".") or "_"


def record_path(results_dir: str | Path, suite: str, dataset_id: str, model_id: str,
                seed: int) -> Path:
    return (Path(results_dir) / "runs" / safe_name(suite) / safe_name(dataset_id)
            / safe_name(model_id) / f"seed{int(seed)}.json")


def write_text_atomic(path: str | Path, text: str) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`:
    a reader (or a crash) sees the old file or the new one, never half of one."""
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


def write_json_atomic(path: str | Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=1, allow_nan=False, default=str) + "\n")


def read_record(path: str | Path) -> dict[str, Any]:
    """A record, or ValueError saying why the file is not one."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"unreadable: {exc}") from exc
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno})") from exc
    problem = record_problem(data)
    if problem:
        raise ValueError(problem)
    return data


def record_problem(data: Any) -> str | None:
    """Why `data` is not a run record of this schema, or None (a light structural check)."""
    if not isinstance(data, dict):
        return "not a JSON object"
    if data.get("schema_version") != SCHEMA_VERSION:
        return f"schema_version {data.get('schema_version')!r}, expected {SCHEMA_VERSION}"
    for key, kind in (("dataset", dict), ("model", dict), ("seed", int), ("status", str),
                      ("metrics", dict), ("config_hash", str), ("suite", str)):
        if not isinstance(data.get(key), kind):
            return f"field {key!r} missing or not a {kind.__name__}"
    if data["status"] not in STATUSES:
        return f"status {data['status']!r} is not one of {', '.join(STATUSES)}"
    for key in ("id", "name", "version"):
        if not isinstance(data["dataset"].get(key), str):
            return f"field dataset.{key} missing"
    for key in ("id", "name"):
        if not isinstance(data["model"].get(key), str):
            return f"field model.{key} missing"
    return None


@functools.lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True,
                             text=True, timeout=5)
        commit = out.stdout.strip()
        if out.returncode != 0 or not commit:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=5)
        return commit + ("-dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


@functools.lru_cache(maxsize=1)
def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def uses_gpu(accelerator: str) -> bool:
    """Whether a run with this Lightning accelerator ("auto", "gpu", "cuda", "cpu") trains
    on a GPU here."""
    import torch

    return accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()


def device_name(accelerator: str = "cpu") -> str:
    import torch

    if uses_gpu(accelerator):
        return torch.cuda.get_device_name(0)
    return f"{cpu_name()} ({os.cpu_count()} cores)"


def environment(accelerator: str = "cpu") -> dict[str, Any]:
    import lightning
    import torch
    import torchmetrics

    return {
        "python": platform.python_version(), "torch": torch.__version__,
        "lightning": lightning.__version__, "torchmetrics": torchmetrics.__version__,
        "platform": platform.platform(), "device": device_name(accelerator),
        "git_commit": git_commit(), "argv": sys.argv[1:],
        # float reductions depend on the thread count: a rerun must use the same one
        "threads": torch.get_num_threads(),
    }


# -- claims: two runners on one results folder never run (or write) the same cell -------
def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


def _claim_is_stale(lock: Path) -> bool:
    """A claim is stale when its process, on this host, no longer exists (killed runs)."""
    try:
        host, pid = lock.read_text().split()[:2]
    except (OSError, ValueError):
        return True  # unreadable or half-written by a process killed mid-write
    if host != platform.node():
        return False  # another machine's claim: only its owner can release it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return True
    except (PermissionError, ValueError):
        return False
    return False


def try_claim(path: str | Path) -> Path | None:
    """Claim a record path by creating its lock file atomically; None if another live
    process holds it. A stale claim (its process is gone) is taken over by one runner."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    # The claim appears with its owner already written in it (a hard link of a finished
    # file), so no other process can read a half-made claim and take it for a stale one.
    mine = lock.with_name(f".{lock.name}.{os.getpid()}.claim")
    mine.write_text(f"{platform.node()} {os.getpid()}\n")
    try:
        try:
            os.link(mine, lock)
            return lock
        except FileExistsError:
            pass
        if not _claim_is_stale(lock):
            return None
        # Two runners may find the same stale claim at once: if both deleted it and linked
        # their own, the second would delete the first's fresh claim. Takeovers therefore
        # run one at a time under a kernel lock (released if its holder dies), and look
        # again inside it.
        with _takeover_mutex(lock):
            if not _claim_is_stale(lock):
                return None
            lock.unlink(missing_ok=True)
            try:
                os.link(mine, lock)
                return lock
            except FileExistsError:  # a fresh claim (not a takeover) came in between
                return None
    finally:
        mine.unlink(missing_ok=True)


@contextlib.contextmanager
def _takeover_mutex(lock: Path) -> Iterator[None]:
    """An exclusive flock on `<lock>.takeover`. The file is left in place: deleting a file
    others may be waiting to lock would let two of them hold locks on different files."""
    fd = os.open(lock.with_name(f".{lock.name}.takeover"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the flock


def remove_debris(path: str | Path) -> None:
    """Delete temporary files a killed writer of this record left (call under its claim)."""
    path = Path(path)
    for tmp in path.parent.glob(f".{path.name}.*.tmp"):
        tmp.unlink(missing_ok=True)


def release_claim(lock: Path | None) -> None:
    if lock is not None:
        lock.unlink(missing_ok=True)
