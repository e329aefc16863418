"""Where a suite's wall time goes: training steps against everything else (imports, data
generation, process start-up, evaluation, writing), from the last `mlwm benchmark` run of
a suite (its suite_run.json) and the records it wrote.

    python -m benchmarks.perf.suite_time [--suite default,reference,reference-long]
        [--results results] [--local results-local] [--wall S]
"""

from __future__ import annotations

import argparse
import json
import os
from collections import defaultdict
from pathlib import Path

from benchmarks.report.build import output_dir
from benchmarks.report.rows import load_records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--suite", default="default,reference,reference-long",
                        help="comma-separated suites; each is read from --results, else "
                             "from --local (where `make benchmark` writes the default suite)")
    parser.add_argument("--results", default="results")
    parser.add_argument("--local", default="results-local")
    parser.add_argument("--wall", type=float, default=float(os.environ.get("MLWM_SUITE_WALL", 0)) or None,
                        help="the first suite's total wall seconds, when it "
                        "ran in several parts (a resumed run records only its last part)")
    args = parser.parse_args()
    found = []
    for i, name in enumerate(args.suite.split(",")):
        for folder in (args.results, args.local):
            run_file = output_dir(folder, name) / "suite_run.json"
            if run_file.is_file() and json.loads(run_file.read_text()).get("suite") == name:
                run = json.loads(run_file.read_text())
                if i == 0 and args.wall:
                    run["wall_s"] = args.wall
                records, _ = load_records(f"{folder}/runs", name)
                found.append((name, folder, run, records))
                break
        else:
            print(f"no record of a whole run of suite {name} in {args.results}/ or "
                  f"{args.local}/: run `mlwm benchmark --suite {name}` first\n")
    if not found:
        return
    print("| suite | results | cells | workers | wall s | train s (all cells) | eval s | "
          "in cells, other s | outside cells s | training share |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, folder, run, records in found:
        train = sum(r.time.train_s or 0 for r in records)
        evals = sum(r.time.eval_s or 0 for r in records)
        cells = sum(r.time.total_s or 0 for r in records)
        capacity = run["wall_s"] * max(1, int(run.get("workers") or 1))  # worker-seconds
        print(f"| {name} | {folder}/ | {len(records)} | {run.get('workers', 1)} | "
              f"{run['wall_s']:.0f} | {train:.0f} | {evals:.0f} | {cells - train - evals:.0f} | "
              f"{capacity - cells:.0f} | {train / capacity:.0%} |")
    for name, _, run, _ in found:
        if run.get("ran", 0) < run.get("cells", 0):
            print(f"\nThe last run of {name} ran {run['ran']} of {run['cells']} cells (a "
                  "resume): its shares are of that part only.")
    name, _, run, records = found[0] if len(found) == 1 else next(
        (f for f in found if f[0] == "reference"), found[0])
    cells = sum(r.time.total_s or 0 for r in records)
    by_model: dict[str, float] = defaultdict(float)
    for r in records:
        by_model[r.model.name] += r.time.total_s or 0
    print(f"\nSuite {name}, per family:\n")
    print("| model | cell seconds (sum) | share |")
    print("|---|---|---|")
    for model, secs in sorted(by_model.items(), key=lambda kv: -kv[1]):
        print(f"| {model} | {secs:.0f} | {secs / cells:.0%} |")
    print("\nWall times are those of each suite's recorded run (a whole run; a resume never "
          "overwrites it); leaderboard building: " + ", ".join(
              f"{n} {r.get('leaderboard_s', 0):.1f} s" for n, _, r, _ in found) + ".")
    tuning_cost(args.results, name)


def tuning_cost(results: str, suite_name: str) -> None:
    """What the searches behind the suite cost: its own ([tuning]) or those of the suite it
    reuses (tuned_from), per family, from their tuning.json files."""
    from benchmarks.run.suite import load_suite

    suite = load_suite(suite_name)
    source = suite.tuned_from or (suite_name if suite.tuning else "")
    if not source:
        return
    files = sorted(Path(results, "runs", source).rglob("tuning.json"))
    if not files:
        print(f"\nno searches of suite {source} under {results}/runs/{source}")
        return
    by_family: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0, 0.0])
    for path in files:
        data = json.loads(path.read_text())
        trials = data.get("trials", [])
        row = by_family[data["model"]]
        row[0] += 1
        row[1] += len(trials)
        row[2] += sum(bool(t.get("stacked")) for t in trials)
        row[3] += data.get("cost_s", 0.0)
    total = sum(r[3] for r in by_family.values())
    wall = ""
    run_file = output_dir(results, source) / "suite_run.json"
    if run_file.is_file():
        tuned_run = json.loads(run_file.read_text())
        wall = (f" Suite {source}'s last run: {tuned_run.get('wall_s', 0):.0f} s wall on "
                f"{tuned_run.get('workers', 1)} workers, searches and its seed-{suite.seeds[0]} "
                "cells together.")
    print(f"\nThe searches {suite_name} reuses (suite {source}: {len(files)} searches, "
          f"{total:.0f} worker-seconds of trials).{wall}\n")
    print("| family | searches | trials | of them stacked | search seconds (sum) | share |")
    print("|---|---|---|---|---|---|")
    for name, (n, t, st, secs) in sorted(by_family.items(), key=lambda kv: -kv[1][3]):
        print(f"| {name} | {n} | {t} | {st} | {secs:.0f} | {secs / total:.0%} |")


if __name__ == "__main__":
    main()
