"""Claims: the lock files that keep two runners off one cell. A claim is taken atomically,
a live owner's claim is respected, and a stale one (its process died) is taken over by
exactly one of the runners that find it at the same moment."""

from __future__ import annotations

import multiprocessing as mp
import os
import platform
import subprocess
import sys
from pathlib import Path

from benchmarks.records import lock_path, release_claim, try_claim


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _contender(path: str, start, tried, won) -> None:
    start.wait()
    lock = try_claim(path)
    if lock is not None:
        won.put(os.getpid())
    tried.wait()  # a winner holds its claim until every contender has tried
    release_claim(lock)


def test_a_live_claim_is_respected_and_released(tmp_path):
    path = tmp_path / "seed0.json"
    lock = try_claim(path)
    assert lock == lock_path(path) and lock.read_text().split()[1] == str(os.getpid())
    assert try_claim(path) is None  # held by a live process (this one)
    release_claim(lock)
    assert not lock.exists()
    assert try_claim(path) is not None


def test_a_stale_claim_is_taken_over_by_exactly_one_of_many_runners(tmp_path):
    ctx = mp.get_context("fork")  # the contenders touch files only, never torch
    n, rounds = 8, 30
    for r in range(rounds):
        path = tmp_path / f"seed{r}.json"
        lock_path(path).write_text(f"{platform.node()} {_dead_pid()}\n")  # a killed run's claim
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
        assert len(winners) == 1, f"round {r}: {len(winners)} runners took one stale claim"
        assert not lock_path(path).exists()
        assert not [f for f in Path(tmp_path).iterdir() if f.name.endswith(".claim")]
