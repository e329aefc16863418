"""Claims: the locks that keep two runners off one cell. A claim is a flock held for the
cell's lifetime: a live holder is respected, a dead one's is free at once, and whatever a
lock file contains (a foreign or reused PID, another host, garbage, a directory) never
blocks a cell. Many runners racing for one free cell: exactly one wins."""

from __future__ import annotations

import multiprocessing as mp
import os
import subprocess
import sys

import pytest

from benchmarks.run import claims
from benchmarks.run.claims import lock_path, try_claim


def _contender(path: str, start, tried, won) -> None:
    start.wait()
    claim = try_claim(path)
    if claim is not None:
        won.put(os.getpid())
    tried.wait()  # a winner holds its claim until every contender has tried
    if claim is not None:
        claim.release()


def test_a_live_claim_is_respected_and_released(tmp_path):
    path = tmp_path / "seed0.json"
    claim = try_claim(path)
    assert claim is not None and claim.lock == lock_path(path)
    assert lock_path(path).read_text().split()[1] == str(os.getpid())
    # another process cannot take it while this one holds it
    code = f"from benchmarks.run.claims import try_claim; print(try_claim({str(path)!r}))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "None", out.stderr
    claim.release()
    assert not lock_path(path).exists()
    again = try_claim(path)
    assert again is not None
    again.release()


def test_a_killed_holders_claim_is_free_at_once(tmp_path):
    path = tmp_path / "seed0.json"
    code = ("import time; from benchmarks.run.claims import try_claim; "
            f"c = try_claim({str(path)!r}); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    assert try_claim(path) is None
    proc.kill()
    proc.wait()
    claim = try_claim(path)  # the kernel released the flock with the process
    assert claim is not None
    claim.release()


@pytest.mark.parametrize("content", ["myhost 1\n", "otherhost 12345 99\n", "garbage", "",
                                     "host 0\n", "host -1\n", "host 99999999999999999999\n"])
def test_no_lock_file_content_blocks_a_cell(tmp_path, content):
    path = tmp_path / "seed0.json"
    lock_path(path).write_text(content)  # PID 1, another host, junk: nobody holds a flock
    claim = try_claim(path)
    assert claim is not None
    claim.release()


def test_a_directory_where_the_lock_belongs_is_taken_over(tmp_path):
    path = tmp_path / "seed0.json"
    lock_path(path).mkdir()
    claim = try_claim(path)
    assert claim is not None and lock_path(path).is_file()
    claim.release()


def test_many_runners_racing_for_one_cell_one_wins(tmp_path):
    ctx = mp.get_context("fork")  # the contenders touch files only, never torch
    n, rounds = 8, 20
    for r in range(rounds):
        path = tmp_path / f"seed{r}.json"
        lock_path(path).write_text("somehost 4242\n")  # a killed run's lock file
        start, tried, won = ctx.Barrier(n), ctx.Barrier(n), ctx.Queue()
        procs = [ctx.Process(target=_contender, args=(str(path), start, tried, won))
                 for _ in range(n)]
        for p in procs:
            p.start()
        for p in procs:
            p.join(timeout=60)
        winners = []
        while not won.empty():
            winners.append(won.get())
        assert len(winners) == 1, f"round {r}: {len(winners)} runners took one cell"
        assert not lock_path(path).exists()


def test_without_flock_a_file_claim_names_host_pid_and_start_time(tmp_path, monkeypatch):
    """Filesystems without flock fall back to an exclusively created lock file; its owner is
    recognised by host, PID and start time, so a reused or foreign PID never blocks."""
    def no_flock(fd, op):
        raise OSError(claims.errno.ENOLCK, "no locks")

    monkeypatch.setattr(claims.fcntl, "flock", no_flock)
    path = tmp_path / "seed0.json"
    claim = try_claim(path)
    assert claim is not None and try_claim(path) is None  # this live process holds it
    host, pid, started = lock_path(path).read_text().split()
    assert int(pid) == os.getpid() and started
    claim.release()
    lock_path(path).write_text(f"{host} 1 {int(started) + 1}\n")  # PID 1, another start time
    assert (reused := try_claim(path)) is not None
    reused.release()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock_path(path).write_text(f"{host} {dead.pid}\n")
    assert (taken := try_claim(path)) is not None
    taken.release()
    lock_path(path).write_text(f"another-host {os.getpid()} 1\n")  # only its owner can end it
    assert try_claim(path) is None
