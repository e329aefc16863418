"""Symbolic regression on the `formulas` datasets: each available backend, every formula.

Fits each backend (operon, gplearn; pysr only where Julia is installed) once per
formula with the same time budget, scores the test split with the harness' evaluation,
and prints one table per backend (a row per formula) and a summary: exact recovery
rate, median test R^2, median fit time. Recovery is credited only when the test R^2 is
above 0.5 (SRBench's gate; the model itself can only gate on its training R^2).

Run: python -m benchmarks.perf.symbolic [--time-limit 10] [--backends operon,gplearn]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch

from benchmarks import registry
from benchmarks.contract import Modality
from benchmarks.train.evaluation import evaluate_outputs

BACKENDS = ("operon", "gplearn", "pysr")


def unavailable(backend: str) -> str | None:
    """Why a backend cannot run here, checked without importing it."""
    return registry.get_model_entry(backend).unavailable_reason()  # requires=, then check=


def run_one(backend: str, formula: str, args: argparse.Namespace) -> dict:
    dm = registry.create_dataset("formulas", formula=formula, noise=args.noise,
                                 n_train=args.n_train, data_seed=args.data_seed)
    dm.prepare_data()
    dm.setup("fit")
    spec = dm.spec.for_view(Modality.TABULAR)
    model = registry.create_model(backend, spec, time_limit_s=args.time_limit,
                                  max_samples=args.max_samples)
    x, y = dm.arrays("train", Modality.TABULAR)
    model.fit(x, y, seed=args.seed)
    xt, _ = dm.arrays("test", Modality.TABULAR)
    test = evaluate_outputs(torch.as_tensor(model.predict(xt)), dm.target("test"), spec)
    t0 = time.perf_counter()
    details = model.describe()
    recovered = details["exact_recovery"]
    if recovered and not test["r2"] > 0.5:
        recovered = False
    return {"formula": formula, "r2": test["r2"], "fit_s": details["fit_s"],
            "check_s": time.perf_counter() - t0, "recovered": recovered,
            "size": details["size"], "expression": details["expression"]}


def _fmt_recovered(value: bool | None) -> str:
    return {True: "yes", False: "no", None: "timeout"}[value]


def print_backend(backend: str, rows: list[dict], width: int) -> None:
    print(f"\n## {backend}\n")
    print(f"| {'formula':<16} | {'test R2':>8} | {'fit s':>6} | {'size':>4} | recovered | expression")
    print(f"|{'-' * 18}|{'-' * 10}|{'-' * 8}|{'-' * 6}|-----------|-----------")
    for r in rows:
        expr = r["expression"] if len(r["expression"]) <= width else r["expression"][:width - 3] + "..."
        print(f"| {r['formula']:<16} | {r['r2']:>8.4f} | {r['fit_s']:>6.1f} | {r['size']:>4} | "
              f"{_fmt_recovered(r['recovered']):<9} | {expr}")


def print_summary(results: dict[str, list[dict]], skipped: dict[str, str]) -> None:
    print("\n## summary\n")
    print(f"| {'backend':<8} | recovered | median test R2 | median fit s |")
    print(f"|{'-' * 10}|-----------|----------------|--------------|")
    for backend, rows in results.items():
        rate = sum(r["recovered"] is True for r in rows)
        print(f"| {backend:<8} | {rate:>2} / {len(rows):<4} | "
              f"{statistics.median(r['r2'] for r in rows):>14.4f} | "
              f"{statistics.median(r['fit_s'] for r in rows):>12.1f} |")
    for backend, reason in skipped.items():
        print(f"| {backend:<8} | skipped: {reason}")


def main(argv: list[str] | None = None) -> int:
    from datamodules.formulas import FORMULAS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backends", default=",".join(BACKENDS),
                        help="comma-separated backends (unavailable ones are skipped)")
    parser.add_argument("--formulas", default=",".join(FORMULAS),
                        help="comma-separated formula names")
    parser.add_argument("--time-limit", type=float, default=10.0, help="seconds per fit")
    parser.add_argument("--max-samples", type=int, default=1000)
    parser.add_argument("--n-train", type=int, default=2000)
    parser.add_argument("--noise", type=float, default=0.0)
    parser.add_argument("--seed", type=int, default=0, help="the backends' seed")
    parser.add_argument("--data-seed", type=int, default=0)
    parser.add_argument("--width", type=int, default=70, help="expression column width")
    args = parser.parse_args(argv)

    results: dict[str, list[dict]] = {}
    skipped: dict[str, str] = {}
    for backend in args.backends.split(","):
        reason = unavailable(backend)
        if reason:
            skipped[backend] = reason
            print(f"{backend}: skipped ({reason})", file=sys.stderr)
            continue
        results[backend] = []
        for formula in args.formulas.split(","):
            row = run_one(backend, formula, args)
            results[backend].append(row)
            print(f"{backend} {formula}: R2 {row['r2']:.4f}, fit {row['fit_s']:.1f} s, "
                  f"recovered {_fmt_recovered(row['recovered'])}", file=sys.stderr, flush=True)
    print(f"# symbolic regression on formulas: {args.time_limit:g} s per fit, "
          f"max_samples {args.max_samples}, n_train {args.n_train}, noise {args.noise:g}, "
          f"seed {args.seed}")
    for backend, rows in results.items():
        print_backend(backend, rows, args.width)
    print_summary(results, skipped)
    return 0


if __name__ == "__main__":
    sys.exit(main())
