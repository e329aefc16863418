"""mheight, weaving and rsk (ACD Repo) against oracles that share no code with the
generators: mHeight and pattern containment by enumerating every 4-tuple of positions,
weaving patterns from every reduced word of the longest permutation, RSK by scalar
insertion, inverse RSK (reverse bumping), brute-force standard Young tableaux and the
longest increasing subsequence by dynamic programming; plus the ACD's published counts."""

from __future__ import annotations

import itertools
import math
from functools import cache

import numpy as np
import pytest
import torch

from benchmarks import registry
from benchmarks.errors import UserError
from datamodules import mheight as mh
from datamodules import rsk
from datamodules import weaving as wv


def generated(name, **params):
    dm = registry.create_dataset(name, **params)
    dm.setup()
    return dm


def one_line_error(name, param, **params):
    with pytest.raises(UserError) as err:
        registry.create_dataset(name, **params)
    msg = str(err.value)
    assert "\n" not in msg and param in msg, msg


def rows_of(dm, split, view="vector"):
    x = dm.inputs(split, view)
    return {tuple(r) for r in x.reshape(len(x), -1).tolist()}


def split_changes_with_data_seed(name, **params):
    a, b = generated(name, **params), generated(name, data_seed=1, **params)
    assert a.content_hash == generated(name, **params).content_hash
    assert rows_of(a, "test") != rows_of(b, "test"), "data_seed re-draws the split"
    return a, b


# -- mheight ---------------------------------------------------------------------------------
def occurrences(s, pattern):
    """Every position tuple where s contains the pattern (same relative order)."""
    k = len(pattern)
    return [pos for pos in itertools.combinations(range(len(s)), k)
            if all((s[pos[a]] < s[pos[b]]) == (pattern[a] < pattern[b])
                   for a in range(k) for b in range(k))]


def brute_mheight(s):
    """Least a_i - a_l over the 3412 occurrences (i, j, k, l); 0 when there is none."""
    return min((s[i] - s[ell] for i, _, _, ell in occurrences(s, (3, 4, 1, 2))), default=0)


@cache
def brute_universe(n):
    """{permutation: mHeight - 1} over S_n containing 3412 and avoiding 4231, by definition."""
    return {s: brute_mheight(s) - 1 for s in itertools.permutations(range(1, n + 1))
            if occurrences(s, (3, 4, 1, 2)) and not occurrences(s, (4, 2, 3, 1))}


def test_pattern_stats_match_every_quadruple_on_all_of_s7():
    perms = list(itertools.permutations(range(1, 8)))
    height, has_4231 = mh.pattern_stats(np.array(perms, dtype=np.int8))
    assert height.tolist() == [brute_mheight(s) for s in perms]
    assert has_4231.tolist() == [bool(occurrences(s, (4, 2, 3, 1))) for s in perms]


@pytest.mark.parametrize("n", [5, 6, 7])
def test_universe_is_the_definition_and_mheight_tops_at_n_minus_3(n):
    perms, labels = mh.mheight_universe(n)
    assert dict(zip(map(tuple, perms.tolist()), labels.tolist(), strict=True)) == brute_universe(n)
    assert max(brute_universe(n).values()) == n - 4  # classes 0..n-4 = num_outputs n-3


# class sizes (train + test) in the ACD README: the same universe, labelled mHeight - 1
ACD_MHEIGHT = {8: [8388, 644, 96, 12, 1], 9: [61409, 3920, 642, 96, 12, 1],
               10: [440552, 22455, 3882, 642, 96, 12, 1]}


@pytest.mark.parametrize("n", [8, 9, pytest.param(10, marks=pytest.mark.slow)])
def test_universe_class_sizes_are_the_acds(n):
    assert np.bincount(mh.mheight_universe(n)[1]).tolist() == ACD_MHEIGHT[n]


