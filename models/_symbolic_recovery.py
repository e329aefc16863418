"""Exact recovery of a ground-truth formula, after SRBench (La Cava et al. 2021).

A found expression f recovers the truth t when, after its numeric constants are snapped
to nearby simple numbers, sympy simplifies f - t to a constant or f / t to a non-zero
constant. SRBench also requires test R^2 > 0.5; the caller applies that gate.

Snapping, the one place where judgement enters, is deliberately narrow:
- a constant c within REL_TOL * |c| of p/q with q <= MAX_DENOMINATOR becomes p/q
  (0.49999 -> 1/2, 1.0000003 -> 1, 2.9996 -> 3); other constants stay as they are, so
  a fitted 0.0795775 (= 1/(4 pi)) is kept, and only matters if it is not an overall factor;
- a constant with |c| < ZERO_TOL becomes 0 (bloat such as 3e-8 * x**3);
- the snapped forms tried are f itself and expand(f) (which multiplies out the factors
  that evolved trees scatter, e.g. (2.617 + 2.617 x) * 0.3821 x -> 1.0000 x**2 + 1.0000 x).

Simplification runs in a child process (python -I this_file.py) killed after `timeout_s`,
so an expression that sympy cannot simplify never hangs a suite; the answer is then None.
This module imports only sympy and the standard library, for that child's sake.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import sympy

REL_TOL = 1e-3        # relative distance within which a constant snaps to p/q
MAX_DENOMINATOR = 12  # q of the simple fractions a constant may snap to
ZERO_TOL = 1e-5       # constants smaller than this in absolute value become 0


def expression_size(expr: sympy.Basic) -> int:
    """Nodes of the sympy expression tree (x - 2*y counts Add, x, Mul, -2, y: 5)."""
    return sum(1 for _ in sympy.preorder_traversal(expr))


def snap_number(c: float, rel_tol: float = REL_TOL, zero_tol: float = ZERO_TOL,
                max_den: int = MAX_DENOMINATOR) -> sympy.Expr | None:
    """The simple number c stands for (0 or p/q with the smallest q), or None."""
    if abs(c) < zero_tol:
        return sympy.Integer(0)
    for q in range(1, max_den + 1):
        p = round(c * q)
        if p != 0 and abs(c - p / q) <= rel_tol * abs(c):
            return sympy.Rational(p, q)
    return None


def snap_constants(expr: sympy.Basic, rel_tol: float = REL_TOL,
                   zero_tol: float = ZERO_TOL) -> sympy.Basic:
    """expr with every Float that is near a simple number replaced by it (see module doc)."""
    subs = {}
    for node in sympy.preorder_traversal(expr):
        if isinstance(node, sympy.Float) and node not in subs:
            snapped = snap_number(float(node), rel_tol, zero_tol)
            if snapped is not None:
                subs[node] = snapped
    return expr.xreplace(subs) if subs else expr


def _is_constant(expr: sympy.Basic, nonzero: bool, zero_tol: float) -> bool:
    expr = snap_constants(expr, 0.0, zero_tol)  # only the round-off that simplify leaves
    if expr.free_symbols or expr.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo):
        return False
    return not (nonzero and expr.is_zero)


def equal_up_to_constant(found: sympy.Basic, truth: sympy.Basic,
                         zero_tol: float = ZERO_TOL) -> bool:
    """The symbolic test, without snapping or timeout: f - t or f / t (!= 0) is constant."""
    return (_is_constant(sympy.simplify(found - truth), False, zero_tol)
            or _is_constant(sympy.simplify(found / truth), True, zero_tol))


def recovered(found: sympy.Basic, truth: sympy.Basic, rel_tol: float = REL_TOL,
              zero_tol: float = ZERO_TOL) -> bool:
    """The whole test in this process (no timeout): snap f and expand(f), then compare."""
    candidates = [snap_constants(found, rel_tol, zero_tol)]
    expanded = snap_constants(sympy.expand(found), rel_tol, zero_tol)
    if expanded != candidates[0]:
        candidates.append(expanded)
    return any(equal_up_to_constant(f, truth, zero_tol) for f in candidates)


def exact_recovery(found: sympy.Basic | str, truth: sympy.Basic | str,
                   timeout_s: float = 30.0, rel_tol: float = REL_TOL,
                   zero_tol: float = ZERO_TOL) -> bool | None:
    """True/False as `recovered`, computed in a child process; None when it does not
    finish within timeout_s or fails (an undecidable answer is not a recovery).

    found, truth: sympy expressions (or strings sympy parses). Symbols must match by
    name and assumptions; parse both with the same symbols.
    """
    payload = json.dumps({"found": sympy.srepr(sympy.sympify(found)),
                          "truth": sympy.srepr(sympy.sympify(truth)),
                          "rel_tol": rel_tol, "zero_tol": zero_tol})
    try:
        # -I: isolated, so the child's sys.path does not start with models/ (no shadowing)
        done = subprocess.run([sys.executable, "-I", str(Path(__file__).resolve())],
                              input=payload, capture_output=True, text=True,
                              timeout=max(timeout_s, 0.1))
    except subprocess.TimeoutExpired:  # subprocess.run kills the child before raising
        return None
    answer = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    return {"true": True, "false": False}.get(answer[0]) if answer else None


def _child() -> None:
    """Entry point of the child: read the JSON payload on stdin, print true or false."""
    job = json.loads(sys.stdin.read())
    found, truth = sympy.sympify(job["found"]), sympy.sympify(job["truth"])
    print("true" if recovered(found, truth, job["rel_tol"], job["zero_tol"]) else "false")


if __name__ == "__main__":
    _child()
