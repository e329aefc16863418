"""Suites: small TOML files naming datasets, models, seeds and a training budget.

    description = "what this suite is for"
    seeds = [0, 1, 2]

    [budget]                 # benchmarks.trainer.TrainBudget fields
    max_epochs = 30

    [[datasets]]
    name = "descents"
    id = "descents-left-matrix"          # optional label; defaults to the name
    params = { side = "left", encoding = "matrix" }
    budget = { max_epochs = 60 }         # optional: this dataset's changes to [budget]

    [[models]]
    name = "mlp"
    hparams = { hidden = 128 }
    datasets = ["parity*"]               # optional wildcard filter
    param_budgets = [10000, 100000]      # optional: one row per budget, width scaled
                                         # (a top-level param_budgets applies to all)

Every model runs on every dataset it is compatible with; the `majority` baseline is added
unless `baseline = false`. Nothing in a suite is evaluated as code.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .budget import format_budget
from .errors import UserError
from .trainer import COMPILE_MODES, OPTIMIZERS, TrainBudget

SUITES_DIR = Path(__file__).with_name("suites")
BASELINE_MODEL = "majority"


@dataclass(frozen=True)
class DatasetConfig:
    id: str
    name: str
    params: dict[str, Any] = field(default_factory=dict)
    budget: dict[str, Any] = field(default_factory=dict)  # overrides of the suite's [budget]


@dataclass(frozen=True)
class ModelConfig:
    id: str
    name: str
    hparams: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] = ("*",)
    param_budget: int | None = None   # scale the width hparam to this many parameters

    def applies_to(self, dataset_id: str) -> bool:
        return any(fnmatch.fnmatchcase(dataset_id, pat) for pat in self.datasets)


@dataclass(frozen=True)
class Suite:
    name: str
    description: str
    seeds: tuple[int, ...]
    budget: TrainBudget
    datasets: tuple[DatasetConfig, ...]
    models: tuple[ModelConfig, ...]
    path: str = ""


_TOP_KEYS = {"description": str, "seeds": list, "budget": dict, "datasets": list,
             "models": list, "baseline": bool, "param_budgets": list}
_DATASET_KEYS = {"name": str, "id": str, "params": dict, "budget": dict}
_MODEL_KEYS = {"name": str, "id": str, "hparams": dict, "datasets": list,
               "param_budgets": list}


def available_suites() -> list[str]:
    return sorted(p.stem for p in SUITES_DIR.glob("*.toml"))


def resolve_suite_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise UserError(f"suite file {path} does not exist")
        return path
    candidate = SUITES_DIR / f"{name_or_path}.toml"
    if candidate.is_file():
        return candidate
    import difflib

    close = difflib.get_close_matches(name_or_path, available_suites(), n=3, cutoff=0.4)
    hint = f"; did you mean {', '.join(close)}?" if close else ""
    raise UserError(f"unknown suite {name_or_path!r}{hint} (built-in suites: "
                    f"{', '.join(available_suites())}; or pass a path to a .toml file)")


def _check_table(where: str, table: dict[str, Any], schema: dict[str, type]) -> None:
    for key, value in table.items():
        if key not in schema:
            raise UserError(f"{where}: unknown key {key!r}; expected one of "
                            f"{', '.join(schema)}")
        expected = schema[key]
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            raise UserError(f"{where}: key {key!r} must be {_toml_type(expected)}, "
                            f"got {type(value).__name__} {value!r}")


def _toml_type(t: type) -> str:
    return {str: "a string", list: "a list", dict: "a table", bool: "a boolean",
            int: "an integer", float: "a number"}.get(t, t.__name__)


def make_budget(where: str, table: dict[str, Any]) -> TrainBudget:
    """A checked TrainBudget from a [budget] table; errors are one line naming `where`."""
    fields = {f.name: f.type for f in dataclasses.fields(TrainBudget)}
    types = {"int": int, "float": float, "str": str}
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise UserError(f"{where}: unknown key {key!r} in [budget]; expected one of "
                            f"{', '.join(fields)}")
        want = types[str(fields[key])]
        ok = isinstance(value, want) and not isinstance(value, bool)
        if want is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise UserError(f"{where}: budget key {key!r} must be {_toml_type(want)}, "
                            f"got {value!r}")
        values[key] = value
    budget = TrainBudget(**values)
    if budget.max_epochs < 1 or budget.batch_size < 1 or budget.lr <= 0 or budget.batch_scale < 1:
        raise UserError(f"{where}: budget needs max_epochs >= 1, batch_size >= 1, lr > 0 "
                        "and batch_scale >= 1")
    if budget.compile and budget.compile not in COMPILE_MODES:
        raise UserError(f"{where}: budget compile {budget.compile!r} is not one of "
                        f"{', '.join(COMPILE_MODES)} (or \"\" for none)")
    if budget.optimizer not in OPTIMIZERS:
        raise UserError(f"{where}: budget optimizer {budget.optimizer!r} is not one of "
                        f"{', '.join(OPTIMIZERS)}")
    return budget


def parse_suite(data: dict[str, Any], name: str, where: str | None = None) -> Suite:
    """A Suite from parsed TOML, with one-line errors naming the file and key."""
    where = where or f"suite {name!r}"
    _check_table(where, data, _TOP_KEYS)
    budget = make_budget(where, data.get("budget", {}))
    seeds = data.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0
                            for s in seeds):
        raise UserError(f"{where}: seeds must be a non-empty list of integers >= 0")
    datasets, seen = [], set()
    for i, d in enumerate(data.get("datasets", [])):
        w = f"{where}: datasets[{i}]"
        if not isinstance(d, dict):
            raise UserError(f"{w} must be a table ([[datasets]])")
        _check_table(w, d, _DATASET_KEYS)
        if "name" not in d:
            raise UserError(f"{w} needs a name")
        overrides = {}
        if "budget" in d:  # checked and typed now, merged into each cell's budget by the runner
            merged = make_budget(f"{w}.budget", {**dataclasses.asdict(budget), **d["budget"]})
            overrides = {k: getattr(merged, k) for k in d["budget"]}
        cfg = DatasetConfig(d.get("id", d["name"]), d["name"], dict(d.get("params", {})),
                            overrides)
        if cfg.id in seen:
            raise UserError(f"{w}: dataset id {cfg.id!r} appears twice; give each an `id`")
        seen.add(cfg.id)
        datasets.append(cfg)
    models, seen = [], set()
    for i, m in enumerate(data.get("models", [])):
        w = f"{where}: models[{i}]"
        if not isinstance(m, dict):
            raise UserError(f"{w} must be a table ([[models]])")
        _check_table(w, m, _MODEL_KEYS)
        if "name" not in m:
            raise UserError(f"{w} needs a name")
        pats = m.get("datasets", ["*"])
        if not all(isinstance(p, str) for p in pats):
            raise UserError(f"{w}: datasets must be a list of strings (wildcards allowed)")
        budgets = m.get("param_budgets", data.get("param_budgets", [None]))
        if not budgets or not all(b is None or (isinstance(b, int) and not isinstance(b, bool)
                                                and b > 0) for b in budgets):
            raise UserError(f"{w}: param_budgets must be a list of positive integers")
        for b in budgets:
            base = m.get("id", m["name"])
            cfg = ModelConfig(base if b is None else f"{base}@{format_budget(b)}", m["name"],
                              dict(m.get("hparams", {})), tuple(pats), b)
            if cfg.id in seen:
                raise UserError(f"{w}: model id {cfg.id!r} appears twice; give each an `id`")
            seen.add(cfg.id)
            models.append(cfg)
    if not datasets or not models:
        raise UserError(f"{where}: a suite needs at least one [[datasets]] and one [[models]]")
    if data.get("baseline", True) and not any(m.name == BASELINE_MODEL for m in models):
        models.append(ModelConfig(BASELINE_MODEL, BASELINE_MODEL))
    return Suite(name, data.get("description", ""), tuple(seeds), budget, tuple(datasets),
                 tuple(models))


def with_budget(suite: Suite, **changes: Any) -> Suite:
    """The suite with these [budget] fields for every dataset: a command line's flags win
    over the file's [budget] and its per-dataset budgets."""
    if not changes:
        return suite
    budget = make_budget("command line", {**dataclasses.asdict(suite.budget), **changes})
    datasets = tuple(dataclasses.replace(d, budget={k: v for k, v in d.budget.items()
                                                    if k not in changes})
                     for d in suite.datasets)
    return dataclasses.replace(suite, budget=budget, datasets=datasets)


def load_suite(name_or_path: str) -> Suite:
    path = resolve_suite_path(name_or_path)
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise UserError(f"suite file {path}: TOML syntax error: {exc}") from exc
    suite = parse_suite(data, path.stem, where=f"suite file {path}")
    return dataclasses.replace(suite, path=str(path))