def test_mheight_dataset_labels_views_and_stratified_splits():
    dm = generated("mheight", n=7)
    truth = brute_universe(7)
    seen = {}
    for split in dm.splits:
        perms = [tuple(r) for r in dm.inputs(split, "sequence").tolist()]
        assert dm.target(split).tolist() == [truth[s] for s in perms]
        image = dm.inputs(split, "image").squeeze(1)
        assert (image.argmax(-1) + 1).tolist() == [list(s) for s in perms]  # row i: 1 at s(i)
        assert torch.allclose(dm.inputs(split, "vector") * 7, dm.inputs(split, "sequence").float())
        seen.update(dict.fromkeys(perms, split))
    assert set(seen) == set(truth) and len(seen) == sum(dm.split_size(s) for s in dm.splits)
    for split in ("val", "test"):  # classes of 96 and 12 members reach every split
        assert set(dm.target(split).tolist()) >= {0, 1, 2}
    assert dm.spec.metric == "f1_macro" and dm.spec.num_outputs == 4


def test_mheight_ood_split_pads_and_labels_bigger_permutations():
    dm = generated("mheight", n=7, ood_n=8, n_ood_test=300)
    assert dm.spec.has_ood and dm.spec.num_outputs == 5 and dm.spec.input_shape == (8,)
    assert (dm.inputs("train", "sequence")[:, 7] == 0).all()
    assert (dm.inputs("train", "image")[:, 0, 7] == 0).all()  # the padded row is empty
    ood = [tuple(r) for r in dm.inputs("ood_test", "sequence").tolist()]
    assert len(set(ood)) == 300 and all(sorted(s) == list(range(1, 9)) for s in ood)
    assert all(occurrences(s, (3, 4, 1, 2)) and not occurrences(s, (4, 2, 3, 1)) for s in ood)
    assert dm.target("ood_test").tolist() == [brute_mheight(s) - 1 for s in ood]


def test_mheight_ood_beyond_the_enumerated_sizes_is_sampled_from_the_universe():
    dm = generated("mheight", n=8, ood_n=11, n_ood_test=150)
    ood = [tuple(r) for r in dm.inputs("ood_test", "sequence").tolist()]
    assert len(set(ood)) == 150
    for s, y in zip(ood, dm.target("ood_test").tolist(), strict=True):
        assert occurrences(s, (3, 4, 1, 2)) and not occurrences(s, (4, 2, 3, 1))
        assert y == brute_mheight(s) - 1


def test_mheight_data_seed_redraws_the_split_of_the_same_universe():
    a, b = split_changes_with_data_seed("mheight", n=7)
    assert set().union(*(rows_of(a, s) for s in a.splits)) == \
        set().union(*(rows_of(b, s) for s in b.splits))


def test_mheight_parameter_errors():
    one_line_error("mheight", "n", n=4)
    one_line_error("mheight", "n", n=11)
    one_line_error("mheight", "ood_n", n=8, ood_n=8)
    one_line_error("mheight", "ood_n", n=8, ood_n=13)
    one_line_error("mheight", "test_frac", test_frac=0.9)
    one_line_error("mheight", "test_frac", n=5, test_frac=0.03)


# -- weaving ---------------------------------------------------------------------------------
@cache
def brute_weaving(n):
    """(set of patterns, number of reduced words): every reduced word of the longest
    permutation as a wiring diagram (lines 1..n top to bottom, any uncrossed adjacent pair
    may cross next); row r lists the lines met by line n-r, as the ACD lays it out."""
    order, met, found, words = list(range(1, n + 1)), {v: [] for v in range(1, n + 1)}, set(), [0]

    def cross(done):
        if done == n * (n - 1) // 2:
            words[0] += 1
            found.add(tuple(x for line in range(n, 0, -1) for x in met[line]))
            return
        for p in range(n - 1):
            x, y = order[p], order[p + 1]
            if x < y:
                order[p], order[p + 1] = y, x
                met[x].append(y)
                met[y].append(x)
                cross(done + 1)
                met[x].pop()
                met[y].pop()
                order[p], order[p + 1] = x, y

    cross(0)
    return found, words[0]


