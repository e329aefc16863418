"""The kill attack: SIGKILL a running suite at random moments, resume it each time, and
check that nothing is lost or done twice. Not part of `make test` (it takes minutes):

    .venv/bin/python tests/kill_attack.py --kills 10 --workers 1,2

For each worker count: an uninterrupted run gives the reference metrics; then a fresh
folder is run and killed (the runner, and with workers its process group) at `--kills`
random moments within the run's own length (measured on the uninterrupted run, scaled to
what is left), resumed after each kill, and run to the end. It checks that every file
under runs/ parses as a record, that a record once finished is never rewritten (no cell
trains twice), that no claim is left held, and that the final metrics equal the
uninterrupted run's, cell by cell. It prints one line of counts per worker count.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SUITE = """seeds = [0, 1, 2]
[budget]
max_epochs = 6
patience = 0
batch_size = 64
[[datasets]]
name = "parity"
params = { n = 10, n_train = 600, n_val = 100, n_test = 200 }
[[datasets]]
name = "descents"
params = { n = 7, n_train = 600, n_val = 100, n_test = 200 }
[[models]]
name = "mlp"
hparams = { hidden = 32 }
[[models]]
name = "gru"
hparams = { hidden = 16 }
[[models]]
name = "linear"
"""


def command(suite: Path, results: Path, workers: int) -> list[str]:
    return [sys.executable, "-m", "benchmarks.cli", "benchmark", "--suite", str(suite),
            "--results", str(results), "--workers", str(workers)]


def records(results: Path) -> dict[str, dict]:
    out = {}
    for path in (results / "runs").rglob("seed*.json"):
        data = json.loads(path.read_text())  # must parse: atomic writes
        out[str(path.relative_to(results))] = data
    return out


def metrics(results: Path) -> dict[str, dict]:
    return {k: v["metrics"] for k, v in records(results).items()}


def attack(suite: Path, folder: Path, workers: int, kills: int, rng: random.Random) -> dict:
    from benchmarks.run.claims import try_claim
    from benchmarks.run.records import read_record

    env = dict(os.environ, OMP_NUM_THREADS="1")
    reference = folder / "reference"
    t0 = time.monotonic()
    subprocess.run(command(suite, reference, workers), check=True, env=env,
                   capture_output=True)
    whole = time.monotonic() - t0  # the kill moments are drawn within the run's own length
    total = len(records(reference))
    attacked = folder / "attacked"
    finished: dict[str, int] = {}   # record path -> mtime_ns when first seen finished
    rewritten, killed_at = 0, []
    for _ in range(kills):
        proc = subprocess.Popen(command(suite, attacked, workers), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                start_new_session=True)
        left = 1 - len(list((attacked / "runs").rglob("seed*.json"))) / total \
            if (attacked / "runs").is_dir() else 1.0
        # somewhere in what is left of the run (start-up included), so that every attempt
        # can land on a cell being trained, written or claimed
        moment = rng.uniform(0.5, 0.5 + max(1.0, whole * left))
        time.sleep(moment)
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)  # the runner and its workers at once
            killed_at.append(round(moment, 1))
        proc.wait()
        for path in (attacked / "runs").rglob("seed*.json"):
            read_record(path)  # every file is a whole, valid record
            mtime = path.stat().st_mtime_ns
            key = str(path)
            if key in finished and finished[key] != mtime:
                rewritten += 1
            finished.setdefault(key, mtime)
    subprocess.run(command(suite, attacked, workers), check=True, env=env, capture_output=True)
    for path in (attacked / "runs").rglob("seed*.json"):
        if str(path) in finished and finished[str(path)] != path.stat().st_mtime_ns:
            rewritten += 1
    held = 0
    for lock in (attacked / "runs").rglob("*.lock"):
        claim = try_claim(lock.with_name(lock.name.removesuffix(".lock")))
        held += claim is None
        if claim is not None:
            claim.release()
    ref, got = metrics(reference), metrics(attacked)
    equal = sum(ref[k] == got.get(k) for k in ref)
    return {"workers": workers, "kills": len(killed_at), "at_s": killed_at,
            "records": len(got), "of": len(ref), "equal_to_uninterrupted": equal,
            "rewritten": rewritten, "claims_held": held,
            "leftover_tmp": len(list(attacked.rglob("*.tmp")))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="mlwm-kill-") as tmp:
        suite = Path(tmp) / "attack.toml"
        suite.write_text(SUITE)
        for workers in (int(w) for w in args.workers.split(",")):
            folder = Path(tmp) / f"w{workers}"
            print(json.dumps(attack(suite, folder, workers, args.kills, rng)), flush=True)


if __name__ == "__main__":
    main()
