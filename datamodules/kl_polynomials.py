"""Coefficients of Kazhdan-Lusztig polynomials of S_n (ACD Repo `kl-polynomial_coefficients`,
arXiv:2503.06366; Davies et al., Nature 2021, for the graph setting).

For x <= w in the Bruhat order of S_n, P_{x,w}(q) is the Kazhdan-Lusztig polynomial; the task
is one coefficient of q^k, multiclass over its values, from (x, w) in one-line notation or from
the Bruhat interval [x, w] as a graph. pairs="all" is the ACD's grid of every (x, w) in
S_n x S_n (P = 0 unless x <= w, so k = 0 is Bruhat comparability); the default keeps x <= w.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import MathDataModule, check_choice, check_range, split_counts
from benchmarks.errors import UserError
from benchmarks.graphs import GraphStore
from benchmarks.registry import register_dataset

N_MAX = 6  # all 518,400 pairs of S_6 take 0.2 s; S_7 would need 25.4M pairs (1.1 GB of P)
# The largest value of the coefficient of q^k over x <= w in S_n (k -> max), so that the
# spec knows its classes without generating; tests check it against the computed universe
# and the ACD README's counts. Classes are the values 0..max (every value in between occurs).
MAX_COEFFICIENT = {4: (1, 1), 5: (1, 2, 1), 6: (1, 4, 4, 1)}


# -- the symmetric group, its length function and Bruhat order ------------------------------
@dataclass(frozen=True)
class SymmetricGroup:
    """S_n in lexicographic order of one-line notation (values 0..n-1), with lengths, the
    Bruhat order as an (N, N) boolean matrix (leq[x, w] is x <= w), and an index lookup."""

    n: int
    perms: np.ndarray   # (N, n) int8
    length: np.ndarray  # (N,) int64, number of inversions
    leq: np.ndarray     # (N, N) bool
    _lookup: np.ndarray  # base-n code of a one-line word -> its row

    def index(self, perms: np.ndarray) -> np.ndarray:
        """Rows of permutations given in one-line notation with values 0..n-1."""
        weights = self.n ** np.arange(self.n - 1, -1, -1, dtype=np.int64)
        return self._lookup[(np.asarray(perms, dtype=np.int64) * weights).sum(-1)]

    def times_transposition(self, i: int, j: int) -> np.ndarray:
        """Row of u t_{ij} for every row u (u with positions i and j swapped)."""
        swapped = self.perms.copy()
        swapped[:, [i, j]] = swapped[:, [j, i]]
        return self.index(swapped)


def bruhat_leq(perms: np.ndarray) -> np.ndarray:
    """x <= w by the tableau criterion, as its rank-matrix form: r_u[i, j] = #{a <= i : u(a)
    >= j}, and x <= w iff r_x <= r_w entrywise (Bjorner-Brenti, Thm 2.1.5)."""
    n = perms.shape[1]
    ranks = np.cumsum(perms[:, :, None] >= np.arange(n), axis=1, dtype=np.int8)
    ranks = ranks.reshape(len(perms), -1)
    leq = np.empty((len(perms), len(perms)), dtype=bool)
    for start in range(0, len(perms), 128):  # (128, N, n^2) temporaries stay small
        leq[start:start + 128] = (ranks[start:start + 128, None] <= ranks[None]).all(-1)
    return leq


@functools.cache
def symmetric_group(n: int) -> SymmetricGroup:
    """S_n with its Bruhat order, computed once per process (0.1 s for S_6)."""
    perms = np.array(list(itertools.permutations(range(n))), dtype=np.int8).reshape(-1, n)
    iu, ju = np.triu_indices(n, 1)
    length = (perms[:, iu] > perms[:, ju]).sum(1).astype(np.int64)
    lookup = np.full(n ** n, -1, dtype=np.int64)
    lookup[(perms.astype(np.int64) * n ** np.arange(n - 1, -1, -1)).sum(1)] = np.arange(len(perms))
    leq = bruhat_leq(perms)
    for a in (perms, length, leq, lookup):
        a.flags.writeable = False  # shared by every datamodule of the process
    return SymmetricGroup(n, perms, length, leq, lookup)


# -- Kazhdan-Lusztig polynomials --------------------------------------------------------------
def _times_q(p: np.ndarray, k: int) -> np.ndarray:
    """q^k p for coefficient arrays along the last axis."""
    if k == 0:
        return p
    out = np.zeros_like(p)
    out[..., k:] = p[..., :-k]
    return out


@functools.cache
def kl_polynomials(n: int) -> np.ndarray:
    """P_{x,w}(q) for all x, w in S_n (rows of symmetric_group(n)): int16 (N, N, D), the
    coefficient of q^k at [x, w, k], zero unless x <= w.

    Columns w are filled in order of length by the standard recursion: with s a right
    descent of w and v = ws, c = 1 if xs < x else 0,
        P_{x,w} = q^{1-c} P_{xs,v} + q^c P_{x,v} - sum_{z : zs < z} mu(z,v) q^{(l(w)-l(z))/2} P_{x,z},
    mu(z, v) the coefficient of q^{(l(v)-l(z)-1)/2} in P_{z,v}. Each step is vectorised over
    all x at once (the identity holds for every x, both sides vanishing unless x <= w).
    """
    group = symmetric_group(n)
    size, length = len(group.perms), group.length
    degrees = n * (n - 1) // 4 + 1  # deg P_{x,w} <= (l(w)-l(x)-1)/2 <= (C(n,2)-1)/2
    P = np.zeros((size, size, degrees), dtype=np.int32)
    right = np.stack([group.times_transposition(i, i + 1) for i in range(n - 1)])  # (n-1, N)
    descent = group.perms[:, :-1] > group.perms[:, 1:]  # descent[x, i]: x s_i < x
    mu: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # v -> (z with mu(z,v) != 0, mu)
    for w in np.argsort(length, kind="stable").tolist():
        if length[w] == 0:
            P[w, w, 0] = 1
        else:
            i = int(np.flatnonzero(descent[w])[-1])
            v = int(right[i, w])
            c = descent[:, i, None]
            a, b = P[right[i], v], P[:, v]  # P_{xs,v} and P_{x,v} for every x
            col = np.where(c, a + _times_q(b, 1), _times_q(a, 1) + b)
            zs, mus = mu[v]
            lower = descent[zs, i]  # only z with zs < z enter the sum
            for z, m in zip(zs[lower].tolist(), mus[lower].tolist(), strict=True):
                col -= m * _times_q(P[:, z], int(length[w] - length[z]) // 2)
            P[:, w] = col
        gap = length[w] - length  # mu(z, w) from the finished column, for the later w's
        below = np.flatnonzero(group.leq[:, w] & (gap % 2 == 1))
        top = P[below, w, (gap[below] - 1) // 2]
        mu[w] = (below[top != 0], top[top != 0])
    out = P.astype(np.int16)
    out.flags.writeable = False
    return out


# -- the graph view: Bruhat intervals -----------------------------------------------------------
@functools.cache
def reflection_edges(n: int) -> tuple[np.ndarray, np.ndarray]:
    """Edges u -> u t of the Bruhat graph of S_n (t a transposition, l(ut) > l(u)) as an
    (E, 2) array of rows, and whether each is a cover (l(ut) = l(u) + 1: a Hasse edge)."""
    group = symmetric_group(n)
    edges = []
    for i, j in itertools.combinations(range(n), 2):
        up = np.flatnonzero(group.perms[:, i] < group.perms[:, j])
        edges.append(np.stack([up, group.times_transposition(i, j)[up]], axis=1))
    e = np.concatenate(edges)
    e = e[np.lexsort((e[:, 1], e[:, 0]))]
    return e, group.length[e[:, 1]] == group.length[e[:, 0]] + 1


def interval_graphs(n: int, x: np.ndarray, w: np.ndarray, hasse: bool = False,
                    chunk: int = 1024) -> GraphStore:
    """The Bruhat intervals [x_g, w_g] (rows of symmetric_group(n)) as graphs.

    Nodes: the elements of the interval, by length then row (x first, w last); features
    (l(u) - l(x)) / C(n,2) and (l(w) - l(u)) / C(n,2). Edges: the Bruhat graph (u -> ut,
    t a transposition, l(ut) > l(u), both ends in the interval), or only its covers when
    `hasse`. Each edge is listed in both directions (the PyG convention): the convolutions
    of models/gnn.py take no edge features, and the node features already say which end
    is higher. An empty interval (x not <= w) is a graph without nodes.
    """
    group = symmetric_group(n)
    size = len(group.perms)
    order = np.lexsort((np.arange(size), group.length))  # nodes by length, then row
    rank = np.argsort(order)
    leq = group.leq[np.ix_(order, order)]
    geq = np.ascontiguousarray(leq.T)
    length = group.length[order].astype(np.int32)
    edges, cover = reflection_edges(n)
    edges = rank[edges[cover] if hasse else edges]
    edges = edges[np.argsort(edges[:, 0], kind="stable")]  # grouped by source: a CSR
    first_edge = np.searchsorted(edges[:, 0], np.arange(size + 1))
    out_degree = np.diff(first_edge)
    xs, ws = rank[x], rank[w]
    nonempty = np.flatnonzero(leq[xs, ws])  # an empty interval contributes no rows at all
    node_counts = np.zeros(len(xs), dtype=np.int64)
    edge_counts = np.zeros(len(xs), dtype=np.int64)
    feats, links = [], []
    for start in range(0, len(nonempty), chunk):
        rows = nonempty[start:start + chunk]
        bx, bw = xs[rows], ws[rows]
        member = (leq[bx] & geq[bw]).ravel()  # (chunk * N,): u in [x_g, w_g] at g * N + u
        local = np.cumsum(member.reshape(len(rows), size), axis=1, dtype=np.int32).ravel() - 1
        at = np.flatnonzero(member)
        g, u = np.divmod(at, size)
        feats.append(np.stack([length[u] - length[bx[g]], length[bw[g]] - length[u]], 1))
        # candidate edges: those leaving a node of the interval (about 7 per node in S_6,
        # not a mask over all 5,400 edges per graph); kept when the target is inside too
        deg = out_degree[u]
        ends = np.cumsum(deg)
        eid = np.repeat(first_edge[u] - (ends - deg), deg) + np.arange(ends[-1])
        base = np.repeat(at - u, deg)  # g * N
        target = base + edges[eid, 1]
        keep = member[target]
        src, dst = local[np.repeat(at, deg)[keep]], local[target[keep]]
        links.append(np.stack([src, dst, dst, src], 1).reshape(-1, 2))  # edge, then reverse
        node_counts[rows] = np.bincount(g, minlength=len(rows))
        edge_counts[rows] = 2 * np.bincount(base[keep] // size, minlength=len(rows))
    counts, ecounts = torch.from_numpy(node_counts), torch.from_numpy(edge_counts)
    ptr = torch.cat([counts.new_zeros(1), counts.cumsum(0)])
    eptr = torch.cat([ecounts.new_zeros(1), ecounts.cumsum(0)])
    empty = np.zeros((0, 2), dtype=np.int32)
    scale = max(1, n * (n - 1) // 2)  # C(n, 2), the length of the longest interval
    x_feat = torch.from_numpy(np.concatenate([empty, *feats]).astype(np.float32) / scale)
    edge_index = torch.from_numpy(np.concatenate([empty, *links]).T.astype(np.int64))
    return GraphStore(x_feat, edge_index, ptr, eptr)


# -- the dataset ----------------------------------------------------------------------------------
def embed(perms: np.ndarray, width: int) -> np.ndarray:
    """Permutations of S_n (values 0..n-1) as permutations of S_width fixing n..width-1: the
    parabolic embedding, which preserves P_{x,w} and the interval [x, w]."""
    n = perms.shape[1]
    return np.concatenate([perms, np.broadcast_to(np.arange(n, width, dtype=perms.dtype),
                                                  (len(perms), width - n))], axis=1)


@register_dataset("kl_polynomials")
class KLPolynomials(MathDataModule):
    """Coefficient of q^k in the Kazhdan-Lusztig polynomial P_{x,w} of S_n, from (x, w)."""

    version = "1"
    smoke_params = {"n": 4, "ood_n": 5}

    def __init__(self, n: int = 6, coefficient: int = 1,
                 pairs: Literal["bruhat", "all"] = "bruhat",
                 graph_edges: Literal["bruhat", "hasse"] = "bruhat", ood_n: int = 0,
                 val_frac: float = 0.1, test_frac: float = 0.2, data_seed: int = 0) -> None:
        super().__init__()
        name = "kl_polynomials"
        check_range("n", n, 4, N_MAX, dataset=name)
        check_choice("pairs", pairs, ("bruhat", "all"), dataset=name)
        check_choice("graph_edges", graph_edges, ("bruhat", "hasse"), dataset=name)
        top = len(MAX_COEFFICIENT[n]) - 1
        check_range("coefficient", coefficient, 0, top, dataset=name)
        if coefficient == 0 and pairs == "bruhat":
            raise UserError(f"dataset {name!r}: coefficient=0 is 1 for every pair x <= w (one "
                            "class); use pairs='all', where it tells whether x <= w")
        check_range("ood_n", ood_n, n + 1, N_MAX, dataset=name, zero_means="no OOD split")
        check_range("val_frac", val_frac, 0.01, 0.4, dataset=name)
        check_range("test_frac", test_frac, 0.01, 0.4, dataset=name)
        self.save_hyperparameters()

    @property
    def width(self) -> int:
        """Every permutation is written in S_width (fixed points appended past n)."""
        return max(self.params["n"], self.params["ood_n"])

    @property
    def num_classes(self) -> int:
        return MAX_COEFFICIENT[self.width][self.params["coefficient"]] + 1

    def pair_rows(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(x rows, w rows) of the universe of S_n: pairs x <= w, or every pair."""
        group = symmetric_group(n)
        if self.params["pairs"] == "all":
            size = len(group.perms)
            return np.repeat(np.arange(size), size), np.tile(np.arange(size), size)
        return np.nonzero(group.leq)

    def examples(self, n: int, x: np.ndarray, w: np.ndarray) -> dict[str, torch.Tensor]:
        group, k = symmetric_group(n), self.params["coefficient"]
        y = kl_polynomials(n)[x, w, k].astype(np.int64)
        return {"x": torch.from_numpy(embed(group.perms[x], self.width) + 1),  # values 1..width
                "w": torch.from_numpy(embed(group.perms[w], self.width) + 1),
                "y": torch.from_numpy(y)}

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        x, w = self.pair_rows(p["n"])
        total = len(x)
        val, test = round(total * p["val_frac"]), round(total * p["test_frac"])
        order = self.rng().permutation(total)  # the universe is fixed; data_seed splits it
        sizes = {"train": total - val - test, "val": val, "test": test}
        out = {s: self.examples(p["n"], x[order[sl]], w[order[sl]])
               for s, sl in split_counts(sizes).items()}
        if p["ood_n"]:
            # pairs of S_ood_n outside the embedded S_n (where w fixes n..ood_n-1, so does
            # every x <= w): no ood row repeats an in-distribution one
            big = symmetric_group(p["ood_n"])
            x, w = self.pair_rows(p["ood_n"])
            fixed = (big.perms[:, p["n"]:] == np.arange(p["n"], p["ood_n"])).all(1)
            keep = ~(fixed[x] & fixed[w])
            ood = self.rng(1).permutation(int(keep.sum()))
            out["ood_test"] = self.examples(p["ood_n"], x[keep][ood], w[keep][ood])
        return out

    def build_spec(self) -> DatasetSpec:
        p, width = self.params, self.width
        ood = f", OOD S_{p['ood_n']}" if p["ood_n"] else ""
        pairs = "x <= w" if p["pairs"] == "bruhat" else "all pairs"
        return DatasetSpec(
            name=self.name, version=self.version, task=TaskType.MULTICLASS,
            num_outputs=self.num_classes,
            # nonzero values are rare (3% of the pairs of S_6 for q, 0.05% for q^3):
            # accuracy rewards predicting 0, macro-F1 does not
            metric="f1_macro",
            views=(ViewSpec(Modality.SEQUENCE, (2 * width,), vocab_size=width + 1),
                   ViewSpec(Modality.GRAPH, (2,)),
                   ViewSpec(Modality.VECTOR, (2 * width,))),
            description=f"coefficient of q^{p['coefficient']} in P_(x,w), {pairs} in "
                        f"S_{p['n']}{ood}",
            params=self.params, has_ood=bool(p["ood_n"]),
            extra={"classes": "the coefficient's value", "graph_edges": p["graph_edges"]})

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality) -> object:
        x, w = raw["x"].long(), raw["w"].long()
        if modality is Modality.SEQUENCE:
            return torch.cat([x, w], dim=1)  # values 1..width are the tokens; 0 is padding
        if modality is Modality.VECTOR:
            return torch.cat([x, w], dim=1).float() / self.width
        group = symmetric_group(self.width)
        return interval_graphs(self.width, group.index(x.numpy() - 1), group.index(w.numpy() - 1),
                               hasse=self.params["graph_edges"] == "hasse")

