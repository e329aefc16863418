"""Paired tests between the rows of one dataset, as the leaderboard and `mlwm compare`
call them: which comparisons, on which seeds and rows, with what correction.

Two models are compared on the seeds both ran with per-row predictions on the same test
rows (each seed re-draws the split, so rows pair only within a seed): the hierarchical
paired bootstrap of stats.paired_bootstrap (seeds, then rows) of the metric difference,
Holm-corrected over a family of comparisons (a dataset's table; everything `mlwm
compare` shows), and stats.verdict on the corrected p. McNemar's test is added for
accuracy as a second opinion. A comparison gets "no test", with its reason, when fewer
than 2 seeds have predictions of both models on the same rows, or when the resampled
differences have no variance: no verdict rests on either.

Speed: a table of k models makes about 2k comparisons, and stats.paired_bootstrap
spends most of its time drawing row resamples (B x seeds x rows of them). Its random
stream depends only on the shapes (seeds, rows per seed, B, its seed), so every pair of
a table scored on the same seeds and rows draws the same resamples; `shared_bootstrap`
draws them once and scores every model on them, which gives each pair exactly the
result stats.paired_bootstrap gives it (a test checks equality) for the cost of one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from .. import metrics as metric_table
from . import stats
from .rows import PredictionFile, Row

ALPHA = 0.05
MIN_BOOT = 2000    # resamples at least (p floors at 2 / (B + 1))
MAX_BOOT = 100_000  # and at most (compare over many datasets: about 2,000 comparisons)
SPLITS = ("test", "ood_test")


def boot_count(comparisons: int, alpha: float = ALPHA) -> int:
    """Resamples for a family of m Holm-corrected comparisons: more than 2 m / alpha (as
    stats.paired_bootstrap asks), so that a difference no resample crosses, whose p is
    the floor 2 / (B + 1), passes Holm's strictest step alpha / m; at least MIN_BOOT."""
    return int(min(MAX_BOOT, max(MIN_BOOT, math.ceil(2 * max(comparisons, 1) / alpha) + 1)))


# -- per-row predictions on disk --------------------------------------------------------
class PredictionStore:
    """Each prediction file read once, its bytes checked against the hash its record
    holds (a file replaced after the run must not be tested as if it were the run's)."""

    def __init__(self) -> None:
        self._files: dict[PredictionFile, dict[str, np.ndarray] | str] = {}

    def arrays(self, pf: PredictionFile) -> dict[str, np.ndarray] | str:
        """The arrays of a file, or why it cannot be used (one line)."""
        if pf not in self._files:
            self._files[pf] = _read(pf)
        return self._files[pf]

    def seeds(self, row: Row, split: str) -> tuple[dict[int, tuple[np.ndarray, np.ndarray]], str]:
        """{seed: (pred, target)} of a row on a split, and why seeds are missing ("" when
        none is)."""
        out, why = {}, []
        for seed in row.seeds:
            pf = row.predictions.get(seed)
            if pf is None:
                why.append(f"seed {seed}: no prediction file")
                continue
            arrays = self.arrays(pf)
            if isinstance(arrays, str):
                why.append(f"seed {seed}: {arrays}")
            elif f"{split}/pred" not in arrays or f"{split}/target" not in arrays:
                why.append(f"seed {seed}: no {split} predictions in {pf.path.name}")
            else:
                out[seed] = (arrays[f"{split}/pred"], arrays[f"{split}/target"])
        return out, "; ".join(why)


