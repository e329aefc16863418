"""Label oracles and parameter checks of the sequence, vector and set datasets: sparse parity
and parity's OOD split, mobius, dyck, partitions and deepsets_sum. Every vectorised label
is compared with an independent slow oracle (brute force, sympy)."""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np
import pytest
import sympy
import torch

from benchmarks import registry
from benchmarks.errors import UserError
from datamodules.dyck import random_dyck_words, unbalancing_swap
from datamodules.mobius import mobius_sieve
from datamodules.partitions import partition_count, partitions_of

SEQ_DATASETS = ["parity", "sparse_parity", "mobius", "dyck", "partitions", "deepsets_sum"]
VERSIONS = {"deepsets_sum": "2"}  # v2: no set repeated across splits; the others are at "1"


def generated(name, **params):
    dm = registry.create_dataset(name, **params)
    dm.setup()
    return dm


def one_line_error(name, param, **params):
    with pytest.raises(UserError) as err:
        registry.create_dataset(name, **params)
    msg = str(err.value)
    assert "\n" not in msg and param in msg, msg
    return msg


# -- parity --------------------------------------------------------------------------------
def test_sparse_parity_labels_are_the_xor_of_the_hidden_subset():
    dm = generated("sparse_parity", n=12, k=4, n_train=300, n_val=50, n_test=50)
    subset = dm.hidden_subset().tolist()
    assert len(set(subset)) == 4 and all(0 <= i < 12 for i in subset)
    for split in dm.splits:
        for row, y in zip(dm.inputs(split, "vector").int().tolist(), dm.target(split).tolist(),
                          strict=True):
            acc = 0
            for i in subset:
                acc ^= row[i]
            assert acc == y


def test_sparse_parity_subset_is_fixed_by_the_data_seed():
    subsets = {seed: tuple(registry.create_dataset("sparse_parity", n=30, data_seed=seed)
                           .hidden_subset()) for seed in range(4)}
    assert subsets[0] == tuple(registry.create_dataset("sparse_parity", n=30).hidden_subset())
    assert len(set(subsets.values())) > 1


def test_parity_ood_split_holds_longer_strings():
    dm = generated("parity", n=8, ood_n=12, n_train=100, n_val=20, n_test=40)
    assert dm.spec.has_ood and dm.spec.input_shape == (12,)
    seq = dm.inputs("ood_test", "sequence")
    assert (seq > 0).all(), "OOD strings fill the whole width"
    assert (dm.inputs("ood_test", "vector")[:, 8:] > 0).any(dim=1).all()
    for split in ("train", "val", "test"):
        assert (dm.inputs(split, "sequence")[:, 8:] == 0).all()  # padding past n
    for split in dm.splits:
        tokens = dm.inputs(split, "sequence").tolist()
        xor = [sum(t == 2 for t in row) % 2 for row in tokens]
        assert dm.target(split).int().tolist() == xor
    assert not generated("parity", n=8, n_train=100, n_val=20, n_test=40).spec.has_ood


def test_parity_parameter_errors():
    one_line_error("sparse_parity", "k", n=5, k=6)
    one_line_error("parity", "ood_n", n=16, ood_n=12)
    one_line_error("parity", "n", n=4, n_train=10, n_val=5, n_test=5)


# -- mobius --------------------------------------------------------------------------------
def test_mobius_sieve_matches_sympy():
    mu = mobius_sieve(3000)
    assert mu[0] == 0 and [int(sympy.mobius(m)) for m in range(1, 3001)] == mu[1:].tolist()
    big = mobius_sieve(10**6)  # exercises the prime factor > sqrt(N) correction
    for m in np.random.default_rng(0).integers(2, 10**6, size=300).tolist():
        f = sympy.factorint(m)
        expected = 0 if max(f.values()) > 1 else (-1) ** len(f)
        assert big[m] == expected, m


