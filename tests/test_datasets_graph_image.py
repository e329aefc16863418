"""Semigroups, graph properties and the digit images against independent oracles:
associativity by definition, the known semigroup counts, networkx (or brute force) for
every graph target, IDX files written here for MNIST; and the GraphStore batches."""

from __future__ import annotations

import gzip
import itertools
import re
import struct

import networkx as nx
import numpy as np
import pytest
import torch

from benchmarks import registry
from benchmarks.errors import UserError
from benchmarks.graphs import GraphStore
from datamodules import graph_properties as gp
from datamodules import semigroups as sg


# -- semigroups ----------------------------------------------------------------------------
def is_associative(t) -> bool:
    m = len(t)
    return all(t[t[a][b]][c] == t[a][t[b][c]] for a in range(m) for b in range(m) for c in range(m))


def test_semigroup_counts_are_the_known_ones():
    assert len(sg.enumerate_semigroups(3)) == 113
    assert len(sg.enumerate_semigroups(4)) == 3492
    for m in (3, 4):
        tables = sg.enumerate_semigroups(m)
        assert all(is_associative(t.tolist()) for t in tables)
        assert len({t.tobytes() for t in tables}) == len(tables)


def test_order_3_enumeration_is_complete_by_brute_force():
    found = {t.tobytes() for t in sg.enumerate_semigroups(3)}
    every = np.array(list(itertools.product(range(3), repeat=9)), dtype=np.int8).reshape(-1, 3, 3)
    brute = {t.tobytes() for t in every if is_associative(t.tolist())}
    assert brute == found


def test_vectorised_associativity_matches_the_definition():
    tables = np.random.default_rng(0).integers(0, 3, size=(3000, 3, 3)).astype(np.int8)
    tables[:100] = sg.enumerate_semigroups(3)[:100]
    assert sg.associative(tables).tolist() == [is_associative(t.tolist()) for t in tables]


def test_sampled_order_5_semigroups_are_distinct_semigroups():
    tables = sg.sample_semigroups(5, 300, np.random.default_rng(1))
    assert len({t.tobytes() for t in tables}) == 300
    assert all(is_associative(t.tolist()) for t in tables)


def test_near_misses_break_associativity_in_one_entry():
    base = sg.sample_semigroups(5, 200, np.random.default_rng(2))
    miss, changed = sg.near_misses(base, np.random.default_rng(3))
    assert ((miss != base).sum(axis=(1, 2)) == 1).all()
    diff = (miss != base).reshape(len(base), -1).argmax(axis=1)
    assert (diff == changed).all()  # the entry it reports is the one it changed
    assert not any(is_associative(t.tolist()) for t in miss)
    assert len({t.tobytes() for t in miss}) == len(miss)


@pytest.mark.parametrize("m", [3, 4])
def test_semigroups_dataset_labels_and_near_misses(m):
    dm = registry.create_dataset("semigroups", m=m)
    dm.setup()
    known = sg.enumerate_semigroups(m).reshape(-1, m * m)
    positives = 0
    for split in dm.splits:
        tables = dm._raw_split(split)["table"].numpy()
        y = dm.target(split).numpy()
        assert y.mean() == 0.5  # balanced within each split
        for t, label in zip(tables, y, strict=True):
            assert is_associative(t.tolist()) == bool(label)
        # every negative is one entry away from some semigroup
        dist = (tables[y == 0].reshape(-1, 1, m * m) != known[None]).sum(axis=2)
        assert (dist.min(axis=1) == 1).all()
        positives += int(y.sum())
        image = dm.inputs(split, "image")
        assert torch.equal(image.argmax(1), torch.from_numpy(tables).long())
        tokens = torch.from_numpy(tables).long().flatten(1) + 1
        assert torch.equal(dm.inputs(split, "sequence"), tokens)
    assert positives == sg.SEMIGROUP_COUNTS[m]  # every semigroup, once


def test_semigroups_order_5_is_balanced_and_correct():
    dm = registry.create_dataset("semigroups", m=5, n_per_class=200)
    dm.setup()
    for split in dm.splits:
        tables, y = dm._raw_split(split)["table"].numpy(), dm.target(split).numpy()
        assert y.mean() == 0.5
        assert [is_associative(t.tolist()) for t in tables] == y.astype(bool).tolist()
    assert dm.spec.input_shape == (5, 5, 5) and dm.spec.view_spec("vector").shape == (125,)


