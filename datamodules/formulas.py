"""Formulas with a known ground truth, for symbolic regression (catalogue "Formulas").

y = f(x) + noise, x uniform on a box, f one of the Nguyen benchmark polynomials and
transcendental functions (Uy et al. 2011) or a Feynman equation (Udrescu & Tegmark 2020,
AI Feynman), sampled on that benchmark's ranges. Noise is Gaussian with standard
deviation `noise` times the std of the clean targets, added to every split. `distractors`
appends that many input columns u1, u2, ... that the formula does not use, each sampled
like one of the formula's variables, so that attributions have something to rule out.

Run: mlwm run --dataset formulas --model operon --seed 0
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass

import numpy as np
import sympy
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, check_split_sizes, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


@dataclass(frozen=True)
class Formula:
    """A ground-truth expression over named variables, each sampled from U[lo, hi]."""

    expression: str                               # sympy syntax, `pi` is the constant
    ranges: tuple[tuple[str, float, float], ...]  # (variable, lo, hi), in column order
    source: str                                   # where the formula and ranges come from

    @property
    def variables(self) -> list[str]:
        return [name for name, _, _ in self.ranges]

    def sympy(self) -> sympy.Expr:
        """The expression, parsed with every variable a real symbol (so `e` is not Euler's)."""
        local = {name: sympy.Symbol(name, real=True) for name in self.variables}
        return sympy.sympify(self.expression, locals=local)


# Ranges: Nguyen-1..6 U[-1, 1], Nguyen-7 U[0, 2], Nguyen-9..12 U[0, 1] (Uy et al. 2011,
# table 1); Feynman equations as in AI Feynman's FeynmanEquations.csv (mostly U[1, 5]).
FORMULAS: dict[str, Formula] = {
    "nguyen1": Formula("x**3 + x**2 + x", (("x", -1, 1),), "Nguyen-1"),
    "nguyen5": Formula("sin(x**2)*cos(x) - 1", (("x", -1, 1),), "Nguyen-5"),
    "nguyen7": Formula("log(x + 1) + log(x**2 + 1)", (("x", 0, 2),), "Nguyen-7"),
    "nguyen10": Formula("2*sin(x)*cos(y)", (("x", 0, 1), ("y", 0, 1)), "Nguyen-10"),
    "nguyen12": Formula("x**4 - x**3 + y**2/2 - y", (("x", 0, 1), ("y", 0, 1)), "Nguyen-12"),
    "feynman_I_6_2a": Formula("exp(-theta**2/2)/sqrt(2*pi)", (("theta", 1, 3),),
                              "Feynman I.6.2a"),
    "feynman_I_12_2": Formula("q1*q2/(4*pi*epsilon*r**2)",
                              (("q1", 1, 5), ("q2", 1, 5), ("epsilon", 1, 5), ("r", 1, 5)),
                              "Feynman I.12.2"),
    "feynman_I_18_4": Formula("(m1*r1 + m2*r2)/(m1 + m2)",
                              (("m1", 1, 5), ("m2", 1, 5), ("r1", 1, 5), ("r2", 1, 5)),
                              "Feynman I.18.4"),
    "feynman_I_29_4": Formula("omega/c", (("omega", 1, 10), ("c", 1, 10)), "Feynman I.29.4"),
    "feynman_I_39_10": Formula("3*pr*V/2", (("pr", 1, 5), ("V", 1, 5)), "Feynman I.39.10"),
    "feynman_II_3_24": Formula("Pwr/(4*pi*r**2)", (("Pwr", 1, 5), ("r", 1, 5)),
                               "Feynman II.3.24"),
    "feynman_II_38_3": Formula("Y*A*x/d", (("Y", 1, 5), ("A", 1, 5), ("d", 1, 5), ("x", 1, 5)),
                               "Feynman II.38.3"),
}


def get_formula(name: str) -> Formula:
    """The named formula, or a one-line UserError listing the closest names."""
    if name not in FORMULAS:
        close = difflib.get_close_matches(name, list(FORMULAS), n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}? " if close else ""
        raise UserError(f"dataset 'formulas': unknown formula {name!r}; {hint}"
                        f"known: {', '.join(FORMULAS)}")
    return FORMULAS[name]


def evaluate_formula(formula: Formula, x: np.ndarray) -> np.ndarray:
    """f at the rows of x (columns in `formula.variables` order), in float64."""
    expr = formula.sympy()
    symbols = sorted(expr.free_symbols, key=lambda s: formula.variables.index(s.name))
    f = sympy.lambdify(symbols, expr, modules="numpy")
    cols = [x[:, formula.variables.index(s.name)].astype(np.float64) for s in symbols]
    return np.broadcast_to(np.asarray(f(*cols), dtype=np.float64), (len(x),)).copy()


@register_dataset("formulas")
class Formulas(MathDataModule):
    """A known formula (Nguyen, Feynman) sampled uniformly, optional noise (regression)."""

    version = "1"
    smoke_params = {"formula": "nguyen1", "n_train": 64, "n_val": 32, "n_test": 64}

    def __init__(self, formula: str = "nguyen1", noise: float = 0.0, n_train: int = 2000,
                 n_val: int = 500, n_test: int = 1000, data_seed: int = 0,
                 distractors: int = 0) -> None:
        super().__init__()
        get_formula(formula)
        check_range("noise", noise, 0.0, 10.0, dataset="formulas")
        check_split_sizes("formulas", n_train, n_val, n_test)
        check_range("distractors", distractors, 0, 64, dataset="formulas")
        # Without distractors the parameter stays out of the hyperparameters, so the cache
        # key and the recorded dataset identity are those of the data made before it existed.
        self.save_hyperparameters(ignore=["distractors"] if distractors == 0 else None)

    @property
    def distractors(self) -> int:
        return int(self.params.get("distractors", 0))

    def columns(self) -> list[tuple[str, float, float]]:
        """(name, lo, hi) of every input column: the formula's variables, then the
        distractors, distractor j sampled on the range of variable j mod d."""
        ranges = list(self.formula.ranges)
        return ranges + [(f"u{j + 1}", ranges[j % len(ranges)][1], ranges[j % len(ranges)][2])
                         for j in range(self.distractors)]

    @property
    def formula(self) -> Formula:
        return get_formula(self.params["formula"])

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p, formula = self.params, self.formula
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        total = sum(sizes.values())
        rng = self.rng()
        lo = np.array([r[1] for r in formula.ranges], dtype=np.float64)
        hi = np.array([r[2] for r in formula.ranges], dtype=np.float64)
        # the labels are computed from the float32 inputs that models will see
        x = (lo + (hi - lo) * rng.random((total, len(lo)))).astype(np.float32)
        y = evaluate_formula(formula, x)
        if p["noise"] > 0:
            y = y + rng.normal(0.0, p["noise"] * float(np.std(y)), size=total)
        if self.distractors:  # their own stream: the formula's columns and y do not change
            extra = self.columns()[len(lo):]
            lo_d = np.array([c[1] for c in extra], dtype=np.float64)
            hi_d = np.array([c[2] for c in extra], dtype=np.float64)
            u = lo_d + (hi_d - lo_d) * self.rng(1).random((total, len(extra)))
            x = np.concatenate([x, u.astype(np.float32)], axis=1)
        return {s: {"x": torch.from_numpy(x[sl]), "y": torch.from_numpy(y[sl]).float()}
                for s, sl in split_counts(sizes).items()}

    def used_variables(self) -> list[str]:
        """The variables that appear in the formula, in column order."""
        used = {s.name for s in self.formula.sympy().free_symbols}
        return [name for name, _, _ in self.columns() if name in used]

    def relevant_inputs(self, split: str, modality: Modality) -> torch.Tensor | None:
        """(1, 1, d): the columns of the variables that appear in the formula, the same
        for every row; the distractors (and any unused variable) are False."""
        if modality not in (Modality.TABULAR, Modality.VECTOR):
            return None
        used = set(self.used_variables())
        return torch.tensor([[[name in used for name, _, _ in self.columns()]]])

    def build_spec(self) -> DatasetSpec:
        formula, columns = self.formula, self.columns()
        d = len(columns)
        ranges = ", ".join(f"{n}~U[{lo:g},{hi:g}]" for n, lo, hi in columns)
        noise = f", noise {self.params['noise']:g}" if self.params["noise"] else ""
        unused = f", {self.distractors} unused" if self.distractors else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.REGRESSION, num_outputs=1,
            views=(ViewSpec(Modality.TABULAR, (d,)), ViewSpec(Modality.VECTOR, (d,))),
            metric="r2", params=self.params,
            description=f"{formula.source}: y = {formula.expression}, {ranges}{noise}{unused}",
            ground_truth="the variables that appear in the formula ("
                         f"{', '.join(self.used_variables())}); the distractors do not matter",
            # every column's name and range (symbolic regression names its symbols by them)
            extra={"formula": str(formula.sympy()), "variables": [c[0] for c in columns],
                   "ranges": [[float(lo), float(hi)] for _, lo, hi in columns]})

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        return raw["x"]  # tabular and vector views are the same (N, d) tensor