def stanley_reduced_words(n):
    """Stanley 1984: the longest element of S_n has C(n,2)! / prod_k (2k-1)^(n-k) reduced words."""
    denominator = math.prod((2 * k - 1) ** (n - k) for k in range(1, n))
    return math.factorial(n * (n - 1) // 2) // denominator


def flat(mats):
    """Each matrix as a row-major tuple, in order."""
    return [tuple(m) for m in np.asarray(mats).reshape(len(mats), -1).tolist()]


@pytest.mark.parametrize("n", [4, 5, 6])
def test_enumeration_is_every_reduced_word_up_to_commutation(n):
    patterns, words = brute_weaving(n)
    assert words == stanley_reduced_words(n)  # the brute force saw every reduced word
    found = flat(wv.weaving_patterns(n))
    assert set(found) == patterns and len(found) == len(patterns)


def test_pattern_counts_are_oeis_a006245():
    assert [len(wv.weaving_patterns(n)) for n in range(3, 8)] == [2, 8, 62, 908, 24698]


def test_the_acds_printed_examples_are_patterns():
    readme = "1,2,3,4,5,1,2,3,4,6,1,2,3,5,6,1,2,4,5,6,1,3,4,5,6,2,3,4,5,6"  # README
    card = "5,4,3,2,1,6,2,3,4,1,6,2,3,5,1,6,2,4,5,1,6,3,4,5,1,6,5,4,3,2"    # n = 6 dataset card
    examples = {tuple(int(v) for v in text.split(",")) for text in (readme, card)}
    assert examples <= brute_weaving(6)[0]


@pytest.mark.parametrize("negatives", ["shuffle", "swap"])
def test_weaving_labels_negatives_and_balance(negatives):
    dm = generated("weaving", n=6, negatives=negatives)
    patterns = brute_weaving(6)[0]
    lines = [set(range(1, 7)) - {6 - r} for r in range(6)]  # row r lacks its own line n-r
    for split in dm.splits:
        mats = dm._raw_split(split)["matrix"].numpy()
        y = dm.target(split).tolist()
        assert y == [float(m in patterns) for m in flat(mats)]
        assert sum(y) * 2 == len(y)
        assert all(set(m[r].tolist()) == lines[r] for m in mats for r in range(6))
        if negatives == "swap":  # near misses: one row, two cells away from some pattern
            known = np.array(sorted(patterns)).reshape(-1, 6, 5)
            for m in mats[np.array(y) == 0][:40]:
                diff = (known != m).reshape(len(known), -1).sum(axis=1)
                assert diff.min() == 2
    assert dm.spec.metric == "acc"


def test_weaving_views_describe_the_same_matrix():
    dm = generated("weaving", n=5)
    mats = dm._raw_split("train")["matrix"].long()
    seq = dm.inputs("train", "sequence")
    assert torch.equal(seq, mats.flatten(1))
    image = dm.inputs("train", "image")
    assert image.shape[1:] == (5, 5, 4) and torch.equal(image.argmax(1) + 1, mats)
    assert torch.allclose(dm.inputs("train", "vector") * 5, seq.float())


def test_weaving_ratio_and_ood_split():
    dm = generated("weaving", n=5, negatives_per_positive=3, ood_n=6, n_ood_test=400)
    assert dm.spec.metric == "f1" and dm.spec.has_ood
    for split in dm.splits:
        y = dm.target(split)
        assert 4 * int(y.sum()) == len(y)
    assert dm.split_size("ood_test") == 400
    ood = flat(dm._raw_split("ood_test")["matrix"].numpy())
    assert dm.target("ood_test").tolist() == [float(m in brute_weaving(6)[0]) for m in ood]
    train = dm.inputs("train", "sequence").view(-1, 6, 5)
    assert (train[:, 5] == 0).all() and (train[:, :, 4] == 0).all()  # 5 x 4 padded to 6 x 5
    train = flat(dm._raw_split("train")["matrix"].numpy())
    assert dm.target("train").tolist() == [float(m in brute_weaving(5)[0]) for m in train]


def test_weaving_data_seed_redraws_the_split():
    split_changes_with_data_seed("weaving", n=5)


def test_weaving_parameter_errors():
    one_line_error("weaving", "n", n=8)
    one_line_error("weaving", "n", n=4)
    one_line_error("weaving", "ood_n", n=7, ood_n=8)
    one_line_error("weaving", "negatives", negatives="flip")
    one_line_error("weaving", "negatives_per_positive", negatives_per_positive=0)


# -- rsk -------------------------------------------------------------------------------------
def insert_scalar(s):
    """Schensted row insertion, one permutation at a time: (P, Q) as lists of rows."""
    p, q = [], []
    for t, x in enumerate(s, start=1):
        r = 0
        while True:
            if r == len(p):
                p.append([x])
                q.append([t])
                break
            bigger = [c for c, v in enumerate(p[r]) if v > x]
            if not bigger:
                p[r].append(x)
                q[r].append(t)
                break
            c = bigger[0]
            p[r][c], x = x, p[r][c]
            r += 1
    return p, q


def inverse_rsk(p, q):
    """Reverse bumping: remove the cell of Q's largest entry from P and bump upwards."""
    p, q = [row[:] for row in p], [row[:] for row in q]
    n = sum(map(len, p))
    out = [0] * n
    for t in range(n, 0, -1):
        r = next(i for i, row in enumerate(q) if row and row[-1] == t)
        q[r].pop()
        x = p[r].pop()
        for up in range(r - 1, -1, -1):  # x replaces the largest entry of the row above below it
            c = max(i for i, v in enumerate(p[up]) if v < x)
            p[up][c], x = x, p[up][c]
        out[t - 1] = x
        p, q = [row for row in p if row], [row for row in q if row]
    return out


def rows_as_tableau(rows):
    """List-of-rows tableau from a row word (row of entry 1..n)."""
    tab = [[] for _ in range(max(rows) + 1)]
    for v, r in enumerate(rows, start=1):
        tab[r].append(v)
    return tab


def standard_tableaux(shape):
    """Every SYT of a shape: n sits in some removable corner (brute-force recursion)."""
    n = sum(shape)
    if n == 0:
        return [[]]
    out = []
    for r, length in enumerate(shape):
        if length and (r + 1 == len(shape) or shape[r + 1] < length):
            smaller = list(shape)
            smaller[r] -= 1
            for t in standard_tableaux(tuple(smaller)):
                t = [row[:] for row in t] + [[] for _ in range(len(shape) - len(t))]
                t[r].append(n)
                out.append([row for row in t if row])
    return out


def partitions(n, most=None):
    most = n if most is None else most
    if n == 0:
        yield ()
        return
    for first in range(min(n, most), 0, -1):
        for rest in partitions(n - first, first):
            yield (first, *rest)


def longest_increasing(s):
    best = [1] * len(s)
    for j in range(len(s)):
        for i in range(j):
            if s[i] < s[j]:
                best[j] = max(best[j], best[i] + 1)
    return max(best)


def is_standard(tab):
    cols = [[row[c] for row in tab if c < len(row)] for c in range(len(tab[0]))]
    return (all(a < b for row in tab for a, b in itertools.pairwise(row))
            and all(a < b for col in cols for a, b in itertools.pairwise(col))
            and sorted(v for row in tab for v in row) == list(range(1, sum(map(len, tab)) + 1)))


@cache
def rsk_of_all(n):
    perms = list(itertools.permutations(range(1, n + 1)))
    p_rows, q_rows = rsk.rsk_rows(np.array(perms, dtype=np.int8))
    return perms, [(rows_as_tableau(p), rows_as_tableau(q))
                   for p, q in zip(p_rows.tolist(), q_rows.tolist(), strict=True)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5, 6, 7])
