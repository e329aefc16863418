"""Generic checks over every compatible (dataset, model) pair of the registries, the same
contract checks `mlwm check` runs on a user's plugin (benchmarks.checks): output shape, no
NaN, overfitting one batch lowers the loss (at 1 and 2 threads), the invariances a view
promises; fitted models fit and predict in the network layout; parameter budgets land
within 10%."""

from __future__ import annotations

import pytest
from conftest import compatible_pairs, smoke_datamodule

from benchmarks import checks, registry

PAIRS = compatible_pairs()
NEURAL = [(d, m) for d, m in PAIRS if registry.get_model_entry(m).kind == "neural"
          and registry.get_model_entry(m).unavailable_reason() is None]
FITTED = [(d, m) for d, m in PAIRS if registry.get_model_entry(m).kind == "fitted"
          and registry.get_model_entry(m).unavailable_reason() is None]
WIDTHED = [(d, m) for d, m in NEURAL if registry.get_model_entry(m).width]


@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize(("dataset", "model"), NEURAL)
def test_forward_shape_and_loss_falls(dataset, model, threads):
    """The contract checks of `mlwm check` (benchmarks.checks): finite outputs of the right
    shape, and overfitting one batch lowers the loss clearly. Float results depend on the
    CPU and the thread count: both counts are checked."""
    dm = smoke_datamodule(dataset)
    checks.forward_is_finite(dm, model)
    checks.loss_falls(dm, model, threads)


@pytest.mark.parametrize(("dataset", "model"), NEURAL)
def test_view_invariances(dataset, model):
    """Set models ignore element order and padding, sequence models trailing padding,
    graph models node numbering."""
    checks.view_invariances(smoke_datamodule(dataset), model)


@pytest.mark.parametrize(("dataset", "model"), FITTED)
def test_fitted_models_predict_in_the_network_layout(dataset, model):
    checks.fitted_predicts(smoke_datamodule(dataset), model)


@pytest.mark.parametrize("budget", [10_000, 100_000])
@pytest.mark.parametrize(("dataset", "model"), WIDTHED)
def test_parameter_budget_within_ten_percent(dataset, model, budget):
    checks.budget_is_met(smoke_datamodule(dataset), model, budget)
