"""Start-up: how long `mlwm` takes to print a one-line error and to list the registry,
each in a fresh process (the median of --repeats), against the bare interpreter.

    python -m benchmarks.perf.startup [--repeats 5]

Targets (issue 17): a one-line error about a name, a suite or a parameter in under 1 s;
`mlwm list` in under 1.5 s. Heavy imports (Lightning, torch_geometric, sympy, sklearn)
happen only when a cell needs them, so none of these commands pays for them.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

COMMANDS = {
    "python -c pass (the interpreter alone)": [sys.executable, "-c", "pass"],
    "mlwm run --dataset parityy (unknown dataset)":
        [sys.executable, "-m", "benchmarks.cli", "run", "--dataset", "parityy", "--model", "mlp"],
    "mlwm run --param n=x (parameter of the wrong type)":
        [sys.executable, "-m", "benchmarks.cli", "run", "--dataset", "parity", "--model", "mlp",
         "--param", "n=x"],
    "mlwm benchmark --suite nosuch (unknown suite)":
        [sys.executable, "-m", "benchmarks.cli", "benchmark", "--suite", "nosuch"],
    "mlwm list": [sys.executable, "-m", "benchmarks.cli", "list"],
}
TARGETS = {"mlwm list": 1.5}


def timed(argv: list[str]) -> tuple[float, int, str]:
    t0 = time.perf_counter()
    proc = subprocess.run(argv, capture_output=True, text=True)
    return time.perf_counter() - t0, proc.returncode, (proc.stderr or proc.stdout).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    timed(COMMANDS["mlwm list"])  # warm the catalogue cache and the file system
    print("| command | median s | target | exit | first line |")
    print("|---|---|---|---|---|")
    for name, argv in COMMANDS.items():
        runs = [timed(argv) for _ in range(args.repeats)]
        median = statistics.median(r[0] for r in runs)
        target = TARGETS.get(name, 1.0 if "(" in name and "interpreter" not in name else None)
        line = runs[-1][2].splitlines()[0][:90].replace("|", "\\|") if runs[-1][2] else ""
        met = "" if target is None else f"< {target} s {'met' if median < target else 'MISSED'}"
        print(f"| `{name}` | {median:.2f} | {met} | {runs[-1][1]} | {line} |")
    print(f"\nMedian of {args.repeats} fresh processes each.")


if __name__ == "__main__":
    main()
