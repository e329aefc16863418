"""Several cells at once on one machine: `mlwm benchmark --workers N`.

N long-lived worker processes (spawned, not forked: torch and fork do not mix) pull cells
from a queue. On GPUs each worker is pinned to one device through CUDA_VISIBLE_DEVICES
(`--cells-per-device` puts several small cells on one GPU); on CPU the cores are split
between workers' torch thread pools. Claims and records work exactly as with one worker,
so resuming is unchanged. A worker that dies (killed, out of memory, a segfault) loses
only the cell it was running: the parent records that cell as failed with the exit code,
releases its claim and starts a replacement.
"""

from __future__ import annotations

import collections
import multiprocessing as mp
import os
import queue
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import UserError
from .claims import try_claim
from .execute import RunOptions, hard_cap_s, new_record
from .plan import Cell, SuitePlan, make_datamodule
from .serial import PROGRESS_EVENT, DataModuleCache, ProgressFn, WorkItem, run_item, work_items


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs beyond the cells: plugins, threads, its device."""

    options: RunOptions
    plugin_files: tuple[str, ...]
    threads: int
    device: str | None  # a CUDA_VISIBLE_DEVICES value, or None on CPU


def _worker(setup: WorkerSetup, inbox: Any, results: Any, wid: int) -> None:
    """Take items (lists of (index, cell), the seeds of one cell when they train together)
    from this worker's inbox until a None; report every cell's start and end, then idle."""
    if setup.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = setup.device
    die_with_parent()
    import torch

    from .. import registry

    torch.set_num_threads(setup.threads)
    registry.load_plugins(setup.plugin_files)
    cache = DataModuleCache(fresh=setup.options.fresh_data)
    parent = os.getppid()
    results.put(("ready", wid, None, None))
    while True:
        try:
            item = inbox.get(timeout=2.0)
        except queue.Empty:
            if os.getppid() != parent:  # the suite runner was killed: do not linger
                return
            continue
        if item is None or os.getppid() != parent:  # finished, or the runner is gone
            return
        try:
            _run_item(item, setup.options, cache, results, wid)
        except KeyboardInterrupt:
            return
        results.put(("idle", wid, None, None))


def die_with_parent() -> None:
    """Ask the kernel to kill this worker when the suite runner dies (Linux), so that no
    orphan keeps training, and holding a cell's claim, after its runner was killed."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass  # not Linux: workers still leave between cells when the parent is gone


def _run_item(item: WorkItem, options: RunOptions, cache: DataModuleCache, results: Any,
              wid: int) -> None:
    ended: set[int] = set()
    try:
        for index, outcome, record in run_item(
                item, cache.get(item[0][1]), options,
                on_start=lambda i: results.put(("start", wid, i, None))):
            results.put((outcome, wid, index, record))
            ended.add(index)
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # a user error (a bad budget, say) ends the item's cells
        for index, _ in item:
            if index not in ended:
                results.put(("error", wid, index, f"{type(exc).__name__}: {exc}"))


def gpu_slots(cells_per_device: int) -> list[str | None]:
    """Device of each worker: every visible GPU `cells_per_device` times."""
    import torch

    return [str(d) for d in range(torch.cuda.device_count()) for _ in range(cells_per_device)]


