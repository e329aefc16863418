"""Generic checks over every compatible (dataset, model) pair of the registries: output
shape, no NaN, a few optimisation steps lower the loss; fitted models fit and predict in
the network layout; parameter budgets land within 10%."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import compatible_pairs, smoke_datamodule
from torch import nn

from benchmarks import registry
from benchmarks.budget import fit_width
from benchmarks.contract import choose_view
from benchmarks.evaluation import evaluate_outputs, shape_outputs, task_loss
from benchmarks.module import call_backbone

PAIRS = compatible_pairs()
NEURAL = [(d, m) for d, m in PAIRS if registry.get_model_entry(m).kind == "neural"
          and registry.get_model_entry(m).unavailable_reason() is None]
FITTED = [(d, m) for d, m in PAIRS if registry.get_model_entry(m).kind == "fitted"
          and registry.get_model_entry(m).unavailable_reason() is None]
WIDTHED = [(d, m) for d, m in NEURAL if registry.get_model_entry(m).width]


def _prepared(dataset: str, model: str):
    dm = smoke_datamodule(dataset)
    entry = registry.get_model_entry(model)
    view = choose_view(dm.spec, entry.modalities)
    dm.configure(view=view, batch_size=64, seed=0)
    return dm, dm.spec.for_view(view)


@pytest.mark.parametrize(("dataset", "model"), NEURAL)
def test_forward_shape_and_loss_falls(dataset, model):
    dm, spec = _prepared(dataset, model)
    L.seed_everything(0, verbose=False)
    net = registry.create_model(model, spec, **registry.get_model_entry(model).smoke_hparams)
    assert isinstance(net, nn.Module)
    inputs, target = next(iter(dm.train_dataloader()))
    if spec.task.value == "regression":
        mean, std = dm.target_stats()
        target = (target - mean) / std
    out = shape_outputs(call_backbone(net, inputs), spec)
    assert out.shape[0] == len(target) and torch.isfinite(out).all()
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    net.train()
    first = None
    for _ in range(25):
        loss = task_loss(shape_outputs(call_backbone(net, inputs), spec), target, spec)
        assert torch.isfinite(loss)
        first = float(loss.detach()) if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = float(task_loss(shape_outputs(call_backbone(net, inputs), spec), target, spec))
    assert final < first, f"{model} on {dataset}: loss {first:.4f} -> {final:.4f}"


@pytest.mark.parametrize(("dataset", "model"), FITTED)
def test_fitted_models_predict_in_the_network_layout(dataset, model):
    dm, spec = _prepared(dataset, model)
    fitted = registry.create_model(model, spec, **registry.get_model_entry(model).smoke_hparams)
    x, y = dm.arrays("train", spec.modality)
    fitted.fit(x, y, seed=0)
    xt, _ = dm.arrays("test", spec.modality)
    out = torch.as_tensor(fitted.predict(xt)).float()
    assert out.shape[0] == len(xt) and torch.isfinite(out).all()
    metrics = evaluate_outputs(out, dm.target("test"), spec)
    assert spec.metric in metrics


@pytest.mark.parametrize("budget", [10_000, 100_000])
@pytest.mark.parametrize(("dataset", "model"), WIDTHED)
def test_parameter_budget_within_ten_percent(dataset, model, budget):
    _, spec = _prepared(dataset, model)
    width, n = fit_width(model, spec, budget)
    built = registry.create_model(model, spec, **{registry.get_model_entry(model).width: width})
    assert sum(p.numel() for p in built.parameters()) == n
    assert abs(n - budget) <= 0.1 * budget
