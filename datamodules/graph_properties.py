"""Properties of small random graphs (workshops "First steps with GNNs", "More fun with GNNs").

A random simple graph on n in [n_min, n_max] vertices; one dataset per `target`: connected,
bipartite, planar, eulerian (connected, every degree even), hamiltonian (has a cycle
through every vertex), triangles (count, regression), diameter (of the largest component;
class d) and chromatic (chromatic number; class k - 1), both multiclass over one class per
vertex of the widest graph. Balance: G(n, p) with p drawn per graph around the label's
threshold (see draw_graphs), then a class-balanced subsample per split: binary exactly
50/50, multiclass capped at a common quota. Splits are by isomorphism class: no val or
test graph is isomorphic to a training graph. With ood_n_max, an ood_test split holds
graphs on n in (n_max, ood_n_max] vertices, drawn and balanced the same way.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Literal

import numpy as np
import torch

from benchmarks.contract import DatasetSpec, Modality, TaskType, ViewSpec
from benchmarks.data import (
    MathDataModule,
    check_range,
    check_split_sizes,
    first_occurrences,
)
from benchmarks.errors import UserError
from benchmarks.registry import register_dataset

Target = Literal["connected", "bipartite", "planar", "eulerian", "hamiltonian", "triangles",
                 "diameter", "chromatic"]
TARGETS: tuple[str, ...] = Target.__args__
HAMILTONIAN_N_MAX = 12  # the subset DP below is 2^n per graph


# -- random graphs: (num_nodes (G,), dense boolean adjacency (G, N, N)) ---------------------
def erdos_renyi(rng: np.random.Generator, n: np.ndarray, p: np.ndarray,
                n_max: int) -> np.ndarray:
    """G(n, p) per row: symmetric boolean (G, n_max, n_max), zero beyond each graph's n."""
    iu, ju = np.triu_indices(n_max, 1)
    bits = (rng.random((len(n), len(iu))) < p[:, None]) & (ju < n[:, None])
    adj = np.zeros((len(n), n_max, n_max), dtype=bool)
    adj[:, iu, ju] = bits
    return adj | adj.transpose(0, 2, 1)


def toggle(adj: np.ndarray, g: np.ndarray, u: np.ndarray, v: np.ndarray) -> None:
    """Flip edges {u, v} of graphs g in place (each row once)."""
    adj[g, u, v] ^= True
    adj[g, v, u] = adj[g, u, v]