def iter_suite_parallel(plan: SuitePlan, options: RunOptions, workers: int,
                        plugin_files: tuple[str, ...] = (), cells_per_device: int = 1,
                        progress: ProgressFn | None = None
                        ) -> Iterator[tuple[Cell, Any, bool]]:
    """Like runner.iter_suite, with cells spread over worker processes (results arrive in
    completion order). The parent hands each worker one item at a time, so it always knows
    what a worker holds: if the worker dies, the cells it had started are recorded failed
    and the ones it had not started go to another worker."""
    total = len(plan.cells)
    devices: list[str | None] = []
    if options.hardware.on_gpu:
        devices = gpu_slots(cells_per_device)
    if devices:
        workers = len(devices) if workers <= 0 else workers
    pending = collections.deque(work_items(plan.cells, options.vectorise_seeds))
    workers = max(1, min(workers, len(pending) or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    procs: dict[int, tuple[Any, Any]] = {}   # worker id -> (process, inbox)
    held: dict[int, set[int]] = {}           # worker id -> indices given and not ended
    started: set[int] = set()
    started_at: dict[int, float] = {}        # plan index -> when its cell started
    killed: dict[int, str] = {}              # worker id -> why the runner killed it
    booted: set[int] = set()                 # workers that got through start-up
    boot_failures = 0
    last_check = time.monotonic()

    def kill_overdue() -> None:
        """A cell past its hard cap by a minute is stuck where even SIGALRM cannot reach
        (inside one long native call): its worker is killed and the cell recorded."""
        now = time.monotonic()
        for wid, indices in held.items():
            for i in indices & set(started_at):
                cap = hard_cap_s(plan.cells[i].budget)
                if cap and now - started_at[i] > cap + 60 and wid in procs and wid not in killed:
                    killed[wid] = (f"killed by the runner after {now - started_at[i]:.0f} s, "
                                   f"past its hard cap of {cap:.0f} s (time_cap)")
                    procs[wid][0].kill()

    def give(wid: int) -> None:
        if pending:
            item = pending.popleft()
            held[wid] = {index for index, _ in item}
            procs[wid][1].put(item)

    def start(wid: int) -> None:
        device = devices[wid % len(devices)] if devices else None
        setup = WorkerSetup(options, tuple(plugin_files), threads, device)
        inbox = ctx.Queue()
        proc = ctx.Process(target=_worker, args=(setup, inbox, results, wid), daemon=True)
        proc.start()
        procs[wid] = (proc, inbox)
        booted.discard(wid)
        give(wid)

    for wid in range(workers):
        start(wid)
    remaining = total
    try:
        while remaining:
            if time.monotonic() - last_check >= 1.0:
                last_check = time.monotonic()
                kill_overdue()
            try:
                event, wid, index, record = results.get(timeout=1.0)
            except queue.Empty:
                for wid, (proc, _) in list(procs.items()):
                    if proc.is_alive():
                        continue
                    del procs[wid]
                    if wid not in booted:  # died in start-up: retrying forever would hang
                        boot_failures += 1
                        if boot_failures >= 3:
                            raise UserError(f"worker processes die during start-up (exit code "
                                            f"{proc.exitcode}); run with --workers 1 to see why") from None
                    lost = sorted(held.pop(wid, set()))
                    for i in reversed([i for i in lost if i not in started]):
                        pending.appendleft([(i, plan.cells[i])])  # never begun: retaken
                    for i in (i for i in lost if i in started):
                        cell = plan.cells[i]  # it died inside this cell: that cell is lost
                        record = _died_record(cell, proc.exitcode, options, killed.pop(wid, None))
                        remaining -= 1
                        if progress:
                            progress("end", cell, i, total, record)
                        yield cell, record, True
                    if pending:
                        start(wid)  # a replacement takes the next item
                continue
            if event == "ready":
                booted.add(wid)
                boot_failures = 0
                continue
            if event == "idle":
                held.pop(wid, None)
                give(wid)
                continue
            cell = plan.cells[index]
            if event == "start":
                started.add(index)
                started_at[index] = time.monotonic()
                if progress:
                    progress("start", cell, index, total, None)
                continue
            held.get(wid, set()).discard(index)
            remaining -= 1
            if event == "error":
                raise UserError(f"{cell.label}: {record}")
            if progress:
                progress(PROGRESS_EVENT[event], cell, index, total, record)
            yield cell, record, event == "ran"
    except BaseException:  # Ctrl-C, SIGTERM, an error: stop the workers now; their
        # cells in progress are not recorded, and the kernel releases their claims
        for proc, _ in procs.values():
            proc.kill()
        raise
    finally:
        for _, inbox in procs.values():
            inbox.put(None)
        for proc, _ in procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)


def _died_record(cell: Cell, exitcode: int | None, options: RunOptions,
                 why: str | None = None) -> Any:
    """A failed record for the cell a dead worker was running. The kernel released the
    worker's claim when it died; the record is written under a claim of this process."""
    how = f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else \
        f"exit code {exitcode}"
    fields = {"reason": f"worker process {why}" if why else
              f"worker process died ({how}) while running this cell"}
    if why:
        fields["stopped_by"] = "time_cap"
    record = new_record(cell, make_datamodule(cell.dataset), options, status="failed", **fields)
    path = cell.path(options.results_dir)
    claim = try_claim(path)
    try:
        record.write(path)
    finally:
        if claim is not None:
            claim.release()
    return record
