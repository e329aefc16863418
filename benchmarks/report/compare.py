"""`mlwm compare`: chosen models on chosen datasets, with differences tested over seeds.

    mlwm compare --models gru,lstm,transformer --datasets 'dyck*' --alpha 0.05

Prints the models' primary test metric per dataset (mean ± std, n), a pairwise
win/tie/loss matrix over datasets, and per dataset and pair the test used and its
p-value. A difference counts as a win only when Welch's t-test (unequal variances,
both sides with at least two seeds) gives p < alpha; anything else, including a pair
with one seed on a side, is a tie. p-values are not corrected for multiple comparisons.
"""

from __future__ import annotations

import fnmatch
import math
import warnings
from dataclasses import dataclass

from ..errors import UserError
from .rows import Row, by_dataset, mean
from .tables import arrow, dataset_label, fmt, fmt_mean_std

WELCH = "Welch's t-test"


@dataclass(frozen=True)
class Verdict:
    """The outcome of a against b on one dataset: +1 a better, -1 b better, 0 a tie."""

    outcome: int
    p: float | None   # None when no test could be run
    test: str         # the test used, or why none was


def significance(a: list[float], b: list[float], higher_is_better: bool = True,
                 alpha: float = 0.05) -> Verdict:
    """Whether a beats b over seeds: Welch's t-test, a win only when p < alpha."""
    if len(a) < 2 or len(b) < 2:
        return Verdict(0, None, f"none: {min(len(a), len(b))} seed(s) on a side, needs 2")
    diff = mean(a) - mean(b)
    better = 1 if (diff > 0) == higher_is_better else -1
    if max(a) == min(a) and max(b) == min(b):  # no noise at all: the t statistic is 0/0 or inf
        return Verdict(0 if diff == 0 else better, 1.0 if diff == 0 else 0.0,
                       WELCH + " (zero variance)")
    from scipy.stats import ttest_ind

    with warnings.catch_warnings():  # nearly constant seeds: scipy warns, the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        p = float(ttest_ind(a, b, equal_var=False).pvalue)
    if math.isnan(p) or p >= alpha:
        return Verdict(0, p, WELCH)
    return Verdict(better, p, WELCH)


@dataclass
class Comparison:
    models: list[str]                               # model ids, in the order asked
    datasets: list[tuple[str, str]]                 # (id, version)
    cells: dict[tuple[tuple[str, str], str], Row]   # (dataset, model) -> its row
    verdicts: dict[tuple[tuple[str, str], str, str], Verdict]  # (dataset, a, b), a before b

    def record(self, a: str, b: str) -> tuple[int, int, int]:
        """Wins, ties and losses of a against b over the datasets where both have results."""
        outcomes = [v.outcome for v in (self.verdict(ds, a, b) for ds in self.datasets)
                    if v is not None]
        return outcomes.count(1), outcomes.count(0), outcomes.count(-1)

    def verdict(self, ds: tuple[str, str], a: str, b: str) -> Verdict | None:
        if (ds, a, b) in self.verdicts:
            return self.verdicts[(ds, a, b)]
        v = self.verdicts.get((ds, b, a))
        return None if v is None else Verdict(-v.outcome, v.p, v.test)


