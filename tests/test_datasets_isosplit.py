"""Splits by isomorphism class, checked independently of the datamodules' own canonical
forms: semigroup tables against brute force over every relabelling (itertools, plain
Python), graphs against networkx (WL hash to bucket, is_isomorphic to decide). Also the
balance per split, determinism, data_seed moving the split, and the graphs' OOD split."""

from __future__ import annotations

import itertools
from collections import defaultdict

import networkx as nx
import numpy as np
import pytest
import torch

from benchmarks import registry
from benchmarks.errors import UserError
from datamodules import graph_properties as gp
from datamodules import semigroups as sg

SPLITS = ("train", "val", "test")
# networkx 3.5 warns that its WL hashes changed; only their equality within one run matters
pytestmark = pytest.mark.filterwarnings("ignore:The hashes produced:UserWarning")


# -- semigroups ----------------------------------------------------------------------------
def relabelled(t: tuple[tuple[int, ...], ...], f: tuple[int, ...]) -> tuple[int, ...]:
    """The table of the magma with x renamed f(x), flattened: new[f(x)][f(y)] = f(x*y)."""
    m = len(t)
    new = [[0] * m for _ in range(m)]
    for x in range(m):
        for y in range(m):
            new[f[x]][f[y]] = f[t[x][y]]
    return tuple(v for row in new for v in row)


def brute_class(table) -> tuple[int, ...]:
    """The least relabelling of a table: equal for two tables iff they are isomorphic."""
    t = tuple(tuple(int(v) for v in row) for row in table)
    return min(relabelled(t, f) for f in itertools.permutations(range(len(t))))


def is_associative(t) -> bool:
    m = len(t)
    return all(t[t[a][b]][c] == t[a][t[b][c]] for a in range(m) for b in range(m) for c in range(m))


def semigroup_splits(**params):
    dm = registry.create_dataset("semigroups", **params)
    raw = dm.generate()
    return {s: (raw[s]["table"].numpy(), raw[s]["y"].numpy()) for s in SPLITS}


def assert_no_isomorphic_pair_across_splits(splits) -> None:
    classes = {s: {brute_class(t) for t in tables} for s, (tables, _) in splits.items()}
    for a, b in itertools.combinations(classes, 2):
        assert not classes[a] & classes[b], f"{a} and {b} share an isomorphism class"


@pytest.mark.parametrize("params", [{"m": 3}, {"m": 4}, {"m": 5, "n_per_class": 200},
                                    {"m": 4, "n_per_class": 100, "data_seed": 3}])
def test_semigroup_splits_share_no_isomorphism_class(params):
    splits = semigroup_splits(**params)
    assert_no_isomorphic_pair_across_splits(splits)
    m = params["m"]
    for split, (tables, y) in splits.items():
        assert y.mean() == 0.5, split  # a near miss per semigroup, in its split
        positives = tables[y == 1].reshape(-1, 1, m * m)
        negatives = tables[y == 0].reshape(1, -1, m * m)
        # every negative is one entry away from a semigroup of its own split
        assert ((positives != negatives).sum(axis=2).min(axis=0) == 1).all(), split
        assert all(is_associative(t.tolist()) == bool(v) for t, v in zip(tables, y, strict=True))


@pytest.mark.parametrize("m", [3, 4])
def test_semigroup_split_sizes_follow_the_fractions_by_whole_classes(m):
    splits = semigroup_splits(m=m)
    total = sg.SEMIGROUP_COUNTS[m]
    positives = {s: int(y.sum()) for s, (_, y) in splits.items()}
    assert sum(positives.values()) == total
    largest = len(list(itertools.permutations(range(m))))  # a class has at most m! tables
    for split, fraction in sg.SPLIT_FRACTIONS.items():  # so each split is within one class
        assert abs(positives[split] - fraction * total) <= largest
    classes = {s: {brute_class(t) for t, v in zip(*splits[s], strict=True) if v}
               for s in SPLITS}
    assert sum(map(len, classes.values())) == sg.CLASS_COUNTS[m]


def test_semigroup_canonical_codes_match_brute_force():
    tables = sg.enumerate_semigroups(3)
    tables = np.concatenate([tables, sg.near_misses(tables, np.random.default_rng(0))[0]])
    codes = sg.canonical_codes(tables).tolist()
    brute = [brute_class(t) for t in tables]
    for i, j in itertools.combinations(range(len(tables)), 2):
        assert (codes[i] == codes[j]) == (brute[i] == brute[j])


