"""Mutation classes of quivers (ACD Repo `quiver_mutation_equivalence`, arXiv:2503.06366).

An exchange matrix B (n x n skew-symmetrizable: DB skew-symmetric for a positive diagonal D;
skew-symmetric for the simply-laced types) mutates at k by b'_ij = -b_ij if k in {i, j},
else b_ij + sign(b_ik) max(0, b_ik b_kj). Label: which of 7 mutation classes of rank n the
quiver (B up to simultaneous relabelling of rows and columns) lies in: A, BB, BD, BE, D, DE, E.

The classes, as Sage names them (the ACD generated them with Sage), grow from these valued
trees: A_n a path; D_n a path with a fork at one end; E_n the tree with arms 1, 2 and n-4;
BB = ['BB', n-1, 1] a path with a double (1, -2) edge at both ends; BD = ['BD', n-1, 1] a
fork at one end and a double edge at the other; BE = ['BE', n] the E end and a double edge;
DE = ['DE', n] an E end and a D end. BB, BD and BE are skew-symmetrizable, not skew-symmetric.
Distinct valued trees give distinct classes (acyclic seeds of one class share their tree).

Generation, as in the ACD (Sage `mutation_class(depth=d)`): breadth-first search of the
exchange graph from the seed, up to isomorphism. A and D (finite type) are enumerated whole;
each other class is the ball of the smallest radius holding >= min_ball quivers. With the
default min_ball = 28,000 at n = 11 this reproduces the ACD's class sizes (train + test)
exactly: A 14,924 and D 32,066 (all), E 36,247 (depth 9), BB 34,262 (10), BD 29,563 (9),
BE 28,268 (8), DE 29,409 (9). Unlike the ACD (whose classes hold 7% to 18% of the rows),
n_per_class quivers are drawn uniformly from each class, so that every split is balanced.
A ball rather than random mutation walks: walks pile up near the seed and revisit quivers,
the ball is the ACD's own sample, and each example still keeps its mutation path from the
seed (raw "path", with the relabelling "perm"), so that its label can be replayed.

Duplicates: each isomorphism class appears at most once in the whole dataset, so no split
holds a relabelling of a quiver in another split (equality of matrices alone would let
near-duplicates through: the same quiver with its vertices renamed). Isomorphism is decided
by a colour-refinement (Weisfeiler-Leman) hash over the valued edges: isomorphic quivers
always hash alike; a collision of non-isomorphic ones could only drop a quiver, never
duplicate one, and the exact class sizes above show that none occurs here. Each quiver is
shown with its vertices relabelled by a uniformly random permutation (from data_seed), so
that no model can read the class off the seed's vertex numbering.

Views: graph (see quiver_graphs), image B / 2 as 1 x n x n, the n^2 entries row by row as
tokens b_ij + 5 (sequence) or as B / 2 (vector). Metric: accuracy (the classes are balanced).

No OOD split: a rank-(n+1) class is a different mutation class (A_12 is not A_11), and a
padded zero vertex would turn a rank-n quiver into a disconnected one of another type.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_range, split_counts
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

TYPES = ("A", "BB", "BD", "BE", "D", "DE", "E")  # class index order: the ACD's table
WHOLE_CLASS = ("A", "D")  # finite type: the whole mutation class is enumerated
ENTRY_MAX = 4  # |b_ij| bound of the encodings; the ACD classes reach 2 (checked)
ISO_ROUNDS = 4  # colour-refinement rounds; 4 already give the exact ACD and Sage counts

_M1, _M2 = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB)
_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
# one fixed random odd weight per (b_ij, b_ji) pair of values; part of the hash, not of the
# data, so it never depends on data_seed
_PAIR_WEIGHT = np.random.default_rng(20250308).integers(
    0, 2**63, size=256, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


def a_class_size(n: int) -> int:
    """Quivers in the mutation class of A_n up to isomorphism (Torkildsen 2008)."""
    a = math.comb(2 * n + 2, n + 1) // (n + 2)
    if n % 2:
        a += math.comb(n + 1, (n + 1) // 2)
    if n % 3 == 0:
        a += 2 * math.comb(2 * n // 3, n // 3)
    return a // (n + 3)


# -- seeds and mutation ---------------------------------------------------------------------
def seed_tree(letter: str, n: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(simple edges, double edges as (inner, end)) of the seed tree of a type (Sage's
    numbering of the vertices)."""
    path = [(i, i + 1) for i in range(n - 1)]
    if letter == "A":
        return path, []
    if letter == "D":
        return path[:n - 2] + [(n - 3, n - 1)], []
    if letter == "E":
        return path[:n - 2] + [(2, n - 1)], []
    if letter == "BB":  # n-1 - 0 - 1 - ... - n-3 = n-2, double edges at both ends
        return path[:n - 3], [(n - 3, n - 2), (0, n - 1)]
    if letter == "BD":
        return path[:n - 3] + [(n - 1, 1)], [(n - 3, n - 2)]
    if letter == "BE":
        return path[:n - 3] + [(2, n - 1)], [(n - 3, n - 2)]
    if letter == "DE":
        return path[:n - 3] + [(2, n - 2), (n - 4, n - 1)], []
    raise ValueError(letter)