def _read(pf: PredictionFile) -> dict[str, np.ndarray] | str:
    import zipfile

    try:
        data = pf.path.read_bytes()
    except OSError as exc:
        return f"{pf.path.name} unreadable ({exc.strerror or exc})"
    if hashlib.sha256(data).hexdigest() != pf.sha256:
        return f"{pf.path.name} does not match the hash in its record"
    try:  # allow_pickle=False: a planted object array is refused, never unpickled
        with np.load(io.BytesIO(data), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        return f"{pf.path.name} is not a predictions file ({type(exc).__name__})"


# -- one comparison ---------------------------------------------------------------------
@dataclass(frozen=True)
class PairTest:
    """Model a against model b on one dataset and split, from a's side."""

    a: str
    b: str
    split: str
    result: stats.PairedTest | None = None  # None: no test
    reason: str = ""                        # why no test, in full ("" when tested)
    short: str = ""                         # the same in two or three words, for a cell
    p_holm: float | None = None             # corrected over `family` comparisons
    verdict: str | None = None              # stats.WIN / TIE / LOSS; None: no test
    mcnemar: stats.PairedTest | None = None  # accuracy only, uncorrected second opinion
    family: int = 0

    @property
    def tested(self) -> bool:
        return self.result is not None

    def flipped(self) -> PairTest:
        """The same comparison from b's side."""
        swap = {stats.WIN: stats.LOSS, stats.LOSS: stats.WIN}
        return dataclasses.replace(self, a=self.b, b=self.a, result=_flip(self.result),
                                   mcnemar=_flip(self.mcnemar),
                                   verdict=swap.get(self.verdict, self.verdict))


def _flip(r: stats.PairedTest | None) -> stats.PairedTest | None:
    if r is None:
        return None
    counts = None if r.counts is None else {**r.counts, "a_only": r.counts["b_only"],
                                            "b_only": r.counts["a_only"]}
    return dataclasses.replace(r, difference=-r.difference, improvement=-r.improvement,
                               ci=None if r.ci is None else (-r.ci[1], -r.ci[0]),
                               counts=counts)


def _no_test(a: str, b: str, split: str, short: str, reason: str) -> PairTest:
    return PairTest(a, b, split, reason=reason, short=short)


# -- the shared bootstrap ---------------------------------------------------------------
def shared_bootstrap(metric: metric_table.Metric | str,
                     seeds: Sequence[dict[str, np.ndarray]],
                     pairs: Sequence[tuple[str, str]], n_boot: int, seed: int = 0,
                     level: float = 0.95) -> dict[tuple[str, str], stats.PairedTest]:
    """stats.paired_bootstrap for many pairs of models scored on the same rows: seeds is,
    per seed (in the order paired_bootstrap would get them), model -> its contributions
    (metric.contributions of its predictions on that seed's rows, every model the same
    rows). The random draws are paired_bootstrap's, in its order, so each pair's result
    equals paired_bootstrap([(pred_a, pred_b, target) per seed], metric, n_boot, seed);
    only the row resamples are drawn once for all pairs."""
    m = metric if isinstance(metric, metric_table.Metric) else metric_table.metric(metric)
    models = sorted({x for p in pairs for x in p})
    rng = np.random.default_rng(seed)
    n_seeds = len(seeds)
    draws = (rng.integers(0, n_seeds, size=(n_boot, n_seeds)) if n_seeds >= 2
             else np.zeros((n_boot, 1), dtype=np.int64))
    totals = {p: np.zeros(n_boot) for p in pairs}
    observed: dict[tuple[str, str], list[float]] = {p: [] for p in pairs}
    n_rows = 0
    for s, contributions in enumerate(seeds):
        n = len(contributions[models[0]])
        n_rows += n
        value = {k: float(m.from_sums(contributions[k].sum(axis=0))) for k in models}
        same = {(a, b): np.array_equal(contributions[a], contributions[b]) for a, b in pairs}
        for a, b in pairs:
            observed[(a, b)].append(value[a] - value[b])
        # every model's contributions side by side: one product per block scores them all
        stacked = np.concatenate([contributions[k] for k in models], axis=1)
        ends = np.cumsum([contributions[k].shape[1] for k in models])
        columns = {k: slice(e - contributions[k].shape[1], e) for k, e in zip(models, ends,
                                                                               strict=True)}
        replicate_of_draw = np.nonzero(draws == s)[0]
        count = len(replicate_of_draw)
        out = {p: np.empty(count) for p in pairs}
        block = max(1, stats.ROW_BUDGET // max(n, 1))
        for start in range(0, count, block):  # paired_bootstrap's blocks, its draws
            size = min(block, count - start)
            picks = rng.integers(0, n, size=(size, n))
            flat = (np.arange(size)[:, None] * n + picks).ravel()
            weights = np.bincount(flat, minlength=size * n).reshape(size, n).astype(np.float64)
            sums = weights @ stacked
            scored = {k: np.asarray(m.from_sums(sums[:, columns[k]])) for k in models}
            for a, b in pairs:  # identical models: exactly 0, as paired_bootstrap finds
                out[(a, b)][start:start + size] = 0.0 if same[(a, b)] else scored[a] - scored[b]
        for p in pairs:
            np.add.at(totals[p], replicate_of_draw, out[p])
    method = ("hierarchical paired bootstrap (seeds, then test rows)" if n_seeds >= 2
              else "paired bootstrap (test rows)")
    results = {}
    for p in pairs:
        boot = totals[p] / draws.shape[1]
        difference = float(np.mean(observed[p]))
        low, high = np.quantile(boot, [(1 - level) / 2, (1 + level) / 2])
        below, above = int((boot <= 0).sum()), int((boot >= 0).sum())
        pvalue = min(1.0, 2 * (min(below, above) + 1) / (n_boot + 1))
        results[p] = stats.PairedTest(method, m.name, m.higher_is_better, difference,
                                      m.sign * difference, (float(low), float(high)), level,
                                      pvalue, bool(np.ptp(boot) == 0), n_seeds, n_rows)
    return results


# -- a family of comparisons ------------------------------------------------------------
@dataclass
class Family:
    """Comparisons corrected together, the method in words and what it took."""

    tests: dict[tuple[str, str], PairTest] = field(default_factory=dict)
    n_boot: int = 0
    alpha: float = ALPHA

    @property
    def tested(self) -> int:
        return sum(t.tested for t in self.tests.values())

    def get(self, a: str, b: str) -> PairTest | None:
        """a against b, from a's side, whichever way it was computed."""
        if (a, b) in self.tests:
            return self.tests[(a, b)]
        t = self.tests.get((b, a))
        return None if t is None else t.flipped()

    def method(self) -> str:
        """One sentence naming the test, the correction and the family."""
        kinds = sorted({t.result.method for t in self.tests.values() if t.result})
        mcnemar = any(t.mcnemar for t in self.tests.values())
        if not kinds:
            return "no paired test was possible (see each comparison's reason)"
        return (f"{' / '.join(kinds)} of the metric difference, {self.n_boot} resamples; "
                f"p Holm-corrected over the {self.tested} tested comparisons; a difference "
                f"counts when its corrected p is below {self.alpha:g} and its 95% interval excludes 0"
                + ("; McNemar (pooled over seeds, uncorrected) as a second opinion in the "
                   "CSV" if mcnemar else ""))


def run_pairs(rows: dict[str, Row], pairs: Iterable[tuple[str, str]], store: PredictionStore,
               split: str = "test", n_boot: int = MIN_BOOT, seed: int = 0) -> dict:
    """Uncorrected paired tests of (a, b) model ids among `rows` (one dataset's), on the
    seeds both ran with predictions of the same rows."""
    pairs = list(dict.fromkeys(pairs))
    first = next(iter(rows.values()))
    try:
        metric = metric_table.metric(first.metric)
    except Exception:  # an older record's metric the table no longer has
        return {p: _no_test(*p, split, "no test (metric)", f"metric {first.metric!r} has no "
                            "resampling decomposition in benchmarks.metrics") for p in pairs}
    loaded = {k: store.seeds(rows[k], split) for k in {x for p in pairs for x in p}}
    contributions: dict[tuple[str, int], np.ndarray] = {}
    target_key: dict[tuple[str, int], tuple] = {}
    for k, (by_seed, _) in loaded.items():
        for s, (pred, target) in by_seed.items():
            if len(pred) != len(target):
                continue  # a broken file: no rows to pair
            target_key[(k, s)] = (len(target), hashlib.sha1(
                np.ascontiguousarray(target).tobytes()).hexdigest())
    out: dict[tuple[str, str], PairTest] = {}
    groups: dict[tuple, list[tuple[str, str]]] = {}
    for a, b in pairs:
        common = sorted(s for s in set(loaded[a][0]) & set(loaded[b][0])
                        if (a, s) in target_key and target_key[(a, s)] == target_key.get((b, s)))
        if len(common) >= 2:
            groups.setdefault(tuple((s, target_key[(a, s)]) for s in common), []).append((a, b))
            continue
        out[(a, b)] = _missing(a, b, split, loaded, common)
    for key, group in groups.items():
        per_seed = []
        for s, _ in key:
            involved = {x for p in group for x in p}
            for k in involved:
                if (k, s) not in contributions:
                    pred, target = loaded[k][0][s]
                    contributions[(k, s)] = metric.contributions(pred, target)
            per_seed.append({k: contributions[(k, s)] for k in involved})
        results = shared_bootstrap(metric, per_seed, group, n_boot, seed)
        for a, b in group:
            r = results[(a, b)]
            if r.zero_variance:
                same = r.difference == 0
                out[(a, b)] = PairTest(a, b, split, reason=(
                    "zero variance: identical predictions on every row of every seed" if same
                    else "zero variance: every resample gives the same difference, so no "
                    "interval can be put on it"), short="no test (zero variance)")
                continue
            out[(a, b)] = PairTest(a, b, split, r, mcnemar=_mcnemar(metric, loaded, a, b, key))
    return out


def _mcnemar(metric, loaded, a: str, b: str, key: tuple) -> stats.PairedTest | None:
    """McNemar on per-row correctness, for accuracy only (where a row is right or not)."""
    if metric.name != "acc":
        return None
    right = [[np.asarray(loaded[k][0][s][0]).reshape(-1) == np.asarray(loaded[k][0][s][1]
                                                                           ).reshape(-1)
              for s, _ in key] for k in (a, b)]
    return stats.mcnemar(right[0], right[1])


def _missing(a: str, b: str, split: str, loaded, common: list[int]) -> PairTest:
    """Why a pair has fewer than 2 seeds to pair on, most telling reason first."""
    for k in (a, b):
        by_seed, why = loaded[k]
        if not by_seed:
            older = why and all("no prediction file" in w for w in why.split("; "))
            return _no_test(a, b, split, "no test (no predictions)",
                            f"{k} has no per-row {split} predictions"
                            + (" (records written before predictions were kept)" if older
                               else f": {why}" if why else ""))
    lost = "; ".join(f"{k}: {loaded[k][1]}" for k in (a, b) if loaded[k][1])
    return _no_test(a, b, split, f"no test ({len(common)} seed{'s' * (len(common) != 1)})",
                    f"{len(common)} seed(s) with predictions of both {a} and {b} on the same "
                    f"{split} rows; a paired test needs 2" + (f" ({lost})" if lost else ""))


def correct(tests: Iterable[PairTest], alpha: float = ALPHA) -> list[PairTest]:
    """Holm over the tested comparisons given (one family), then stats.verdict at alpha on
    each corrected p; untested comparisons pass through with the family's size."""
    tests = list(tests)
    tested = [t for t in tests if t.tested]
    adjusted = stats.holm([t.result.p for t in tested]) if tested else []
    fixed = {id(t): dataclasses.replace(t, p_holm=float(p), family=len(tested),
                                        verdict=stats.verdict(t.result, alpha, p=float(p)))
             for t, p in zip(tested, adjusted, strict=True)}
    return [fixed.get(id(t), dataclasses.replace(t, family=len(tested))) for t in tests]


# -- a dataset's table --------------------------------------------------------------------
@dataclass
class DatasetTests:
    """Each model of a dataset's table against the best model and against the baseline,
    one Holm family."""

    best: str | None = None
    baseline: str | None = None
    family: Family = field(default_factory=Family)

    def vs_best(self, model: str) -> PairTest | None:
        return None if self.best in (None, model) else self.family.get(model, self.best)

    def vs_baseline(self, model: str) -> PairTest | None:
        return None if self.baseline in (None, model) else self.family.get(model, self.baseline)

    def beats_baseline(self, model: str) -> bool:
        """Significantly better than the baseline (True where the dataset has none)."""
        if self.baseline is None:
            return True
        t = self.vs_baseline(model)
        return t is not None and t.verdict == stats.WIN


def dataset_tests(group: list[Row], store: PredictionStore, alpha: float = ALPHA,
                  seed: int = 0) -> DatasetTests:
    """The comparisons of one dataset's table (rows ranked best first): every row with a
    result against the best and every non-baseline row against the best baseline row,
    each pair once, Holm-corrected together."""
    ok = [r for r in group if r.ok]
    if not ok:
        return DatasetTests()
    best = ok[0].model_id
    base = next((r.model_id for r in ok if r.baseline), None)
    pairs = [(r.model_id, best) for r in ok if r.model_id != best]
    if base is not None:  # each unordered pair once: (best, base) is in both lists
        seen = {frozenset(p) for p in pairs}
        pairs += [(r.model_id, base) for r in ok if not r.baseline and r.model_id != base
                  and frozenset((r.model_id, base)) not in seen]
    n_boot = boot_count(len(pairs), alpha)
    rows = {r.model_id: r for r in ok}
    raw = run_pairs(rows, pairs, store, "test", n_boot, seed) if pairs else {}
    tests = correct([raw[p] for p in pairs], alpha)
    return DatasetTests(best, base, Family({(t.a, t.b): t for t in tests}, n_boot, alpha))


def cell_text(t: PairTest | None, words: dict[str, str]) -> str:
    """A comparison in a table cell: a word for the verdict and the corrected p, or the
    short reason there is no test. words maps WIN/TIE/LOSS to the column's wording."""
    if t is None:
        return ""
    if not t.tested:
        return t.short or "no test"
    return f"{words[t.verdict]} (p={stats.fmt_p(t.p_holm)})"
