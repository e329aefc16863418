"""The plan of a suite: every (dataset, model, seed) cell it runs, resolved once.

Planning checks names, parameters and budgets before anything trains, picks the view each
model reads, fits the width of each parameter budget, and leaves out the incompatible
pairs with their reason. A `Cell` carries all of it, so nothing downstream looks it up
again: its identity (the configuration whose hash decides whether a record is current),
the view and the factory's hyperparameters. `Cell.from_record` rebuilds exactly the cell a
record describes, budgets included.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import registry
from ..contract import DatasetSpec, Modality, choose_view
from ..data import MathDataModule
from ..errors import UserError
from ..train.budget import TrainBudget
from .files import record_path
from .records import RunRecord, config_hash, train_budget
from .suite import DatasetConfig, ModelConfig, Suite


@dataclass(frozen=True)
class Cell:
    """One (dataset, model, seed) of a suite, with everything resolved at planning."""

    suite: str
    dataset: DatasetConfig
    model: ModelConfig
    seed: int
    budget: TrainBudget                 # the suite's [budget] with the dataset's overrides
    view: Modality                      # the view the model reads
    hparams: dict[str, Any]             # the factory's: defaults, given, a budget's width
    identity: dict[str, Any] = field(repr=False)  # what defines the result (hashed)

    @property
    def label(self) -> str:
        return f"{self.dataset.id} · {self.model.id} · seed {self.seed}"

    @property
    def config_hash(self) -> str:
        return config_hash(self.identity)

    def path(self, results_dir: Path) -> Path:
        return record_path(results_dir, self.suite, self.dataset.id, self.model.id, self.seed)

    def same_but_seed(self, other: Cell) -> bool:
        return (self.suite, self.dataset, self.model, self.budget) == \
            (other.suite, other.dataset, other.model, other.budget)

    @classmethod
    def from_record(cls, rec: RunRecord) -> Cell:
        """The cell a record describes. The recorded hparams include a budget's fitted
        width, which the identity never held (it holds the default), so it is dropped and
        fitted again."""
        d, m = rec.dataset, rec.model
        hparams = dict(m.hparams)
        if m.param_budget is not None:
            width = registry.get_model_entry(m.name).width
            hparams.pop(width, None)
        return make_cell(rec.suite, DatasetConfig(d.id, d.name, dict(d.params)),
                         ModelConfig(m.id, m.name, hparams, param_budget=m.param_budget),
                         rec.seed, train_budget(rec.budget))


@dataclass
class SuitePlan:
    """Cells to run, and the (dataset id, model id, reason) pairs that cannot run: those
    the suite asked for (`incompatible`, named in the run's output and the leaderboard's
    notes) and every such pair of its datasets and models (`cannot_run`, the "-" of the
    summary grid)."""

    suite: Suite
    cells: list[Cell] = field(default_factory=list)
    incompatible: list[tuple[str, str, str]] = field(default_factory=list)
    cannot_run: set[tuple[str, str]] = field(default_factory=set)

    def current_hashes(self) -> dict[tuple[str, str, int], str]:
        """(dataset id, model id, seed) -> the config hash a current record has."""
        return {(c.dataset.id, c.model.id, c.seed): c.config_hash for c in self.cells}


def make_datamodule(cfg: DatasetConfig) -> MathDataModule:
    """The dataset of a config, with its suite's row limits."""
    dm = registry.create_dataset(cfg.name, **cfg.params)
    return dm.limit_rows(cfg.rows) if cfg.rows else dm


def incompatibility(spec: DatasetSpec, model_name: str) -> str | None:
    """Why a model cannot run on a dataset (task type, or no view it accepts), or None."""
    entry = registry.get_model_entry(model_name)
    if spec.task not in entry.tasks:
        return (f"model {model_name!r} applies to {', '.join(t.value for t in entry.tasks)} "
                f"tasks; dataset {spec.name!r} is {spec.task.value}")
    if choose_view(spec, entry.modalities) is None:
        return (f"model {model_name!r} accepts {', '.join(m.value for m in entry.modalities)}; "
                f"dataset {spec.name!r} offers {', '.join(m.value for m in spec.modalities)}")
    return None