@pytest.mark.parametrize("target", ["mu", "squarefree"])
@pytest.mark.parametrize("encoding", ["binary", "residues"])
def test_mobius_labels_and_encodings(target, encoding):
    dm = generated("mobius", N=5000, target=target, encoding=encoding, num_primes=6,
                   n_train=400, n_val=100, n_test=100)
    seen = set()
    for split in dm.splits:
        m = dm._raw_split(split)["m"].tolist()
        assert all(2 <= v <= 5000 for v in m) and not seen & set(m)
        seen |= set(m)
        mu = [int(sympy.mobius(v)) for v in m]
        expected = [v + 1 for v in mu] if target == "mu" else [v * v for v in mu]
        assert dm.target(split).long().tolist() == expected
        seq = dm.inputs(split, "sequence") - 1
        if encoding == "binary":  # most significant digit first
            assert [int("".join(map(str, row)), 2) for row in seq.tolist()] == m
        else:
            primes = list(sympy.primerange(2, 14))
            assert seq.tolist() == [[v % p for p in primes] for v in m]


def test_mobius_parameter_errors():
    one_line_error("mobius", "encoding", encoding="decimal")
    with pytest.raises(UserError, match="encoding"):  # direct construction checks it too
        registry.get_dataset_entry("mobius").cls(encoding="decimal")
    one_line_error("mobius", "N", N=100, n_train=80, n_val=10, n_test=10)
    one_line_error("mobius", "num_primes", encoding="residues", num_primes=3)


# -- dyck ----------------------------------------------------------------------------------
def balanced(tokens):
    depth = 0
    for t in tokens:
        depth += 1 if t == 1 else -1
        if depth < 0:
            return False
    return depth == 0


def test_dyck_labels_lengths_and_hard_negatives():
    dm = generated("dyck", max_len=16, ood_max_len=24, n_train=400, n_val=100, n_test=100)
    positives, negatives = Counter(), Counter()
    for split in dm.splits:
        rows = [[t for t in row if t] for row in dm.inputs(split, "sequence").tolist()]
        labels = dm.target(split).int().tolist()
        assert labels == [int(balanced(r)) for r in rows]
        assert sum(labels) == len(labels) // 2  # exactly balanced classes
        lo, hi = (18, 24) if split == "ood_test" else (2, 16)
        for r, y in zip(rows, labels, strict=True):
            assert lo <= len(r) <= hi and len(r) % 2 == 0
            assert r.count(1) == r.count(2), "negatives keep the bracket counts"
            (positives if y else negatives)[len(r)] += 1
    assert positives == negatives, "both classes have the same length distribution"


def test_dyck_sampler_is_uniform():
    words = random_dyck_words(np.random.default_rng(0), 4, 14_000)  # C_4 = 14 words
    counts = Counter(map(tuple, words.tolist()))
    assert len(counts) == 14 and all(balanced([1 if s > 0 else 2 for s in w]) for w in counts)
    assert all(abs(c - 1000) < 150 for c in counts.values()), counts  # ~5 sigma


def test_dyck_perturbation_is_one_unbalancing_swap():
    words = random_dyck_words(np.random.default_rng(1), 7, 500)
    negs = unbalancing_swap(np.random.default_rng(2), words)
    for w, v in zip(words.tolist(), negs.tolist(), strict=True):
        diff = [i for i in range(len(w)) if w[i] != v[i]]
        assert len(diff) == 2 and w[diff[0]] == 1 and w[diff[1]] == -1
        assert not balanced([1 if s > 0 else 2 for s in v])


def test_dyck_odd_split_sizes_and_no_ood():
    dm = generated("dyck", max_len=16, ood_max_len=0, n_train=101, n_val=31, n_test=33)
    assert dm.splits == ("train", "val", "test") and not dm.spec.has_ood
    assert [dm.split_size(s) for s in dm.splits] == [101, 31, 33]
    assert dm.spec.input_shape == (16,)


def test_dyck_parameter_errors():
    one_line_error("dyck", "max_len", max_len=8)  # 23 Dyck words, thousands requested
    one_line_error("dyck", "ood_max_len", max_len=24, ood_max_len=20)


# -- partitions ----------------------------------------------------------------------------
@cache
def standard_tableaux(shape: tuple[int, ...]) -> int:
    """Count SYT: the largest entry sits in a removable corner; remove it and recurse."""
    if sum(shape) <= 1:
        return 1
    total = 0
    for i, part in enumerate(shape):
        if i + 1 == len(shape) or shape[i + 1] < part:
            smaller = shape[:i] + (part - 1,) + shape[i + 1:]
            total += standard_tableaux(tuple(p for p in smaller if p))
    return total


