"""Out-of-distribution splits and split hygiene of deepsets_sum, partitions and mobius.

deepsets_sum: no multiset (nor vector row) in two places, exact integer sums, OOD sizes.
partitions and mobius: the OOD split's range, padding and labels against independent
oracles (sympy's partitions, mobius and factorint; standard Young tableaux counted by
brute force), determinism, and a data_seed that redraws the split.
"""

from __future__ import annotations

from collections import Counter
from functools import cache

import numpy as np
import pytest
import sympy
import torch
from sympy.utilities.iterables import partitions as sympy_partitions

from benchmarks import registry
from benchmarks.errors import UserError


def generated(name, **params):
    dm = registry.create_dataset(name, **params)
    dm.setup()
    return dm


def one_line_error(name, param, **params):
    with pytest.raises(UserError) as err:
        registry.create_dataset(name, **params)
    msg = str(err.value)
    assert "\n" not in msg and param in msg, msg


# -- deepsets_sum ----------------------------------------------------------------------------
SUITE_SETS = {"max_value": 9, "max_size": 9, "ood_max_size": 100, "n_train": 4000,
              "n_val": 1000, "n_test": 2000}  # the default suite's deepsets-sum-ood100


def multisets(dm, split):
    """The sets of a split as sorted tuples, read back from the sequence view (value + 1)."""
    return [tuple(sorted(t - 1 for t in row if t)) for row in dm.inputs(split, "sequence").tolist()]


def test_deepsets_no_multiset_or_vector_row_occurs_twice():
    dm = generated("deepsets_sum", **SUITE_SETS)
    sets = Counter(s for split in dm.splits for s in multisets(dm, split))
    assert sum(sets.values()) == 9000 and max(sets.values()) == 1  # within and across splits
    # the vector view cannot tell a trailing real 0 from padding, so its rows are checked too
    rows = Counter(tuple(r) for split in dm.splits for r in dm.inputs(split, "vector").tolist())
    assert max(rows.values()) == 1 and dm.unique_inputs


def test_deepsets_exact_sums_sizes_and_spec():
    dm = generated("deepsets_sum", **SUITE_SETS)
    spec = dm.spec
    assert spec.integer_valued and spec.version == "2" and spec.has_ood
    mean_size = {}
    for split in dm.splits:
        sets = multisets(dm, split)
        y = dm.target(split)
        assert torch.equal(y, y.round()) and y.long().tolist() == [sum(s) for s in sets]
        sizes = Counter(len(s) for s in sets)
        if split == "ood_test":  # every size 10..100, evenly (21 or 22 sets each)
            assert set(sizes) == set(range(10, 101))
            assert max(sizes.values()) - min(sizes.values()) <= 1
        else:
            assert set(sizes) <= set(range(1, 10))
            mean_size[split] = np.mean([len(s) for s in sets])
    # one pool permuted into splits: small sets (drawn first) are not all in train
    assert abs(mean_size["train"] - mean_size["test"]) < 0.15
    assert abs(mean_size["train"] - mean_size["val"]) < 0.15


