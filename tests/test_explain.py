"""Attributions (benchmarks.explain): the plumbing against a linear model, the layout of
every view over every explainable (dataset, model) pair, weights files that never run code,
the scores, the ground truth the datasets declare, and (slow) whether a sparse-parity MLP's
attributions find the hidden bits."""

from __future__ import annotations

import io
import pickle
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import DATASETS, compatible_pairs, smoke_datamodule
from torch import nn

from benchmarks import registry
from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec, choose_view
from benchmarks.data import num_rows, take_rows
from benchmarks.errors import UserError
from benchmarks.explain import (
    attribute,
    attribution_layout,
    heatmap,
    load_weights,
    read_weights,
    save_weights,
    score_attributions,
    top_inputs,
)
from benchmarks.explain.score import precision_at_k

ROWS = 3  # rows attributed per pair in the generic test: shapes only, so keep it small
# captum and safetensors are the `explain` extra: without them only their tests skip
needs_captum = pytest.mark.skipif(find_spec("captum") is None, reason="needs captum")
needs_safetensors = pytest.mark.skipif(find_spec("safetensors") is None,
                                       reason="needs safetensors")


def toy_spec(d: int, k: int, task: TaskType = TaskType.REGRESSION) -> DatasetSpec:
    return DatasetSpec(name="toy", version="1", task=task, num_outputs=k,
                       views=(ViewSpec(Modality.VECTOR, (d,)),)).for_view(Modality.VECTOR)


# -- (1) the plumbing: a linear model ------------------------------------------------------------
@needs_captum
def test_integrated_gradients_of_a_linear_model_are_weights_times_inputs():
    torch.manual_seed(0)
    model = nn.Linear(5, 3)
    with torch.no_grad():
        model.weight.copy_(torch.arange(15, dtype=torch.float32).reshape(3, 5) / 7 - 1)
        model.bias.fill_(0.25)  # a bias is no input: it gets no attribution
    x = torch.randn(4, 5)
    attr = attribute(model, toy_spec(5, 3), x, None, "ig", n_samples=8)
    assert attr.shape == (4, 3, 5)
    torch.testing.assert_close(attr, model.weight[None].detach() * x[:, None], atol=1e-5, rtol=1e-5)
    # the output gradient of a regression (saliency) is |W|, whatever the row
    sal = attribute(model, toy_spec(5, 3), x, None, "saliency")
    torch.testing.assert_close(sal, model.weight.detach().abs().expand(4, 3, 5))


@needs_captum
def test_saliency_is_the_loss_gradient_of_a_classifier():
    torch.manual_seed(0)
    model = nn.Linear(4, 1)
    x, y = torch.randn(6, 4), torch.tensor([0.0, 1, 1, 0, 1, 0])
    sal = attribute(model, toy_spec(4, 1, TaskType.BINARY), x, y, "saliency")
    # d BCE / dx = (sigmoid(w.x + b) - y) w
    residual = torch.sigmoid(model(x).reshape(-1)) - y
    expected = (residual[:, None] * model.weight.detach()).abs()[:, None, :]
    torch.testing.assert_close(sal, expected)
    with pytest.raises(UserError, match="needs the true targets"):
        attribute(model, toy_spec(4, 1, TaskType.BINARY), x, None, "saliency")


@needs_captum
def test_unknown_method_and_fitted_gradients_are_one_line_errors():
    with pytest.raises(UserError, match="unknown attribution method 'lime'") as e:
        attribute(nn.Linear(2, 1), toy_spec(2, 1), torch.zeros(1, 2), None, "lime")
    assert "\n" not in str(e.value)
    dm = smoke_datamodule("sparse_parity")
    spec = dm.spec.for_view(Modality.VECTOR)
    x, y = dm.arrays("train")
    fitted = registry.create_model("logistic", spec).fit(x, y, seed=0)
    for method in ("saliency", "ig"):
        with pytest.raises(UserError, match="needs gradients") as e:
            attribute(fitted, spec, torch.from_numpy(x[:2]), None, method)
        assert "\n" not in str(e.value)


