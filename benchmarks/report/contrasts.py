"""Published contrasts: results from the literature that a suite names
([[contrasts]] tables) and the leaderboard checks against its own records.

A contrast names a dataset, a split ("test" or "ood_test") and models in the published
order, best first. Each adjacent pair is compared by the paired test of
benchmarks.report.significance, Holm-corrected over the contrast's pairs, and the
contrast reads:

- "holds" when every adjacent pair is a significant win in the published direction;
- "reversed" when some adjacent pair is significant the other way (named);
- "not resolved by the data" otherwise (a tie, no test, or a model without a result).

`expected = "tie"` (or "tied", "equal", "≈") states instead that the models are
indistinguishable (e.g. a task a model does not learn, against the constant): it "holds"
when every adjacent pair was tested and is a tie, "does not hold" when one differs.
Any other `expected` text is the published claim, shown as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from . import stats
from .rows import Row
from .significance import ALPHA, Family, PairTest, PredictionStore, boot_count, correct, run_pairs

HOLDS, REVERSED, UNRESOLVED, DOES_NOT_HOLD = ("holds", "reversed", "not resolved by the data",
                                              "does not hold")
TIE_WORDS = {"tie", "tied", "equal", "≈", "="}


@dataclass
class Contrast:
    """One published contrast and what the records say about it."""

    name: str
    source: str
    dataset: str
    split: str
    expected: str                      # the published claim as the suite states it
    models: list[str]
    rows: list[Row | None] = field(default_factory=list)      # per model, None: no row
    cis: list[stats.MeanCI | None] = field(default_factory=list)  # on `split`
    steps: list[PairTest | None] = field(default_factory=list)  # models[i] vs models[i+1]
    family: Family = field(default_factory=Family)
    outcome: str = UNRESOLVED
    why: str = ""
    metric: str = ""

    @property
    def expects_tie(self) -> bool:
        return self.expected.strip().lower() in TIE_WORDS


def _group_for(dataset: str, groups: dict[tuple[str, str], list[Row]]) -> list[Row] | None:
    """A dataset id's rows; of several versions, the newest (by number where they are)."""
    keys = [k for k in groups if k[0] == dataset]
    if not keys:
        return None
    return groups[max(keys, key=lambda k: (k[1].isdigit(), int(k[1]) if k[1].isdigit() else 0,
                                          k[1]))]


def evaluate(spec: dict[str, Any], groups: dict[tuple[str, str], list[Row]],
             store: PredictionStore, alpha: float = ALPHA) -> Contrast:
    """A contrast table of the suite, checked against the rows."""
    split = str(spec.get("split") or "test")
    c = Contrast(str(spec.get("name", "")), str(spec.get("source", "")),
                 str(spec.get("dataset", "")), split, str(spec.get("expected", "")),
                 [str(m) for m in spec.get("models", [])])
    group = _group_for(c.dataset, groups)
    by_id = {r.model_id: r for r in group or []}
    c.rows = [by_id.get(m) for m in c.models]
    c.metric = group[0].metric if group else ""
    for r in c.rows:
        values = r.split_values(split)[1] if r is not None and split in ("test", "ood_test") \
            else []
        c.cis.append(stats.mean_ci(values) if values else None)
    if split not in ("test", "ood_test"):
        c.why = f"split {split!r} is neither test nor ood_test"
        return c
    if group is None:
        c.why = f"no records of dataset {c.dataset!r}"
        return c
    missing = [m for m, ci in zip(c.models, c.cis, strict=True) if ci is None]
    if len(c.models) < 2:
        c.why = "a contrast needs at least two models"
        return c
    pairs = list(zip(c.models, c.models[1:], strict=False))
    present = {m: by_id[m] for m in c.models if m in by_id and by_id[m].ok}
    testable = [p for p in pairs if p[0] in present and p[1] in present]
    raw = run_pairs(present, testable, store, split, boot_count(len(pairs), alpha)) \
        if testable else {}
    tests = {(t.a, t.b): t for t in correct([raw[p] for p in testable], alpha)}
    c.family = Family(tests, boot_count(len(pairs), alpha), alpha)
    c.steps = [tests.get(p) for p in pairs]
    c.outcome, c.why = _outcome(c, pairs, missing)
    return c


def _outcome(c: Contrast, pairs: list[tuple[str, str]], missing: list[str]) -> tuple[str, str]:
    """The contrast's reading and the reason, from its adjacent comparisons."""
    verdicts = [t.verdict if t is not None else None for t in c.steps]
    if c.expects_tie:
        differ = [f"{a} and {b} differ (corrected p = {stats.fmt_p(t.p_holm)})"
                  for (a, b), t in zip(pairs, c.steps, strict=True)
                  if t is not None and t.verdict in (stats.WIN, stats.LOSS)]
        if differ:
            return DOES_NOT_HOLD, "; ".join(differ)
        if not missing and all(v == stats.TIE for v in verdicts):
            return HOLDS, ("no adjacent pair differs significantly (a tie is no proof of "
                           "equality)")
    else:
        against = [f"{b} is significantly better than {a} (corrected p = {stats.fmt_p(t.p_holm)})"
                   for (a, b), t in zip(pairs, c.steps, strict=True)
                   if t is not None and t.verdict == stats.LOSS]
        if against:
            return REVERSED, "; ".join(against)
        if not missing and all(v == stats.WIN for v in verdicts):
            return HOLDS, "every adjacent pair is a significant win in the published order"
    if missing:
        return UNRESOLVED, "no result for " + ", ".join(missing)
    unresolved = []
    for (a, b), t in zip(pairs, c.steps, strict=True):
        if t is None or not t.tested:
            unresolved.append(f"{a} vs {b}: {t.reason if t else 'no test'}")
        elif t.verdict == stats.TIE and not c.expects_tie:
            unresolved.append(f"{a} ≈ {b} (corrected p = {stats.fmt_p(t.p_holm)})")
    return UNRESOLVED, "; ".join(unresolved)


def contrasts(specs: list[dict[str, Any]], groups: dict[tuple[str, str], list[Row]],
              store: PredictionStore, alpha: float = ALPHA) -> list[Contrast]:
    """Every contrast of the plan, in the plan's order."""
    return [evaluate(s, groups, store, alpha) for s in specs]