def make_cell(suite: str, dcfg: DatasetConfig, mcfg: ModelConfig, seed: int,
              budget: TrainBudget, dm: MathDataModule | None = None) -> Cell:
    """Resolve one cell: view, factory hyperparameters (a parameter budget's width fitted
    on the meta device) and identity. UserError for an incompatible pair or a budget no
    width can reach."""
    from ..train.widths import fit_width

    dm = dm or make_datamodule(dcfg)
    entry = registry.get_model_entry(mcfg.name)
    reason = incompatibility(dm.spec, mcfg.name)
    if reason:
        raise UserError(f"cannot run this pair: {reason}")
    view = choose_view(dm.spec, entry.modalities)
    if mcfg.view is not None:  # a suite asked for one view (the dataset's own encoding)
        key = dm.spec.view_spec(mcfg.view).key
        if dm.spec.view_spec(key).modality not in entry.modalities:
            raise UserError(f"model {mcfg.name!r} cannot read the {key} view of "
                            f"{dcfg.id!r}; it accepts {', '.join(m.value for m in entry.modalities)}")
        view = key
    given = registry.bind_params("model", mcfg.name, entry.params, dict(mcfg.hparams))
    defaults = registry.defaults(entry.params)
    hparams = {**defaults, **given}
    if mcfg.param_budget is not None:
        hparams[entry.width] = fit_width(mcfg.name, dm.spec.for_view(view), mcfg.param_budget,
                                         given)[0]
    params = dict(dm.params)
    if "data_seed" in dcfg.params:  # a seed's own data split (dm may be another seed's)
        params["data_seed"] = dcfg.params["data_seed"]
    identity = {"dataset": {"name": dm.name, "version": dm.version, "params": params},
                "model": {"name": mcfg.name, "hparams": {**defaults, **mcfg.hparams},
                          "param_budget": mcfg.param_budget},
                "seed": seed, "budget": budget.to_dict()}
    if dcfg.rows:  # absent otherwise, so that older cells keep their identity
        identity["dataset"]["rows"] = dict(sorted(dcfg.rows.items()))
    if view != choose_view(dm.spec, entry.modalities) or mcfg.view is not None:
        identity["model"]["view"] = view
    return Cell(suite, dcfg, mcfg, seed, budget, view, hparams, identity)


def with_baselines(suite: Suite) -> tuple[ModelConfig, ...]:
    """The suite's models, plus every registered baseline it does not name already."""
    models = list(suite.models)
    if suite.baseline:
        named = {m.name for m in models}
        models += [ModelConfig(n, n) for n in registry.baseline_models() if n not in named]
    return tuple(models)


def seeded_dataset(dcfg: DatasetConfig, seed: int, follow: bool) -> DatasetConfig:
    """The dataset config a seed trains on: with `follow`, its data_seed is the seed, so
    each seed re-draws the data split as well as the initialisation (unless the suite
    pins data_seed itself, or the dataset has none)."""
    if not follow or "data_seed" in dcfg.params:
        return dcfg
    names = {p.name for p in registry.get_dataset_entry(dcfg.name).params}
    if "data_seed" not in names:
        return dcfg
    return dataclasses.replace(dcfg, params={**dcfg.params, "data_seed": seed})


def plan_suite(suite: Suite) -> SuitePlan:
    """All compatible cells of a suite, dataset-major so each dataset is generated once.
    Datasets and models are checked (names, parameters) before anything trains."""
    plan = SuitePlan(suite)
    models = with_baselines(suite)
    for mcfg in models:
        registry.get_model_entry(mcfg.name)  # unknown names fail here, before training
    follow = suite.data_seeds == "follow"
    for dcfg in suite.datasets:
        dm = make_datamodule(dcfg)
        seeds = dcfg.seeds or suite.seeds
        for mcfg in models:
            reason = incompatibility(dm.spec, mcfg.name)
            if reason:
                plan.cannot_run.add((dcfg.id, mcfg.id))
            if not mcfg.applies_to(dcfg.id):
                continue
            if reason:
                plan.incompatible.append((dcfg.id, mcfg.id, reason))
                continue
            budget = dataclasses.replace(suite.budget, **dcfg.budget)
            first = make_cell(suite.name, seeded_dataset(dcfg, seeds[0], follow), mcfg,
                              seeds[0], budget, dm)
            for seed in seeds:  # seeds share the view and the fitted width
                if seed == first.seed:
                    plan.cells.append(first)
                    continue
                seeded = seeded_dataset(dcfg, seed, follow)
                params = dict(first.identity["dataset"]["params"])
                if "data_seed" in seeded.params:
                    params["data_seed"] = seeded.params["data_seed"]
                identity = {**first.identity, "seed": seed,
                            "dataset": {**first.identity["dataset"], "params": params}}
                plan.cells.append(dataclasses.replace(first, seed=seed, dataset=seeded,
                                                      identity=identity))
    plan.cells.sort(key=lambda c: (suite.datasets.index(next(
        d for d in suite.datasets if d.id == c.dataset.id)), c.seed))  # one dataset at a time
    return plan