def test_semigroups_deterministic_and_seed_moves_the_split():
    a, b = semigroup_splits(m=4), semigroup_splits(m=4)
    for s in SPLITS:
        assert np.array_equal(a[s][0], b[s][0]) and np.array_equal(a[s][1], b[s][1])
    # the universe is fixed for m = 4, so a different test set means a different split
    other = semigroup_splits(m=4, data_seed=1)
    test_of = lambda sp: {t.tobytes() for t, v in zip(*sp["test"], strict=True) if v}  # noqa: E731
    assert test_of(a) != test_of(other)


# -- graph properties -----------------------------------------------------------------------
def graphs(dm, split) -> list[nx.Graph]:
    raw = dm._raw_split(split)
    width = dm.width
    iu, ju = np.triu_indices(width, 1)
    out = []
    for bits, n in zip(raw["adj"].numpy(), raw["num_nodes"].tolist(), strict=True):
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(iu[bits == 1].tolist(), ju[bits == 1].tolist(), strict=True))
        out.append(g)
    return out


def cross_split_isomorphic_pairs(dm) -> int:
    """Pairs of graphs in different splits that networkx finds isomorphic (WL hash only
    narrows the pairs to compare: equal hashes are necessary, not sufficient)."""
    buckets: dict[str, list[tuple[str, nx.Graph]]] = defaultdict(list)
    for split in SPLITS:
        for g in graphs(dm, split):
            buckets[nx.weisfeiler_lehman_graph_hash(g)].append((split, g))
    return sum(nx.is_isomorphic(g, h)
               for members in buckets.values()
               for (a, g), (b, h) in itertools.combinations(members, 2) if a != b)


@pytest.mark.parametrize("target", ["connected", "planar", "triangles", "bipartite",
                                    "diameter"])
def test_graph_splits_share_no_isomorphism_class(target):
    dm = registry.create_dataset("graph_properties", target=target, n_train=600, n_val=150,
                                 n_test=300)
    dm.setup()
    assert cross_split_isomorphic_pairs(dm) == 0
    for split in SPLITS:
        y = dm.target(split).long()
        assert len(y) == dm.params[f"n_{split}"]
        if dm.spec.task.value == "binary":
            assert y.float().mean() == 0.5, split  # exactly balanced within each split
        elif dm.spec.task.value == "multiclass":
            assert torch.bincount(y).max().item() / len(y) < 0.3, split


def test_graph_splits_of_small_graphs_where_copies_abound():
    # on 5-7 vertices most draws repeat a class: the split must still keep classes apart
    dm = registry.create_dataset("graph_properties", target="connected", n_min=5, n_max=7,
                                 n_train=300, n_val=60, n_test=100)
    dm.setup()
    assert cross_split_isomorphic_pairs(dm) == 0


def test_isomorphism_classes_against_networkx():
    rng = np.random.default_rng(0)
    n = rng.integers(4, 8, size=300)
    adj = gp.erdos_renyi(rng, n, rng.uniform(0.2, 0.8, size=300), 8)
    # relabelled copies (same class), and C6 against two triangles (WL cannot tell them apart)
    # the real vertices permuted among themselves, the padding left in place
    perm = np.array([np.concatenate([rng.permutation(k), np.arange(k, 8)]) for k in n[:100]])
    copies = adj[np.arange(100)[:, None, None], perm[:, :, None], perm[:, None, :]]
    c6, triangles = np.zeros((2, 8, 8), dtype=bool)
    for i in range(6):
        c6[i, (i + 1) % 6] = c6[(i + 1) % 6, i] = True
    for a, b in [(0, 1), (1, 2), (0, 2), (3, 4), (4, 5), (3, 5)]:
        triangles[a, b] = triangles[b, a] = True
    adj = np.concatenate([adj, copies, c6[None], triangles[None]])
    n = np.concatenate([n, n[:100], [6, 6]])
    iso = gp.IsomorphismClasses()
    ids = np.concatenate([iso.add(n[:150], adj[:150]), iso.add(n[150:], adj[150:])])
    assert (ids[300:400] == ids[:100]).all() and ids[-1] != ids[-2]
    nxg = []
    for a, k in zip(adj, n, strict=True):
        g = nx.Graph()
        g.add_nodes_from(range(k))
        g.add_edges_from(zip(*np.nonzero(np.triu(a[:k, :k])), strict=True))
        nxg.append(g)
    for i, j in itertools.combinations(range(len(nxg)), 2):
        if n[i] == n[j] and nxg[i].number_of_edges() == nxg[j].number_of_edges():
            assert (ids[i] == ids[j]) == nx.is_isomorphic(nxg[i], nxg[j]), (i, j)
        else:
            assert ids[i] != ids[j]