def test_partitions_enumeration():
    for n in range(1, 16):
        parts = [tuple(p) for p in partitions_of(n)]
        assert len(parts) == len(set(parts)) == partition_count(n)
        assert all(sum(p) == n and list(p) == sorted(p, reverse=True) for p in parts)
    assert partition_count(40) == 37338


@pytest.mark.parametrize("target", ["log_dim", "dim_parity"])
def test_partitions_labels_against_tableaux(target):
    dm = generated("partitions", n_min=1, n_max=14, target=target)
    seen = []
    for split in dm.splits:
        parts = [tuple(p for p in row if p) for row in dm.inputs(split, "sequence").tolist()]
        seen += parts
        f = [standard_tableaux(p) for p in parts]
        y = dm.target(split).double().numpy()
        if target == "log_dim":
            assert np.allclose(y, np.log10(f), atol=1e-5)
        else:
            assert y.astype(int).tolist() == [v % 2 for v in f]
        s = dm.inputs(split, "set")
        assert torch.equal(s["mask"], dm.inputs(split, "sequence") > 0)
    assert len(seen) == len(set(seen)) == sum(partition_count(n) for n in range(1, 15))


def test_partitions_parameter_errors():
    one_line_error("partitions", "n_max", n_min=1, n_max=4)  # 12 partitions
    one_line_error("partitions", "target", target="dim")
    one_line_error("partitions", "n_min", n_min=9, n_max=8)


# -- deepsets_sum ----------------------------------------------------------------------------
def test_deepsets_sum_labels_and_ood_sizes():
    dm = generated("deepsets_sum", max_value=7, max_size=6, ood_max_size=30,
                   n_train=200, n_val=50, n_test=50)
    assert dm.spec.has_ood and dm.spec.input_shape == (30, 1)  # native set view, OOD width
    for split in dm.splits:
        tokens = dm.inputs(split, "sequence").tolist()
        sets = [[t - 1 for t in row if t] for row in tokens]
        assert dm.target(split).int().tolist() == [sum(s) for s in sets]
        sizes = [len(s) for s in sets]
        if split == "ood_test":
            assert min(sizes) > 6 and max(sizes) <= 30
        else:
            assert 1 <= min(sizes) and max(sizes) <= 6
        s = dm.inputs(split, "set")
        assert s["mask"].sum(1).tolist() == sizes
        assert torch.allclose(s["x"].squeeze(-1) * 7, dm.inputs(split, "vector") * 7)
        assert torch.allclose((dm.inputs(split, "vector") * 7).sum(1), dm.target(split))


def test_deepsets_sum_parameter_errors():
    one_line_error("deepsets_sum", "ood_max_size", max_size=9, ood_max_size=5)
    one_line_error("deepsets_sum", "max_value", max_value=0)


# -- shared properties -----------------------------------------------------------------------
@pytest.mark.parametrize("name", SEQ_DATASETS)
def test_spec_needs_no_generation_and_views_cover_every_split(name):
    cls = registry.get_dataset_entry(name).cls
    dm = cls(**cls.smoke_params)
    spec = dm.spec
    assert dm._raw is None, "build_spec must not generate"
    assert spec.version == VERSIONS.get(name, "1") and spec.views[-1].modality.value == "vector"
    dm.setup()
    for split in dm.splits:
        for view in spec.views:
            x = dm.inputs(split, view.key)
            x = x["x"] if isinstance(x, dict) else x
            assert tuple(x.shape[1:]) == view.shape, (split, view.key)


@pytest.mark.parametrize("name", SEQ_DATASETS)
def test_data_seed_changes_the_data(name):
    cls = registry.get_dataset_entry(name).cls
    a, b = cls(**cls.smoke_params), cls(**cls.smoke_params, data_seed=1)
    ra, rb = a.generate(), b.generate()
    assert any(not torch.equal(ra["train"][k], rb["train"][k]) for k in ra["train"])