def seed_matrix(letter: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """(B, short) of the seed: the tree oriented bipartitely (vertex 0 and every vertex at
    even distance from it a source). A double edge has |b_end,inner| = 2, |b_inner,end| = 1,
    so the end vertex is the short one (d_end = d_inner / 2); `short` marks such vertices."""
    simple, double = seed_tree(letter, n)
    nbrs: dict[int, list[int]] = {v: [] for v in range(n)}
    for u, v in simple + double:
        nbrs[u].append(v)
        nbrs[v].append(u)
    colour, todo = {0: 0}, [0]
    while todo:
        u = todo.pop()
        for v in nbrs[u]:
            if v not in colour:
                colour[v] = 1 - colour[u]
                todo.append(v)
    b = np.zeros((n, n), dtype=np.int8)
    for (u, v), mult in [(e, 1) for e in simple] + [(e, 2) for e in double]:
        sign = 1 if colour[u] == 0 else -1  # arrow from the source side
        b[u, v], b[v, u] = sign, -sign * mult
    short = np.zeros(n, dtype=np.uint8)
    short[[end for _, end in double]] = 1
    return b, short


def mutate(b: np.ndarray, k: np.ndarray) -> np.ndarray:
    """Mutation of each matrix b[g] (G, n, n) at vertex k[g]."""
    g = np.arange(len(b))
    b = b.astype(np.int16)
    col, row = b[g, :, k], b[g, k, :]  # b_ik and b_kj
    out = b + np.sign(col)[:, :, None] * np.maximum(col[:, :, None] * row[:, None, :], 0)
    out[g, k, :], out[g, :, k] = -row, -col  # the k-th entries of b_ik b_kj vanish: b_kk = 0
    return out


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: a bijective scramble of 64-bit words."""
    x = (x ^ (x >> np.uint64(30))) * _M1
    x = (x ^ (x >> np.uint64(27))) * _M2
    return x ^ (x >> np.uint64(31))


def iso_key(b: np.ndarray) -> np.ndarray:
    """A 64-bit isomorphism invariant of each (G, n, n) matrix: colour refinement where a
    vertex's new colour hashes its colour with the multiset of (b_ij, b_ji, colour of j)."""
    out = np.empty(len(b), dtype=np.uint64)
    for s in range(0, len(b), 16384):  # bounds the (chunk, n, n) uint64 temporaries
        bb = b[s:s + 16384].astype(np.int64)
        weight = _PAIR_WEIGHT[(bb + 8) * 16 + (bb.transpose(0, 2, 1) + 8)]
        colour = np.zeros(bb.shape[:2], dtype=np.uint64)
        with np.errstate(over="ignore"):  # arithmetic mod 2^64 is the point
            for t in range(ISO_ROUNDS):
                nbr = _mix(colour + np.uint64(2 * t + 1))
                colour = _mix(colour * _GOLDEN + (weight * nbr[:, None, :]).sum(axis=2))
            out[s:s + 16384] = _mix(colour + _GOLDEN).sum(axis=1)  # the multiset of colours
    return out


@functools.cache
def class_ball(letter: str, n: int, min_ball: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B (S, n, n) int8, depth (S,), path (S, max depth) int8 with -1 padding) of the
    breadth-first ball around the seed, up to isomorphism: one representative per class,
    reached from the seed by mutating at path[0], path[1], ... . Memoised, so that a new
    data_seed costs only the draw."""
    seed, _ = seed_matrix(letter, n)
    whole = letter in WHOLE_CLASS
    layers, paths = [seed[None]], [np.zeros((1, 0), dtype=np.int8)]
    seen = iso_key(seed[None])
    size = 1
    while whole or size < min_ball:
        front, fpath = layers[-1], paths[-1]
        # every vertex but the one just mutated (mu_k mu_k is the identity)
        parent, k = np.divmod(np.arange(len(front) * n), n)
        if fpath.shape[1]:
            keep = k != fpath[parent, -1]
            parent, k = parent[keep], k[keep]
        kids = mutate(front[parent], k)
        if np.abs(kids).max() > ENTRY_MAX:
            raise RuntimeError(f"quivers: class {letter}_{n} reached |b_ij| > {ENTRY_MAX}; "
                               "lower min_ball")
        keys = iso_key(kids)
        _, first = np.unique(keys, return_index=True)
        first = np.sort(first)  # the first kid of each new class, in BFS order
        first = first[~np.isin(keys[first], seen)]
        if not len(first):
            break  # the class is exhausted
        seen = np.concatenate([seen, keys[first]])
        layers.append(kids[first].astype(np.int8))
        paths.append(np.concatenate([fpath[parent[first]], k[first, None].astype(np.int8)], 1))
        size += len(first)
    depth = np.repeat(np.arange(len(layers)), [len(x) for x in layers]).astype(np.int8)
    width = len(layers) - 1
    path = np.concatenate([np.pad(p, ((0, 0), (0, width - p.shape[1])), constant_values=-1)
                           for p in paths])
    return np.concatenate(layers), depth, path


def relabel(b: np.ndarray, perm: np.ndarray) -> np.ndarray:
    """b'[g, i, j] = b[g, perm[g, i], perm[g, j]]: vertex i of the new quiver is old perm[i]."""
    g = np.arange(len(b))[:, None, None]
    return b[g, perm[:, :, None], perm[:, None, :]]


@register_dataset("quivers")
class Quivers(MathDataModule):
    """Mutation class of a rank-11 quiver (exchange matrix): A, BB, BD, BE, D, DE or E."""

    version = "1"
    smoke_params = {"n": 7, "n_per_class": 100, "min_ball": 300}

    def __init__(self, n: int = 11, n_per_class: int = 14000, min_ball: int = 28000,
                 val_frac: float = 0.1, test_frac: float = 0.2, data_seed: int = 0) -> None:
        super().__init__()
        check_range("n", n, 6, 11, dataset="quivers")  # DE needs 6; 12 is minutes of BFS
        check_range("min_ball", min_ball, 10, 50000, dataset="quivers")
        check_range("val_frac", val_frac, 0.01, 0.4, dataset="quivers")
        check_range("test_frac", test_frac, 0.01, 0.4, dataset="quivers")
        # A_n is the smallest class for 6 <= n <= 11 (and is enumerated whole)
        most = min(a_class_size(n), min_ball)
        check_range("n_per_class", n_per_class, 10, most, dataset="quivers")
        if min(self.split_sizes(n_per_class, val_frac, test_frac).values()) < 1:
            raise UserError(f"dataset 'quivers': n_per_class={n_per_class} leaves a split "
                            "empty; raise n_per_class or the fractions")
        self.save_hyperparameters()

    @staticmethod
    def split_sizes(per_class: int, val_frac: float, test_frac: float) -> dict[str, int]:
        val, test = round(per_class * val_frac), round(per_class * test_frac)
        return {"train": per_class - val - test, "val": val, "test": test}

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        n, rng = p["n"], self.rng()
        sizes = self.split_sizes(p["n_per_class"], p["val_frac"], p["test_frac"])
        parts: dict[str, list[dict[str, np.ndarray]]] = {s: [] for s in sizes}
        for label, letter in enumerate(TYPES):
            b, depth, path = class_ball(letter, n, p["min_ball"])
            if len(b) < p["n_per_class"]:
                raise RuntimeError(f"quivers: class {letter}_{n} has {len(b)} quivers")
            pick = rng.choice(len(b), size=p["n_per_class"], replace=False)
            perm = np.argsort(rng.random((len(pick), n)), axis=1).astype(np.int8)
            short = seed_matrix(letter, n)[1][perm]
            rows = {"b": relabel(b[pick], perm), "short": short, "perm": perm,
                    "depth": depth[pick], "path": path[pick],
                    "y": np.full(len(pick), label, dtype=np.int64)}
            for split, sl in split_counts(sizes).items():
                parts[split].append({k: v[sl] for k, v in rows.items()})
        out = {}
        for split, chunks in parts.items():
            width = max(c["path"].shape[1] for c in chunks)  # the classes' depths differ
            for c in chunks:
                c["path"] = np.pad(c["path"], ((0, 0), (0, width - c["path"].shape[1])),
                                   constant_values=-1)
            order = rng.permutation(sum(len(c["y"]) for c in chunks))
            out[split] = {k: torch.from_numpy(np.concatenate([c[k] for c in chunks])[order])
                          for k in chunks[0]}
        return out

    def build_spec(self) -> DatasetSpec:
        n = self.params["n"]
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS,
            num_outputs=len(TYPES), metric="acc",  # classes are exactly balanced
            views=(ViewSpec(Modality.GRAPH, (4,)), ViewSpec(Modality.IMAGE, (1, n, n)),
                   ViewSpec(Modality.SEQUENCE, (n * n,), vocab_size=2 * ENTRY_MAX + 2),
                   ViewSpec(Modality.VECTOR, (n * n,))),
            description=f"mutation class (A, BB, BD, BE, D, DE, E) of a rank-{n} quiver",
            params=self.params,
            extra={"classes": [f"{t}_{n}" for t in TYPES],
                   "sage_types": [f"['{t}', {n - 1}, 1]" if t in ("BB", "BD") else
                                  f"['{t}', {n}]" for t in TYPES]})

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality):
        modality = Modality(modality)
        b = raw["b"].long()
        if modality is Modality.SEQUENCE:
            return b.flatten(1) + ENTRY_MAX + 1  # -ENTRY_MAX..ENTRY_MAX -> 1..2 ENTRY_MAX + 1
        if modality is Modality.GRAPH:
            return quiver_graphs(b, raw["short"])
        scaled = b.float() / 2  # the ACD classes have |b_ij| <= 2
        return scaled.unsqueeze(1) if modality is Modality.IMAGE else scaled.flatten(1)


