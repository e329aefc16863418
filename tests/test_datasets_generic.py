"""Generic checks over every registered dataset (at its smoke size): determinism, content
hash, disjoint splits, views matching the spec, targets in the task's layout; and the
label oracles of parity and descents."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
from conftest import DATASETS, smoke_datamodule

from benchmarks import registry
from benchmarks.contract import Modality, TaskType
from benchmarks.data import num_rows


@pytest.mark.parametrize("name", DATASETS)
def test_spec_and_views(name):
    dm = smoke_datamodule(name)
    spec = dm.spec
    assert spec.name == name and spec.version == dm.version
    assert {"train", "val", "test"} <= set(dm.splits)
    assert ("ood_test" in dm.splits) == spec.has_ood
    for split in dm.splits:
        n = dm.split_size(split)
        assert n > 0
        for view in spec.views:
            x = dm.inputs(split, view.modality)
            assert num_rows(x) == n
            if view.modality is Modality.SET:
                assert x["x"].shape[1:] == view.shape and x["mask"].dtype == torch.bool
            elif view.modality is Modality.SEQUENCE:
                assert x.dtype == torch.long and x.shape[1:] == view.shape
                assert int(x.min()) >= 0 and int(x.max()) < view.vocab_size
            elif view.modality is not Modality.GRAPH:
                assert x.dtype == torch.float32 and tuple(x.shape[1:]) == view.shape
                assert torch.isfinite(x).all()
        y = dm.target(split)
        if spec.task is TaskType.MULTICLASS:
            assert y.dtype == torch.long and y.ndim == 1
            assert 0 <= int(y.min()) and int(y.max()) < spec.num_outputs
        elif spec.task is TaskType.MULTILABEL:
            assert y.shape == (n, spec.num_outputs) and set(y.unique().tolist()) <= {0.0, 1.0}
        elif spec.task is TaskType.BINARY:
            assert y.shape == (n,) and set(y.unique().tolist()) <= {0.0, 1.0}
        else:
            assert y.dtype == torch.float32 and torch.isfinite(y).all()


@pytest.mark.parametrize("name", DATASETS)
def test_generation_is_deterministic_and_cached(name, tmp_path, monkeypatch):
    entry = registry.get_dataset_entry(name)
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "a"))
    a = registry.create_dataset(name, **entry.cls.smoke_params)
    a.setup()
    assert a.cache_path.is_file(), "generated data is cached on disk"
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "b"))
    b = registry.create_dataset(name, **entry.cls.smoke_params)
    b.setup()
    assert a.content_hash == b.content_hash and len(a.content_hash) == 64
    for split in a.splits:
        assert torch.equal(a.target(split), b.target(split))
    monkeypatch.setenv("MLWM_CACHE", str(tmp_path / "a"))
    c = registry.create_dataset(name, **entry.cls.smoke_params)
    c.setup()  # loaded from the cache file, same hash
    assert c.content_hash == a.content_hash


@pytest.mark.parametrize("name", DATASETS)
def test_splits_are_disjoint(name):
    dm = smoke_datamodule(name)
    if not dm.unique_inputs:
        pytest.skip(f"{name} declares that inputs may repeat across splits")
    vec = next(v.modality for v in dm.spec.views if v.modality in (Modality.VECTOR, Modality.TABULAR))
    rows = {s: {tuple(r) for r in dm.inputs(s, vec).reshape(dm.split_size(s), -1).tolist()}
            for s in dm.splits}
    for a, b in itertools.combinations(rows, 2):
        assert not rows[a] & rows[b], f"{name}: splits {a} and {b} share inputs"


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
