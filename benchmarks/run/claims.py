"""Claims: two runners on one results folder never run (or write) the same cell.

A claim is an exclusive `flock` on `<record>.lock`, held for the cell's whole lifetime by
an open file descriptor. The kernel releases it when its holder exits, however it dies,
so there is no stale claim to recognise, and a PID written into a file (reused, foreign,
or another host's) can never block a cell. The owner's host and PID are written into the
file for people only. Where the filesystem has no flock (some cluster filesystems), an
exclusively created lock file naming host, PID and the process's start time is the
claim; it is taken over when its process is gone or its content is not a claim.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import platform
from dataclasses import dataclass
from pathlib import Path


def lock_path(path: str | Path) -> Path:
    path = Path(path)
    return path.with_name(path.name + ".lock")


@dataclass
class Claim:
    """A held claim on one record path; release() ends it."""

    lock: Path
    fd: int | None  # the flock's descriptor; None for a lock-file claim

    def release(self) -> None:
        """Remove the lock file while still holding the lock, then let go: a runner that
        opened the old file finds it unlinked after locking it and tries again."""
        try:
            self.lock.unlink(missing_ok=True)
        finally:
            if self.fd is not None:
                os.close(self.fd)
                self.fd = None


def _owner() -> str:
    return f"{platform.node()} {os.getpid()} {_start_time(os.getpid())}\n"


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (field 22 of /proc/pid/stat), so
    that a reused PID is not taken for the claim's owner; "" where /proc is absent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def try_claim(path: str | Path) -> Claim | None:
    """Claim a record path; None if another live process holds it."""
    lock = lock_path(path)
    lock.parent.mkdir(parents=True, exist_ok=True)
    while True:
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except IsADirectoryError:
            _remove_odd(lock)
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return None
        except OSError as exc:
            os.close(fd)
            if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return _claim_by_file(lock)
            raise
        try:  # the file we locked must still be the one at the path (see Claim.release)
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        os.ftruncate(fd, 0)
        os.write(fd, _owner().encode())
        return Claim(lock, fd)


def _remove_odd(lock: Path) -> None:
    """A directory (or other odd thing) where a lock file belongs is not a claim."""
    import shutil

    shutil.rmtree(lock, ignore_errors=True)


def clear_if_unheld(path: str | Path) -> None:
    """Remove a lock file that nobody holds (left by a runner killed after it wrote the
    record); a held one is left alone."""
    lock = lock_path(path)
    if lock.is_file():
        claim = try_claim(path)
        if claim is not None:
            claim.release()


# -- without flock: an exclusively created file naming its owner ---------------------------
def _claim_by_file(lock: Path) -> Claim | None:
    for _ in range(2):
        try:
            fd = os.open(lock, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            if not _file_claim_is_stale(lock):
                return None
            with contextlib.suppress(FileNotFoundError):
                lock.unlink()
            continue
        with os.fdopen(fd, "w") as f:
            f.write(_owner())
        return Claim(lock, None)
    return None


def _file_claim_is_stale(lock: Path) -> bool:
    """Stale: not a claim at all, or its process on this host is gone or another process
    now has its PID. Another host's well-formed claim only its owner can end."""
    try:
        host, pid, started = (lock.read_text().split() + ["", "", ""])[:3]
        pid_n = int(pid)
    except (OSError, ValueError, UnicodeDecodeError):
        return True
    if not host or pid_n <= 0:
        return True
    if host != platform.node():
        return False
    try:
        os.kill(pid_n, 0)
    except ProcessLookupError:
        return True
    except (PermissionError, OverflowError):
        return pid_n > 4 * 1024 * 1024  # an impossible PID
    return bool(started) and _start_time(pid_n) != started
