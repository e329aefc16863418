"""Generation throughput of semigroups, graph_properties and the digit images, at default
size and 10x; 10,000 labelled random graphs per graph target (target: under 20 s); and
GraphStore.take against Batch.from_data_list on batches of 256 graphs.

Run: python -m benchmarks.perf.datagen_graph_image [--repeat 1] [--no-tenfold]
Times are the best of --repeat runs of generate() (no disk cache) and of building every
view of every split. Sizes fixed by the data (all semigroups of order 3 or 4, the 1,797
digits) have no 10x row; mnist runs only where its IDX files are found.
"""

from __future__ import annotations

import argparse
from typing import Any

from benchmarks import registry
from benchmarks.errors import UserError
from benchmarks.perf.datagen_seq import best_of, measure, scaled

GRAPH_TARGET_ROWS, GRAPH_TARGET_S = 10_000, 20.0
GRAPH_TARGETS = ("connected", "bipartite", "planar", "eulerian", "hamiltonian", "triangles",
                 "diameter", "chromatic")
GRAPH_DEFAULT = {"n_train": 6000, "n_val": 1000, "n_test": 2000}


# (label, dataset, params at default size, params at about 10x the rows or None)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any] | None]] = [
    ("semigroups m=3", "semigroups", {"m": 3}, None),
    ("semigroups m=4", "semigroups", {}, None),
    ("semigroups m=5", "semigroups", {"m": 5}, {"m": 5, "n_per_class": 30000}),
    *[(f"graph {t}", "graph_properties", {"target": t}, {"target": t, **scaled(10, **GRAPH_DEFAULT)})
      for t in GRAPH_TARGETS],
    ("mnist1d", "mnist1d", {}, {"num_samples": 50000, "n_val": 5000}),
    ("mnist1d shuffle", "mnist1d", {"shuffle": True}, None),
    ("digits", "digits", {}, None),
    ("mnist", "mnist", {}, {"n_train": None}),
]


def batching(repeat: int) -> tuple[float, float]:
    """Seconds per batch of 256 graphs: GraphStore.take, and Batch.from_data_list over
    Data objects made beforehand (so only the collation is timed)."""
    import torch
    from torch_geometric.data import Batch, Data

    dm = registry.create_dataset("graph_properties", target="connected")
    dm.setup()
    store = dm.inputs("train", "graph")
    idx = torch.randperm(len(store), generator=torch.Generator().manual_seed(0))[:256]
    datas = [Data(x=store.x[store.node_ptr[i]:store.node_ptr[i + 1]],
                  edge_index=store.edge_index[:, store.edge_ptr[i]:store.edge_ptr[i + 1]])
             for i in idx.tolist()]
    take_s, _ = best_of(repeat, lambda: [store.take(idx) for _ in range(50)])
    collate_s, _ = best_of(repeat, lambda: [Batch.from_data_list(datas) for _ in range(50)])
    return take_s / 50, collate_s / 50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=1, help="runs per timing (best kept)")
    parser.add_argument("--no-tenfold", action="store_true", help="skip the 10x rows")
    args = parser.parse_args()
    from datamodules.semigroups import enumerate_semigroups

    reset = enumerate_semigroups.cache_clear  # time the enumeration too, not the memo
    print(f"{'dataset':22} {'size':>5} {'rows':>8} {'generate s':>11} {'rows/s':>10} "
          f"{'views s':>8}")
    for label, name, default, big in CASES:
        for size, params in (("1x", default), ("10x", big)):
            if params is None or (size == "10x" and args.no_tenfold):
                continue
            try:
                rows, gen_s, view_s = measure(name, params, args.repeat, reset)
            except UserError as exc:  # mnist without its files
                print(f"{label:22} {size:>5} skipped: {exc}")
                break
            print(f"{label:22} {size:>5} {rows:>8} {gen_s:>11.3f} {rows / gen_s:>10.0f} "
                  f"{view_s:>8.3f}", flush=True)

    print(f"\n{GRAPH_TARGET_ROWS:,} labelled random graphs per target "
          f"(target < {GRAPH_TARGET_S:g} s):")
    sizes = {"n_train": GRAPH_TARGET_ROWS - 3000, "n_val": 1000, "n_test": 2000}
    for target in GRAPH_TARGETS:
        _, gen_s, _ = measure("graph_properties", {"target": target, **sizes}, args.repeat, reset)
        verdict = "ok" if gen_s < GRAPH_TARGET_S else "TOO SLOW"
        print(f"  {target:12} {gen_s:7.2f} s  {verdict}", flush=True)

    take_s, collate_s = batching(max(args.repeat, 3))
    print(f"\nbatch of 256 graphs: GraphStore.take {1e3 * take_s:.2f} ms, "
          f"Batch.from_data_list {1e3 * collate_s:.2f} ms ({collate_s / take_s:.1f}x)")


if __name__ == "__main__":
    main()
