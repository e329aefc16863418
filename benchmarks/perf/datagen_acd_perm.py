"""Generation time and peak memory of the ACD permutation datasets (mheight, weaving, rsk)
at their default and largest documented settings (target: under 60 s and 3 GiB each).

Run: python -m benchmarks.perf.datagen_acd_perm [--threads 1]
Each setting runs in a fresh subprocess, so that the memoised universes (all of S_10, all
weaving patterns of size 7) are computed inside the timing and the peak RSS
(resource.getrusage) is that setting's alone. generate() is called directly (no disk
cache); "views s" builds every view of every split. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

TARGET_S, TARGET_MIB = 60.0, 3 * 1024

# (dataset, setting label, parameters)
CASES: list[tuple[str, str, dict[str, Any]]] = [
    ("mheight", "default (n=10)", {}),
    ("mheight", "n=10, ood_n=12", {"ood_n": 12}),
    ("weaving", "default (n=7)", {}),
    ("weaving", "n=7, 10 negatives each", {"negatives_per_positive": 10}),
    ("rsk", "default (n=9, all of S_9)", {}),
    ("rsk", "n=10, n_samples=1,000,000", {"n": 10, "n_samples": 1_000_000}),
]


def measure(index: int, threads: int) -> dict[str, Any]:
    """One setting, in this process: rows per split, seconds, peak MiB."""
    import torch

    from benchmarks import registry

    torch.set_num_threads(threads)
    name, label, params = CASES[index]
    dm = registry.create_dataset(name, **params)
    t0 = time.perf_counter()
    raw = dm.generate()
    gen_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    views = [dm.make_view(split, v.modality) for split in raw.values() for v in dm.spec.views]
    view_s = time.perf_counter() - t0
    del views
    rows = {s: len(d["y"]) for s, d in raw.items()}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return {"dataset": name, "setting": label, "rows": rows, "generate_s": gen_s,
            "views_s": view_s, "peak_mib": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--case", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.case is not None:  # the child: one setting, one JSON line
        print(json.dumps(measure(args.case, args.threads)))
        return
    print("| dataset | setting | rows per split | generate s | views s | peak MiB |")
    print("| --- | --- | --- | ---: | ---: | ---: |")
    for index in range(len(CASES)):
        out = subprocess.run([sys.executable, "-m", "benchmarks.perf.datagen_acd_perm",
                              "--case", str(index), "--threads", str(args.threads)],
                             capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        rows = " / ".join(f"{s} {n:,}" for s, n in r["rows"].items())
        slow = "" if r["generate_s"] < TARGET_S and r["peak_mib"] < TARGET_MIB else " (OVER TARGET)"
        print(f"| {r['dataset']} | {r['setting']} | {rows} | {r['generate_s']:.2f} | "
              f"{r['views_s']:.2f} | {r['peak_mib']:.0f}{slow} |", flush=True)


if __name__ == "__main__":
    main()
