"""`mlwm compare`: chosen models on chosen datasets, with differences tested over seeds.

    mlwm compare --models gru,lstm,transformer --datasets 'dyck*' --alpha 0.05

Prints the models' primary test metric per dataset (mean ± std, n), a pairwise
win/tie/loss matrix over datasets, and per dataset and pair the test used and its
p-value. A difference counts as a win only when Welch's t-test (unequal variances,
both sides with at least two seeds) gives p < alpha; anything else, including a pair
with one seed on a side, is a tie. p-values are not corrected for multiple comparisons.
"""

from __future__ import annotations

import argparse
import fnmatch
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

from .errors import UserError
from .leaderboard import (
    Row,
    aggregate,
    arrow,
    dataset_label,
    fmt,
    fmt_mean_std,
    load_records,
    mean,
    tables,
)

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
    groups = {k: g for k, g in tables(rows).items() if fnmatch.fnmatchcase(k[0], datasets)}
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


def cmd_compare(args: argparse.Namespace) -> int:
    from .cli import _console

    if not 0.0 < args.alpha < 1.0:
        raise UserError(f"--alpha {args.alpha} is not a level between 0 and 1 (for example 0.05)")
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    records, problems = load_records(Path(args.results) / "runs", args.suite)
    console = _console()
    for path, why in problems:
        console.print(f"left out {path}: {why}", markup=False, highlight=False)
    if not records:
        raise UserError(f"no records of suite {args.suite!r} under {Path(args.results) / 'runs'}; "
                        f"run `mlwm benchmark --suite {args.suite}` first")
    cmp = compare(aggregate(records), models, args.datasets, args.alpha)
    print_comparison(cmp, args.alpha, console)
    return 0


def add_compare_parser(subparsers) -> argparse.ArgumentParser:
    """Register `mlwm compare` on the CLI's subparsers."""
    p = subparsers.add_parser("compare", help="compare models over seeds, with significance")
    p.add_argument("--models", required=True, metavar="A,B,...",
                   help="comma-separated model ids (wildcards allowed, e.g. 'gru@*')")
    p.add_argument("--datasets", default="*", metavar="PATTERN",
                   help="wildcard over dataset ids (default: all)")
    p.add_argument("--suite", default="default")
    p.add_argument("--results", default="results", help="results folder (default: results)")
    p.add_argument("--alpha", type=float, default=0.05,
                   help="significance level of Welch's t-test (default: 0.05)")
    p.set_defaults(func=cmd_compare)
    return p
