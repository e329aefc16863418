"""sn_characters and quivers (ACD Repo) against oracles that share no code with the
generators: characters by the Frobenius formula, both orthogonality relations with z_mu
from brute-force class sizes, dimensions by counting standard Young tableaux and by the hook
length formula, closed forms of three characters and the ACD's extreme values; quivers by a
pure-Python mutation, exact isomorphism classes by trying every relabelling, the known class
sizes (Torkildsen for A_n, Bastian-Prellberg-Rubey-Stump for D_n), the ACD's counts, and a
replay of every example's mutation path from a seed built here."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from functools import cache

import numpy as np
import pytest
import torch

from benchmarks import registry
from benchmarks.errors import UserError
from datamodules import quivers as qv
from datamodules import sn_characters as sc


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


# -- characters: independent oracles -----------------------------------------------------------
def partitions_brute(n):
    """Partitions of n as the sorted multisets of compositions (slow, obviously right)."""
    out = set()
    for cuts in itertools.product((0, 1), repeat=max(n - 1, 0)):
        parts, run = [], 1
        for c in cuts:
            if c:
                parts.append(run)
                run = 1
            else:
                run += 1
        parts.append(run)
        out.add(tuple(sorted(parts, reverse=True)))
    return out


def cycle_type(perm):
    seen, lengths = set(), []
    for s in range(len(perm)):
        if s not in seen:
            k, x = 0, s
            while x not in seen:
                seen.add(x)
                x, k = perm[x], k + 1
            lengths.append(k)
    return tuple(sorted(lengths, reverse=True))


def z(mu):
    """z_mu = prod_i i^(m_i) m_i!, the centraliser order of cycle type mu."""
    return math.prod(i ** m * math.factorial(m) for i, m in Counter(mu).items())


@cache
def power_sum_coefficients(mu, n):
    """{alpha: [x^alpha] p_mu(x_1..x_n)}: the ways to send each part of mu to a variable so
    that the variables receive alpha, one part at a time."""
    ways = Counter({(0,) * n: 1})
    for part in mu:
        nxt = Counter()
        for alpha, w in ways.items():
            for var in range(n):
                nxt[alpha[:var] + (alpha[var] + part,) + alpha[var + 1:]] += w
        ways = nxt
    return ways


@cache
def signed_permutations(n):
    return [(sigma, (-1) ** sum(1 for a, b in itertools.combinations(sigma, 2) if a > b))
            for sigma in itertools.permutations(range(n))]


def frobenius(lam, mu, n):
    """chi^lambda(mu) = [x^(lambda + delta)] a_delta p_mu in n variables (Frobenius), with
    a_delta = sum_sigma sgn(sigma) x^(sigma delta)."""
    ways = power_sum_coefficients(mu, n)
    target = [lam[i] if i < len(lam) else 0 for i in range(n)]
    total = 0
    for sigma, sign in signed_permutations(n):
        alpha = tuple(target[i] + (n - 1 - i) - (n - 1 - sigma[i]) for i in range(n))
        if min(alpha) >= 0:
            total += sign * ways[alpha]
    return total


@cache
def syt_count(shape):
    """Standard Young tableaux of a shape: the cell holding the largest entry is a corner."""
    if sum(shape) == 0:
        return 1
    total = 0
    for i, row in enumerate(shape):
        if row and (i + 1 == len(shape) or shape[i + 1] < row):
            smaller = list(shape)
            smaller[i] -= 1
            total += syt_count(tuple(smaller))
    return total


def hook_dimension(lam):
    n = sum(lam)
    conj = [sum(1 for r in lam if r > j) for j in range(lam[0])]
    hooks = math.prod(lam[i] - j + conj[j] - i - 1 for i in range(len(lam)) for j in range(lam[i]))
    return math.factorial(n) // hooks


def table_dict(n):
    tab = sc.character_table(n)
    parts = sc.partitions(n)
    return {(lam, mu): int(tab[i, j]) for i, lam in enumerate(parts) for j, mu in enumerate(parts)}


def test_partitions_are_all_partitions_once():
    for n in range(1, 13):
        assert len(set(sc.partitions(n))) == len(sc.partitions(n))
        assert set(sc.partitions(n)) == partitions_brute(n)
    assert [len(sc.partitions(n)) for n in (18, 20, 22)] == [385, 627, 1002]


def test_characters_match_the_frobenius_formula():
    for n in range(1, 7):
        chi = table_dict(n)
        for (lam, mu), value in chi.items():
            assert value == frobenius(lam, mu, n), (lam, mu)


def test_class_sizes_and_both_orthogonality_relations():
    for n in range(1, 9):
        if n <= 6:  # z_mu against the class sizes counted over all of S_n
            counts = Counter(cycle_type(p) for p in itertools.permutations(range(n)))
            assert all(counts[mu] * z(mu) == math.factorial(n) for mu in sc.partitions(n))
        tab = sc.character_table(n).astype(object)  # Python ints: no overflow in the sums
        zs = np.array([z(mu) for mu in sc.partitions(n)], dtype=object)
        assert (tab.T.dot(tab) == np.diag(zs)).all()  # columns: delta_mu,nu z_mu
        fact = math.factorial(n)
        assert ((tab * (fact // zs)).dot(tab.T) == np.eye(len(zs), dtype=int) * fact).all()


def test_identity_column_is_the_dimension():
    for n in range(1, 10):
        chi = table_dict(n)
        for lam in sc.partitions(n):
            assert chi[lam, (1,) * n] == syt_count(lam)
    for n in (18, 22):  # exact in the large: the hook length formula
        tab, parts = sc.character_table(n), sc.partitions(n)
        ident = parts.index((1,) * n)
        assert [int(v) for v in tab[:, ident]] == [hook_dimension(lam) for lam in parts]


def test_closed_form_characters():
    for n in (5, 12, 18, 22):
        tab, parts = sc.character_table(n), sc.partitions(n)
        for j, mu in enumerate(parts):
            assert tab[parts.index((n,)), j] == 1
            assert tab[parts.index((1,) * n), j] == (-1) ** (n - len(mu))
            assert tab[parts.index((n - 1, 1)), j] == mu.count(1) - 1


def test_extreme_characters_are_the_acds():
    stated = {18: (16_336_320, -1_223_040), 20: (249_420_600, -17_592_960),
              22: (5_462_865_408, -279_734_796)}
    for n, (top, bottom) in stated.items():
        tab = sc.character_table(n)
        assert (int(tab.max()), int(tab.min())) == (top, bottom)


def test_border_strip_heights_by_cells():
    """The abacus rule against strips found cell by cell: lam / nu is a strip when it is
    connected and holds no 2 x 2 square; its height is its number of rows - 1."""
    for n in range(1, 9):
        for lam in sc.partitions(n):
            for k in range(1, n + 1):
                got = sorted(sc.border_strips(lam, k))
                want = []
                for nu in sc.partitions(n - k) if k < n else [()]:
                    if len(nu) > len(lam) or any(a < b for a, b in zip(lam, nu, strict=False)):
                        continue
                    cells = {(i, j) for i in range(len(lam)) for j in range(lam[i])
                             if j >= (nu[i] if i < len(nu) else 0)}
                    if any({(i, j), (i + 1, j), (i, j + 1), (i + 1, j + 1)} <= cells
                           for i, j in cells):
                        continue
                    todo, seen = [min(cells)], set()
                    while todo:
                        i, j = todo.pop()
                        if (i, j) in cells and (i, j) not in seen:
                            seen.add((i, j))
                            todo += [(i + 1, j), (i - 1, j), (i, j + 1), (i, j - 1)]
                    if seen == cells:
                        rows = len({i for i, _ in cells})
                        want.append((nu, (-1) ** (rows - 1)))
                assert got == sorted(want), (lam, k)


# -- characters: the dataset ------------------------------------------------------------------
def decoded_pairs(dm, split):
    """(lambda, mu) of each row, read back from the sequence view."""
    seq = dm.inputs(split, "sequence").tolist()
    sep = dm.spec.view_spec("sequence").vocab_size - 1
    out = []
    for row in seq:
        cut = row.index(sep)
        out.append((tuple(row[:cut]), tuple(t for t in row[cut + 1:] if t)))
    return out


@pytest.mark.parametrize("target", ["value", "sign"])
def test_character_dataset_rows_and_targets(target):
    dm = generated("sn_characters", n=6, target=target, ood_n=7, val_frac=0.1)
    seen = []
    for split in dm.splits:
        n = 7 if split == "ood_test" else 6
        pairs = decoded_pairs(dm, split)
        x = dm.inputs(split, "vector") * 7
        lam = [tuple(int(round(v)) for v in r[:7] if v > 0.5) for r in x.tolist()]
        mu = [tuple(int(round(v)) for v in r[7:] if v > 0.5) for r in x.tolist()]
        assert pairs == list(zip(lam, mu, strict=True))
        chi = [frobenius(a, b, n) for a, b in pairs]
        assert dm._raw_split(split)["chi"].tolist() == chi
        y = dm.target(split)
        if target == "value":
            want = [math.copysign(math.log10(1 + abs(c)), c) if c else 0.0 for c in chi]
            assert np.allclose(y.numpy(), want, atol=1e-6)
        else:
            assert y.tolist() == [(c > 0) - (c < 0) + 1 for c in chi]
        s = dm.inputs(split, "set")
        assert torch.equal(s["mask"].sum(1), torch.tensor([len(a) + len(b) for a, b in pairs]))
        if split != "ood_test":
            seen += pairs
    everything = [(a, b) for a in partitions_brute(6) for b in partitions_brute(6)]
    assert sorted(seen) == sorted(everything), "every pair once, in exactly one split"
    ood = decoded_pairs(dm, "ood_test")
    assert len(set(ood)) == len(ood) == dm.split_size("test")
    assert dm.spec.has_ood and dm.spec.input_shape == (15,)


def test_character_data_seed_redraws_the_split_of_the_same_universe():
    a = generated("sn_characters", n=8)
    b = generated("sn_characters", n=8, data_seed=1)
    assert a.content_hash == generated("sn_characters", n=8).content_hash
    assert rows_of(a, "test") != rows_of(b, "test")
    all_a = set().union(*(rows_of(a, s) for s in a.splits))
    all_b = set().union(*(rows_of(b, s) for s in b.splits))
    assert all_a == all_b and len(all_a) == 22 ** 2
    assert not generated("sn_characters", n=8).spec.has_ood


def test_character_parameter_errors():
    one_line_error("sn_characters", "n", n=25)
    one_line_error("sn_characters", "n", n=4)  # 25 pairs: too few to split
    one_line_error("sn_characters", "ood_n", n=10, ood_n=10)
    one_line_error("sn_characters", "target", target="magnitude")
    one_line_error("sn_characters", "test_frac", test_frac=0.9)


# -- quivers: independent oracles ---------------------------------------------------------------
def mutate_py(b, k):
    """The definition, entry by entry."""
    n = len(b)
    out = [[0] * n for _ in range(n)]
    for i in range(n):
        for j in range(n):
            if k in (i, j):
                out[i][j] = -b[i][j]
            else:
                sign = (b[i][k] > 0) - (b[i][k] < 0)
                out[i][j] = b[i][j] + sign * max(0, b[i][k] * b[k][j])
    return out


def all_perms(n):
    """Every relabelling of an n x n matrix, as flat indices into its entries."""
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.intp)
    return (perms[:, :, None] * n + perms[:, None, :]).reshape(len(perms), -1)


def canonical(b, perms):
    """The least relabelling of b (as bytes): equal iff the quivers are isomorphic."""
    rows = (np.asarray(b).ravel()[perms] + 8).astype(np.uint8)  # no zero bytes in an S row
    return bytes(np.sort(rows.view(f"S{rows.shape[1]}").ravel())[0])


def exact_class(seed, perms, max_size=10**6):
    """All quivers mutation equivalent to seed, up to isomorphism, by breadth-first search
    with exact canonical forms; sizes of the balls by depth."""
    seen = {canonical(seed, perms)}
    front, sizes = [np.asarray(seed).tolist()], [1]
    while front and len(seen) < max_size:
        nxt = []
        for b in front:
            for k in range(len(b)):
                kid = mutate_py(b, k)
                key = canonical(kid, perms)
                if key not in seen:
                    seen.add(key)
                    nxt.append(kid)
        front = nxt
        if nxt:
            sizes.append(len(seen))
    return seen, sizes


def torkildsen(n):
    a = math.comb(2 * (n + 1), n + 1) // (n + 2)
    a += math.comb(n + 1, (n + 1) // 2) if n % 2 else 0
    a += 2 * math.comb(2 * n // 3, n // 3) if n % 3 == 0 else 0
    return a // (n + 3)


def d_class_size(n):  # Bastian, Prellberg, Rubey, Stump
    phi = lambda m: sum(1 for k in range(1, m + 1) if math.gcd(k, m) == 1)  # noqa: E731
    return sum(phi(n // k) * math.comb(2 * k, k) for k in range(1, n + 1) if n % k == 0) // (2 * n)


# the seed trees at n = 6 and 7, written out by hand: simple edges, double edges (inner, end)
SEEDS = {
    6: {"A": ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5)], []),
        "D": ([(0, 1), (1, 2), (2, 3), (3, 4), (3, 5)], []),
        "E": ([(0, 1), (1, 2), (2, 3), (3, 4), (2, 5)], []),
        "BB": ([(0, 1), (1, 2), (2, 3)], [(3, 4), (0, 5)]),
        "BD": ([(0, 1), (1, 2), (2, 3), (5, 1)], [(3, 4)]),
        "BE": ([(0, 1), (1, 2), (2, 3), (2, 5)], [(3, 4)]),
        "DE": ([(0, 1), (1, 2), (2, 3), (2, 4), (2, 5)], [])},
    7: {"A": ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (5, 6)], []),
        "D": ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (4, 6)], []),
        "E": ([(0, 1), (1, 2), (2, 3), (3, 4), (4, 5), (2, 6)], []),
        "BB": ([(0, 1), (1, 2), (2, 3), (3, 4)], [(4, 5), (0, 6)]),
        "BD": ([(0, 1), (1, 2), (2, 3), (3, 4), (6, 1)], [(4, 5)]),
        "BE": ([(0, 1), (1, 2), (2, 3), (3, 4), (2, 6)], [(4, 5)]),
        "DE": ([(0, 1), (1, 2), (2, 3), (3, 4), (2, 5), (3, 6)], [])},
}


def hand_seed(letter, n=7):
    """Bipartite orientation (vertex 0 a source); a double edge has |b_end,inner| = 2."""
    simple, double = SEEDS[n][letter]
    side = {0: 0}
    while len(side) < n:
        for u, v in simple + double:
            for a, c in ((u, v), (v, u)):
                if a in side and c not in side:
                    side[c] = 1 - side[a]
    b = [[0] * n for _ in range(n)]
    for (u, v), mult in [(e, 1) for e in simple] + [(e, 2) for e in double]:
        s = 1 if side[u] == 0 else -1
        b[u][v], b[v][u] = s, -s * mult
    return b


def symmetriser(short):
    return np.where(np.asarray(short) > 0, 1, 2)


def test_mutation_is_an_involution_and_keeps_skew_symmetrisability():
    rng = np.random.default_rng(0)
    for letter in qv.TYPES:
        b = hand_seed(letter)
        _, short = qv.seed_matrix(letter, 7)
        d = symmetriser(short)
        for _ in range(40):
            k = int(rng.integers(7))
            kid = mutate_py(b, k)
            assert mutate_py(kid, k) == b
            vec = qv.mutate(np.array([b], dtype=np.int8), np.array([k]))
            assert vec[0].tolist() == kid, "the vectorised mutation is the definition"
            db = d[:, None] * np.array(kid)
            assert (db == -db.T).all(), "D B stays skew-symmetric"
            if letter in ("A", "D", "E", "DE"):
                assert (np.array(kid) == -np.array(kid).T).all()
            b = kid


def test_seeds_are_the_trees_written_out_by_hand():
    for n, letter in itertools.product((6, 7), qv.TYPES):
        b, short = qv.seed_matrix(letter, n)
        assert b.tolist() == hand_seed(letter, n), (letter, n)
        assert short.tolist() == [int(v in {e for _, e in SEEDS[n][letter][1]}) for v in range(n)]


def test_exact_class_sizes_are_the_known_ones_and_the_generators():
    perms = {n: all_perms(n) for n in (4, 5, 6)}
    for n in (4, 5, 6):
        path = [[0] * n for _ in range(n)]
        for i in range(n - 1):
            path[i][i + 1], path[i + 1][i] = 1, -1
        found, _ = exact_class(path, perms[n])
        assert len(found) == torkildsen(n) == len(qv.class_ball("A", n, 10)[0])
        # D_n: the path with its last vertex moved onto the third from the end
        dn = [[0] * n for _ in range(n)]
        for i, j in [(i, i + 1) for i in range(n - 2)] + [(n - 3, n - 1)]:
            dn[i][j], dn[j][i] = 1, -1
        if n >= 5:
            found, _ = exact_class(dn, perms[n])
            assert len(found) == d_class_size(n) == len(qv.class_ball("D", n, 10)[0])
    for n in range(7, 10):  # the generator alone, against the formulas
        assert len(qv.class_ball("A", n, 10)[0]) == torkildsen(n)
        assert len(qv.class_ball("D", n, 10)[0]) == d_class_size(n)


def test_generator_balls_are_exact_up_to_isomorphism():
    """Ball sizes by depth of the hash-deduplicated search equal those of the exact one
    (no two non-isomorphic quivers merged), for every type at n = 6."""
    perms = all_perms(6)
    for letter in qv.TYPES:
        b, depth, _ = qv.class_ball(letter, 6, 100)
        _, sizes = exact_class(hand_seed(letter, 6), perms, max_size=len(b))
        radius = int(depth.max())
        by_depth = np.cumsum(np.bincount(depth.astype(np.int64)))
        assert by_depth.tolist() == sizes[:radius + 1], letter
        keys = {canonical(m, perms) for m in b}
        assert len(keys) == len(b), f"{letter}: two representatives are isomorphic"


def test_affine_b_classes_exhaust_at_sages_sizes():
    """BB and BD are mutation finite; Sage's (conjectural) counts for rank 7."""
    assert len(qv.class_ball("BB", 7, 10**5)[0]) == math.comb(11, 5) + math.comb(5, 2)  # 472
    assert len(qv.class_ball("BD", 7, 10**5)[0]) == 2 * math.comb(10, 5)  # 504


