"""`mlwm compare`: chosen models on chosen datasets, with differences tested as the
leaderboard tests them.

    mlwm compare --models gru,lstm,transformer --datasets 'dyck*' --alpha 0.05

Prints the models' primary test metric per dataset (mean ± 95% interval, n seeds), a
pairwise win/tie/loss matrix over datasets, and per dataset and pair the paired test:
the hierarchical paired bootstrap of the metric difference on the seeds and test rows
both models share (benchmarks.report.significance), Holm-corrected over every comparison
shown, a win only at corrected p < alpha with the interval excluding 0. A pair with fewer
than 2 such seeds, without prediction files, or whose differences have no variance gets
"no test" with the reason, and counts in no column of the matrix.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

from ..errors import UserError
from . import stats
from .rows import Row, by_dataset, mean
from .significance import ALPHA, PairTest, PredictionStore, boot_count, correct, run_pairs
from .tables import arrow, dataset_label, fmt, fmt_ci


@dataclass
class Comparison:
    models: list[str]                               # model ids, in the order asked
    datasets: list[tuple[str, str]]                 # (id, version)
    cells: dict[tuple[tuple[str, str], str], Row]   # (dataset, model) -> its row
    tests: dict[tuple[tuple[str, str], str, str], PairTest]  # (dataset, a, b), a before b
    n_boot: int = 0

    def test(self, ds: tuple[str, str], a: str, b: str) -> PairTest | None:
        """a against b on a dataset, from a's side (None: not both have results)."""
        if (ds, a, b) in self.tests:
            return self.tests[(ds, a, b)]
        t = self.tests.get((ds, b, a))
        return None if t is None else t.flipped()

    def record(self, a: str, b: str) -> tuple[int, int, int]:
        """Wins, ties and losses of a against b over the datasets where a test ran."""
        verdicts = [t.verdict for t in (self.test(ds, a, b) for ds in self.datasets)
                    if t is not None and t.tested]
        return verdicts.count(stats.WIN), verdicts.count(stats.TIE), verdicts.count(stats.LOSS)

    def untested(self, a: str, b: str) -> int:
        """Datasets where both have results but no paired test was possible."""
        return sum(1 for ds in self.datasets
                   if (t := self.test(ds, a, b)) is not None and not t.tested)

    def method(self) -> str:
        kinds = sorted({t.result.method for t in self.tests.values() if t.tested})
        tested = sum(t.tested for t in self.tests.values())
        return (f"{' / '.join(kinds) or 'paired bootstrap'}, {self.n_boot} resamples, "
                f"Holm-corrected over the {tested} tested comparisons shown")


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
            alpha: float = ALPHA, store: PredictionStore | None = None) -> Comparison:
    """Compare model ids (patterns allowed) on the datasets whose id matches `datasets`:
    every pair of chosen models on every dataset where both have results, one family."""
    groups = {k: g for k, g in by_dataset(rows).items() if fnmatch.fnmatchcase(k[0], datasets)}
    if not groups:
        raise UserError(f"no dataset matches {datasets!r} (datasets with records: "
                        f"{', '.join(sorted({r.dataset_id for r in rows})) or 'none'})")
    chosen = select_models(models, sorted({r.model_id for g in groups.values() for r in g}))
    if len(chosen) < 2:
        raise UserError(f"compare needs at least two models; {', '.join(chosen)} matched")
    cells = {(k, r.model_id): r for k, g in groups.items() for r in g if r.model_id in chosen}
    # every pair on every dataset where both have results: the family Holm corrects, and
    # the size the resample count is chosen for, is everything the command prints
    datasets_used = [k for k in groups if any((k, m) in cells for m in chosen)]
    pairs = {ds: [(a, b) for i, a in enumerate(chosen) for b in chosen[i + 1:]
                  if cells.get((ds, a)) and cells[(ds, a)].ok
                  and cells.get((ds, b)) and cells[(ds, b)].ok] for ds in datasets_used}
    n_boot = boot_count(sum(len(p) for p in pairs.values()), alpha)
    store = store or PredictionStore()
    raw: list[tuple[tuple[str, str], PairTest]] = []
    for ds, ps in pairs.items():
        if ps:
            rows_here = {m: cells[(ds, m)] for p in ps for m in p}
            found = run_pairs(rows_here, ps, store, "test", n_boot)
            raw += [(ds, found[p]) for p in ps]
    fixed = correct([t for _, t in raw], alpha)  # one family across datasets
    tests = {(ds, t.a, t.b): t for (ds, _), t in zip(raw, fixed, strict=True)}
    return Comparison(chosen, datasets_used, cells, tests, n_boot)


# -- printing -------------------------------------------------------------------------
def print_comparison(cmp: Comparison, alpha: float, console) -> None:
    """The results table, the win/tie/loss matrix and the per-pair tests, with rich."""
    from rich.table import Table
    from rich.text import Text

    results = Table(title="Primary test metric: mean ± 95% interval over seeds (n seeds)",
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
                cells.append(Text(f"{fmt_ci(r.test)} ({len(r.test)})"))
        results.add_row(Text(dataset_label(*ds)), Text(f"{any_row.metric} {arrow(any_row)}"), *cells)
    console.print(results)

    matrix = Table(title=f"Wins/ties/losses of the row model against the column model over "
                         f"datasets ({cmp.method()}; corrected p < {alpha:g} to win; "
                         "+k: datasets with no test)", title_justify="left")
    matrix.add_column("")
    for m in cmp.models:
        matrix.add_column(Text(m), justify="center")
    for a in cmp.models:
        row = []
        for b in cmp.models:
            if a == b:
                row.append(Text("—"))
                continue
            n = cmp.untested(a, b)  # shown, not hidden among the ties
            row.append(Text("/".join(map(str, cmp.record(a, b))) + (f" +{n}" if n else "")))
        matrix.add_row(Text(a), *row)
    console.print(matrix)

    pairs = Table(title=f"Per dataset and pair (alpha = {alpha:g}; a tie is a difference "
                        "inside the noise; p Holm-corrected over every comparison shown)",
                  title_justify="left")
    for col in ("dataset", "A", "B", "mean A", "mean B", "A − B", "95% interval", "test",
                "p", "p (Holm)", "verdict"):
        pairs.add_column(col, justify="right" if col in ("mean A", "mean B", "A − B", "p",
                                                         "p (Holm)") else "left")
    for ds in cmp.datasets:
        for i, a in enumerate(cmp.models):
            for b in cmp.models[i + 1:]:
                t = cmp.test(ds, a, b)
                if t is None:
                    continue
                ra, rb = cmp.cells[(ds, a)], cmp.cells[(ds, b)]
                if t.tested:
                    r = t.result
                    winner = {stats.WIN: f"{a} better", stats.LOSS: f"{b} better",
                              stats.TIE: "tie"}[t.verdict]
                    cols = [fmt(r.difference, 4), f"[{r.ci[0]:+.4f}, {r.ci[1]:+.4f}]",
                            r.method, f"{r.p:.3g}", f"{t.p_holm:.3g}"]
                    style = "bold" if t.verdict != stats.TIE else "dim"
                else:  # the difference of means, for orientation only; the reason why
                    winner, style = "no test", "dim"
                    cols = [fmt(mean(ra.test) - mean(rb.test), 4), "", t.reason, "", ""]
                pairs.add_row(Text(dataset_label(*ds)), Text(a), Text(b), fmt(mean(ra.test)),
                              fmt(mean(rb.test)), *[Text(c) for c in cols],
                              Text(winner, style=style))
    console.print(pairs)