def test_isomorphism_classes_when_certificates_disagree():
    # C6 plus two triangles, all vertices alike to WL: the certificate individualises
    # vertex 0, on the hexagon in one copy and on a triangle in the other
    edges = [(i, (i + 1) % 6) for i in range(6)] + [(6, 7), (7, 8), (6, 8), (9, 10), (10, 11),
                                                    (9, 11)]
    adj = np.zeros((2, 12, 12), dtype=bool)
    rename = [6, 1, 2, 3, 4, 5, 0, 7, 8, 9, 10, 11]  # vertex 0 and 6 swap places
    for u, v in edges:
        adj[0, u, v] = adj[0, v, u] = True
        adj[1, rename[u], rename[v]] = adj[1, rename[v], rename[u]] = True
    n = np.array([12, 12])
    certs = gp.certificates(adj, n, gp.wl_colours(adj, n))
    assert not np.array_equal(certs[0], certs[1])  # so VF2 has to decide
    ids = gp.IsomorphismClasses().add(n, adj)
    assert ids[0] == ids[1]


def test_graph_generation_deterministic_and_seed_moves_the_split():
    params = dict(target="connected", n_min=5, n_max=7, n_train=300, n_val=60, n_test=100)
    a = registry.create_dataset("graph_properties", **params).generate()
    b = registry.create_dataset("graph_properties", **params).generate()
    c = registry.create_dataset("graph_properties", data_seed=1, **params).generate()
    for s in SPLITS:
        assert all(torch.equal(a[s][k], b[s][k]) for k in a[s])
    assert any(not torch.equal(a[s]["adj"], c[s]["adj"]) for s in SPLITS)


@pytest.mark.parametrize("target", ["connected", "diameter"])
def test_graph_ood_split_sizes_padding_and_labels(target):
    dm = registry.create_dataset("graph_properties", target=target, n_min=6, n_max=10,
                                 n_train=200, n_val=50, n_test=80, ood_n_max=13)
    dm.setup()
    spec = dm.spec
    assert spec.has_ood and dm.splits == ("train", "val", "test", "ood_test")
    assert dm.split_size("ood_test") == 80
    sizes = dm._raw_split("ood_test")["num_nodes"].long()
    assert 11 <= sizes.min() and sizes.max() <= 13
    for split in dm.splits:  # every view padded to ood_n_max vertices
        k = dm.split_size(split)
        assert dm.inputs(split, "image").shape == (k, 1, 13, 13)
        assert dm.inputs(split, "vector").shape == (k, 13 * 14 // 2)
        store = dm.inputs(split, "graph")
        assert len(store) == k and store.take(torch.arange(k)).num_nodes == \
            int(dm._raw_split(split)["num_nodes"].long().sum())
    ood = graphs(dm, "ood_test")
    y = dm.target("ood_test").long()
    if target == "connected":
        assert y.float().mean() == 0.5
        assert y.tolist() == [int(nx.is_connected(g)) for g in ood]
    else:  # one class per vertex of the widest graph covers every OOD diameter
        assert spec.num_outputs == 13 and int(y.max()) < 13
        for g, d in zip(ood, y.tolist(), strict=True):
            big = max(map(len, nx.connected_components(g)))
            assert d == max(nx.diameter(g.subgraph(c)) for c in nx.connected_components(g)
                            if len(c) == big)
    plain = registry.create_dataset("graph_properties", target=target, n_min=6, n_max=10)
    assert not plain.spec.has_ood and plain.spec.input_shape == (2,)
    assert plain.spec.view_spec("image").shape == (1, 10, 10)


@pytest.mark.parametrize("params, match", [
    ({"n_max": 10, "ood_n_max": 10},
     r"ood_n_max=10 is out of range; accepted: 0 \(no OOD split\) or 11 <= ood_n_max <= 32"),
    ({"target": "hamiltonian", "n_max": 10, "ood_n_max": 14},
     r"ood_n_max=14 is out of range; accepted: 0 \(no OOD split\) or 11 <= ood_n_max <= 12"),
    ({"target": "hamiltonian", "ood_n_max": 14},
     r"n_max=12 leaves no larger sizes for ood_n_max \(at most 12 vertices"),
])
def test_graph_ood_bad_parameters(params, match):
    with pytest.raises(UserError, match=match):
        gp.GraphProperties(**params)