# -- (2) every view's layout, over every explainable pair -----------------------------------------
NEURAL_PAIRS = [(d, m) for d, m in compatible_pairs()
                if registry.get_model_entry(m).kind == "neural"
                and registry.get_model_entry(m).unavailable_reason() is None]


@needs_captum
@pytest.mark.parametrize(("dataset", "model"), NEURAL_PAIRS, ids=[f"{d}-{m}" for d, m in NEURAL_PAIRS])
def test_attribution_shape_matches_the_view(dataset, model):
    dm = smoke_datamodule(dataset)
    entry = registry.get_model_entry(model)
    view = choose_view(dm.spec, entry.modalities)
    spec = dm.spec.for_view(view)
    torch.manual_seed(0)
    net = registry.create_model(model, spec, **entry.smoke_hparams)  # untrained: shapes only
    rows = torch.arange(ROWS)
    x, y = take_rows(dm.inputs("test", view), rows), take_rows(dm.target("test"), rows)
    expected = (ROWS, spec.num_outputs, *attribution_layout(spec, x))
    modality = spec.view_spec(view).modality
    if modality is Modality.SET:
        assert expected[2:] == (spec.input_shape[0],)  # per element
    elif modality is not Modality.GRAPH:
        assert expected[2:] == spec.input_shape
    for method in ("saliency", "ig", "shap", "permutation"):
        if method == "permutation" and modality in (Modality.SET, Modality.GRAPH):
            with pytest.raises(UserError, match="permutation importance"):
                attribute(net, spec, x, y, method, n_samples=1)
            continue
        attr = attribute(net, spec, x, y, method, n_samples=1 if method == "permutation" else 2)
        assert tuple(attr.shape) == expected, method
        assert attr.dtype == torch.float32 and torch.isfinite(attr).all(), method
    if modality is Modality.GRAPH:  # padding beyond each graph's own nodes stays zero
        counts = x.ptr[1:] - x.ptr[:-1]
        beyond = torch.arange(expected[2]) >= counts[:, None]
        assert not attr[beyond[:, None, :].expand_as(attr)].any()


@needs_captum
def test_fitted_models_take_shap_and_permutation():
    dm = smoke_datamodule("sparse_parity")
    spec = dm.spec.for_view(Modality.VECTOR)
    x, y = dm.arrays("train")
    fitted = registry.create_model("logistic", spec).fit(x, y, seed=0)
    xt, yt = dm.inputs("test", Modality.VECTOR)[:8], dm.target("test")[:8]
    for method in ("shap", "permutation"):
        attr = attribute(fitted, spec, xt, yt, method, n_samples=2)
        assert attr.shape == (8, 1, spec.input_shape[0]), method
    # permutation importance is one number per column, shared by every row
    assert torch.equal(attr[0], attr[-1])


@needs_captum
def test_random_methods_repeat_with_their_seed():
    dm = smoke_datamodule("sparse_parity")
    spec = dm.spec.for_view(Modality.VECTOR)
    torch.manual_seed(0)
    net = registry.create_model("mlp", spec)
    x, y = dm.inputs("test", Modality.VECTOR)[:16], dm.target("test")[:16]
    for method in ("shap", "permutation"):
        first = attribute(net, spec, x, y, method, n_samples=3, seed=5)
        assert torch.equal(first, attribute(net, spec, x, y, method, n_samples=3, seed=5))
        assert not torch.equal(first, attribute(net, spec, x, y, method, n_samples=3, seed=6))


@needs_captum
def test_sequence_attributions_live_on_real_positions():
    """Per-position attributions of a token model: padding columns get none."""
    dm = smoke_datamodule("dyck")
    spec = dm.spec.for_view(Modality.SEQUENCE)
    torch.manual_seed(0)
    net = registry.create_model("transformer", spec)
    x = dm.inputs("test", Modality.SEQUENCE)[:6]
    attr = attribute(net, spec, x, None, "ig", n_samples=4)
    assert not attr[(x == 0)[:, None, :].expand_as(attr)].any()


