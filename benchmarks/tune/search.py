"""One equal hyperparameter search: a (dataset, model, budget) cell at one training seed,
searched over its model's declared space on the validation split only.

    result = tune(cell, dm, hardware, trials=16, sampler_seed=0)
    result.chosen["params"]          # the best trial's settings, e.g. {"depth": 3, "lr": ...}

The study is Optuna's, with a seeded multivariate TPE sampler (the first max(S, min(10,
trials // 2)) trials are its random start-up), or a grid when every dimension is
discrete and the whole grid fits in `trials` (each point once in a seeded order, so
fewer trials are run than asked; the config says "grid"). Each trial is a full
training run of the cell's budget with its early stopping, at the cell's seed; the
objective is the dataset's primary metric at the best validation epoch, in its
direction. Trials are asked in batches of S with
TPE's constant liar (the running ones count as bad, so a batch spreads out) and told
when the batch has trained, so the sequence of trials is the same whether a batch
trains as one stacked model or trial by trial: S is part of the search's definition,
how it trained is not.

Test isolation is by construction: training sees the datamodule through
`ValidationOnly`, which lists only train and val and raises `HiddenSplitRead` on any
read of test or ood_test, so neither the plain path (train_neural(..., test=False)),
the stacked path nor a fitted model (scored on the splits it is shown) can reach them.

Stacking: trials of one batch that share every setting but lr and weight_decay (the
same architecture, batch size and budget) train as one stacked model, one member per
trial, when benchmarks.train.stacked offers `Member(seed, lr, weight_decay)` and the
model can be stacked (stack_problem); otherwise, and for fitted models and graph views,
they train one by one. Both give the same values to float rounding.

Ties: the earliest trial with the best value is chosen, so the choice is deterministic.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .. import registry
from ..data import MathDataModule
from ..errors import UserError
from ..run.environment import environment
from ..run.execute import deadline, hard_cap_s, prepare
from ..run.files import MAX_SEED, record_path, write_text_atomic
from ..run.plan import Cell, make_cell
from ..run.records import config_hash
from ..train.hardware import Hardware
from ..train.outcome import TrainOutcome
from .space import STACKABLE_FIELDS, SearchSpace, parse_space

TUNING_VERSION = 1   # bump when the objective or the trial protocol changes: old searches rerun
DEFAULT_BATCH = 8    # trials asked at once (S): one stacked model's members
HIDDEN_SPLITS = ("test", "ood_test")


class HiddenSplitRead(RuntimeError):
    """A search read a test split: a bug in the harness, never a trial's failure."""


class ValidationOnly:
    """A datamodule as a search sees it: train and val only. Every other attribute is the
    wrapped datamodule's, so the training paths run unchanged."""

    def __init__(self, dm: MathDataModule) -> None:
        self._dm = dm

    def __getattr__(self, name: str) -> Any:
        return getattr(self._dm, name)

    def _visible(self, split: str) -> str:
        if split in HIDDEN_SPLITS:
            raise HiddenSplitRead(f"a hyperparameter search read the {split!r} split")
        return split

    @property
    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in self._dm.splits if s not in HIDDEN_SPLITS)

    def inputs(self, split: str, *args: Any, **kwargs: Any) -> Any:
        return self._dm.inputs(self._visible(split), *args, **kwargs)

    def target(self, split: str) -> Any:
        return self._dm.target(self._visible(split))

    def arrays(self, split: str, *args: Any, **kwargs: Any) -> Any:
        return self._dm.arrays(self._visible(split), *args, **kwargs)

    def loader(self, split: str, *args: Any, **kwargs: Any) -> Any:
        return self._dm.loader(self._visible(split), *args, **kwargs)

    def split_size(self, split: str) -> int:
        return self._dm.split_size(self._visible(split))

    def test_dataloader(self) -> Any:
        raise HiddenSplitRead("a hyperparameter search asked for the test loader")


@dataclass
class TrialRecord:
    """One trial as tuning.json holds it."""

    number: int
    params: dict[str, Any]
    state: str                      # "complete" or "failed"
    value: float | None             # the primary validation metric (None when failed)
    epochs: int = 0
    best_epoch: int | None = None
    seconds: float = 0.0            # its training and validation time (a stacked
                                    # trial's share of the joint run)
    stacked: bool = False           # trained as a member of one stacked model
    reason: str | None = None       # why it failed


