"""Generic checks over every compatible (dataset, model) pair of the registries: output
shape, no NaN, overfitting one batch lowers the loss (at 1 and 2 threads); fitted models fit and predict in
the network layout; parameter budgets land within 10%."""

from __future__ import annotations

import lightning as L
import pytest
import torch
from conftest import compatible_pairs, smoke_datamodule
from torch import nn

from benchmarks import registry
from benchmarks.contract import choose_view
from benchmarks.train.evaluation import evaluate_outputs, shape_outputs, task_loss
from benchmarks.train.module import call_backbone
from benchmarks.train.widths import fit_width

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


# One batch of the smoke dataset, overfitted: every family must drive its loss well below
# where it started. The check is on the best loss over the steps, never on the last one (a
# single noisy end point passed on one CPU and failed on another), with a margin measured
# over every pair at 1 and 2 threads: the worst family reached 0.73 of its first loss at
# one of the two rates within 100 steps, against the 0.9 asked here. Rates differ by family
# (recurrent nets want 1e-2, transformers 3e-3), so each pair may use either.
STEPS, RATES, FALLS_TO = 100, (3e-3, 1e-2), 0.9


def _best_loss_ratio(net_for, inputs, target, spec) -> tuple[float, list[str]]:
    """min over RATES of (best loss over STEPS Adam steps) / (first loss); stops early."""
    tried, best_ratio = [], float("inf")
    for lr in RATES:
        net = net_for()
        opt = torch.optim.Adam(net.parameters(), lr=lr)
        net.train()
        first, best = None, float("inf")
        for step in range(STEPS):
            loss = task_loss(shape_outputs(call_backbone(net, inputs), spec), target, spec)
            assert torch.isfinite(loss), f"non-finite loss at lr {lr}"
            if step == 0:
                first = float(loss.detach())
            else:
                best = min(best, float(loss.detach()))
            if best <= FALLS_TO * first:
                return best / first, tried
            opt.zero_grad()
            loss.backward()
            opt.step()
        best_ratio = min(best_ratio, best / first)
        tried.append(f"lr {lr}: {first:.4f} -> best {best:.4f}")
    return best_ratio, tried


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("dataset", "model"), NEURAL)
def test_forward_shape_and_loss_falls(dataset, model, threads):
    """Float results depend on the CPU and the thread count: both counts are checked."""
    dm, spec = _prepared(dataset, model)
    hparams = registry.get_model_entry(model).smoke_hparams

    def net_for() -> nn.Module:
        L.seed_everything(0, verbose=False)
        return registry.create_model(model, spec, **hparams)

    inputs, target = next(iter(dm.train_dataloader()))
    if spec.task.value == "regression":
        mean, std = dm.target_stats()
        target = (target - mean) / std
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        net = net_for()
        assert isinstance(net, nn.Module)
        with torch.no_grad():
            out = shape_outputs(call_backbone(net.eval(), inputs), spec)
        assert out.shape[0] == len(target) and torch.isfinite(out).all()
        ratio, tried = _best_loss_ratio(net_for, inputs, target, spec)
    finally:
        torch.set_num_threads(before)
    assert ratio <= FALLS_TO, f"{model} on {dataset}: loss never fell to {FALLS_TO} of " \
        f"its first value ({'; '.join(tried)})"


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