def test_deepsets_fills_each_size_to_its_cap_without_repeats():
    # values in {0, 1}: a size s has s + 1 multisets, at most (s + 1) // 2 of them are used;
    # 25 sets in all is every one of those, and the OOD sizes 10, 11 give 5 + 6 >= 5
    dm = generated("deepsets_sum", max_value=1, max_size=9, ood_max_size=11, n_train=15,
                   n_val=5, n_test=5)
    in_dist = [s for split in ("train", "val", "test") for s in multisets(dm, split)]
    assert Counter(len(s) for s in in_dist) == {s: (s + 1) // 2 for s in range(1, 10)}
    ood = multisets(dm, "ood_test")
    assert len(set(in_dist + ood)) == 30 and all(10 <= len(s) <= 11 for s in ood)


def test_deepsets_parameter_errors():
    one_line_error("deepsets_sum", "max_size", max_value=3, max_size=3, ood_max_size=0,
                   n_train=100, n_val=10, n_test=10)  # halves of 4, 10, 20 multisets: 17
    one_line_error("deepsets_sum", "ood_max_size", max_value=1, max_size=9, ood_max_size=10,
                   n_train=10, n_val=2, n_test=6)  # size 10 offers 5
    one_line_error("deepsets_sum", "max_value", max_value=10_000, max_size=9, ood_max_size=5000)


# -- partitions ------------------------------------------------------------------------------
def all_partitions(lo, hi):
    """sympy's partitions of each n in [lo, hi], as descending tuples."""
    out = []
    for n in range(lo, hi + 1):
        for p in sympy_partitions(n):  # {part: multiplicity}, one dict reused by sympy
            out.append(tuple(sorted((k for k, m in p.items() for _ in range(m)), reverse=True)))
    return out


def enumerate_tableaux(shape):
    """The number of standard Young tableaux of `shape`, by building every one of them:
    1..n placed in turn, each in a cell whose upper neighbour is already filled."""
    n, rows = sum(shape), [0] * len(shape)

    def fill(placed):
        if placed == n:
            return 1
        total = 0
        for i, part in enumerate(shape):
            if rows[i] < part and (i == 0 or rows[i - 1] > rows[i]):
                rows[i] += 1
                total += fill(placed + 1)
                rows[i] -= 1
        return total

    return fill(0)


@cache
def count_tableaux(shape):
    """The same count by the branching rule (n sits in a removable corner), memoised for n <= 30."""
    if sum(shape) <= 1:
        return 1
    total = 0
    for i, part in enumerate(shape):
        if i + 1 == len(shape) or shape[i + 1] < part:
            smaller = shape[:i] + (part - 1,) + shape[i + 1:]
            total += count_tableaux(tuple(p for p in smaller if p))
    return total


def rows_of(dm, split):
    return [tuple(p for p in row if p) for row in dm.inputs(split, "sequence").tolist()]


def check_labels(dm, split, target, oracle):
    f = [oracle(p) for p in rows_of(dm, split)]
    y = dm.target(split).double().numpy()
    if target == "log_dim":
        assert np.allclose(y, np.log10(np.array(f, dtype=np.float64)), atol=1e-5)
    else:
        assert y.astype(int).tolist() == [v % 2 for v in f]


@pytest.mark.parametrize("target", ["log_dim", "dim_parity"])
def test_partitions_ood_split_holds_every_larger_partition_padded(target):
    dm = generated("partitions", n_min=1, n_max=9, target=target, ood_n_max=11)
    assert dm.spec.has_ood and dm.spec.input_shape == (11, 1)
    assert dm.spec.view_spec("sequence").vocab_size == 12
    ood = rows_of(dm, "ood_test")
    assert len(ood) == len(set(ood)) and set(ood) == set(all_partitions(10, 11))
    check_labels(dm, "ood_test", target, enumerate_tableaux)
    for split in dm.splits:
        seq = dm.inputs(split, "sequence")
        assert seq.shape[1] == 11 and torch.equal(dm.inputs(split, "set")["mask"], seq > 0)
        assert torch.allclose(dm.inputs(split, "vector") * 9, seq.float())  # scaled by n_max
        if split != "ood_test":
            assert not seq[:, 9:].any()  # in-distribution rows end in padding
            assert max(sum(p) for p in rows_of(dm, split)) <= 9


@pytest.mark.parametrize("target", ["log_dim", "dim_parity"])
def test_partitions_ood_labels_at_the_suite_size(target):
    dm = generated("partitions", n_min=1, n_max=24, target=target, ood_n_max=30)
    assert dm.split_size("ood_test") == sum(int(sympy.npartitions(n)) for n in range(25, 31))
    check_labels(dm, "ood_test", target, count_tableaux)


def test_partitions_ood_leaves_the_in_distribution_splits_unchanged():
    a = registry.create_dataset("partitions", n_max=14).generate()
    b = registry.create_dataset("partitions", n_max=14, ood_n_max=18).generate()
    assert "ood_test" not in a and set(b) == {"train", "val", "test", "ood_test"}
    for split in a:
        assert all(torch.equal(a[split][k], b[split][k]) for k in a[split])


def test_partitions_n_ood_is_a_data_seed_sample():
    kw = {"n_max": 12, "ood_n_max": 16, "n_ood": 50}
    a, b = generated("partitions", **kw), generated("partitions", **kw, data_seed=1)
    every = set(all_partitions(13, 16))
    for dm in (a, b):
        rows = rows_of(dm, "ood_test")
        assert len(rows) == len(set(rows)) == 50 and set(rows) <= every
    assert set(rows_of(a, "ood_test")) != set(rows_of(b, "ood_test"))


def test_partitions_data_seed_permutes_the_split_of_a_fixed_set():
    a, b = generated("partitions", n_max=14), generated("partitions", n_max=14, data_seed=1)
    union = [set(sum((rows_of(dm, s) for s in ("train", "val", "test")), [])) for dm in (a, b)]
    assert union[0] == union[1] == set(all_partitions(1, 14))
    for split in ("train", "val", "test"):
        assert a.split_size(split) == b.split_size(split)
        assert set(rows_of(a, split)) != set(rows_of(b, split))


def test_partitions_parameter_errors():
    one_line_error("partitions", "ood_n_max", n_max=20, ood_n_max=20)
    one_line_error("partitions", "ood_n_max", n_max=20, ood_n_max=41)
    one_line_error("partitions", "n_ood", n_max=20, n_ood=100)  # no OOD split to sample
    one_line_error("partitions", "n_ood", n_max=12, ood_n_max=13, n_ood=200)  # p(13) = 101


# -- mobius ----------------------------------------------------------------------------------
def mu_by_factoring(m):
    exponents = sympy.factorint(m).values()
    return 0 if any(e > 1 for e in exponents) else (-1) ** len(exponents)


@pytest.mark.parametrize("target", ["mu", "squarefree"])
@pytest.mark.parametrize("encoding", ["binary", "residues"])
def test_mobius_ood_split_range_padding_and_labels(target, encoding):
    dm = generated("mobius", N=5000, ood_N=9000, target=target, encoding=encoding,
                   num_primes=6, n_train=400, n_val=100, n_test=100)
    assert dm.spec.has_ood
    ood = dm._raw_split("ood_test")["m"].tolist()
    in_dist = sum((dm._raw_split(s)["m"].tolist() for s in ("train", "val", "test")), [])
    assert len(ood) == len(set(ood)) == 100 and all(5000 < m <= 9000 for m in ood)
    assert not set(ood) & set(in_dist)
    mu = [int(sympy.mobius(m)) for m in ood]
    assert mu == [mu_by_factoring(m) for m in ood]  # two oracles, one answer
    expected = [v + 1 for v in mu] if target == "mu" else [v * v for v in mu]
    assert dm.target("ood_test").long().tolist() == expected
    for split in dm.splits:
        m = dm._raw_split(split)["m"].tolist()
        seq = dm.inputs(split, "sequence") - 1
        if encoding == "binary":  # padded to 9000's 14 bits, most significant first
            assert seq.shape[1] == 14 == dm.spec.input_shape[0]
            assert [int("".join(map(str, row)), 2) for row in seq.tolist()] == m
            if split != "ood_test":
                assert not seq[:, 0].any()  # 5000 < 2^13: the top bit is only ever OOD
        else:  # residues keep their width whatever ood_N is
            primes = list(sympy.primerange(2, 14))
            assert seq.tolist() == [[v % p for p in primes] for v in m]


def test_mobius_ood_width_from_the_spec_alone():
    binary = registry.create_dataset("mobius", N=65535, ood_N=131071)
    residues = registry.create_dataset("mobius", N=65535, ood_N=131071, encoding="residues")
    assert binary.spec.input_shape == (17,) and residues.spec.input_shape == (8,)
    assert binary._raw is None and residues._raw is None


def test_mobius_ood_leaves_the_in_distribution_splits_unchanged():
    kw = {"N": 5000, "n_train": 400, "n_val": 100, "n_test": 100}
    a = registry.create_dataset("mobius", **kw).generate()
    b = registry.create_dataset("mobius", **kw, ood_N=9000).generate()
    for split in a:
        assert all(torch.equal(a[split][k], b[split][k]) for k in a[split])


def test_mobius_parameter_errors():
    one_line_error("mobius", "ood_N", N=5000, ood_N=5000, n_train=400, n_val=100, n_test=100)
    one_line_error("mobius", "ood_N", N=5000, ood_N=5050, n_train=400, n_val=100, n_test=100)
    # 6 primes separate m below 30,030 only
    one_line_error("mobius", "num_primes", N=5000, ood_N=40000, encoding="residues",
                   num_primes=6, n_train=400, n_val=100, n_test=100)


# -- shared: determinism and a data_seed that redraws the split ---------------------------
WITH_OOD = {
    "deepsets_sum": {"max_size": 6, "ood_max_size": 20, "n_train": 300, "n_val": 50,
                     "n_test": 100},
    "partitions": {"n_max": 14, "ood_n_max": 17},
    "mobius": {"N": 5000, "ood_N": 9000, "n_train": 400, "n_val": 100, "n_test": 100},
}


def in_dist_keys(raw, split):
    """Each input row of a split as a hashable key (the raw arrays, row by row)."""
    keys = [k for k in raw[split] if k != "y"]
    return {tuple(tuple(np.atleast_1d(raw[split][k][i].numpy()).tolist()) for k in keys)
            for i in range(len(raw[split]["y"]))}


@pytest.mark.parametrize("name", sorted(WITH_OOD))
def test_generation_with_ood_is_deterministic(name):
    a = registry.create_dataset(name, **WITH_OOD[name]).generate()
    b = registry.create_dataset(name, **WITH_OOD[name]).generate()
    assert set(a) == set(b) and "ood_test" in a
    for split in a:
        assert all(torch.equal(a[split][k], b[split][k]) for k in a[split])


@pytest.mark.parametrize("name", sorted(WITH_OOD))
def test_data_seed_redraws_the_split(name):
    a = registry.create_dataset(name, **WITH_OOD[name]).generate()
    b = registry.create_dataset(name, **WITH_OOD[name], data_seed=1).generate()
    for split in ("train", "val", "test"):
        assert len(a[split]["y"]) == len(b[split]["y"])
        assert in_dist_keys(a, split) != in_dist_keys(b, split)
