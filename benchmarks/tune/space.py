"""Search spaces: the `space` a model declares beside its factory (register_model(space=...))
as Optuna distributions, split into the factory's hyperparameters and the training
budget's fields.

    @register_model("mlp", ..., space={"depth": ("int", 2, 4),
                                       "lr": ("logfloat", 3e-4, 1e-2),
                                       "weight_decay": ("logfloat", 1e-6, 1e-2)})

A spec is ("float", lo, hi), ("logfloat", lo, hi), ("int", lo, hi) (both ends included)
or ("choice", [values]). A neural model that declares no space is searched over
DEFAULT_SPACE, so a user's plugin is tuned as the built-in families are; a fitted model
that declares none (the constant baseline) has nothing to tune and is not searched.
Every spec is checked against the factory's typed signature and the budget's domains
when parsed, so a bad one is one line naming the model, the dimension and what would be
right, before anything trains. No torch import here; Optuna is imported when a search
asks for distributions.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .. import registry
from ..errors import UserError
from ..train.budget import TrainBudget

BUDGET_FIELDS = ("lr", "weight_decay", "batch_size")  # TrainBudget fields a space may set
STACKABLE_FIELDS = ("lr", "weight_decay")  # what one member of a stacked model sets alone
DEFAULT_SPACE: dict[str, tuple] = {"lr": ("logfloat", 3e-4, 1e-2),
                                   "weight_decay": ("logfloat", 1e-6, 1e-2)}
KINDS = ("float", "logfloat", "int", "choice")


@dataclass(frozen=True)
class Dimension:
    """One searched setting: a factory hyperparameter or a budget field."""

    name: str
    kind: str                          # one of KINDS
    low: float | int | None = None     # range kinds: both ends included
    high: float | int | None = None
    choices: tuple[Any, ...] = ()      # "choice": JSON scalars, distinct

    @property
    def in_budget(self) -> bool:
        return self.name in BUDGET_FIELDS

    def distribution(self) -> Any:
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.kind == "choice":
            return CategoricalDistribution(self.choices)
        if self.kind == "int":
            return IntDistribution(int(self.low), int(self.high))
        return FloatDistribution(float(self.low), float(self.high), log=self.kind == "logfloat")

    def values(self) -> list[Any] | None:
        """Every value of a discrete dimension (a grid's axis), None for a float range."""
        if self.kind == "choice":
            return list(self.choices)
        if self.kind == "int":
            return list(range(int(self.low), int(self.high) + 1))
        return None

    def to_json(self) -> list[Any]:
        return [self.kind, list(self.choices)] if self.kind == "choice" else \
            [self.kind, self.low, self.high]


@dataclass(frozen=True)
class SearchSpace:
    """A model's parsed space; empty when there is nothing to tune."""

    model: str
    dims: tuple[Dimension, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.dims)

    def distributions(self) -> dict[str, Any]:
        return {d.name: d.distribution() for d in self.dims}

    def to_json(self) -> dict[str, list[Any]]:
        """The space as hashed and written to tuning.json (names sorted)."""
        return {d.name: d.to_json() for d in sorted(self.dims, key=lambda d: d.name)}

    def split(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """(factory hyperparameters, budget fields) of one trial's or the chosen params."""
        budget = {k: v for k, v in params.items() if k in BUDGET_FIELDS}
        return {k: v for k, v in params.items() if k not in BUDGET_FIELDS}, budget

    def grid(self) -> dict[str, list[Any]] | None:
        """The whole grid when every dimension is discrete, else None."""
        axes = {d.name: d.values() for d in self.dims}
        return None if any(v is None for v in axes.values()) else axes

    def grid_size(self) -> int | None:
        axes = self.grid()
        return None if axes is None else math.prod(len(v) for v in axes.values())


def declared_space(entry: registry.ModelEntry) -> dict[str, Any]:
    """The space a model is searched over: its own, the harness default for a neural
    model that declares none, nothing for a fitted one that declares none."""
    if entry.space:
        return dict(entry.space)
    return dict(DEFAULT_SPACE) if entry.kind == "neural" else {}


def parse_space(entry: registry.ModelEntry, param_budget: int | None = None) -> SearchSpace:
    """The checked SearchSpace of a model entry; UserError (one line) for a bad spec.
    Under a parameter budget the width is fitted by the harness, so a space over it is
    refused rather than silently ignored."""
    space = declared_space(entry)
    if not isinstance(space, Mapping):
        raise UserError(f"model {entry.name!r}: space must be a dict {{name: spec}}, "
                        f"got {type(space).__name__}")
    dims = []
    for name, spec in space.items():
        dims.append(_dimension(entry, name, spec))
        if param_budget is not None and name == entry.width:
            raise UserError(f"model {entry.name!r}: its space tunes {name!r}, the width a "
                            f"parameter budget ({param_budget}) fits; leave {name!r} out of "
                            "the space or the budget out of the suite")
    return SearchSpace(entry.name, tuple(dims))


def _dimension(entry: registry.ModelEntry, name: str, spec: Any) -> Dimension:
    where = f"model {entry.name!r}: space {name!r}"
    factory = {p.name for p in entry.params}
    # a fitted model has no optimiser: only its factory's arguments can be searched
    allowed = sorted(factory | (set(BUDGET_FIELDS) if entry.kind == "neural" else set()))
    if not isinstance(name, str) or name not in allowed:
        if entry.kind == "fitted" and name in BUDGET_FIELDS:
            raise UserError(f"{where}: a fitted model has no training budget to tune; "
                            f"search its own hyperparameters ({', '.join(sorted(factory))})")
        close = difflib.get_close_matches(str(name), allowed, n=2, cutoff=0.5)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise UserError(f"{where}: not a hyperparameter of the model{hint}; it can search "
                        f"{', '.join(allowed) or 'nothing'}")
    form = ('use ("float", lo, hi), ("logfloat", lo, hi), ("int", lo, hi) or '
            '("choice", [values])')
    # a list is accepted too: a spec read from TOML or JSON arrives as one
    if isinstance(spec, (str, bytes)) or not isinstance(spec, Sequence) or not spec:
        raise UserError(f"{where}: spec {spec!r} is not a tuple; {form}")
    kind = spec[0]
    if kind not in KINDS:
        raise UserError(f"{where}: unknown kind {kind!r}; {form}")
    if kind == "choice":
        dim = _choice(where, spec, form)
    else:
        dim = _range(where, kind, spec, form)
    dim = dataclasses.replace(dim, name=name)
    values = list(dim.choices) if kind == "choice" else [dim.low, dim.high]
    for value in values:  # every end or choice must be a value the model can take
        _check_value(entry, where, name, value)
    return dim


def _choice(where: str, spec: Sequence[Any], form: str) -> Dimension:
    if len(spec) != 2 or isinstance(spec[1], (str, bytes)) or not isinstance(spec[1], Sequence) \
            or not spec[1]:
        raise UserError(f"{where}: a choice needs a non-empty list of values, got {spec!r}")
    choices = tuple(spec[1])
    if not all(c is None or isinstance(c, (bool, int, float, str)) for c in choices):
        raise UserError(f"{where}: choices must be numbers, strings, booleans or None, "
                        f"got {list(choices)!r}")
    # repr, not set(choices): 1 and True (or 1.0) are equal in Python but distinct choices
    if len(set(map(repr, choices))) != len(choices):
        raise UserError(f"{where}: choices repeat: {list(choices)!r}")
    return Dimension("", "choice", choices=choices)


def _range(where: str, kind: str, spec: Sequence[Any], form: str) -> Dimension:
    if len(spec) != 3:
        raise UserError(f"{where}: {kind} needs (kind, lo, hi), got {tuple(spec)!r}; {form}")
    lo, hi = spec[1], spec[2]
    numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                  for v in (lo, hi))
    if not numbers or (kind == "int" and not all(isinstance(v, int) for v in (lo, hi))):
        what = "integers" if kind == "int" else "finite numbers"
        raise UserError(f"{where}: lo and hi of {kind!r} must be {what}, got {lo!r}, {hi!r}")
    if lo >= hi:
        raise UserError(f"{where}: lo must be below hi, got {lo!r} >= {hi!r}")
    if kind == "logfloat" and lo <= 0:
        raise UserError(f"{where}: a logfloat range needs lo > 0, got {lo!r}")
    if kind != "int":  # ("logfloat", 1, 10) is a float range; Optuna wants floats
        lo, hi = float(lo), float(hi)
    return Dimension("", kind, lo, hi)


def _check_value(entry: registry.ModelEntry, where: str, name: str, value: Any) -> None:
    """UserError unless `value` fits the factory's annotation or the budget's domain."""
    if name in BUDGET_FIELDS:
        want = TrainBudget.field_types()[name]
        if want is int and not (isinstance(value, int) and not isinstance(value, bool)):
            raise UserError(f"{where}: {name} takes integers, got {value!r}; use an int "
                            "range or a choice of integers")
        try:
            TrainBudget(**{name: float(value) if want is float else value})
        except (ValueError, TypeError) as exc:
            raise UserError(f"{where}: {str(exc).removeprefix('budget: ')}") from None
        return
    # the registry's own typed check, one parameter at a time (the others are not given)
    params = tuple(dataclasses.replace(p, required=False) for p in entry.params)
    try:
        registry.bind_params("model", entry.name, params, {name: value})
    except UserError as exc:  # its own "model 'x': " prefix is already in `where`
        raise UserError(f"{where}: {str(exc).removeprefix(f'model {entry.name!r}: ')}") \
            from None
