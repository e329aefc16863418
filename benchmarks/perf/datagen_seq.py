"""Generation throughput of the sequence, vector and set datasets, at default size and 10x,
and the Mobius sieve up to 10^7 (target: under 2 s on a 2-core CPU).

Run: python -m benchmarks.perf.datagen_seq [--repeat 3] [--threads 1]
Times are the best of --repeat runs of generate() (no disk cache) and of building every
view of every split; the sieve time is the best of --repeat calls of mobius_sieve(10^7).
One torch thread by default: on a busy 2-core machine two intra-op threads stall even
trivial tensor ops for 0.1-1 s, which would measure the neighbours, not the views.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

from benchmarks import registry

SIEVE_N, SIEVE_TARGET_S = 10**7, 2.0
S10_TARGET_S = 3.0


def scaled(factor: int, **sizes: int) -> dict[str, int]:
    return {k: v * factor for k, v in sizes.items()}


# (label, dataset, params at default size, params at about 10x the rows)
CASES: list[tuple[str, str, dict[str, Any], dict[str, Any]]] = [
    ("descents n=10", "descents", {}, scaled(10, n_train=20000, n_val=2000, n_test=5000)),
    ("descents matrix", "descents", {"encoding": "matrix"},
     {"encoding": "matrix", **scaled(10, n_train=20000, n_val=2000, n_test=5000)}),
    ("parity", "parity", {}, {"n": 20, **scaled(10, n_train=5000, n_val=1000, n_test=2000)}),
    ("parity ood_n=24", "parity", {"ood_n": 24},
     {"n": 20, "ood_n": 24, **scaled(10, n_train=5000, n_val=1000, n_test=2000)}),
    ("sparse_parity", "sparse_parity", {}, scaled(10, n_train=5000, n_val=1000, n_test=2000)),
    ("mobius", "mobius", {}, scaled(10, n_train=3000, n_val=1000, n_test=2000)),
    ("mobius residues", "mobius", {"encoding": "residues"},
     {"encoding": "residues", **scaled(10, n_train=3000, n_val=1000, n_test=2000)}),
    ("dyck", "dyck", {}, scaled(10, n_train=4000, n_val=1000, n_test=2000)),
    ("partitions", "partitions", {}, {"n_max": 35}),  # 7,337 -> 81,155 partitions
    ("partitions dim_parity", "partitions", {"target": "dim_parity"},
     {"target": "dim_parity", "n_max": 35}),
    # 10x the rows needs a larger value range: v2 has no repeated multiset, and sets of up
    # to 9 values in 0..9 allow only 46,187 distinct ones (capped per size)
    ("deepsets_sum", "deepsets_sum", {},
     {"max_value": 19, **scaled(10, n_train=4000, n_val=1000, n_test=2000)}),
]


def best_of(repeat: int, fn) -> tuple[float, Any]:
    best, out = float("inf"), None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t0)
    return best, out


def measure(name: str, params: dict[str, Any], repeat: int,
            reset: Callable[[], None] | None = None) -> tuple[int, float, float]:
    """(rows over all splits, generate seconds, all-views seconds). `reset` runs before
    each generate(), inside the timing (to clear a memo whose filling should count)."""
    dm = registry.create_dataset(name, **params)

    def generate():
        if reset is not None:
            reset()
        return dm.generate()

    gen_s, raw = best_of(repeat, generate)
    rows = sum(len(d["y"]) for d in raw.values())

    def views() -> None:
        for split in raw.values():
            for view in dm.spec.views:
                dm.make_view(split, view.modality)

    view_s, _ = best_of(repeat, views)
    return rows, gen_s, view_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per timing (best kept)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(args.threads)
    print(f"{'dataset':24} {'size':>5} {'rows':>8} {'generate s':>11} {'rows/s':>10} "
          f"{'views s':>8}")
    for label, name, default, tenfold in CASES:
        for size, params in (("1x", default), ("10x", tenfold)):
            rows, gen_s, view_s = measure(name, params, args.repeat)
            print(f"{label:24} {size:>5} {rows:>8} {gen_s:>11.3f} {rows / gen_s:>10.0f} "
                  f"{view_s:>8.3f}", flush=True)
    from datamodules.descents import all_permutations, descent_set

    def s10() -> int:
        perms = all_permutations(10)
        return len(perms) + int(descent_set(perms, "right").sum() + descent_set(perms, "left").sum())

    s10_s, _ = best_of(args.repeat, s10)
    verdict = "ok" if s10_s < S10_TARGET_S else "TOO SLOW"
    print(f"\nall 3,628,800 permutations of S_10 with right and left descent sets: {s10_s:.3f} s "
          f"(target < {S10_TARGET_S:g} s: {verdict})")
    from datamodules.mobius import mobius_sieve

    sieve_s, _ = best_of(args.repeat, lambda: mobius_sieve(SIEVE_N))
    verdict = "ok" if sieve_s < SIEVE_TARGET_S else "TOO SLOW"
    print(f"mobius_sieve(N={SIEVE_N:.0e}): {sieve_s:.3f} s "
          f"(target < {SIEVE_TARGET_S:g} s: {verdict})")


if __name__ == "__main__":
    main()
