"""Running a suite's cells in this process: resume (a cell whose record is current is
not run again, and one that another suite of the results folder finished is adopted
from it), claims (a cell another runner holds is left to it), seeds trained together
where they can be, and one progress event per cell."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .. import registry
from ..data import MathDataModule
from ..errors import UserError
from ..train.outcome import TrainOutcome
from .claims import Claim, clear_if_unheld, try_claim
from .execute import RunOptions, prepare, run_cell, secondary_rank
from .files import explain_path, remove_debris, write_bytes_atomic
from .plan import Cell, SuitePlan, make_datamodule
from .records import RecordError, RunRecord, read_record

ProgressFn = Callable[[str, Cell, int, int, RunRecord | None], None]
WorkItem = list[tuple[int, Cell]]  # (index in the plan, cell): what a runner takes at once
PROGRESS_EVENT = {"ran": "end", "done": "resumed", "busy": "busy"}  # run_claimed's outcomes


def finished_record(cell: Cell, options: RunOptions) -> RunRecord | None:
    """The existing record of this exact cell configuration, if it need not run again.
    A file that is not a valid record (or is of another configuration) is run again."""
    path = cell.path(options.results_dir)
    if not path.is_file():
        return None
    if options.force and path.stat().st_mtime_ns < options.forced_since_ns:
        return None  # a record from before this --force run: it is to be replaced
    try:
        rec = read_record(path)
    except RecordError:
        return None
    if rec.config_hash != cell.config_hash:
        return None
    if rec.status == "failed" and options.retry_failed:
        return None
    return rec


def adopt_record(cell: Cell, options: RunOptions) -> RunRecord | None:
    """The same cell finished under another suite of this results folder, copied under
    this suite: a cell is its configuration, not its suite (`default`'s cells are the
    reference's), so a suite whose cells another suite ran runs none of them again. The
    record is copied with its predictions (byte for byte, so their hash holds) and, where
    this run explains, its attributions; the files beside it first, the record last.
    Call it holding the cell's claim. None when no other suite has it, with --force, and
    under DDP (a peer that did not adopt would train alone)."""
    if options.force or options.hardware.devices > 1:
        return None
    own = cell.path(options.results_dir)
    for other in sorted(Path(options.results_dir, "runs").glob(
            f"*/{cell.dataset.id}/{cell.model.id}/{own.name}")):  # ids hold no glob characters
        if other.parent.parent.parent.name == cell.suite:
            continue
        try:
            rec = read_record(other)
        except RecordError:
            continue
        if rec.config_hash != cell.config_hash or (rec.status == "failed"
                                                    and options.retry_failed):
            continue
        preds = rec.predictions_path()
        try:
            if preds is not None:
                write_bytes_atomic(own.with_name(preds.name), preds.read_bytes())
            if options.explain and explain_path(other).is_file():
                write_bytes_atomic(explain_path(own), explain_path(other).read_bytes())
        except OSError:
            continue  # a file beside it is missing or unreadable: run the cell instead
        adopted = rec.model_copy(update={"suite": cell.suite})
        adopted.write(own)
        return read_record(own)
    return None


def claim_unfinished(cell: Cell, options: RunOptions
                     ) -> tuple[Claim | None, RunRecord | None]:
    """(claim, None) when this process now holds the unfinished cell (debris of a killed
    writer cleared); (None, record) when it is finished; (None, None) when another
    process holds it."""
    done = finished_record(cell, options)
    if done is not None:
        clear_if_unheld(cell.path(options.results_dir))
        return None, done
    path = cell.path(options.results_dir)
    claim = try_claim(path)
    if claim is None:
        return None, None
    done = finished_record(cell, options) or adopt_record(cell, options)  # it may have
    if done is not None:                                                 # finished meanwhile
        claim.release()
        return None, done
    remove_debris(path)
    return claim, None


def run_claimed(cell: Cell, dm: MathDataModule, options: RunOptions,
                on_start: Callable[[], None] | None = None
                ) -> tuple[str, RunRecord | None]:
    """Run a cell unless it is finished or another process holds it: ("done", record),
    ("busy", None) or ("ran", record). The claim is released however the cell ends."""
    if secondary_rank():  # a DDP peer follows rank 0 cell by cell, which holds the claim
        done = finished_record(cell, options)
        return ("done", done) if done is not None else ("ran", run_cell(cell, dm, options))
    claim, done = claim_unfinished(cell, options)
    if done is not None:
        return "done", done
    if claim is None:
        return "busy", None
    try:
        if on_start:
            on_start()
        return "ran", run_cell(cell, dm, options)
    finally:
        claim.release()


class DataModuleCache:
    """One dataset in memory at a time: cells are ordered dataset-major. With `fresh`
    (`--force`), each dataset's cached file is regenerated the first time it is used."""

    def __init__(self, fresh: bool = False) -> None:
        self.key: str | None = None
        self.dm: MathDataModule | None = None
        self.fresh, self.refreshed = fresh, set()

    def get(self, cell: Cell) -> MathDataModule:
        cfg = cell.dataset
        key = f"{cfg.name}:{sorted(cfg.params.items())}"
        if key != self.key:
            self.key, self.dm = key, make_datamodule(cfg)
            if self.fresh and key not in self.refreshed:
                self.dm.drop_cache()
                self.refreshed.add(key)
        return self.dm


def work_items(cells: list[Cell], vectorise_seeds: bool) -> list[WorkItem]:
    """A cell each, or with vectorise_seeds all the seeds of a cell (same dataset, model and
    budget), which may then train as one stacked model."""
    indexed = list(enumerate(cells))
    if not vectorise_seeds:
        return [[ic] for ic in indexed]
    # The plan interleaves models within a seed, so a cell's seeds are not adjacent:
    # group them by key, in the order each group first appears.
    groups: dict[tuple, WorkItem] = {}
    for ic in indexed:
        groups.setdefault((ic[1].suite, ic[1].dataset.id, ic[1].model.id), []).append(ic)
    return list(groups.values())


def run_item(item: WorkItem, dm: MathDataModule, options: RunOptions,
             on_start: Callable[[int], None] = lambda index: None
             ) -> Iterator[tuple[int, str, RunRecord | None]]:
    """Run the cells of one work item, yielding (index, outcome, record) per cell with
    run_claimed's outcomes; `on_start(index)` is called before a cell trains. With
    options.vectorise_seeds the item's seeds train together where supported."""
    together: dict[int, RunRecord] = {}
    if options.vectorise_seeds and len(item) > 1 and not options.explain:  # explaining
        # needs each seed's own trained model
        index_of = {cell.seed: index for index, cell in item}
        together = run_stacked([c for _, c in item], dm, options,
                               on_start=lambda cells: [on_start(index_of[c.seed])
                                                       for c in cells])
    for index, cell in item:
        if cell.seed in together:
            yield index, "ran", together[cell.seed]
        else:
            yield (index, *run_claimed(cell, dm, options, on_start=lambda i=index: on_start(i)))


def run_stacked(group: list[Cell], dm: MathDataModule, options: RunOptions,
                on_start: Callable[[list[Cell]], None] | None = None
                ) -> dict[int, RunRecord]:
    """Train the unfinished seeds of one (dataset, model, budget) together when the model
    can be stacked (benchmarks.train.stacked); the records of the cells it ran, by seed.
    Cells it did not take (finished, claimed elsewhere, not stackable) run the usual way
    after. `on_start(cells)` is called once the cells to train together are claimed."""
    from ..train.stacked import NotStackable, device_for, stack_problem, train_stacked

    first = group[0]
    entry = registry.get_model_entry(first.model.name)
    if entry.kind != "neural" or entry.unavailable_reason() or secondary_rank():
        return {}
    if any(not c.same_but_seed(first) for c in group):
        return {}
    pending = [c for c in group if finished_record(c, options) is None]
    if len(pending) < 2:
        return {}
    try:
        device_for(options.hardware)
        if stack_problem(first.model.name, dm.spec.for_view(first.view), first.hparams,
                         first.budget):
            return {}
    except (NotStackable, UserError):
        return {}
    claims: list[tuple[Cell, Claim]] = []
    try:
        for c in pending:
            claim, _ = claim_unfinished(c, options)
            if claim is not None:
                claims.append((c, claim))
        cells = [c for c, _ in claims]
        if len(cells) < 2:
            return {}
        if on_start:
            on_start(cells)
        prepare(cells[0], dm)
        try:
            outs: list[TrainOutcome] = train_stacked(
                first.model.name, first.hparams, [c.seed for c in cells], dm,
                dm.spec.for_view(first.view), first.budget, options.hardware)
        except NotStackable:
            return {}
        return {c.seed: run_cell(c, dm, options, trained=o)
                for c, o in zip(cells, outs, strict=True)}
    finally:
        for _, claim in claims:
            claim.release()


def iter_suite(plan: SuitePlan, options: RunOptions, progress: ProgressFn | None = None
               ) -> Iterator[tuple[Cell, RunRecord | None, bool]]:
    """Run a plan cell by cell, yielding (cell, record, was_run); record is None for a cell
    another process is running. `progress(event, cell, index, total, record)` is called
    with event "start" before and "end" after a cell, "resumed" for one finished before,
    "busy" for one claimed elsewhere."""
    total = len(plan.cells)
    cache = DataModuleCache(fresh=options.fresh_data)

    def notify(event: str, index: int, record: Any) -> None:
        if progress:
            progress(event, plan.cells[index], index, total, record)

    for item in work_items(plan.cells, options.vectorise_seeds):
        dm = cache.get(item[0][1])
        for index, outcome, record in run_item(item, dm, options,
                                               on_start=lambda i: notify("start", i, None)):
            notify(PROGRESS_EVENT[outcome], index, record)
            yield plan.cells[index], record, outcome == "ran"
