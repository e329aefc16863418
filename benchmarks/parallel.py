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

import multiprocessing as mp
import os
import queue
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .errors import UserError
from .records import lock_path, release_claim
from .runner import Cell, DataModuleCache, ProgressFn, RunOptions, plan_suite, run_claimed
from .suite import Suite


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker process needs beyond the cells: plugins, threads, its device."""

    options: RunOptions
    plugin_files: tuple[str, ...]
    threads: int
    device: str | None  # a CUDA_VISIBLE_DEVICES value, or None on CPU


def _worker(setup: WorkerSetup, tasks: Any, results: Any, wid: int) -> None:
    if setup.device is not None:
        os.environ["CUDA_VISIBLE_DEVICES"] = setup.device
    import torch

    from . import registry

    torch.set_num_threads(setup.threads)
    registry.load_plugins(setup.plugin_files)
    cache = DataModuleCache()
    parent = os.getppid()
    while True:
        try:
            item = tasks.get(timeout=2.0)
        except queue.Empty:
            if os.getppid() != parent:  # the suite runner was killed: do not linger
                return
            continue
        if item is None or os.getppid() != parent:  # finished, or the runner is gone
            return
        index, cell = item
        try:
            outcome, record = run_claimed(
                cell, cache.get(cell.dataset), setup.options,
                on_start=lambda i=index: results.put(("start", wid, i, None)))
        except KeyboardInterrupt:
            return
        except BaseException as exc:  # a user error in one cell (bad budget) ends that cell only
            outcome, record = "error", {"reason": f"{type(exc).__name__}: {exc}"}
        results.put((outcome, wid, index, record))


def gpu_slots(cells_per_device: int) -> list[str | None]:
    """Device of each worker: every visible GPU `cells_per_device` times; [] without GPUs."""
    import torch

    if not torch.cuda.is_available():
        return []
    return [str(d) for d in range(torch.cuda.device_count()) for _ in range(cells_per_device)]


def iter_suite_parallel(suite: Suite, options: RunOptions, workers: int,
                        plugin_files: tuple[str, ...] = (), cells_per_device: int = 1,
                        progress: ProgressFn | None = None
                        ) -> Iterator[tuple[Cell, dict[str, Any] | None, bool]]:
    """Like runner.iter_suite, with cells spread over worker processes (results arrive in
    completion order)."""
    plan = plan_suite(suite)
    total = len(plan.cells)
    devices: list[str | None] = []
    if options.accelerator in ("auto", "gpu", "cuda"):
        devices = gpu_slots(cells_per_device)
    if devices:
        workers = len(devices) if workers <= 0 else workers
    workers = max(1, min(workers, total or 1))
    threads = max(1, (os.cpu_count() or 1) // workers)
    ctx = mp.get_context("spawn")
    tasks, results = ctx.Queue(), ctx.Queue()
    for item in enumerate(plan.cells):
        tasks.put(item)
    procs: dict[int, Any] = {}
    current: dict[int, int] = {}  # worker id -> index of the cell it is running

    def start(wid: int) -> None:
        device = devices[wid % len(devices)] if devices else None
        setup = WorkerSetup(options, tuple(plugin_files), threads, device)
        proc = ctx.Process(target=_worker, args=(setup, tasks, results, wid), daemon=True)
        proc.start()
        procs[wid] = proc

    for wid in range(workers):
        start(wid)
    remaining = total
    try:
        while remaining:
            try:
                event, wid, index, record = results.get(timeout=1.0)
            except queue.Empty:
                for wid, proc in list(procs.items()):
                    if proc.is_alive():
                        continue
                    if wid in current:  # it died inside a cell: that cell alone is lost
                        index = current.pop(wid)
                        cell = plan.cells[index]
                        record = _died_record(cell, proc.exitcode, options)
                        remaining -= 1
                        if progress:
                            progress("end", cell, index, total, record)
                        yield cell, record, True
                    if remaining > len(current):
                        start(wid)  # a replacement takes the next cells from the queue
                    else:
                        del procs[wid]
                continue
            cell = plan.cells[index]
            if event == "start":
                current[wid] = index
                if progress:
                    progress("start", cell, index, total, None)
                continue
            current.pop(wid, None)
            remaining -= 1
            if event == "error":
                raise UserError(f"{cell.label}: {record['reason']}")
            if progress:
                if event == "busy":
                    progress("busy", cell, index, total, None)
                else:
                    progress("resumed" if event == "done" else "end", cell, index, total, record)
            yield cell, record, event == "ran"
    finally:
        for _ in procs:
            tasks.put(None)
        for proc in procs.values():
            proc.join(timeout=10)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)


def _died_record(cell: Cell, exitcode: int | None, options: RunOptions) -> dict[str, Any]:
    """A failed record for the cell a dead worker was running; its claim is released."""
    from .records import write_json_atomic
    from .runner import make_datamodule, model_setup, new_record

    dm = make_datamodule(cell.dataset)
    _, _, spec, given = model_setup(cell, dm)
    how = f"killed by signal {-exitcode}" if exitcode is not None and exitcode < 0 else \
        f"exit code {exitcode}"
    record = new_record(cell, dm, spec, given, options)
    record.update(status="failed", reason=f"worker process died ({how}) while running this cell",
                  time={"total_s": 0.0})
    path = cell.path(options.results_dir)
    write_json_atomic(path, record)
    release_claim(lock_path(path))
    return record
