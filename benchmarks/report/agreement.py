"""How a run's records agree with another run of the same cells (a fresh `make
benchmark` against the committed reference): per cell, the primary test metric within a
stated tolerance, which cells differ and by how much, and whether the machines differ in
the ways float results depend on (CPU model, torch thread count)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..run.records import RunRecord
from .rows import load_records


@dataclass
class Agreement:
    tolerance: float
    compared: int = 0                      # cells of the same configuration in both runs
    agree: int = 0                         # primary test metric within the tolerance
    identical: int = 0                     # exactly equal
    differ: list[tuple[str, float, float]] = field(default_factory=list)  # (cell, mine, theirs)
    status_changed: list[tuple[str, str, str]] = field(default_factory=list)
    only_here: int = 0                     # cells with no record of this configuration there
    devices: tuple[set[str], set[str]] = (set(), set())
    threads: tuple[set[int], set[int]] = (set(), set())

    def lines(self, reference: str) -> list[str]:
        """The comparison as a few lines for the end of a run."""
        out = [f"against {reference}: {self.compared} cells of the same configuration; "
               f"{self.agree} agree within {self.tolerance:g} on the primary test metric "
               f"({self.identical} exactly), {len(self.differ)} differ"
               + (f", {len(self.status_changed)} changed status" if self.status_changed else "")
               + (f"; {self.only_here} have no counterpart there" if self.only_here else "")]
        worst = sorted(self.differ, key=lambda d: -abs(d[1] - d[2]))
        for cell, mine, theirs in worst[:10]:
            out.append(f"  differs: {cell}: {mine:.4f} here, {theirs:.4f} there "
                       f"({mine - theirs:+.4f})")
        if len(worst) > 10:
            out.append(f"  ... and {len(worst) - 10} more")
        for cell, mine, theirs in self.status_changed[:10]:
            out.append(f"  status: {cell}: {mine} here, {theirs} there")
        (dev_here, dev_there), (thr_here, thr_there) = self.devices, self.threads
        if dev_here != dev_there:
            out.append(f"  the CPU differs: {', '.join(sorted(dev_here))} here, "
                       f"{', '.join(sorted(dev_there))} there (float results depend on it)")
        if thr_here != thr_there:
            out.append(f"  the torch thread count differs: {sorted(thr_here)} here, "
                       f"{sorted(thr_there)} there (float reductions depend on it)")
        if dev_here == dev_there and thr_here == thr_there and self.differ:
            out.append("  same CPU model and thread count: differences come from the load "
                       "(time caps) or from nondeterministic kernels")
        return out


def _key(r: RunRecord) -> tuple[str, str, int, str]:
    return (r.dataset.id, r.model.id, r.seed, r.config_hash)


def agreement(mine: list[RunRecord], theirs: list[RunRecord], tolerance: float = 0.01
              ) -> Agreement:
    """Cell-by-cell agreement of two sets of records (cells matched by configuration)."""
    there = {_key(r): r for r in theirs}
    result = Agreement(tolerance)
    for rec in mine:
        other = there.get(_key(rec))
        if other is None:
            result.only_here += 1
            continue
        result.compared += 1
        label = f"{rec.dataset.id} · {rec.model.id} · seed {rec.seed}"
        result.devices[0].add(rec.environment.device)
        result.devices[1].add(other.environment.device)
        if rec.environment.threads:
            result.threads[0].add(rec.environment.threads)
        if other.environment.threads:
            result.threads[1].add(other.environment.threads)
        if rec.status != other.status:
            result.status_changed.append((label, rec.status, other.status))
            continue
        a, b = rec.primary_test, other.primary_test
        if a is None or b is None:  # failed or skipped on both sides
            result.agree += 1
            result.identical += 1
            continue
        if abs(a - b) <= tolerance:
            result.agree += 1
            result.identical += a == b
        else:
            result.differ.append((label, a, b))
    return result


def compare_runs(results: str | Path, reference: str | Path, suite: str,
                 tolerance: float = 0.01) -> Agreement:
    """Agreement of a suite's records in `results` with the records of the same cells in
    `reference`, whichever suite ran them there (a cell is its configuration, not its
    suite: `default`'s cells are the reference's at one budget); the same suite's record
    is preferred where two suites hold one cell."""
    mine, _ = load_records(Path(results) / "runs", suite)
    theirs, _ = load_records(Path(reference) / "runs")
    theirs.sort(key=lambda r: r.suite == suite)  # last wins below: the same suite's
    return agreement(mine, theirs, tolerance)