def quiver_graphs(b: torch.Tensor, short: torch.Tensor):
    """GraphStore of quivers: the n vertices, an edge i -> j repeated b_ij times for each
    b_ij > 0 (message passing then sums over arrows with their multiplicity). Node features:
    1, short (d_i < max d: with b_ij this recovers b_ji = -b_ij d_i / d_j, so B is encoded
    exactly), out- and in-arrows / n (messages flow along arrows only, so a vertex would
    not otherwise see its out-arrows)."""
    from benchmarks.graphs import GraphStore

    g, n, _ = b.shape
    arrows = b.clamp(min=0)
    x = torch.stack([torch.ones(g, n), short.float(), arrows.sum(2) / n, arrows.sum(1) / n], 2)
    nz = arrows.nonzero()  # row-major: grouped by graph, as GraphStore wants
    mult = arrows[nz[:, 0], nz[:, 1], nz[:, 2]]
    edges = nz.repeat_interleave(mult, dim=0)
    node_ptr = torch.arange(g + 1) * n
    edge_ptr = torch.cat([torch.zeros(1, dtype=torch.long),
                          torch.bincount(edges[:, 0], minlength=g).cumsum(0)])
    return GraphStore(x.reshape(g * n, 4), edges[:, 1:].T.contiguous(), node_ptr, edge_ptr)