@dataclass
class TuningResult:
    """A finished search: every trial, the chosen configuration and what it cost."""

    suite: str
    dataset_id: str
    model_id: str
    model: str
    metric: str
    direction: str                  # "maximize" or "minimize"
    config: dict[str, Any]          # everything that defines the search (hashed)
    config_hash: str
    trials: list[TrialRecord] = field(default_factory=list)
    chosen: dict[str, Any] | None = None  # trial, value, params, hparams, budget (None:
                                          # every trial failed; the cell keeps its defaults)
    cost_s: float = 0.0             # wall time of the whole search
    created: str = ""
    environment: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(_finite(asdict(self)), indent=1, sort_keys=False) + "\n"

    @classmethod
    def from_json(cls, text: str) -> TuningResult:
        data = json.loads(text)
        data["trials"] = [TrialRecord(**t) for t in data.get("trials", [])]
        return cls(**data)

    def write(self, results_dir: str | Path) -> Path:
        path = tuning_path(results_dir, self.suite, self.dataset_id, self.model_id)
        write_text_atomic(path, self.to_json())
        return path


def tuning_path(results_dir: str | Path, suite: str, dataset_id: str, model_id: str) -> Path:
    """results/runs/<suite>/<dataset id>/<model id>/tuning.json, beside the seeds' records."""
    return record_path(results_dir, suite, dataset_id, model_id, 0).with_name("tuning.json")