# -- (3) weights files -----------------------------------------------------------------------------
class Payload:
    """A pickle that would touch a marker file when loaded: it must never be loaded."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def small_net() -> nn.Module:
    spec = smoke_datamodule("parity").spec.for_view(Modality.SEQUENCE)
    return registry.create_model("cnn1d", spec)  # embedding, convolutions, batch-norm buffers


@pytest.mark.parametrize("suffix", [pytest.param(".safetensors", marks=needs_safetensors), ".pt"])
def test_weights_round_trip_and_load_weights_only(tmp_path, suffix):
    torch.manual_seed(0)
    net = small_net()
    with torch.no_grad():  # buffers too: running statistics are part of a trained model
        for buf in net.buffers():
            buf.add_(1)
    path = save_weights(net, tmp_path / f"w{suffix}")
    torch.manual_seed(1)
    other = small_net()
    load_weights(other, path)
    for (k, a), (k2, b) in zip(net.state_dict().items(), other.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b), k
    if suffix == ".pt":  # a plain torch.load with weights_only=True reads it too
        state = torch.load(path, weights_only=True)
        assert set(state) == set(net.state_dict())
    assert set(read_weights(path)) <= set(net.state_dict())


@needs_safetensors
def test_weights_that_do_not_fit_are_one_line_errors(tmp_path):
    path = save_weights(nn.Linear(3, 2), tmp_path / "w.safetensors")
    with pytest.raises(UserError, match="do not fit Linear") as e:
        load_weights(nn.Linear(4, 2), path)
    assert "\n" not in str(e.value)


@pytest.mark.parametrize("how", ["pickle", "torch.save", "named .safetensors"])
def test_a_pickle_with_code_is_refused_and_never_run(tmp_path, how):
    marker = tmp_path / "marker"
    path = tmp_path / ("evil.safetensors" if how == "named .safetensors" else "evil.pt")
    payload = {"weight": torch.zeros(2), "trap": Payload(marker)}
    if how == "torch.save":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))  # the protocol torch.load expects
    assert not marker.exists()
    with pytest.raises(UserError, match="not a weights file") as e:
        read_weights(path)
    assert "\n" not in str(e.value)
    with pytest.raises(UserError):
        load_weights(nn.Linear(2, 1), path)
    assert not marker.exists()


def test_a_file_of_something_else_is_refused(tmp_path):
    path = tmp_path / "notes.pt"
    path.write_text("these are not weights\n")
    with pytest.raises(UserError, match="not a weights file") as e:
        read_weights(path)
    assert "\n" not in str(e.value)
    blob = tmp_path / "list.pt"
    torch.save([torch.zeros(1)], blob)  # loads weights-only, but is no state dict
    with pytest.raises(UserError, match="expected a state dict"):
        read_weights(blob)


# -- (4) scores ------------------------------------------------------------------------------------
def test_the_mask_itself_scores_perfectly():
    torch.manual_seed(0)
    mask = torch.rand(50, 2, 12) < 0.3
    s = score_attributions(mask.float(), mask)
    assert s["auroc"] == 1.0 and s["precision_at_k"] == 1.0
    assert s["scored"] + s["skipped"] == 100 and s["inputs"] == 12


def test_random_attributions_score_near_one_half():
    g = torch.Generator().manual_seed(0)
    mask = torch.zeros(1, 1, 20, dtype=torch.bool)
    mask[..., :4] = True
    s = score_attributions(torch.rand(2000, 1, 20, generator=g), mask)
    assert abs(s["auroc"] - 0.5) < 0.02
    assert abs(s["precision_at_k"] - 4 / 20) < 0.02
    assert s["scored"] == 2000 and s["relevant_mean"] == 4


def test_precision_at_k_and_auroc_on_a_constructed_case():
    attr = torch.tensor([[[5.0, 4, 3, 2, 1]]])
    mask = torch.tensor([[[True, False, True, False, False]]])
    s = score_attributions(attr, mask)
    assert s["precision_at_k"] == 0.5   # top 2 are inputs 0 and 1; only 0 is relevant
    assert s["auroc"] == pytest.approx(5 / 6)  # relevant 5 and 3 beat 5 of 6 pairs
    # signs do not matter (a strongly negative attribution is a strong one), ties share out
    assert score_attributions(-attr, mask)["precision_at_k"] == 0.5
    flat = precision_at_k(torch.ones(1, 5), mask[0])
    assert float(flat) == pytest.approx(2 / 5)  # a constant scores the base rate
    assert top_inputs(attr, 2) == [0, 1]


def test_auroc_equals_sklearn_per_pair_with_ties():
    from sklearn.metrics import roc_auc_score

    g = torch.Generator().manual_seed(1)
    attr = torch.randint(0, 4, (40, 3, 9), generator=g).float()
    mask = torch.rand(40, 3, 9, generator=g) < 0.4
    s = score_attributions(attr, mask)
    ref = [roc_auc_score(m.numpy(), a.numpy())
           for a, m in zip(attr.reshape(-1, 9), mask.reshape(-1, 9), strict=True)
           if 0 < int(m.sum()) < 9]
    assert s["auroc"] == pytest.approx(float(np.mean(ref)))
    assert s["scored"] == len(ref)


def test_rows_with_nothing_to_rank_are_skipped_and_channels_pool():
    mask = torch.tensor([[[True, True, True]], [[False, False, False]], [[True, False, False]]])
    s = score_attributions(torch.tensor([[[1.0, 2, 3]], [[1.0, 2, 3]], [[3.0, 2, 1]]]), mask)
    assert (s["scored"], s["skipped"], s["auroc"]) == (1, 2, 1.0)
    assert score_attributions(torch.ones(2, 1, 3), mask[:2])["auroc"] is None
    # a mask per cell against attributions per cell and channel: channels are summed
    attr = torch.zeros(2, 1, 3, 2, 2)
    attr[:, 0, 2, 1, 1] = 1.0      # all of it in one channel of cell (1, 1)
    cell = torch.zeros(1, 1, 1, 2, 2, dtype=torch.bool)
    cell[..., 1, 1] = True
    assert score_attributions(attr, cell)["auroc"] == 1.0


# -- (5) what the datasets declare ---------------------------------------------------------------
@pytest.mark.parametrize("name", DATASETS)
def test_declared_relevant_inputs_broadcast_to_the_attribution_layout(name):
    dm = smoke_datamodule(name)
    declared = False
    for view in dm.spec.views:
        spec = dm.spec.for_view(view.modality)
        for split in dm.splits:
            mask = dm.relevant_inputs(split, view.modality)
            if mask is None:
                continue
            declared = True
            x = dm.inputs(split, view.modality)
            full = (num_rows(x), spec.num_outputs, *attribution_layout(spec, x))
            assert mask.dtype == torch.bool and mask.dim() == len(full), (view, split)
            assert all(a in (1, b) for a, b in zip(mask.shape, full, strict=True)), (view, split)
            assert mask.any()
    assert declared == bool(dm.spec.ground_truth)  # a declaration says so in words too


def test_parity_masks_every_real_bit():
    dm = registry.create_dataset("parity", n=6, n_train=20, n_val=8, n_test=8, ood_n=9)
    for view in (Modality.SEQUENCE, Modality.VECTOR):
        assert dm.relevant_inputs("test", view).tolist() == [[[True] * 6 + [False] * 3]]
        assert dm.relevant_inputs("ood_test", view).all()
    assert dm.relevant_inputs("test", Modality.IMAGE) is None
    assert "every real bit" in dm.spec.ground_truth


def test_sparse_parity_masks_its_hidden_subset_and_only_it():
    dm = smoke_datamodule("sparse_parity")
    hidden = dm.hidden_subset()
    mask = dm.relevant_inputs("test", Modality.VECTOR)
    assert mask.shape == (1, 1, dm.params["n"])
    assert mask[0, 0].nonzero().reshape(-1).tolist() == hidden.tolist()
    assert torch.equal(mask, dm.relevant_inputs("train", Modality.SEQUENCE))
    # the label is a function of the masked bits: flipping any other bit changes nothing
    bits = dm.inputs("test", Modality.VECTOR).numpy().astype(np.int64)
    assert np.array_equal(dm.labels(bits[:, :dm.params["n"]]), dm.labels(bits ^ ~mask[0].numpy()))
    assert str(hidden.tolist()) not in dm.spec.ground_truth  # factories read the spec


@pytest.mark.parametrize("side", ["right", "left"])
def test_descent_masks_hold_what_each_descent_reads(side):
    n = 6
    dm = registry.create_dataset("descents", n=n, side=side, n_train=40, n_val=10, n_test=30)
    perm, y = dm._raw_split("test")["perm"].long(), dm.target("test")
    for view in (Modality.SEQUENCE, Modality.VECTOR):
        mask = dm.relevant_inputs("test", view)
        assert mask.shape == ((1 if side == "right" else 30), n - 1, n)
        full = mask.expand(30, n - 1, n)
        assert (full.sum(-1) == 2).all()
        for r in range(30):
            for i in range(n - 1):
                p, q = full[r, i].nonzero().reshape(-1).tolist()
                if side == "right":
                    assert (p, q) == (i, i + 1)
                    assert y[r, i] == float(perm[r, p] > perm[r, q])
                else:  # positions of values i+1 and i+2; descent iff the larger comes first
                    assert sorted(perm[r, [p, q]].tolist()) == [i + 1, i + 2]
                    assert y[r, i] == float(perm[r, p] == i + 2)
    matrix = registry.create_dataset("descents", n=n, side=side, encoding="matrix",
                                     n_train=40, n_val=10, n_test=30)
    image = matrix.relevant_inputs("test", Modality.IMAGE)
    assert image.shape == (1, n - 1, 1, n, n)
    lines = image[0, 2, 0].nonzero()[:, 0 if side == "right" else 1].unique().tolist()
    assert lines == [2, 3]  # descent 2 reads rows (right) or columns (left) 2 and 3
    assert torch.equal(matrix.relevant_inputs("test", Modality.VECTOR),
                       image.reshape(1, n - 1, n * n))


def test_formula_masks_its_variables_not_the_distractors():
    dm = registry.create_dataset("formulas", formula="feynman_I_29_4", n_train=30, n_val=10,
                                 n_test=10, distractors=3)
    spec = dm.spec
    assert spec.extra["variables"] == ["omega", "c", "u1", "u2", "u3"]
    assert spec.input_shape == (5,) and dm.inputs("train").shape == (30, 5)
    for view in (Modality.TABULAR, Modality.VECTOR):
        assert dm.relevant_inputs("test", view).tolist() == [[[True, True, False, False, False]]]
    assert "omega, c" in spec.ground_truth
    # the distractors sit in the ranges of the variables and leave the formula's data alone
    x = dm.inputs("train")
    assert bool((x[:, 2:] >= 1).all() and (x[:, 2:] <= 10).all())
    plain = registry.create_dataset("formulas", formula="feynman_I_29_4", n_train=30, n_val=10,
                                    n_test=10)
    assert torch.equal(plain.inputs("train"), x[:, :2])
    assert torch.equal(plain.target("train"), dm.target("train"))
    assert "distractors" not in plain.params  # the default keeps the old cache key and identity


def test_heatmaps_are_figures_outside_pyplot():
    import sys

    from matplotlib.figure import Figure

    pyplot = sys.modules.get("matplotlib.pyplot")
    open_before = pyplot.get_fignums() if pyplot else None
    dm = smoke_datamodule("descents")
    spec = dm.spec.for_view(Modality.SEQUENCE)
    tables = torch.rand(4, 2, 3, 5, 5)
    img_spec = DatasetSpec(name="img", version="1", task=TaskType.MULTILABEL, num_outputs=2,
                           views=(ViewSpec(Modality.IMAGE, (3, 5, 5)),
                                  ViewSpec(Modality.VECTOR, (75,)))).for_view(Modality.IMAGE)
    figs = [heatmap(torch.rand(4, 6, 7), spec, dm.relevant_inputs("test", Modality.SEQUENCE)),
            heatmap(tables, img_spec, tables > 0.5)]
    if find_spec("torch_geometric") is not None:  # a graph view's batches need it
        graphs = smoke_datamodule("graph_properties")
        gspec = graphs.spec.for_view(Modality.GRAPH)
        store = graphs.inputs("test", Modality.GRAPH)
        gattr = torch.rand(2, 1, attribution_layout(gspec, store.take(torch.arange(2)))[0])
        figs.append(heatmap(gattr, gspec, gattr > 0.5, graphs=store))
    for fig in figs:
        assert isinstance(fig, Figure)
        fig.savefig(io.BytesIO(), format="png")
    # no pyplot state: neither imported by us nor holding new figures
    assert sys.modules.get("matplotlib.pyplot") is pyplot
    assert not pyplot or pyplot.get_fignums() == open_before


# -- the scientific check ----------------------------------------------------------------------------
@pytest.mark.slow
@needs_captum
def test_sparse_parity_mlp_attributions_find_the_hidden_bits(capsys):
    """An MLP that learns sparse parity (n = 30, k = 3) to >= 0.99 test accuracy: at least
    one method must rank the 3 hidden bits first (top 3 of the mean |attribution| over the
    test rows). Every method's scores are printed, pass or fail."""
    dm = registry.create_dataset("sparse_parity", n=30, k=3)  # the default 5,000 rows
    spec = dm.spec.for_view(Modality.VECTOR)
    torch.manual_seed(0)
    net = registry.create_model("mlp", spec, hidden=256, depth=2)
    x, y = dm.inputs("train", Modality.VECTOR), dm.target("train")
    xv, yv = dm.inputs("val", Modality.VECTOR), dm.target("val")
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3, weight_decay=1e-2)
    g = torch.Generator().manual_seed(0)

    def accuracy(xs: torch.Tensor, ys: torch.Tensor) -> float:
        net.eval()
        with torch.no_grad():
            return float(((net(xs).reshape(-1) > 0).float() == ys).float().mean())

    for _ in range(200):  # stop on validation accuracy; the test split only scores
        net.train()
        for idx in torch.randperm(len(x), generator=g).split(64):
            loss = F.binary_cross_entropy_with_logits(net(x[idx]).reshape(-1), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        if accuracy(xv, yv) >= 0.995:
            break
    xt, yt = dm.inputs("test", Modality.VECTOR), dm.target("test")
    acc = accuracy(xt, yt)
    assert acc >= 0.99, f"the MLP reached only {acc:.3f} test accuracy: nothing to explain"
    hidden = sorted(dm.hidden_subset().tolist())
    mask = dm.relevant_inputs("test", Modality.VECTOR)
    found = {}
    with capsys.disabled():
        print(f"\nsparse_parity n=30 k=3, MLP test acc {acc:.4f}, hidden bits {hidden}")
        for method in ("saliency", "ig", "shap", "permutation"):
            attr = attribute(net, spec, xt, yt, method)
            s = score_attributions(attr, mask)
            found[method] = sorted(top_inputs(attr, 3)) == hidden
            print(f"  {method:12s} top-3 {sorted(top_inputs(attr, 3))} "
                  f"{'PASS' if found[method] else 'FAIL'}  auroc {s['auroc']:.4f}  "
                  f"precision@k {s['precision_at_k']:.4f}  (per row, {s['scored']} rows)")
    assert any(found.values()), f"no method ranked the hidden bits {hidden} first: {found}"
