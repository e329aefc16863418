"""Generation time and peak memory of the ACD algebra datasets, sn_characters and quivers, at
their default settings and the largest documented ones (target: under 60 s and 3 GiB each).

Run: python -m benchmarks.perf.datagen_acd_alg [--threads 1]
Each setting runs in a fresh subprocess, so that its memoised universe (the character
tables, the mutation-class balls) is computed inside the timing and its peak RSS is its own;
that peak includes the interpreter with torch and the plugins imported (the "import" row).
generate s times dm.generate() (no disk cache); views s builds every view of every split.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

# (dataset, params): defaults, the ACD's settings, the largest accepted
CASES: list[tuple[str, dict[str, Any]]] = [
    ("sn_characters", {}),
    ("sn_characters", {"target": "sign"}),
    ("sn_characters", {"n": 20}),
    ("sn_characters", {"n": 22, "ood_n": 23}),
    ("sn_characters", {"n": 24, "ood_n": 25}),
    ("quivers", {}),
    ("quivers", {"n_per_class": 14924, "min_ball": 50000}),
]
LIMIT_S, LIMIT_MIB = 60.0, 3072.0


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


def run_case(name: str, params: dict[str, Any], threads: int) -> dict[str, Any]:
    """One setting in this process: what the parent prints as a table row."""
    import torch

    from benchmarks import registry

    torch.set_num_threads(threads)
    registry.load_plugins()
    base = peak_mib()
    dm = registry.create_dataset(name, **params)
    t0 = time.perf_counter()
    raw = dm.generate()
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for split in raw.values():
        for view in dm.spec.views:
            dm.make_view(split, view.modality)
    view_s = time.perf_counter() - t0
    return {"rows": {s: len(d["y"]) for s, d in raw.items()}, "generate_s": gen_s,
            "views_s": view_s, "peak_mib": peak_mib(), "import_mib": base}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:  # the child: one setting, one JSON line
        print(json.dumps(run_case(*CASES[args.case], args.threads)))
        return
    print("| dataset | setting | rows per split | generate s | views s | peak MiB |")
    print("|---|---|---|---:|---:|---:|")
    base = []
    for i, (name, params) in enumerate(CASES):
        out = subprocess.run([sys.executable, "-m", "benchmarks.perf.datagen_acd_alg",
                              "--case", str(i), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        base.append(r["import_mib"])
        setting = ", ".join(f"{k}={v}" for k, v in params.items()) or "default"
        rows = " / ".join(f"{s} {n:,}" for s, n in r["rows"].items())
        flag = "" if r["generate_s"] + r["views_s"] < LIMIT_S and r["peak_mib"] < LIMIT_MIB \
            else " (OVER)"
        print(f"| {name} | {setting} | {rows} | {r['generate_s']:.2f} | {r['views_s']:.2f} "
              f"| {r['peak_mib']:.0f}{flag} |", flush=True)
    print(f"\nPeak RSS includes about {min(base):.0f} MiB of interpreter, torch and plugins "
          f"(measured before generate()); limits {LIMIT_S:g} s and {LIMIT_MIB:g} MiB.")


if __name__ == "__main__":
    main()