def random_pairs(rng: np.random.Generator, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """One uniformly random pair u != v of vertices per graph."""
    u = (rng.random(len(n)) * n).astype(np.int64)
    v = (u + 1 + (rng.random(len(n)) * (n - 1)).astype(np.int64)) % n
    return u, v


def even_degrees(rng: np.random.Generator, adj: np.ndarray) -> None:
    """Make every degree even in place: pair up the odd vertices of each graph at random
    and flip the edge of each pair (a graph has an even number of odd vertices)."""
    odd = adj.sum(axis=2) % 2 == 1
    for g in np.flatnonzero(odd.any(axis=1)):
        verts = rng.permutation(np.flatnonzero(odd[g]))
        toggle(adj, np.full(len(verts) // 2, g), verts[0::2], verts[1::2])


# -- labels: vectorised over graphs where the algorithm allows ------------------------------
def _real(n: np.ndarray, n_max: int) -> np.ndarray:
    return np.arange(n_max) < n[:, None]


def neighbour_masks(adj: np.ndarray) -> np.ndarray:
    """(G, N) int64: bit u of [g, v] is set iff v and u are adjacent in graph g."""
    bit = 1 << np.arange(adj.shape[2], dtype=np.int64)
    return (adj.astype(np.int64) * bit).sum(axis=2)


def hop_distances(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """All-pairs shortest path lengths (G, N, N), -1 where unreachable (BFS by matmul)."""
    n_max = adj.shape[1]
    a = adj.astype(np.float32)
    reach = np.broadcast_to(np.eye(n_max, dtype=bool), adj.shape) & _real(n, n_max)[:, :, None]
    dist = np.where(reach, 0, -1).astype(np.int16)
    for k in range(1, n_max):
        new = (reach.astype(np.float32) @ a > 0) & ~reach
        if not new.any():
            break
        dist[new] = k
        reach = reach | new
    return dist


def connected(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Whether BFS from vertex 0 (one frontier vector per graph) reaches all n vertices."""
    a = adj.astype(np.float32)
    reach = np.zeros(adj.shape[:2], dtype=bool)
    reach[:, 0] = True
    for _ in range(adj.shape[1]):
        new = (reach[:, None, :].astype(np.float32) @ a)[:, 0] > 0
        if not (new & ~reach).any():
            break
        reach |= new
    return reach.sum(axis=1) == n


def diameter_of_largest_component(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Largest diameter among the components with the most vertices (0 for no edges)."""
    dist = hop_distances(adj, n)
    size = (dist >= 0).sum(axis=2)  # the size of each vertex's component (0 for padding)
    ecc = dist.max(axis=2)
    in_largest = size == size.max(axis=1, keepdims=True)
    return np.where(in_largest, ecc, 0).max(axis=1).astype(np.int64)


def bipartite(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """No odd cycle: no vertex has an odd closed walk (lengths <= n suffice, since the
    shortest odd closed walk is an odd cycle)."""
    a = adj.astype(np.float32)
    even = np.broadcast_to(np.eye(adj.shape[1], dtype=bool), adj.shape).copy()
    odd = np.zeros_like(even)
    for _ in range(adj.shape[1]):
        even, odd = even | (odd @ a > 0), odd | (even.astype(np.float32) @ a > 0)
    return ~np.diagonal(odd, axis1=1, axis2=2).any(axis=1)


def eulerian(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """networkx's definition: connected (isolated vertices included) and all degrees even."""
    return connected(adj, n) & (adj.sum(axis=2) % 2 == 0).all(axis=1)


def triangles(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    a = adj.astype(np.float32)
    return np.einsum("gij,gjk,gki->g", a, a, a).round().astype(np.int64) // 6


def planar(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """networkx's planarity test on each graph's core, skipped where edge counts decide."""
    import networkx as nx

    masks = neighbour_masks(adj)
    out = np.zeros(len(n), dtype=bool)
    for g in range(len(n)):
        core = planarity_core(masks[g, :n[g]].tolist())
        verts = [v for v in range(len(core)) if core[v]]
        m = sum(c.bit_count() for c in core) // 2
        # every non-planar graph contains a subdivision of K5 or K3,3 (>= 9 edges), and
        # a planar graph on k >= 3 vertices has at most 3k - 6 edges
        if m <= 8 or m > 3 * len(verts) - 6:
            out[g] = m <= 8
        else:
            edges = [(v, u) for v in verts for u in range(v) if core[v] >> u & 1]
            out[g] = nx.check_planarity(nx.Graph(edges))[0]
    return out


def planarity_core(nbr: list[int]) -> list[int]:
    """A graph of minimum degree >= 3 (or none) that is planar iff the input is: delete
    vertices of degree <= 1, and replace a vertex of degree 2 by an edge between its two
    neighbours (a subdivision; if they are already adjacent, just delete it)."""
    nbr = list(nbr)
    todo = [v for v in range(len(nbr)) if nbr[v].bit_count() <= 2]
    while todo:
        v = todo.pop()
        ends = [u for u in range(len(nbr)) if nbr[v] >> u & 1]
        if len(ends) > 2:  # gained an edge since it was queued
            continue
        for u in ends:
            nbr[u] &= ~(1 << v)
        nbr[v] = 0
        if len(ends) == 2:
            a, b = ends
            nbr[a] |= 1 << b
            nbr[b] |= 1 << a
        todo.extend(u for u in ends if nbr[u].bit_count() <= 2)
    return nbr


def hamiltonian(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Held-Karp over vertex subsets, vectorised across graphs: ends[S] is the set (bit
    mask) of v such that some path from vertex 0 visits exactly S and stops at v."""
    g, n_max = adj.shape[:2]
    if n_max > 16:
        raise ValueError("hamiltonian: the subset DP is limited to n_max <= 16")
    out = np.zeros(g, dtype=bool)
    for start in range(0, g, 2048):  # chunks bound the (2^N, chunk) tables
        nbr = neighbour_masks(adj[start:start + 2048]).T  # (N, chunk)
        k = nbr.shape[1]
        union = np.zeros((1 << n_max, k), dtype=np.int64)  # neighbours of a vertex set
        for s in range(1, 1 << n_max):
            low = (s & -s).bit_length() - 1
            union[s] = union[s & (s - 1)] | nbr[low]
        ends = np.zeros((1 << n_max, k), dtype=np.int64)
        ends[1] = 1
        cols = np.arange(k)
        for s in range(1, 1 << n_max, 2):  # sets that contain vertex 0
            reach = union[ends[s], cols] & ~s
            for u in range(1, n_max):
                if not s >> u & 1:
                    ends[s | 1 << u] |= reach & (1 << u)
        nn = n[start:start + 2048]
        full = (1 << nn) - 1
        out[start:start + 2048] = (ends[full, cols] & nbr[0]).astype(bool) & (nn >= 3)
    return out


def chromatic_number(nbr: list[int], odd_cycle: bool = False) -> int:
    """Exact chromatic number of a graph given as neighbour bit masks: the least k >= a
    lower bound (a maximum clique; 3 when the caller knows of an odd cycle) for which
    `colourable` finds a k-colouring."""
    if not nbr:
        return 0
    k = max(_max_clique(nbr), 3 if odd_cycle else 0)
    while not colourable(nbr, k):
        k += 1
    return k


def colourable(nbr: list[int], k: int) -> bool:
    """Whether a k-colouring exists: strip vertices of degree < k (they can always be
    coloured last), then DSATUR backtracking on the rest (colour the vertex that sees the
    most colours next; a new colour only as the next unused one)."""
    alive = (1 << len(nbr)) - 1
    stripped = True
    while stripped:
        stripped = False
        for v in range(len(nbr)):
            if alive >> v & 1 and (nbr[v] & alive).bit_count() < k:
                alive &= ~(1 << v)
                stripped = True
    colour_sets: list[int] = []  # vertices of each colour, as bit masks

    def search(uncoloured: int) -> bool:
        if not uncoloured:
            return True
        v = max((u for u in range(len(nbr)) if uncoloured >> u & 1),
                key=lambda u: (sum(1 for cs in colour_sets if cs & nbr[u]),
                               (nbr[u] & uncoloured).bit_count()))
        rest = uncoloured & ~(1 << v)
        for c, cs in enumerate(colour_sets):
            if not cs & nbr[v]:
                colour_sets[c] = cs | 1 << v
                found = search(rest)
                colour_sets[c] = cs
                if found:
                    return True
        if len(colour_sets) < k:
            colour_sets.append(1 << v)
            found = search(rest)
            colour_sets.pop()
            return found
        return False

    return search(alive)


def _max_clique(nbr: list[int]) -> int:
    """Size of a maximum clique (simple branch and bound on bit masks)."""
    best = [0]

    def grow(size: int, cand: int) -> None:
        if not cand:
            best[0] = max(best[0], size)
            return
        while cand and size + cand.bit_count() > best[0]:
            v = cand.bit_length() - 1
            cand &= ~(1 << v)
            grow(size + 1, cand & nbr[v])

    grow(0, (1 << len(nbr)) - 1)
    return best[0]


def chromatic(adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    masks = neighbour_masks(adj)
    odd = ~bipartite(adj, n)
    return np.array([chromatic_number(masks[g, :n[g]].tolist(), bool(odd[g]))
                     for g in range(len(n))], dtype=np.int64)


LABELS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "connected": connected, "bipartite": bipartite, "planar": planar, "eulerian": eulerian,
    "hamiltonian": hamiltonian, "triangles": triangles,
    "diameter": diameter_of_largest_component, "chromatic": chromatic,
}


def graph_labels(target: str, adj: np.ndarray, n: np.ndarray) -> np.ndarray:
    """LABELS[target] in chunks: the (G, N, N) temporaries of 4,096 graphs stay in cache,
    where those of 100,000 made the matrix-power labels 3x slower per graph."""
    return np.concatenate([LABELS[target](adj[i:i + 4096], n[i:i + 4096]).astype(np.int64)
                           for i in range(0, len(n), 4096)])


# -- isomorphism classes -------------------------------------------------------------------
WL_ROUNDS = 6  # fixed, never "until stable": colours must not depend on the batch
_SPLITMIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser on uint64 arrays (wrapping), a cheap well-spread hash."""
    x = (x ^ (x >> np.uint64(30))) * _SPLITMIX[0]
    x = (x ^ (x >> np.uint64(27))) * _SPLITMIX[1]
    return x ^ (x >> np.uint64(31))


def wl_colours(adj: np.ndarray, n: np.ndarray, colour: np.ndarray | None = None) -> np.ndarray:
    """Weisfeiler-Lehman colour refinement, vectorised over graphs: (G, N) uint64 vertex
    colours (0 on padding), from the degrees or the given colours, each round hashing a
    vertex's colour with the sum of hashes of its neighbours' colours (a multiset hash).
    Equivariant: renaming the vertices renames the colours, so isomorphic graphs get equal
    colour multisets and an isomorphism keeps colours."""
    real = _real(n, adj.shape[1])
    a = adj.astype(np.uint64)
    if colour is None:
        colour = np.where(real, adj.sum(axis=2), 0).astype(np.uint64)
    for _ in range(WL_ROUNDS):
        around = np.matmul(a, _mix64(colour + np.uint64(1))[:, :, None])[:, :, 0]
        colour = np.where(real, _mix64(colour * np.uint64(0x9E3779B97F4A7C15) + around), 0)
    return colour


def _by_colour(colour: np.ndarray, real: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The vertex order by colour (padding last; stable) and whether colours are distinct."""
    order = np.argsort(np.where(real, colour, np.uint64(2 ** 64 - 1)), axis=1, kind="stable")
    ties = (np.diff(np.take_along_axis(colour, order, axis=1), axis=1) == 0) & real[:, 1:]
    return order, ~ties.any(axis=1)


def certificates(adj: np.ndarray, n: np.ndarray, colour: np.ndarray) -> np.ndarray:
    """Per graph, n and its adjacency with the vertices listed in an order found by
    individualisation-refinement: while colours repeat, give the first vertex of the
    smallest repeated colour (values are invariant) a colour of its own, and refine.
    Equal certificates prove isomorphism (the two orders are one). Distinct ones disprove
    it when every colour class met is an orbit of the automorphisms (any choice in it is
    then as good), as in most random graphs; `IsomorphismClasses` settles the rest by VF2."""
    real = _real(n, adj.shape[1])
    colour = colour.copy()
    order, discrete = _by_colour(colour, real)
    todo = np.flatnonzero(~discrete)
    for _ in range(adj.shape[1]):  # each pass splits off a vertex, so n passes suffice
        if not todo.size:
            break
        c, r = colour[todo], real[todo]
        # the smallest repeated colour, and the first vertex that has it
        repeated = (c[:, :, None] == c[:, None, :]).sum(axis=2) > 1
        least = np.where(repeated & r, c, np.uint64(2 ** 64 - 1)).min(axis=1)
        v = np.argmax(c == least[:, None], axis=1)
        rows = np.arange(len(todo))
        c[rows, v] = _mix64(c[rows, v] ^ np.uint64(0x5851F42D4C957F2D))
        colour[todo] = wl_colours(adj[todo], n[todo], c)
        order[todo], discrete = _by_colour(colour[todo], r)
        todo = todo[~discrete]
    ordered = np.take_along_axis(np.take_along_axis(adj, order[:, :, None], axis=1),
                                 order[:, None, :], axis=2)
    bits = np.packbits(upper_bits(ordered), axis=1)
    return np.concatenate([n[:, None].astype(np.uint8), bits], axis=1)


def _row_bytes(rows: np.ndarray) -> list[bytes]:
    """Each row of a 2-D array as one bytes object (dictionary keys), without a loop."""
    rows = np.ascontiguousarray(rows)
    return rows.view(np.dtype((np.void, rows.itemsize * rows.shape[1]))).ravel().tolist()


def coloured_graph(k: int, adj: np.ndarray, colour: np.ndarray):
    """A networkx graph on the first k vertices of an adjacency, colours as attribute c."""
    import networkx as nx

    out = nx.Graph()
    out.add_nodes_from((v, {"c": int(colour[v])}) for v in range(k))
    out.add_edges_from(zip(*np.nonzero(np.triu(adj[:k, :k])), strict=True))
    return out


class IsomorphismClasses:
    """Exact isomorphism classes of graphs, numbered 0, 1, ... in order of first appearance
    and remembered across calls, so that a pool of graphs can grow (keys include the
    padding, so every call must pass the same width N).

    Graphs with equal certificates are isomorphic. Graphs with distinct ones can only be
    isomorphic if they have the same WL colours (n and sorted colours: the bucket) and
    repeated colours: such a newcomer is compared by networkx's VF2, colours matched, with
    one graph of each class already in its bucket (rare: most repeats are copies).
    """

    def __init__(self) -> None:
        self.count = 0
        self._certified: dict[bytes, int] = {}
        self._buckets: dict[bytes, list[list]] = {}  # [class, graph or its builder]

    def add(self, n: np.ndarray, adj: np.ndarray) -> np.ndarray:
        """The class of each of G new graphs (n (G,), adjacency (G, N, N))."""
        colour = wl_colours(adj, n)
        _, discrete = _by_colour(colour, _real(n, adj.shape[1]))
        certs = _row_bytes(certificates(adj, n, colour))
        # the bucket: n and the sorted colours (padding, 0, first)
        buckets = _row_bytes(np.concatenate([n[:, None].astype(np.uint64),
                                             np.sort(colour, axis=1)], axis=1))
        out = np.empty(len(n), dtype=np.int64)
        for g, (cert, key, alone) in enumerate(zip(certs, buckets, discrete.tolist(),
                                                   strict=True)):
            found = self._certified.get(cert)
            if found is None and not alone:  # distinct colours make the cert canonical
                bucket = self._buckets.setdefault(key, [])
                found = self._match(coloured_graph(n[g], adj[g], colour[g]), bucket) \
                    if bucket else None
                if found is None:  # its graph is built if a later newcomer needs it
                    bucket.append([self.count, functools.partial(
                        coloured_graph, n[g], adj[g], colour[g])])
            if found is None:
                found, self.count = self.count, self.count + 1
            self._certified[cert] = found
            out[g] = found
        return out

    @staticmethod
    def _match(graph, bucket: list[list]) -> int | None:
        """The class of the bucket's graph that VF2 finds isomorphic to `graph`, if any."""
        import networkx as nx

        for entry in bucket:  # [class, its graph or the function that builds it]
            if callable(entry[1]):
                entry[1] = entry[1]()
            if nx.is_isomorphic(graph, entry[1], node_match=lambda a, b: a["c"] == b["c"]):
                return entry[0]
        return None


def assign_classes(classes: np.ndarray, rng: np.random.Generator,
                   fractions: tuple[float, ...]) -> np.ndarray:
    """A split index per row such that rows of one class share a split: the classes, in
    random order, each go to the split least filled relative to its share of the rows (so
    each split lands within about one class of its share)."""
    _, inverse, counts = np.unique(classes, return_inverse=True, return_counts=True)
    target = np.asarray(fractions) * len(classes)
    filled = np.zeros(len(fractions))
    where = np.empty(len(counts), dtype=np.int64)
    for k in rng.permutation(len(counts)):
        where[k] = s = int(np.argmin(filled / target))
        filled[s] += counts[k]
    return where[inverse]


# -- how each target draws its graphs -----------------------------------------------------
def draw_graphs(target: str, rng: np.random.Generator, count: int, n_min: int,
                n_max: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` random graphs for `target`: (n, adjacency). G(n, p) with a per-graph p whose
    range straddles the label's threshold (so that the pool is near balance);
    bipartite and eulerian instead plant the property (edges only across a random 2-colouring;
    edges flipped between odd vertices) and then break it with one edge flip in part of
    the graphs, since G(n, p) almost never has them except when very sparse."""
    n = rng.integers(n_min, n_max + 1, size=count)
    u = rng.random(count)
    logn = np.log(n)
    if target == "connected":  # threshold p = ln(n)/n
        p = (0.5 + 1.2 * u) * logn / n
    elif target == "hamiltonian":  # threshold p = (ln n + ln ln n)/n
        p = (0.6 + 1.4 * u) * (logn + np.log(logn)) / n
    elif target == "planar":  # mean degree 1-6; small graphs stay planar up to about 3.5
        p = (1.0 + 5.0 * u) / (n - 1)
    elif target == "triangles":  # p^3 uniform, so the counts spread evenly
        p = 0.5 * u ** (1 / 3)
    elif target == "diameter":  # sparse for long diameters, dense for 1 and 2
        p = np.where(rng.random(count) < 0.75, (1.0 + 3.0 * u) / n, 0.25 + 0.75 * u)
    elif target == "chromatic":  # denser graphs more often, for the higher classes
        p = 0.05 + 0.85 * u ** 0.7
    elif target == "bipartite":  # planted: edges only across a random 2-colouring
        p = 0.15 + 0.45 * u
    elif target == "eulerian":
        p = 0.1 + 0.5 * u
    else:
        raise ValueError(target)
    adj = erdos_renyi(rng, n, p, n_max)
    if target == "bipartite":
        side = rng.random((count, n_max)) < 0.5
        adj &= side[:, :, None] != side[:, None, :]
        # near misses: 65% of the graphs get one edge inside a side, which usually
        # closes an odd cycle (the label is computed afterwards, never assumed)
        g = np.flatnonzero(rng.random(count) < 0.65)
        u_ = (rng.random(len(g)) * n[g]).astype(np.int64)
        mates = (side[g] == side[g, u_][:, None]) & _real(n[g], n_max)
        mates[np.arange(len(g)), u_] = False
        v_ = np.argmax(rng.random(mates.shape) * mates, axis=1)  # a random same-side vertex
        ok = mates.any(axis=1)
        toggle(adj, g[ok], u_[ok], v_[ok])
    elif target == "eulerian":
        even_degrees(rng, adj)
        # near misses in 35% (exactly two odd vertices); sparse graphs add disconnected ones
        g = np.flatnonzero(rng.random(count) < 0.35)
        u_, v_ = random_pairs(rng, n[g])
        toggle(adj, g, u_, v_)
    return n, adj


def pick_balanced(y: np.ndarray, total: int, task: TaskType) -> np.ndarray | None:
    """Indices of a label-balanced selection of `total` rows in draw order, or None if the
    pool is too small. Binary: half each; multiclass: every class up to a common quota
    (rare classes give all they have); regression: the first `total`."""
    if task is TaskType.REGRESSION:
        return np.arange(total) if len(y) >= total else None
    classes, counts = np.unique(y, return_counts=True)
    if task is TaskType.BINARY:
        quota = {0: total - total // 2, 1: total // 2}
        if any(counts[classes == c].sum() < q for c, q in quota.items()):
            return None
    else:
        if counts.sum() < total:
            return None
        q = 0  # the largest common quota with sum(min(count, q)) <= total
        while q < counts.max() and np.minimum(counts, q + 1).sum() <= total:
            q += 1
        quota = {c: min(k, q) for c, k in zip(classes, counts, strict=True)}
        short = total - sum(quota.values())  # the remainder goes to the largest classes
        for c in classes[np.argsort(-counts, kind="stable")][:short]:
            quota[c] += 1
    keep = np.zeros(len(y), dtype=bool)
    for c, q in quota.items():
        keep[np.flatnonzero(y == c)[:q]] = True
    return np.flatnonzero(keep)


def upper_bits(adj: np.ndarray) -> np.ndarray:
    iu, ju = np.triu_indices(adj.shape[1], 1)
    return adj[:, iu, ju]


def from_upper_bits(bits: torch.Tensor, n_max: int) -> torch.Tensor:
    iu, ju = torch.triu_indices(n_max, n_max, 1)
    adj = torch.zeros(len(bits), n_max, n_max)
    adj[:, iu, ju] = bits.float()
    return adj + adj.transpose(1, 2)


@register_dataset("graph_properties")
class GraphProperties(MathDataModule):
    """A property of a random graph on 8-20 vertices: connected, planar, chromatic number..."""

    version = "2"  # 2: splits by isomorphism class, class-balanced per split; ood_n_max
    smoke_params = {"target": "connected", "n_min": 6, "n_max": 10, "n_train": 256,
                    "n_val": 64, "n_test": 64}

    def __init__(self, target: Target = "connected", n_min: int = 8, n_max: int | None = None,
                 n_train: int = 6000, n_val: int = 1000, n_test: int = 2000,
                 ood_n_max: int = 0, data_seed: int = 0) -> None:
        super().__init__()
        if target not in TARGETS:
            raise UserError(f"dataset 'graph_properties': parameter target={target!r} is not "
                            f"accepted; choose one of {', '.join(TARGETS)}")
        if n_max is None:
            n_max = HAMILTONIAN_N_MAX if target == "hamiltonian" else 20
        if target == "hamiltonian" and n_max > HAMILTONIAN_N_MAX:
            raise UserError(f"dataset 'graph_properties': target='hamiltonian' needs "
                            f"n_max <= {HAMILTONIAN_N_MAX} (exact search), got n_max={n_max}")
        check_range("n_max", n_max, 4, 32, dataset="graph_properties")
        check_range("n_min", n_min, 3, n_max, dataset="graph_properties")
        # OOD sizes obey the limits of n_max (hamiltonian: those of the exact search)
        widest = HAMILTONIAN_N_MAX if target == "hamiltonian" else 32
        if ood_n_max and n_max >= widest:
            raise UserError(f"dataset 'graph_properties': n_max={n_max} leaves no larger sizes "
                            f"for ood_n_max (at most {widest} vertices for target={target!r}); "
                            "lower n_max or set ood_n_max=0")
        check_range("ood_n_max", ood_n_max, n_max + 1, widest, dataset="graph_properties",
                    zero_means="no OOD split")
        check_split_sizes("graph_properties", n_train, n_val, n_test, hi=1_000_000)
        self.save_hyperparameters()  # with n_max resolved, so the cache key is explicit

    @property
    def n_max(self) -> int:
        return self.params["n_max"]

    @property
    def width(self) -> int:
        """Vertices of the widest graph: every split is padded to it (the OOD sizes too)."""
        return max(self.n_max, self.params["ood_n_max"])

    @property
    def task(self) -> TaskType:
        target = self.params["target"]
        if target == "triangles":
            return TaskType.REGRESSION
        return TaskType.MULTICLASS if target in ("diameter", "chromatic") else TaskType.BINARY

    def generate(self) -> dict[str, dict[str, torch.Tensor]]:
        p = self.params
        rng = self.rng()  # data_seed decides the graphs and the split of their classes
        sizes = {"train": p["n_train"], "val": p["n_val"], "test": p["n_test"]}
        out = self.labelled_splits(rng, sizes, p["n_min"], self.n_max)
        if p["ood_n_max"]:  # larger graphs: isomorphic to no in-distribution graph
            out |= self.labelled_splits(rng, {"ood_test": p["n_test"]}, self.n_max + 1,
                                        p["ood_n_max"])
        return out

    def labelled_splits(self, rng: np.random.Generator, sizes: dict[str, int], n_lo: int,
                        n_hi: int) -> dict[str, dict[str, torch.Tensor]]:
        """Splits of the given sizes, of graphs on n_lo..n_hi vertices, each class-balanced
        on its own; with several splits, every isomorphism class lies in one split."""
        target, task, width = self.params["target"], self.task, self.width
        total = sum(sizes.values())
        iso = IsomorphismClasses() if len(sizes) > 1 else None
        n_all = np.zeros(0, dtype=np.int64)
        bits_all = np.zeros((0, width * (width - 1) // 2), dtype=bool)
        y_all = np.zeros(0, dtype=np.int64)
        cls_all = np.zeros(0, dtype=np.int64)
        for _ in range(50):
            # binary draws a little more than needed and tops up the short class in the
            # next round; multiclass draws twice as many so that the common classes can be
            # capped near what the rarer ones reach
            want = (2 * total if task is TaskType.MULTICLASS else total + total // 4) + 64
            n, adj = draw_graphs(target, rng, want, n_lo, n_hi)
            y = graph_labels(target, adj, n)
            adj = np.pad(adj, ((0, 0), (0, width - n_hi), (0, width - n_hi)))
            old = len(n_all)
            n_all = np.concatenate([n_all, n])
            bits_all = np.concatenate([bits_all, upper_bits(adj)])
            y_all = np.concatenate([y_all, y])
            # identical graphs (same n and edges) may appear once: splits share no input row
            first = first_occurrences(np.concatenate(
                [n_all[:, None].astype(np.uint8), np.packbits(bits_all, axis=1)], axis=1))
            n_all, bits_all, y_all = n_all[first], bits_all[first], y_all[first]
            if iso is not None:  # the pool kept every old row, so the new ones come last
                fresh = first[old:] - old
                cls_all = np.concatenate([cls_all, iso.add(n[fresh], adj[fresh])])
            picks = self.pick_splits(rng, y_all, cls_all if iso is not None else None, sizes)
            if picks is not None:
                break
        else:
            raise RuntimeError(f"graph_properties: could not draw {total} balanced graphs "
                               f"for target {target!r}")
        out = {}
        for split, keep in picks.items():
            order = keep[rng.permutation(len(keep))]
            y = y_all[order] - (1 if target == "chromatic" else 0)  # class k: chromatic k + 1
            out[split] = {"num_nodes": torch.from_numpy(n_all[order]).to(torch.uint8),
                          "adj": torch.from_numpy(bits_all[order]).to(torch.uint8),
                          "y": torch.from_numpy(y) if task is TaskType.MULTICLASS
                          else torch.from_numpy(y).float()}
        return out

    def pick_splits(self, rng: np.random.Generator, y: np.ndarray, classes: np.ndarray | None,
                    sizes: dict[str, int]) -> dict[str, np.ndarray] | None:
        """Rows of the pool for each split (None if the pool is too small): every
        isomorphism class goes whole to one split, label by label (so each split's pool has
        the same label mix), then each split takes a balanced selection of its own pool."""
        split = np.zeros(len(y), dtype=np.int64)
        if classes is not None:
            fractions = tuple(v / sum(sizes.values()) for v in sizes.values())
            strata = y if self.task is not TaskType.REGRESSION else np.zeros_like(y)
            for label in np.unique(strata):  # isomorphic graphs share their label
                rows = np.flatnonzero(strata == label)
                split[rows] = assign_classes(classes[rows], rng, fractions)
        picks = {}
        for s, (name, size) in enumerate(sizes.items()):
            rows = np.flatnonzero(split == s)
            keep = pick_balanced(y[rows], size, self.task)
            if keep is None:
                return None
            picks[name] = rows[keep]
        return picks

    def build_spec(self) -> DatasetSpec:
        target, n_max, task, width = self.params["target"], self.n_max, self.task, self.width
        # diameter d < n and chromatic number k <= n: one class per vertex of the widest graph
        num_outputs = width if task is TaskType.MULTICLASS else 1
        ood = f", OOD up to {width}" if self.params["ood_n_max"] else ""
        return DatasetSpec(
            name=self.name, version=self.version, task=task, num_outputs=num_outputs,
            views=(ViewSpec(Modality.GRAPH, (2,)), ViewSpec(Modality.IMAGE, (1, width, width)),
                   ViewSpec(Modality.VECTOR, (width * (width + 1) // 2,))),
            description=f"{target} of a random graph on {self.params['n_min']}-{n_max} "
                        f"vertices{ood}",
            params=self.params, has_ood=bool(self.params["ood_n_max"]),
            extra={"classes": "chromatic number - 1"} if target == "chromatic" else {})

    def make_view(self, raw: dict[str, torch.Tensor], modality: Modality):
        from benchmarks.graphs import GraphStore

        width = self.width  # every split is stored and shown padded to it
        adj = from_upper_bits(raw["adj"], width)
        n = raw["num_nodes"].long()
        real = (torch.arange(width) < n[:, None]).float()
        if modality is Modality.GRAPH:
            # node features: a constant and the degree scaled to [0, 1]
            x = torch.stack([real, adj.sum(2) / (width - 1)], dim=2)
            return GraphStore.from_dense(adj, n, x)
        # the diagonal marks real vertices, so padding differs from isolated vertices
        marked = adj + torch.diag_embed(real)
        if modality is Modality.IMAGE:
            return marked.unsqueeze(1)
        iu, ju = torch.triu_indices(width, width, 0)
        return marked[:, iu, ju]
