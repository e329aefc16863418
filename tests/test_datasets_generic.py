"""Generic checks over every registered dataset (at its smoke size): determinism, content
hash, disjoint splits, views matching the spec, targets in the task's layout; and the
label oracles of parity and descents."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from conftest import DATASETS, smoke_datamodule

from benchmarks import checks, registry


@pytest.mark.parametrize("name", DATASETS)
def test_spec_and_views(name):
    """Views and targets as the spec says (benchmarks.checks, as `mlwm check` runs them)."""
    dm = smoke_datamodule(name)
    assert dm.spec.name == name and dm.spec.version == dm.version
    checks.views_match_spec(dm)


@pytest.mark.parametrize("name", DATASETS)
def test_generation_is_deterministic_and_cached(name, tmp_path, monkeypatch):
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path))
    checks.generation_is_deterministic(name)
    entry = registry.get_dataset_entry(name)
    dm = registry.create_dataset(name, **entry.cls.smoke_params)
    dm.setup()
    assert dm.cache_path.is_file(), "generated data is cached on disk"


@pytest.mark.parametrize("name", DATASETS)
def test_splits_are_disjoint(name):
    dm = smoke_datamodule(name)
    if not dm.unique_inputs:
        pytest.skip(f"{name} declares that inputs may repeat across splits")
    checks.splits_are_disjoint(dm)


# -- oracles -----------------------------------------------------------------------------
def test_parity_labels_against_brute_force():
    dm = registry.create_dataset("parity", n=10, n_train=300, n_val=50, n_test=50)
    dm.setup()
    for split in dm.splits:
        bits = dm.inputs(split, "vector").int().tolist()
        expected = []
        for row in bits:
            acc = 0
            for b in row:
                acc ^= b
            expected.append(acc)
        assert dm.target(split).int().tolist() == expected


def _right_descents(s):
    return [1 if s[i] > s[i + 1] else 0 for i in range(len(s) - 1)]


def _left_descents(s):
    pos = {v: i for i, v in enumerate(s)}
    return [1 if pos[i + 1] < pos[i] else 0 for i in range(1, len(s))]


@pytest.mark.parametrize("side", ["right", "left"])
@pytest.mark.parametrize("encoding", ["oneline", "matrix"])
def test_descents_labels_against_brute_force(side, encoding):
    dm = registry.create_dataset("descents", n=6, side=side, encoding=encoding,
                                 n_train=200, n_val=40, n_test=40)
    dm.setup()
    oracle = _right_descents if side == "right" else _left_descents
    for split in dm.splits:
        x = dm.inputs(split, "vector")
        if encoding == "oneline":
            perms = (x * 6).round().int().tolist()
        else:  # recover s from the permutation matrix: row i has its 1 in column s(i)-1
            perms = (x.reshape(-1, 6, 6).argmax(-1) + 1).tolist()
        assert sorted(perms[0]) == list(range(1, 7))
        assert dm.target(split).int().tolist() == [oracle(p) for p in perms]


def test_descents_matrix_and_oneline_describe_the_same_permutations():
    a = registry.create_dataset("descents", n=7, encoding="oneline", n_train=100, n_val=20, n_test=20)
    b = registry.create_dataset("descents", n=7, encoding="matrix", n_train=100, n_val=20, n_test=20)
    a.setup(), b.setup()
    perm_a = a.inputs("test", "sequence")
    perm_b = b.inputs("test", "image").squeeze(1).argmax(-1) + 1
    assert torch.equal(perm_a, perm_b)
    assert np.array_equal(a.target("test").numpy(), b.target("test").numpy())


def test_all_permutations_of_s_n_against_itertools():
    from itertools import permutations

    from datamodules.descents import all_permutations, descent_set

    for n in (1, 2, 3, 5, 6):
        got = {tuple(int(v) for v in row) for row in all_permutations(n)}
        assert got == set(permutations(range(1, n + 1))) and len(all_permutations(n)) == len(got)
    perms = all_permutations(5).astype(np.int64)
    assert descent_set(perms, "left").tolist() == [_left_descents(list(p)) for p in perms.tolist()]
