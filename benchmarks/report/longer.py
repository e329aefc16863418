"""Rows a leaderboard flags `not converged`, set beside the same cells trained longer.

A suite names another that reruns its not-converged rows with a larger epoch cap
(`longer = "reference-long"`: the same datasets, seeds and their data, tuned
configurations and widths; only the budget differs). For each flagged row that the
longer suite ran, the section shows the metric at both budgets, how many seeds the
longer run still left near its cap, and a paired test of the longer run against the
dataset's best row at the suite's own budget, on the same seeds and test rows (the
hierarchical paired bootstrap of the tables, Holm-corrected over the section). A reader
sees whether a row's place in its table is the architecture's or the budget's: a row
that is `worse` than the best at 40 epochs and still `worse` at 120 is behind for a
reason other than its training time.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .rows import Row
from .significance import ALPHA, PairTest, PredictionStore, boot_count, correct, run_pairs

LONG = "longer"  # the key the longer row goes under in a paired test of one dataset


@dataclass
class LongerRow:
    """A not-converged row, its longer run and their standing against the dataset's best."""

    short: Row                       # at the suite's budget (flagged not converged)
    long: Row                        # the same cells, trained longer
    best: str | None                 # the dataset's best model at the suite's budget
    vs_best_short: PairTest | None   # the table's own comparison
    vs_best_long: PairTest | None = None

    @property
    def long_cap(self) -> int | None:
        caps = [c for c in self.long.max_epochs if c is not None]
        return max(caps) if caps else None

    @property
    def changed(self) -> bool:
        """Its verdict against the best is not the one the table gives at its budget."""
        a, b = self.vs_best_short, self.vs_best_long
        return a is not None and b is not None and a.verdict is not None \
            and b.verdict is not None and a.verdict != b.verdict


@dataclass
class Longer:
    """The section: the suite it comes from, its rows, the flagged rows it lacks."""

    suite: str
    rows: list[LongerRow] = field(default_factory=list)
    missing: list[Row] = field(default_factory=list)  # flagged, no longer run found
    n_boot: int = 0
    alpha: float = ALPHA


def longer_section(suite: str, groups: dict[tuple[str, str], list[Row]], tests: dict,
                   long_rows: list[Row], store: PredictionStore | None = None,
                   alpha: float = ALPHA) -> Longer:
    """Pair every not-converged row of `groups` with its row in `long_rows` (same
    dataset, version and model id) and test the longer run against the dataset's best."""
    store = store or PredictionStore()
    longer = {(r.dataset_id, r.dataset_version, r.model_id): r for r in long_rows if r.ok}
    out = Longer(suite, alpha=alpha)
    for key, group in groups.items():
        t = tests.get(key)
        for row in group:
            if not row.ok or row.not_converged() is None:
                continue
            long = longer.get((*key, row.model_id))
            if long is None:
                out.missing.append(row)
                continue
            best = t.best if t is not None else None
            out.rows.append(LongerRow(row, long, best,
                                      t.vs_best(row.model_id) if t is not None else None))
    pairs = [r for r in out.rows if r.best is not None]
    out.n_boot = boot_count(max(len(pairs), 1), alpha)
    raw = []
    for r in pairs:
        best_row = next(x for x in groups[(r.short.dataset_id, r.short.dataset_version)]
                        if x.model_id == r.best)
        if r.best == r.short.model_id:  # the best row itself did not converge
            rows = {LONG: r.long, f"{r.best} (at its budget)": best_row}
            pair = (LONG, f"{r.best} (at its budget)")
        else:
            rows, pair = {LONG: r.long, r.best: best_row}, (LONG, r.best)
        raw.append(run_pairs(rows, [pair], store, "test", out.n_boot)[pair])
    for r, t in zip(pairs, correct(raw, alpha), strict=True):
        r.vs_best_long = t
    return out