def select_models(patterns: list[str], available: list[str]) -> list[str]:
    """Model ids matching each pattern (an exact id or a wildcard), in the order given."""
    chosen: list[str] = []
    for pat in patterns:
        hits = [m for m in sorted(available) if fnmatch.fnmatchcase(m, pat)]
        if not hits:
            import difflib

            close = difflib.get_close_matches(pat, available, n=3, cutoff=0.5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise UserError(f"no results for model {pat!r}{hint} (models with records: "
                            f"{', '.join(sorted(available)) or 'none'})")
        chosen += [m for m in hits if m not in chosen]
    return chosen


def compare(rows: list[Row], models: list[str], datasets: str = "*",
            alpha: float = 0.05) -> Comparison:
    """Compare model ids (patterns allowed) on the datasets whose id matches `datasets`."""
    groups = {k: g for k, g in by_dataset(rows).items() if fnmatch.fnmatchcase(k[0], datasets)}
    if not groups:
        raise UserError(f"no dataset matches {datasets!r} (datasets with records: "
                        f"{', '.join(sorted({r.dataset_id for r in rows})) or 'none'})")
    chosen = select_models(models, sorted({r.model_id for g in groups.values() for r in g}))
    if len(chosen) < 2:
        raise UserError(f"compare needs at least two models; {', '.join(chosen)} matched")
    cells = {(k, r.model_id): r for k, g in groups.items() for r in g if r.model_id in chosen}
    datasets_used = [k for k in groups if any((k, m) in cells for m in chosen)]
    verdicts = {}
    for ds in datasets_used:
        for i, a in enumerate(chosen):
            for b in chosen[i + 1:]:
                ra, rb = cells.get((ds, a)), cells.get((ds, b))
                if ra is not None and rb is not None and ra.ok and rb.ok:
                    verdicts[(ds, a, b)] = significance(ra.test, rb.test, ra.higher_is_better,
                                                        alpha)
    return Comparison(chosen, datasets_used, cells, verdicts)


# -- printing -------------------------------------------------------------------------
def print_comparison(cmp: Comparison, alpha: float, console) -> None:
    """The results table, the win/tie/loss matrix and the per-pair tests, with rich."""
    from rich.table import Table
    from rich.text import Text

    results = Table(title="Primary test metric: mean ± std over seeds (n seeds)",
                    title_justify="left")
    results.add_column("dataset")
    results.add_column("metric")
    for m in cmp.models:
        results.add_column(Text(m), justify="right")
    for ds in cmp.datasets:
        any_row = next(cmp.cells[(ds, m)] for m in cmp.models if (ds, m) in cmp.cells)
        cells = []
        for m in cmp.models:
            r = cmp.cells.get((ds, m))
            if r is None:
                cells.append(Text("."))
            elif not r.ok:
                cells.append(Text("skipped" if r.skipped else "failed", style="dim"))
            else:
                cells.append(Text(f"{fmt_mean_std(r.test)} ({len(r.test)})"))
        results.add_row(Text(dataset_label(*ds)), Text(f"{any_row.metric} {arrow(any_row)}"), *cells)
    console.print(results)

    matrix = Table(title=f"Wins/ties/losses of the row model against the column model over "
                         f"datasets ({WELCH}, p < {alpha:g} to win)", title_justify="left")
    matrix.add_column("")
    for m in cmp.models:
        matrix.add_column(Text(m), justify="center")
    for a in cmp.models:
        matrix.add_row(Text(a), *(Text("—") if a == b else Text("/".join(map(str, cmp.record(a, b))))
                                  for b in cmp.models))
    console.print(matrix)

    pairs = Table(title=f"Per dataset and pair (alpha = {alpha:g}; a tie is a difference "
                        "inside the noise; p not corrected for multiple comparisons)",
                  title_justify="left")
    for col in ("dataset", "A", "B", "mean A", "mean B", "A − B", "test", "p", "verdict"):
        pairs.add_column(col, justify="right" if col in ("mean A", "mean B", "A − B", "p")
                         else "left")
    for ds in cmp.datasets:
        for i, a in enumerate(cmp.models):
            for b in cmp.models[i + 1:]:
                v = cmp.verdict(ds, a, b)
                if v is None:
                    continue
                ra, rb = cmp.cells[(ds, a)], cmp.cells[(ds, b)]
                winner = {1: f"{a} better", -1: f"{b} better", 0: "tie"}[v.outcome]
                pairs.add_row(Text(dataset_label(*ds)), Text(a), Text(b), fmt(mean(ra.test)),
                              fmt(mean(rb.test)), fmt(mean(ra.test) - mean(rb.test)),
                              v.test, "" if v.p is None else f"{v.p:.3g}",
                              Text(winner, style="bold" if v.outcome else "dim"))
    console.print(pairs)
