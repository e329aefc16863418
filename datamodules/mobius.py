"""The Mobius function (workshop "The Mobius function").

m drawn from [2, N] without replacement; label mu(m) in {-1, 0, 1} (classes 0, 1, 2), or
with target=squarefree the binary mu(m)^2. mu(m) = (-1)^(number of prime factors) when m is
squarefree, else 0. Encodings: the binary digits of m, or m mod p for the first k primes.
ood_N > N adds an ood_test split of n_test integers from (N, ood_N].

Binary digits are padded to ood_N's bit length. When N = 2^k - 1 (the default) every OOD
integer sets bit k, which is 0 in every training input: an MLP's weight on it never gets a
gradient, so the binary OOD split tests how a model meets an unseen feature, not arithmetic.
Residues keep their width and ranges, so there the OOD split is a clean extrapolation test.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import (
    MathDataModule,
    check_choice,
    check_range,
    check_split_sizes,
    split_counts,
)
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset


def primes_up_to(n: int) -> np.ndarray:
    """All primes <= n (sieve of Eratosthenes)."""
    is_prime = np.ones(max(n + 1, 2), dtype=bool)
    is_prime[:2] = False
    for p in range(2, math.isqrt(n) + 1):
        if is_prime[p]:
            is_prime[p * p::p] = False
    return np.flatnonzero(is_prime)


def first_primes(k: int) -> np.ndarray:
    bound = 16
    while len(primes := primes_up_to(bound)) < k:
        bound *= 2
    return primes[:k]


def mobius_sieve(N: int) -> np.ndarray:
    """mu(m) for m = 0..N as int8 (mu(0) = 0), by one sieve over the primes <= sqrt(N).

    rad collects the product of the small primes dividing m; a squarefree m with rad < m
    has exactly one prime factor > sqrt(N) left (two would exceed N), which flips the sign.
    Looping over ~sqrt(N)/log primes only is what keeps N = 10^7 well under a second.
    """
    mu = np.ones(N + 1, dtype=np.int8)
    dtype = np.int32 if N < 2**31 else np.int64
    rad = np.ones(N + 1, dtype=dtype)
    for p in primes_up_to(math.isqrt(N)).tolist():
        np.negative(mu[p::p], out=mu[p::p])
        rad[p::p] *= p
        mu[p * p::p * p] = 0
    np.negative(mu, out=mu, where=rad != np.arange(N + 1, dtype=dtype))
    mu[0] = 0
    return mu


@register_dataset("mobius")
class Mobius(MathDataModule):
    """Mobius function mu(m) in {-1,0,1} (or squarefree) from the digits or residues of m."""

    version = "1"
    smoke_params = {"N": 2048, "n_train": 256, "n_val": 64, "n_test": 128}

    def __init__(self, N: int = 2**16 - 1, target: Literal["mu", "squarefree"] = "mu",
                 encoding: Literal["binary", "residues"] = "binary", num_primes: int = 8,
                 n_train: int = 3000, n_val: int = 1000, n_test: int = 2000,
                 ood_N: int = 0, data_seed: int = 0) -> None:
        super().__init__()
        check_range("N", N, 16, 10**8, dataset="mobius")  # the sieve holds 5 bytes per m
        check_choice("target", target, ("mu", "squarefree"), dataset="mobius")
        check_choice("encoding", encoding, ("binary", "residues"), dataset="mobius")
        check_range("num_primes", num_primes, 1, 64, dataset="mobius")
        check_split_sizes("mobius", n_train, n_val, n_test)
        if n_train + n_val + n_test > N - 1:
            raise UserError(f"dataset 'mobius': [2, N={N}] has only {N - 1} integers, fewer "
                            f"than n_train+n_val+n_test={n_train + n_val + n_test}; raise N "
                            "or shrink the splits")
        check_range("ood_N", ood_N, N + 1, 10**8, dataset="mobius", zero_means="no OOD split")
        if ood_N and ood_N - N < n_test:
            raise UserError(f"dataset 'mobius': (N={N}, ood_N={ood_N}] has only {ood_N - N} "
                            f"integers, fewer than n_test={n_test}; raise ood_N")
        if encoding == "residues":
            # below the primorial the residues are unique (CRT); above it two inputs repeat
            primes, top = first_primes(64).tolist(), max(N, ood_N)
            need = next(i for i in range(1, 65) if math.prod(primes[:i]) >= top)
            if num_primes < need:
                raise UserError(f"dataset 'mobius': parameter num_primes={num_primes} leaves "
                                f"equal residues for different m <= {top}; accepted: "
                                f"{need} <= num_primes <= 64")
        self.save_hyperparameters()

    @property
    def bits(self) -> int:
        """Binary digits of the largest m of any split: every binary view is padded to it."""
        return max(self.params["N"], self.params["ood_N"]).bit_length()

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        N, ood_N = p["N"], p["ood_N"]
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        # a random subset in random order: data_seed decides both the sample and the split
        m = self.rng().choice(N - 1, size=sum(sizes.values()), replace=False) + 2
        parts = {s: m[sl] for s, sl in split_counts(sizes).items()}
        if ood_N:  # own stream, so the in-distribution splits do not change
            ood = self.rng(1).choice(ood_N - N, size=p["n_test"], replace=False)
            parts["ood_test"] = ood + N + 1
        mu_of = mobius_sieve(max(N, ood_N))  # mu(m) for m <= N does not depend on the bound
        out = {}
        for s, ms in parts.items():
            mu = torch.from_numpy(mu_of[ms].astype(np.int64))
            y = mu + 1 if p["target"] == "mu" else (mu != 0).float()
            out[s] = {"m": torch.from_numpy(ms.astype(np.int64)), "y": y}
        return out

    def _digits(self, m: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(digit values, digit bases) of each m: binary most significant first, or residues."""
        if self.params["encoding"] == "binary":
            bits = self.bits
            return (m[:, None] >> torch.arange(bits - 1, -1, -1)) & 1, torch.full((bits,), 2)
        primes = torch.from_numpy(first_primes(self.params["num_primes"]))
        return m[:, None] % primes, primes

    def build_spec(self) -> DatasetSpec:
        p = self.params
        if p["encoding"] == "binary":
            width, vocab, enc = self.bits, 3, "binary digits"
        else:
            width, vocab = p["num_primes"], int(first_primes(p["num_primes"])[-1]) + 1
            enc = f"residues mod the first {width} primes"
        binary = p["target"] == "squarefree"
        ood = f", OOD test on ({p['N']}, {p['ood_N']}]" if p["ood_N"] else ""
        return DatasetSpec(
            name=self.name, version=self.version,
            task=TaskType.BINARY if binary else TaskType.MULTICLASS,
            num_outputs=1 if binary else 3,
            views=(ViewSpec(Modality.SEQUENCE, (width,), vocab_size=vocab),
                   ViewSpec(Modality.VECTOR, (width,))),
            description=(f"{'squarefree' if binary else 'mobius mu'}(m) for m in "
                         f"[2, {p['N']}] from its {enc}{ood}"),
            params=self.params, has_ood=bool(p["ood_N"]))

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> torch.Tensor:
        digits, bases = self._digits(raw["m"])
        if modality is Modality.SEQUENCE:
            return digits + 1  # 0 stays the padding token
        return digits.float() / (bases - 1).float()  # each digit scaled to [0, 1]
