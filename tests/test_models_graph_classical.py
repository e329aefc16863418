"""Graph networks (models/gnn.py) and scikit-learn baselines (models/classical.py).

GNNs: output shape, permutation invariance of graph-level outputs, width scaling, and a
missing torch_geometric reported as unavailable. Classical models: fitted on seeded toy
problems and scored through the shared evaluation, as the runner scores them.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from benchmarks import registry
from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.train.evaluation import evaluate_outputs

GNNS = ("gcn", "gin", "gat", "graphsage")
NODE_FEATURES = 5
ROOT = Path(__file__).resolve().parents[1]


def make_spec(task: str, num_outputs: int, width: int, graph: bool = False) -> DatasetSpec:
    views = (ViewSpec(Modality.VECTOR, (width,)),)
    if graph:
        views = (ViewSpec(Modality.GRAPH, (NODE_FEATURES,)),) + views
    spec = DatasetSpec(name="toy", version="1", task=TaskType(task), num_outputs=num_outputs,
                       views=views)
    return spec.for_view(views[0].modality)


# -- graph networks ---------------------------------------------------------------------
def random_graphs(sizes=(3, 5, 1, 7)) -> list:
    """Small seeded graphs with random undirected edges (one isolated single node)."""
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(0)
    graphs = []
    for n in sizes:
        src, dst = torch.randint(0, n, (2, 2 * n), generator=g)
        edges = torch.cat([torch.stack([src, dst]), torch.stack([dst, src])], dim=1)
        graphs.append(Data(x=torch.randn(n, NODE_FEATURES, generator=g), edge_index=edges))
    return graphs


def relabelled(graphs: list) -> list:
    """Each graph with its nodes renumbered by a random permutation (and edges shuffled)."""
    from torch_geometric.data import Data

    g = torch.Generator().manual_seed(1)
    out = []
    for d in graphs:
        perm = torch.randperm(d.num_nodes, generator=g)     # new position -> old node
        new_id = torch.empty_like(perm)
        new_id[perm] = torch.arange(d.num_nodes)              # old node -> new position
        order = torch.randperm(d.edge_index.shape[1], generator=g)
        out.append(Data(x=d.x[perm], edge_index=new_id[d.edge_index][:, order]))
    return out


@pytest.mark.parametrize("name", GNNS)
@pytest.mark.parametrize("pooling", ["mean", "sum", "max"])
def test_gnn_shape_and_permutation_invariance(name, pooling):
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    spec = make_spec("multiclass", 3, 10, graph=True)
    model = registry.create_model(name, spec, hidden=16, dropout=0.5, pooling=pooling).eval()
    graphs = random_graphs()
    with torch.no_grad():
        out = model(Batch.from_data_list(graphs))
        out_perm = model(Batch.from_data_list(relabelled(graphs)))
    assert out.shape == (len(graphs), 3)
    assert torch.isfinite(out).all()
    assert torch.allclose(out, out_perm, atol=1e-5), (out - out_perm).abs().max()


@pytest.mark.parametrize("name", GNNS)
def test_gnn_trains_one_step(name):
    pytest.importorskip("torch_geometric")
    from torch_geometric.data import Batch

    torch.manual_seed(0)
    model = registry.create_model(name, make_spec("binary", 1, 10, graph=True))
    batch = Batch.from_data_list(random_graphs())
    loss = model(batch).square().mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())


@pytest.mark.parametrize("name", GNNS)
def test_gnn_params_grow_with_width(name):
    pytest.importorskip("torch_geometric")
    entry = registry.get_model_entry(name)
    assert entry.width == "hidden" and entry.requires == ("torch_geometric",)
    spec = make_spec("multilabel", 4, 10, graph=True)
    counts = [sum(p.numel() for p in registry.create_model(name, spec, hidden=w).parameters())
              for w in (4, 5, 8, 33, 128, 1024)]
    assert counts == sorted(set(counts)), counts


def test_gnn_without_torch_geometric(monkeypatch):
    """A missing extra disables the GNNs (a reason, not an import error)."""
    registry.load_plugins()
    monkeypatch.setitem(sys.modules, "torch_geometric", None)  # find_spec now says None
    for name in GNNS:
        reason = registry.get_model_entry(name).unavailable_reason()
        assert reason and "torch_geometric" in reason
    assert registry.get_model_entry("mlp").unavailable_reason() is None
    # and the module itself imports without it
    code = ("import sys; sys.modules['torch_geometric'] = None; import models.gnn; "
            "from benchmarks.registry import _MODELS; assert {'gcn', 'gat'} <= set(_MODELS)")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)


# -- classical models -------------------------------------------------------------------
def fit_score(name: str, spec: DatasetSpec, x, y, xt, yt, **hparams) -> dict[str, float]:
    model = registry.create_model(name, spec, **hparams).fit(x, y, seed=0)
    return evaluate_outputs(torch.as_tensor(model.predict(xt)), torch.as_tensor(yt), spec)


def split(x, y, n_train):
    return x[:n_train], y[:n_train], x[n_train:], y[n_train:]


@pytest.mark.parametrize("name", ["logistic", "linear"])
def test_logistic_separates_linear_classes(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 4)).astype(np.float32)
    score = x @ np.array([1.0, -2.0, 0.5, 0.0])
    x, score = x[np.abs(score) > 0.3], score[np.abs(score) > 0.3]  # a margin
    y = (score > 0).astype(np.float32)
    m = fit_score(name, make_spec("binary", 1, 4), *split(x, y, 300), l2=0.01)
    assert m["acc"] >= 0.99
    model = registry.create_model(name, make_spec("binary", 1, 4)).fit(x, y)
    assert model.n_params == 5  # four coefficients and an intercept


def test_linear_recovers_linear_target():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 6)).astype(np.float32)
    y = (x @ rng.normal(size=6) + 3.0 + 0.01 * rng.normal(size=400)).astype(np.float32)
    assert fit_score("linear", make_spec("regression", 1, 6), *split(x, y, 300))["r2"] > 0.99
    assert "regression" not in {t.value for t in registry.get_model_entry("logistic").tasks}


def test_gboost_beats_majority_on_xor():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, size=(1500, 3)).astype(np.float32)
    y = ((x[:, 0] * x[:, 1]) > 0).astype(np.float32)  # no linear model does better than chance
    spec = make_spec("binary", 1, 3)
    data = split(x, y, 1000)
    boost = fit_score("gboost", spec, *data)["acc"]
    assert boost > 0.9 > fit_score("constant", spec, *data)["acc"] + 0.3


@pytest.mark.parametrize("name", ["linear", "logistic", "gboost"])
def test_multilabel_and_multiclass_outputs(name):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 5)).astype(np.float32)
    labels = np.stack([x[:, 0] > 0, x[:, 1] > 0, np.zeros(200, bool)], axis=1)  # one constant
    model = registry.create_model(name, make_spec("multilabel", 3, 5)).fit(x, labels.astype(np.float32))
    out = model.predict(x[:50])
    assert out.shape == (50, 3) and np.isfinite(out).all()
    assert (out[:, 2] < 0).all()  # the never-seen label gets a negative log-odds

    classes = np.digitize(x[:, 0], [-0.5, 0.5])  # classes 0..2 of K=4: class 3 never seen
    model = registry.create_model(name, make_spec("multiclass", 4, 5)).fit(x, classes, seed=3)
    out = model.predict(x)
    assert out.shape == (200, 4) and np.isfinite(out).all()
    assert (out.argmax(1) == classes).mean() > 0.8
    assert model.n_params > 0


def test_gboost_regression_and_determinism():
    rng = np.random.default_rng(0)
    x = rng.uniform(-2, 2, size=(500, 2)).astype(np.float32)
    y = np.stack([np.sin(x[:, 0]), x[:, 1] ** 2], axis=1).astype(np.float32)
    spec = make_spec("regression", 2, 2)
    first = registry.create_model("gboost", spec).fit(x, y, seed=7).predict(x)
    again = registry.create_model("gboost", spec).fit(x, y, seed=7).predict(x)
    assert first.shape == (500, 2)
    np.testing.assert_array_equal(first, again)
    assert fit_score("gboost", spec, *split(x, y, 400))["r2"] > 0.9