@pytest.mark.parametrize("params, match", [
    ({"m": 2}, r"m=2 is out of range; accepted: 3 <= m <= 5"),
    ({"m": 6}, r"m=6 is out of range"),
    ({"m": 3, "n_per_class": 500},
     r"n_per_class=500 is out of range; accepted for m=3: 10 <= n_per_class <= 113"),
])
def test_semigroups_bad_parameters(params, match):
    with pytest.raises(UserError, match=match):
        registry.create_dataset("semigroups", **params)


# -- graph properties -----------------------------------------------------------------------
def graphs_of(dm, split):
    """The networkx graphs of a split, read back from the raw cache tensors."""
    raw = dm._raw_split(split)
    adj = gp.from_upper_bits(raw["adj"], dm.params["n_max"]).numpy()
    out = []
    for a, n in zip(adj, raw["num_nodes"].tolist(), strict=True):
        g = nx.Graph()
        g.add_nodes_from(range(n))
        g.add_edges_from(zip(*np.nonzero(np.triu(a[:n, :n])), strict=True))
        out.append(g)
    return out


def hamiltonian_by_dfs(g: nx.Graph) -> bool:
    n = g.number_of_nodes()
    if n < 3:
        return False

    def extend(path, seen):
        if len(path) == n:
            return g.has_edge(path[-1], path[0])
        return any(extend(path + [v], seen | {v}) for v in g[path[-1]] if v not in seen)

    return extend([0], {0})


def colourable_by_backtracking(g: nx.Graph, k: int) -> bool:
    """Plain backtracking in a fixed order; colour c only once 0..c-1 are in use."""
    order = sorted(g, key=g.degree, reverse=True)
    colour = {}

    def place(i, used):
        if i == len(order):
            return True
        v = order[i]
        for c in range(min(k, used + 1)):
            if all(colour.get(u) != c for u in g[v]):
                colour[v] = c
                if place(i + 1, max(used, c + 1)):
                    return True
                del colour[v]
        return False

    return place(0, 0)


def chromatic_by_backtracking(g: nx.Graph) -> int:
    clique = max(len(c) for c in nx.find_cliques(g))
    return next(k for k in range(clique, len(g) + 1) if colourable_by_backtracking(g, k))


def diameter_of_largest(g: nx.Graph) -> int:
    comps = list(nx.connected_components(g))
    biggest = max(map(len, comps))
    return max(nx.diameter(g.subgraph(c)) for c in comps if len(c) == biggest)


ORACLES = {
    "connected": nx.is_connected,
    "bipartite": nx.is_bipartite,
    "planar": lambda g: nx.check_planarity(g)[0],
    "eulerian": nx.is_eulerian,
    "hamiltonian": hamiltonian_by_dfs,
    "triangles": lambda g: sum(nx.triangles(g).values()) // 3,
    "diameter": diameter_of_largest,
    "chromatic": lambda g: chromatic_by_backtracking(g) - 1,  # class k: chromatic number k+1
}


@pytest.mark.parametrize("target", gp.TARGETS)
def test_graph_labels_against_networkx(target):
    # chromatic at n <= 12 so that the plain backtracking oracle stays quick
    n_max = 12 if target in ("chromatic", "hamiltonian") else 20
    dm = registry.create_dataset("graph_properties", target=target, n_max=n_max,
                                 n_train=240, n_val=40, n_test=120)
    dm.setup()
    for split in dm.splits:
        expected = [ORACLES[target](g) for g in graphs_of(dm, split)]
        assert dm.target(split).long().tolist() == [int(e) for e in expected], split


@pytest.mark.parametrize("target", ["chromatic", "planar", "diameter"])
def test_graph_labels_at_default_size(target):
    dm = registry.create_dataset("graph_properties", target=target, n_train=150, n_val=25,
                                 n_test=25, data_seed=1)
    dm.setup()
    for g, y in zip(graphs_of(dm, "train"), dm.target("train").tolist(), strict=True):
        if target == "chromatic":  # bounds that need no exact search at n <= 20
            clique = max(len(c) for c in nx.find_cliques(g))
            greedy = max(nx.greedy_color(g, "DSATUR").values()) + 1
            assert clique <= y + 1 <= greedy
        else:
            assert ORACLES[target](g) == y


@pytest.mark.parametrize("target", ["connected", "bipartite", "eulerian", "diameter", "chromatic"])
def test_graph_labels_are_balanced(target):
    dm = registry.create_dataset("graph_properties", target=target, n_train=1500, n_val=250,
                                 n_test=250)
    dm.setup()
    y = torch.cat([dm.target(s) for s in dm.splits]).long()
    share = torch.bincount(y).max().item() / len(y)
    assert share == 0.5 if dm.spec.task.value == "binary" else share < 0.3


