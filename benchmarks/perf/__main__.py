"""`make perf`: run every performance script and collect their tables in results/perf.md,
with the machine, the versions and the date.

    python -m benchmarks.perf [--out results/perf.md] [--only overhead,memory]
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

SCRIPTS = {
    "overhead": "Trainer overhead: harness steps/s over a plain PyTorch loop (target >= 0.90)",
    "datagen_seq": "Dataset generation: sequences, vectors, sets",
    "datagen_graph_image": "Dataset generation: semigroups, graphs, images",
    "datagen_acd_perm": "Dataset generation: mHeight, weaving patterns, RSK (ACD Repo)",
    "datagen_acd_alg": "Dataset generation: characters of S_n, quiver mutation classes (ACD Repo)",
    "datagen_kl": "Dataset generation: Kazhdan-Lusztig coefficients, Schubert structure constants",
    "memory": "Memory: dataset tensors at default size; RSS across 50 cells",
    "symbolic": "Symbolic regression on the formulas",
    "workers": "Cells per minute with --workers 1 and 2",
    "vectorised": "Seeds trained as one vectorised model (torch.func) against one by one",
    "batch_scale": "Larger batches with a scaled learning rate against the suite's batches",
    "compile": "torch.compile of the backbone against eager",
    "suite_time": "The suites' wall time: training steps against the rest",
    "startup": "Start-up: one-line errors and `mlwm list` in fresh processes",
    "stacked_trials": "Trials and seeds trained as one stacked model against one by one",
    "families": "The expensive families: seconds per epoch before and after their fast paths",
    "scaling": "Seconds and memory per cell against n_train (1x, 4x, 16x)",
}


def machine() -> str:
    import lightning
    import torch

    from benchmarks.train.hardware import cpu_name

    return (f"{cpu_name()}, {os.cpu_count()} cores; Python {platform.python_version()}, "
            f"torch {torch.__version__}, lightning {lightning.__version__}; "
            f"{datetime.date.today().isoformat()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="results/perf.md")
    parser.add_argument("--only", default=",".join(SCRIPTS))
    args = parser.parse_args()
    parts = [f"# Performance\n\nMachine: {machine()}.\nRegenerate with `make perf`.\n"]
    for name in args.only.split(","):
        module = f"benchmarks.perf.{name}"
        print(f"== {name}", flush=True)
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", module], capture_output=True, text=True)
        took = time.perf_counter() - t0
        print(proc.stdout, flush=True)
        body = proc.stdout.strip() if proc.returncode == 0 else \
            f"failed (exit {proc.returncode}):\n\n```\n{proc.stderr.strip()[-2000:]}\n```"
        parts.append(f"## {SCRIPTS.get(name, name)}\n\n`python -m {module}` ({took:.0f} s)\n\n{body}\n")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.is_file():  # keep the sections of scripts not run this time
        ran = {part.split("\n", 1)[0] for part in parts[1:]}
        kept = ["## " + sec for sec in out.read_text().split("\n## ")[1:]
                if "## " + sec.split("\n", 1)[0] not in ran]
        parts += [k if k.endswith("\n") else k + "\n" for k in kept]
    out.write_text("\n".join(parts))
    print(f"written {out}")


if __name__ == "__main__":
    main()