def read_tuning(path: str | Path) -> TuningResult | None:
    """The search stored at `path`, or None when there is none or it is unreadable (a
    torn or foreign file is searched again, as a broken record is run again)."""
    try:
        return TuningResult.from_json(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def search_config(cell: Cell, space: SearchSpace, trials: int, sampler_seed: int,
                  batch: int = DEFAULT_BATCH) -> dict[str, Any]:
    """What defines a search, as hashed: the untuned cell's identity without what is the
    seed's own (its seed, and the data_seed that follows it), so the pair's dataset,
    model as the suite gives it and budget; then, named as such, the seed the search
    trains at and its data seed, the view, the space, the trial count, the batch S, the
    sampler and its seed, and the protocol's version."""
    identity = {k: v for k, v in cell.identity.items() if k != "seed"}
    data_params = dict(identity["dataset"]["params"])
    data_seed = data_params.pop("data_seed", None)
    identity["dataset"] = {**identity["dataset"], "params": data_params}
    grid = _uses_grid(space, trials)
    return {**identity, "tuning_seed": cell.seed, "tuning_data_seed": data_seed,
            "view": getattr(cell.view, "value", cell.view), "space": space.to_json(),
            "trials": trials, "batch": batch, "sampler": "grid" if grid else "tpe",
            "sampler_seed": sampler_seed, "version": TUNING_VERSION}


def _uses_grid(space: SearchSpace, trials: int) -> bool:
    size = space.grid_size()
    return size is not None and size <= trials


def trial_cell(cell: Cell, params: dict[str, Any], space: SearchSpace,
               dm: MathDataModule) -> Cell:
    """The cell with a trial's (or the chosen) settings: factory hyperparameters merged
    into the model's, budget fields into the budget; made by make_cell, so a parameter
    budget's width is fitted again and the identity holds the values."""
    hparams, budget = space.split(params)
    model = dataclasses.replace(cell.model, hparams={**cell.model.hparams, **hparams})
    return make_cell(cell.suite, cell.dataset, model, cell.seed,
                     dataclasses.replace(cell.budget, **budget), dm)


def check_search(trials: Any, sampler_seed: Any, batch: Any) -> None:
    """One-line UserError for a trial count, sampler seed or batch S out of range."""
    def is_int(v: Any) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    if not is_int(trials) or trials < 1:
        raise UserError(f"tuning: trials must be an integer >= 1, got {trials!r}")
    if not is_int(sampler_seed) or not 0 <= sampler_seed <= MAX_SEED:
        raise UserError(f"tuning: seed must be an integer in 0..{MAX_SEED}, got {sampler_seed!r}")
    if not is_int(batch) or batch < 1:
        raise UserError(f"tuning: batch must be an integer >= 1, got {batch!r}")


# -- the search ---------------------------------------------------------------------------
def tune(cell: Cell, dm: MathDataModule, hardware: Hardware, trials: int, sampler_seed: int,
         *, batch: int = DEFAULT_BATCH, stacked: bool = True) -> TuningResult:
    """Search the cell's model space at the cell's seed; the result is not written (see
    TuningResult.write). stacked=False trains every trial on its own (same trials)."""
    import optuna

    check_search(trials, sampler_seed, batch)
    entry = registry.get_model_entry(cell.model.name)
    space = parse_space(entry, cell.model.param_budget)
    if not space:
        raise UserError(f"model {cell.model.name!r} has no hyperparameters to tune")
    config = search_config(cell, space, trials, sampler_seed, batch)
    spec = dm.spec
    direction = "maximize" if spec.higher_is_better else "minimize"
    n_trials = space.grid_size() if config["sampler"] == "grid" else trials
    t0 = time.perf_counter()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial told
    study = optuna.create_study(direction=direction, sampler=_sampler(space, trials,
                                                                      sampler_seed, batch))
    distributions = space.distributions()
    if config["sampler"] == "grid":
        for point in _grid_points(space, sampler_seed):
            study.enqueue_trial(point)
    records: list[TrialRecord] = []
    guard = ValidationOnly(dm)
    for start in range(0, n_trials, batch):
        asked = [study.ask(distributions) for _ in range(min(batch, n_trials - start))]
        cells = [trial_cell(cell, t.params, space, dm) for t in asked]
        for t, rec in zip(asked, _train_batch(cells, dm, guard, hardware, spec.metric,
                                              stacked), strict=True):
            rec.number, rec.params = t.number, dict(t.params)
            records.append(rec)
            if rec.state == "complete":
                study.tell(t, rec.value)
            else:
                study.tell(t, state=optuna.trial.TrialState.FAIL)
    return TuningResult(
        suite=cell.suite, dataset_id=cell.dataset.id, model_id=cell.model.id,
        model=cell.model.name, metric=spec.metric, direction=direction, config=config,
        config_hash=config_hash(config), trials=records,
        chosen=_choose(records, space, spec.higher_is_better),
        cost_s=time.perf_counter() - t0,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        environment=environment(hardware.accelerator))


def _grid_points(space: SearchSpace, seed: int) -> list[dict[str, Any]]:
    """Every point of a discrete space once, in a seeded order. (Optuna's GridSampler
    stops its study when the grid is done, which ask-and-tell cannot take.)"""
    import itertools
    import random

    axes = space.grid()
    points = [dict(zip(axes, values, strict=True)) for values in itertools.product(*axes.values())]
    random.Random(seed).shuffle(points)
    return points


def _sampler(space: SearchSpace, trials: int, seed: int, batch: int) -> Any:
    import optuna

    if _uses_grid(space, trials):  # every trial is enqueued: the sampler draws nothing
        return optuna.samplers.RandomSampler(seed=seed)
    # The random start-up is at least the first batch (TPE needs told trials to model)
    # and at most 10, Optuna's default; multivariate TPE models lr and weight decay jointly.
    return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                      n_startup_trials=max(batch, min(10, trials // 2)))


def _choose(records: list[TrialRecord], space: SearchSpace,
            higher_is_better: bool) -> dict[str, Any] | None:
    """The best complete trial; on a tie the earliest (a strict comparison)."""
    sign = 1.0 if higher_is_better else -1.0
    best: TrialRecord | None = None
    for rec in sorted(records, key=lambda r: r.number):
        if rec.state == "complete" and (best is None or sign * rec.value > sign * best.value):
            best = rec
    if best is None:
        return None
    hparams, budget = space.split(best.params)
    return {"trial": best.number, "value": best.value, "params": dict(best.params),
            "hparams": hparams, "budget": budget}


def _train_batch(cells: list[Cell], dm: MathDataModule, guard: ValidationOnly,
                 hardware: Hardware, metric: str, stacked: bool) -> list[TrialRecord]:
    """One record per cell, in order: groups that share all but lr and weight decay as
    stacked models where possible, the others one by one."""
    out: dict[int, TrialRecord] = {}
    groups: dict[str, list[int]] = {}
    for i, c in enumerate(cells):
        groups.setdefault(_stack_key(c), []).append(i)
    for members in groups.values():
        if stacked and len(members) > 1:
            outcomes = _train_stacked([cells[i] for i in members], dm, guard, hardware)
            if outcomes is not None:
                for i, o in zip(members, outcomes, strict=True):
                    out[i] = _trial_record(o, metric, stacked=True)
                continue
        for i in members:
            out[i] = _train_one(cells[i], dm, guard, hardware, metric)
    return [out[i] for i in range(len(cells))]


def _stack_key(cell: Cell) -> str:
    """Trials with equal keys differ only in what a stacked member sets on its own."""
    budget = {k: v for k, v in cell.budget.to_dict().items() if k not in STACKABLE_FIELDS}
    return json.dumps([cell.model.name, cell.hparams, budget], sort_keys=True, default=str)


def _train_one(cell: Cell, dm: MathDataModule, guard: ValidationOnly, hardware: Hardware,
               metric: str) -> TrialRecord:
    """Train (or fit) one trial as the runner would, shown train and val only."""
    import lightning as L

    from ..train.fitted import fit_model
    from ..train.neural import train_neural

    t0 = time.perf_counter()
    try:
        prepare(cell, dm)
        spec = dm.spec.for_view(cell.view)
        L.seed_everything(cell.seed, workers=False, verbose=False)
        model = registry.create_model(cell.model.name, spec, **cell.hparams)
        with _quiet(), deadline(hard_cap_s(cell.budget)):  # a stuck step, as in a cell
            if registry.get_model_entry(cell.model.name).kind == "fitted":
                outcome = fit_model(model, guard, spec, cell.seed)
            else:
                outcome = train_neural(model, guard, spec, cell.budget, hardware, test=False)
    except (UserError, HiddenSplitRead):
        raise
    except Exception as exc:  # one setting that diverges or crashes is a failed trial
        return TrialRecord(0, {}, "failed", None, seconds=time.perf_counter() - t0,
                           reason=_one_line(exc))
    rec = _trial_record(outcome, metric, stacked=False)
    rec.seconds = time.perf_counter() - t0
    return rec


def _trial_record(outcome: TrainOutcome, metric: str, stacked: bool) -> TrialRecord:
    value = outcome.metrics.get("val", {}).get(metric)
    seconds = outcome.train_s + outcome.eval_s
    if outcome.failed or value is None or not math.isfinite(value):
        reason = outcome.failed or f"non-finite validation {metric} ({value})"
        return TrialRecord(0, {}, "failed", None, outcome.epochs, None, seconds, stacked,
                           reason)
    return TrialRecord(0, {}, "complete", float(value), outcome.epochs, outcome.best_epoch,
                       seconds, stacked)


def stacked_module() -> Any:
    """benchmarks.train.stacked when it trains members with their own lr and weight decay
    (its `Member`), else None: the trials then train one by one."""
    from ..train import stacked

    return stacked if hasattr(stacked, "Member") else None


def _train_stacked(cells: list[Cell], dm: MathDataModule, guard: ValidationOnly,
                   hardware: Hardware) -> list[TrainOutcome] | None:
    """The trials of one group as members of one stacked model, or None when they cannot
    be stacked here (no Member yet, a model or view vmap cannot batch, several devices)."""
    stacked = stacked_module()
    if stacked is None:
        return None
    first = cells[0]
    spec = dm.spec.for_view(first.view)
    if stacked.stack_problem(first.model.name, spec, first.hparams, first.budget):
        return None
    members = [stacked.Member(c.seed, lr=c.budget.lr, weight_decay=c.budget.weight_decay)
               for c in cells]  # lr before batch_scale, as a budget's: scaled per member
    prepare(first, dm)
    try:
        with _quiet():
            return stacked.train_stacked(first.model.name, first.hparams, members, guard, spec,
                                         first.budget, hardware)
    except stacked.NotStackable:
        return None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Lightning's and torch's per-run notes, once per trial, would drown a search's output."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _finite(obj: Any) -> Any:
    """NaN and inf become None: tuning.json is strict JSON."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def _one_line(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}".strip()
    return text.splitlines()[0] if text else type(exc).__name__