def test_graph_views_and_store():
    dm = registry.create_dataset("graph_properties", target="triangles", n_min=5, n_max=9,
                                 n_train=100, n_val=20, n_test=20)
    dm.setup()
    graphs = graphs_of(dm, "train")
    store = dm.inputs("train", "graph")
    assert len(store) == 100 and store.num_node_features == 2
    idx = torch.tensor([5, 0, 99, 5, 42])
    batch = store.take(idx)
    assert batch.num_graphs == 5 and batch.x.shape[1] == 2
    for data, i in zip(batch.to_data_list(), idx.tolist(), strict=True):
        g = graphs[i]
        assert data.num_nodes == g.number_of_nodes()
        assert {tuple(e) for e in data.edge_index.T.tolist()} == \
            {e for u, v in g.edges for e in ((u, v), (v, u))}
        deg = torch.tensor([g.degree(v) for v in range(len(g))], dtype=torch.float32)
        assert torch.allclose(data.x[:, 1] * 8, deg)
    image = dm.inputs("train", "image")
    assert image.shape == (100, 1, 9, 9)
    g0 = graphs[0]
    marked = nx.to_numpy_array(g0, nodelist=range(len(g0))) + np.eye(len(g0))
    assert np.array_equal(image[0, 0, :len(g0), :len(g0)].numpy(), marked)
    assert image[0, 0].sum().item() == len(g0) + 2 * g0.number_of_edges()
    assert dm.inputs("train", "vector").shape == (100, 45)


def test_graph_store_matches_from_data_list():
    from torch_geometric.data import Batch, Data

    rng = torch.Generator().manual_seed(0)
    n = torch.randint(1, 7, (30,), generator=rng)
    adj = torch.rand(30, 6, 6, generator=rng) < 0.4  # directed, self loops allowed
    real = torch.arange(6) < n[:, None]
    adj &= real[:, :, None] & real[:, None, :]
    x = torch.randn(30, 6, 3, generator=rng)
    store = GraphStore.from_dense(adj, n, x)
    datas = [Data(x=x[g, :n[g]], edge_index=adj[g, :n[g], :n[g]].nonzero().T) for g in range(30)]
    idx = torch.tensor([3, 3, 29, 0, 17])
    ours, ref = store.take(idx), Batch.from_data_list([datas[i] for i in idx])
    for key in ("x", "edge_index", "batch", "ptr"):
        assert torch.equal(ours[key], ref[key]), key
    assert torch.equal(store.to_dense_adjacency(6), adj.float())


def test_graph_raw_cache_loads_with_weights_only(tmp_path):
    dm = registry.create_dataset("graph_properties", **gp.GraphProperties.smoke_params)
    torch.save(dm.generate(), tmp_path / "raw.pt")
    raw = torch.load(tmp_path / "raw.pt", weights_only=True)
    assert set(raw["train"]) == {"num_nodes", "adj", "y"}


@pytest.mark.parametrize("params, match", [
    ({"target": "girth"}, r"target='girth' is not accepted; choose one of connected"),
    ({"target": "hamiltonian", "n_max": 13}, r"'hamiltonian' needs n_max <= 12"),
    ({"n_min": 25}, r"n_min=25 is out of range; accepted: 3 <= n_min <= 20"),
    ({"n_max": 40}, r"n_max=40 is out of range"),
])
def test_graph_bad_parameters(params, match):
    with pytest.raises(UserError, match=match):
        gp.GraphProperties(**params)


def test_hamiltonian_defaults_to_n_max_12():
    assert gp.GraphProperties(target="hamiltonian").params["n_max"] == 12
    assert gp.GraphProperties(target="planar").params["n_max"] == 20


