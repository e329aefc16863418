"""Peak memory: RSS over 50 cells run in one process (a leak shows as growth from one cell
to the next), and the in-memory size of every dataset's tensors at its default size.

    python -m benchmarks.perf.memory [--cells 50]

Targets: every dataset under 1 GiB of tensors at default size; memory flat across cells.
"""

from __future__ import annotations

import argparse
import gc
import resource
import tempfile
from pathlib import Path

import torch

from benchmarks import registry
from benchmarks.data import MathDataModule
from benchmarks.run.execute import RunOptions, run_cell
from benchmarks.run.plan import make_cell
from benchmarks.run.serial import DataModuleCache
from benchmarks.run.suite import DatasetConfig, ModelConfig
from benchmarks.train.budget import TrainBudget
from benchmarks.train.hardware import Hardware
from benchmarks.train.trainer import quiet_lightning

MiB = 1 << 20


def rss_mib() -> float:
    """Current resident set size (VmRSS), in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tensor_bytes(obj) -> int:
    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(tensor_bytes(v) for v in obj)
    return sum(tensor_bytes(v) for v in vars(obj).values()) if hasattr(obj, "__dict__") else 0


def dataset_sizes() -> list[tuple[str, float, float]]:
    """(dataset, raw MiB, raw + every view MiB) at default parameters."""
    out = []
    for entry in registry.all_dataset_entries():
        if getattr(entry.cls, "needs_files", False):
            continue
        dm: MathDataModule = entry.cls()
        dm.setup()
        raw = sum(tensor_bytes(d) for d in dm._raw.values())
        views = sum(tensor_bytes(dm.inputs(s, v.key)) for s in dm.splits for v in dm.spec.views
                    if v.modality.value != "graph")
        out.append((entry.name, raw / MiB, (raw + views) / MiB))
    return out


def leak_check(cells: int) -> list[float]:
    """RSS after each of `cells` cells (parity and descents, MLP and baseline, new seeds)."""
    datasets = [DatasetConfig("parity", "parity", {"n": 16, "n_train": 2000, "n_val": 500, "n_test": 500}),
                DatasetConfig("descents", "descents", {"n": 8, "n_train": 2000, "n_val": 500, "n_test": 500})]
    models = [ModelConfig("mlp", "mlp", {"hidden": 64}), ModelConfig("constant", "constant")]
    budget = TrainBudget(max_epochs=3, patience=0)
    cache, rss = DataModuleCache(), []
    with tempfile.TemporaryDirectory() as tmp:
        options = RunOptions(results_dir=Path(tmp), hardware=Hardware("cpu"))
        for i in range(cells):
            cell = make_cell("perf", datasets[(i // 10) % 2], models[i % 2], i, budget)
            run_cell(cell, cache.get(cell), options)
            gc.collect()
            rss.append(rss_mib())
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cells", type=int, default=50)
    args = parser.parse_args()
    quiet_lightning()
    print("| dataset | raw tensors MiB | with every view MiB |")
    print("|---|---|---|")
    for name, raw, total in dataset_sizes():
        print(f"| {name} | {raw:.1f} | {total:.1f} |", flush=True)
    rss = leak_check(args.cells)
    mid = min(10, len(rss))  # cell 10, or the last of a shorter run
    tenth = rss[mid - 1]
    print(f"\n| cells | RSS after cell 1 | after cell {mid} | after cell {len(rss)} | "
          f"growth {mid}->{len(rss)} | peak RSS |")
    print("|---|---|---|---|---|---|")
    print(f"| {len(rss)} | {rss[0]:.0f} MiB | {tenth:.0f} MiB | {rss[-1]:.0f} MiB | "
          f"{rss[-1] - tenth:+.1f} MiB | {peak_rss_mib():.0f} MiB |")


if __name__ == "__main__":
    main()