def test_rsk_is_a_bijection_onto_pairs_of_tableaux_of_equal_shape(n):
    perms, pairs = rsk_of_all(n)
    keys = {(tuple(map(tuple, p)), tuple(map(tuple, q))) for p, q in pairs}
    assert len(keys) == math.factorial(n), "distinct permutations give distinct pairs"
    every = set()
    for shape in partitions(n):
        tabs = [tuple(map(tuple, t)) for t in standard_tableaux(shape)]
        hooks = math.prod(shape[r] - c + sum(1 for rr in shape if rr > c) - r - 1
                          for r in range(len(shape)) for c in range(shape[r]))
        assert len(tabs) == math.factorial(n) // hooks  # hook length formula
        every |= set(itertools.product(tabs, tabs))
    assert len(every) == math.factorial(n)  # sum of f_lambda^2 = n!
    assert keys == every, "every pair of equal shape is reached"


def test_rsk_matches_scalar_insertion_schensted_and_inverse_on_all_of_s7():
    perms, pairs = rsk_of_all(7)
    for s, (p, q) in zip(perms, pairs, strict=True):
        assert (p, q) == insert_scalar(s)
        assert is_standard(p) and is_standard(q)
        assert len(p[0]) == longest_increasing(s)                 # Schensted
        assert len(p) == longest_increasing([-v for v in s])      # ... and decreasing
        assert inverse_rsk(p, q) == list(s)