def test_e10_balls_are_the_acds_sage_counts():
    """The ACD notebook printed Sage's ball sizes of E_10 at depth 8 and 9."""
    b, depth, _ = qv.class_ball("E", 10, 10_000)
    assert int(depth.max()) == 8 and len(b) == 10_906
    assert (depth <= 7).sum() < 10_000


@pytest.mark.slow
def test_default_classes_have_the_acds_sizes():
    stated = {"A": 11_940 + 2_984, "BB": 27_410 + 6_852, "BD": 23_651 + 5_912,
              "BE": 22_615 + 5_653, "D": 25_653 + 6_413, "DE": 23_528 + 5_881,
              "E": 28_998 + 7_249}
    for letter, size in stated.items():
        assert len(qv.class_ball(letter, 11, 28_000)[0]) == size, letter
    assert torkildsen(11) == stated["A"] and d_class_size(11) == stated["D"]


# -- quivers: the dataset -----------------------------------------------------------------------
def test_quiver_examples_replay_from_their_seeds():
    dm = generated("quivers", n=6, n_per_class=40, min_ball=100)
    seeds = {c: hand_seed(letter, 6) for c, letter in enumerate(qv.TYPES)}
    perms = all_perms(6)
    keys = set()
    for split in dm.splits:
        raw = dm._raw_split(split)
        assert dm.target(split).bincount().tolist() == [dm.split_size(split) // 7] * 7
        for b, y, path, perm, depth, short in zip(
                raw["b"].tolist(), raw["y"].tolist(), raw["path"].tolist(),
                raw["perm"].tolist(), raw["depth"].tolist(), raw["short"].tolist(), strict=True):
            m = seeds[y]
            steps = [k for k in path if k >= 0]
            assert len(steps) == depth
            for k in steps:
                m = mutate_py(m, k)
            assert [[m[perm[i]][perm[j]] for j in range(6)] for i in range(6)] == b
            d = symmetriser(short)
            assert (d[:, None] * np.array(b) == -(d[:, None] * np.array(b)).T).all()
            keys.add(canonical(b, perms))
    total = sum(dm.split_size(s) for s in dm.splits)
    assert len(keys) == total, "no two examples anywhere are isomorphic"


def test_quiver_views_encode_the_matrix():
    dm = generated("quivers", n=7, n_per_class=100, min_ball=300)
    raw = dm._raw_split("test")
    b = raw["b"].long()
    assert torch.equal(dm.inputs("test", "sequence").reshape(-1, 7, 7) - qv.ENTRY_MAX - 1, b)
    assert torch.equal(dm.inputs("test", "image")[:, 0] * 2, b.float())
    graphs = dm.inputs("test", "graph")
    for g in range(0, len(b), 37):
        lo, hi = graphs.edge_ptr[g], graphs.edge_ptr[g + 1]
        count = torch.zeros(7, 7, dtype=torch.long)
        for i, j in graphs.edge_index[:, lo:hi].T.tolist():
            count[i, j] += 1
        short = graphs.x[7 * g:7 * g + 7, 1]
        assert torch.equal(count, b[g].clamp(min=0)) and torch.equal(short, raw["short"][g].float())
        d = torch.where(short > 0, 1, 2)  # b_ji = -b_ij d_i / d_j recovers the rest of B
        rebuilt = count - (count * d[:, None]).T // d[:, None]
        assert torch.equal(rebuilt, b[g])


def test_quiver_data_seed_redraws_the_split():
    a = generated("quivers", n=7, n_per_class=100, min_ball=300)
    b = generated("quivers", n=7, n_per_class=100, min_ball=300, data_seed=1)
    assert a.content_hash == generated("quivers", n=7, n_per_class=100,
                                       min_ball=300).content_hash
    assert rows_of(a, "test") != rows_of(b, "test")
    assert not a.spec.has_ood and a.spec.num_outputs == 7


def test_quiver_parameter_errors():
    one_line_error("quivers", "n", n=12)
    one_line_error("quivers", "n_per_class", n=7, n_per_class=151)  # A_7 has 150 quivers
    one_line_error("quivers", "n_per_class", n_per_class=20000)
    one_line_error("quivers", "min_ball", min_ball=10**6)
    one_line_error("quivers", "val_frac", val_frac=0.0)