# -- digit images ---------------------------------------------------------------------------
def write_idx(path, array: np.ndarray) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim)
    header += struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def tiny_mnist(root, gz=False):
    rng = np.random.default_rng(0)
    x_tr = rng.integers(0, 256, (300, 28, 28), dtype=np.uint8)
    x_te = rng.integers(0, 256, (60, 28, 28), dtype=np.uint8)
    x_tr[7] = x_te[3]  # a training image that is also a test image is dropped
    y_tr, y_te = rng.integers(0, 10, 300), rng.integers(0, 10, 60)
    ext = ".gz" if gz else ""
    for name, arr in zip(("train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                          "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
                         (x_tr, y_tr, x_te, y_te), strict=True):
        write_idx(root / f"{name}{ext}", arr)
    return x_tr, y_tr, x_te, y_te


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_reads_idx_files(tmp_path, gz):
    x_tr, y_tr, x_te, y_te = tiny_mnist(tmp_path, gz)
    dm = registry.create_dataset("mnist", root=str(tmp_path), n_train=None, n_val=50)
    dm.setup()
    assert [dm.split_size(s) for s in ("train", "val", "test")] == [249, 50, 60]
    expected_test = torch.from_numpy(x_te).float().unsqueeze(1) / 255
    assert torch.equal(dm.inputs("test", "image"), expected_test)
    assert dm.target("test").tolist() == y_te.tolist()
    # train and val are the other training images, with their own labels
    lookup = {img.tobytes(): lab for img, lab in zip(x_tr, y_tr, strict=True)}
    seen = set()
    for split in ("train", "val"):
        imgs = (dm.inputs(split, "image") * 255).round().to(torch.uint8).numpy()[:, 0]
        assert [lookup[i.tobytes()] for i in imgs] == dm.target(split).tolist()
        seen |= {i.tobytes() for i in imgs}
    assert x_tr[7].tobytes() not in seen
    assert dm.spec.view_spec("vector").shape == (784,)


def test_mnist_missing_files_name_the_directory(tmp_path, monkeypatch):
    expected = re.escape(f"{tmp_path} lacks the MNIST IDX files train-images-idx3-ubyte, "
                         "train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")
    with pytest.raises(UserError, match=expected):
        registry.create_dataset("mnist", root=str(tmp_path))
    tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(UserError, match="lacks t10k-labels-idx1-ubyte \\(of the four"):
        registry.create_dataset("mnist", root=str(tmp_path))
    monkeypatch.setenv("MLWM_MNIST_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(UserError, match="nowhere lacks"):
        registry.create_dataset("mnist")


def test_mnist_rejects_a_file_that_is_not_idx(tmp_path):
    tiny_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"hello world")
    dm = registry.create_dataset("mnist", root=str(tmp_path), n_train=100, n_val=50)
    with pytest.raises(UserError, match="not an IDX file"):
        dm.setup()


def test_mnist1d_shapes_determinism_and_shuffle():
    state = np.random.get_state()[1].copy()
    a = registry.create_dataset("mnist1d", num_samples=1000, n_val=100)
    b = registry.create_dataset("mnist1d", num_samples=1000, n_val=100, shuffle=True)
    raw_a, raw_b = a.generate(), b.generate()
    assert np.array_equal(np.random.get_state()[1], state), "numpy's global state is restored"
    assert [len(raw_a[s]["y"]) for s in ("train", "val", "test")] == [700, 100, 200]
    assert raw_a["train"]["x"].shape == (700, 40) and raw_a["train"]["x"].dtype == torch.float32
    assert set(raw_a["test"]["y"].tolist()) == set(range(10))
    assert torch.equal(a.generate()["val"]["x"], raw_a["val"]["x"])  # deterministic
    # the shuffled variant permutes the same 40 positions of the same signals
    for split in raw_a:
        assert torch.equal(raw_a[split]["y"], raw_b[split]["y"])
        assert torch.equal(raw_a[split]["x"].sort(1).values, raw_b[split]["x"].sort(1).values)
        assert not torch.equal(raw_a[split]["x"], raw_b[split]["x"])


def test_mnist1d_package_default_split():
    dm = registry.create_dataset("mnist1d")
    raw = dm.generate()
    assert len(raw["train"]["y"]) + len(raw["val"]["y"]) == 4000 and len(raw["test"]["y"]) == 1000


def test_digits_sizes_and_views():
    dm = registry.create_dataset("digits")
    dm.setup()
    assert [dm.split_size(s) for s in ("train", "val", "test")] == [1197, 200, 400]
    x = dm.inputs("train", "image")
    assert x.shape == (1197, 1, 8, 8) and 0 <= x.min() and x.max() <= 1
    assert torch.equal(x.flatten(1), dm.inputs("train", "vector"))
    other = registry.create_dataset("digits", data_seed=1)
    other.setup()
    assert not torch.equal(other.target("test"), dm.target("test"))
    with pytest.raises(UserError, match="n_test=0 is out of range"):
        registry.create_dataset("digits", n_test=0)