def test_rsk_dataset_views_invert_to_the_target():
    dm = generated("rsk", n=6)
    perms_seen = set()
    for split in dm.splits:
        image = (dm.inputs(split, "image") * 6).round().long()
        seq = dm.inputs(split, "sequence").tolist()
        for grids, tokens, bits in zip(image.tolist(), seq, dm.target(split).tolist(), strict=True):
            p, q = ([[v for v in row if v] for row in g if any(row)] for g in grids)
            s = inverse_rsk(p, q)
            perms_seen.add(tuple(s))
            assert bits == [float(s[i] > s[j]) for i in range(6) for j in range(i + 1, 6)]
            # tokens: P's rows each closed by 7, then 8, then Q's rows likewise, then padding
            text = [t for t in tokens if t]
            assert tokens[:len(text)] == text and text.count(8) == 1
            cut = text.index(8)
            assert rows_from_tokens(text[:cut]) == p and rows_from_tokens(text[cut + 1:]) == q
        vec = dm.inputs(split, "vector")
        assert torch.allclose(vec, dm.inputs(split, "image").flatten(1))
    assert len(perms_seen) == math.factorial(6)  # all of S_6 across the splits


def rows_from_tokens(tokens, row_end=7):
    rows, cur = [], []
    for t in tokens:
        if t == row_end:
            rows.append(cur)
            cur = []
        else:
            cur.append(t)
    assert not cur
    return rows


def test_rsk_sampled_permutations_are_distinct_and_labelled():
    dm = generated("rsk", n=8, n_samples=600)
    rows = [tuple(r) for s in dm.splits for r in dm._raw_split(s)["perm"].tolist()]
    assert len(set(rows)) == 600
    raw = dm._raw_split("test")
    for s, p, q in zip(raw["perm"].tolist(), raw["p_rows"].tolist(), raw["q_rows"].tolist(),
                       strict=True):
        assert (rows_as_tableau(p), rows_as_tableau(q)) == insert_scalar(s)


def test_rsk_data_seed_redraws_the_split():
    split_changes_with_data_seed("rsk", n=6)


def test_rsk_parameter_errors():
    one_line_error("rsk", "n_samples", n=10)
    one_line_error("rsk", "n", n=4)
    one_line_error("rsk", "n_samples", n=8, n_samples=50)
    one_line_error("rsk", "n_samples", n=8, n_samples=30000)
