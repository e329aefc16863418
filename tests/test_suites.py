"""The built-in suites: each loads, and `default` reuses exactly the cells `tuned` searched."""

from __future__ import annotations

import dataclasses

import pytest

from benchmarks.run.suite import load_suite

BUILT_IN = ("smoke", "default", "tuned", "full")


@pytest.mark.parametrize("name", BUILT_IN)
def test_every_built_in_suite_loads(name):
    suite = load_suite(name)
    assert suite.datasets and suite.models


def test_default_runs_the_datasets_models_and_budget_that_tuned_searched():
    default, tuned = load_suite("default"), load_suite("tuned")
    assert default.tuned_from == "tuned" and tuned.tuning.get("trials", 0) >= 1
    strip = lambda d: dataclasses.replace(d, seeds=None)  # noqa: E731  (seeds may differ)
    assert [strip(d) for d in default.datasets] == [strip(d) for d in tuned.datasets]
    assert default.models == tuned.models  # parameter budgets included (model@10k, ...)
    assert default.budget == tuned.budget
    assert default.data_seeds == tuned.data_seeds == "follow"
    assert tuned.seeds[0] == default.seeds[0]  # the search's seed is one the default runs


def test_every_published_contrast_names_models_of_its_suite():
    for name in BUILT_IN:
        suite = load_suite(name)
        ids = {m.id for m in suite.models} | {"constant"}
        for c in suite.contrasts:
            assert c["dataset"] in {d.id for d in suite.datasets}, (name, c["name"])
            for model in c["models"]:
                assert model in ids, (name, c["name"], model)
