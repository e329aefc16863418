"""Pictures of attributions: matplotlib Figure objects, never pyplot's global state.

`heatmap(attr, spec, mask)` picks the picture for the view: mean |attribution| by output x
input position (vector, tabular, sequence, set), a grid of Cayley tables or images (one
panel per output), or, with `graphs`, one graph drawn with its node attributions (and edge
weights where given). Inputs known to be relevant are outlined: those a mask marks in at
least half of the rows. The caller saves the figure (fig.savefig(path)).
"""

from __future__ import annotations

from typing import Any

import torch

from ..contract import DatasetSpec, Modality

OUTLINE = "#d62728"  # the outline of known relevant inputs
MAX_PANELS = 12      # outputs drawn as separate tables or images


def _mean_magnitude(attr: Any) -> torch.Tensor:
    """(K, *layout): mean |attribution| over rows."""
    return torch.as_tensor(attr).detach().float().abs().mean(0)


def _outlined(mask: Any, shape: tuple[int, ...]) -> torch.Tensor | None:
    """(K, *layout) bool: relevant in at least half of the rows (None: no mask)."""
    if mask is None:
        return None
    m = torch.as_tensor(mask).bool()
    if m.dim() != len(shape) + 1:
        raise ValueError(f"mask {tuple(m.shape)} does not match attributions (N, *{shape})")
    return m.expand(m.shape[0], *shape).float().mean(0) >= 0.5


def _box(ax: Any, x: float, y: float) -> None:
    from matplotlib.patches import Rectangle

    ax.add_patch(Rectangle((x - 0.5, y - 0.5), 1, 1, fill=False, edgecolor=OUTLINE, lw=2))


def output_by_input(attr: Any, mask: Any = None, *, title: str = "",
                    xlabel: str = "input position") -> Any:
    """Mean |attribution| as an outputs x inputs heat map (layout flattened)."""
    from matplotlib.figure import Figure

    mag = _mean_magnitude(attr)
    grid = mag.reshape(mag.shape[0], -1)
    rel = _outlined(mask, tuple(mag.shape))
    fig = Figure(figsize=(max(4.0, 0.25 * grid.shape[1] + 2), max(2.0, 0.3 * grid.shape[0] + 1.5)),
                 layout="constrained")
    ax = fig.subplots()
    im = ax.imshow(grid.numpy(), aspect="auto", cmap="viridis", interpolation="nearest")
    if rel is not None:
        for k, j in rel.reshape(grid.shape).nonzero().tolist():
            _box(ax, j, k)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("output")
    ax.set_title(title or "mean |attribution|")
    fig.colorbar(im, ax=ax, shrink=0.8)
    return fig


def table_grid(attr: Any, mask: Any = None, *, title: str = "") -> Any:
    """One panel per output (up to MAX_PANELS): mean |attribution| per cell of (C, H, W)
    layouts summed over channels (a Cayley table's value channels, an image's colours)."""
    from matplotlib.figure import Figure

    mag = _mean_magnitude(attr)                       # (K, C, H, W)
    rel = _outlined(mask, tuple(mag.shape))
    cells = mag.sum(1)                                # (K, H, W)
    rel_cells = None if rel is None else rel.any(1)   # relevant in some channel
    k = min(cells.shape[0], MAX_PANELS)
    cols = min(k, 4)
    rows = -(-k // cols)
    fig = Figure(figsize=(3.0 * cols, 3.0 * rows), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False)
    for i, ax in enumerate(axes.flat):
        if i >= k:
            ax.set_axis_off()
            continue
        im = ax.imshow(cells[i].numpy(), cmap="viridis", interpolation="nearest")
        if rel_cells is not None:
            for y, x in rel_cells[i].nonzero().tolist():
                _box(ax, x, y)
        ax.set_title(f"output {i}")
        fig.colorbar(im, ax=ax, shrink=0.7)
    fig.suptitle(title or "mean |attribution| per cell")
    return fig


def graph_drawing(node_attr: Any, edge_index: Any, mask: Any = None, *,
                  edge_weight: Any = None, title: str = "") -> Any:
    """One graph on a circle: nodes coloured by |attribution| (n,), edges drawn with width
    by edge_weight (E,) if given, relevant nodes (mask (n,)) outlined."""
    import math

    from matplotlib.figure import Figure

    values = torch.as_tensor(node_attr).detach().float().abs().reshape(-1)
    n = len(values)
    pos = [(math.cos(2 * math.pi * i / n), math.sin(2 * math.pi * i / n)) for i in range(n)]
    edges = torch.as_tensor(edge_index).reshape(2, -1).tolist()
    weights = None if edge_weight is None else torch.as_tensor(edge_weight).float().abs()
    top = float(weights.max()) if weights is not None and len(weights) else 1.0
    fig = Figure(figsize=(4.5, 4.5), layout="constrained")
    ax = fig.subplots()
    for e, (u, v) in enumerate(zip(*edges, strict=True)):
        w = 1.0 if weights is None else 0.5 + 4.0 * float(weights[e]) / (top or 1.0)
        ax.plot([pos[u][0], pos[v][0]], [pos[u][1], pos[v][1]], color="0.6", lw=w, zorder=1)
    rel = None if mask is None else torch.as_tensor(mask).bool().reshape(-1)
    sc = ax.scatter([p[0] for p in pos], [p[1] for p in pos], c=values.numpy(), cmap="viridis",
                    s=260, zorder=2, linewidths=[3.0 if rel is not None and rel[i] else 0.5
                                                 for i in range(n)],
                    edgecolors=[OUTLINE if rel is not None and rel[i] else "k" for i in range(n)])
    for i, (x, y) in enumerate(pos):
        ax.annotate(str(i), (x, y), ha="center", va="center", fontsize=7, color="w", zorder=3)
    ax.set_aspect("equal")
    ax.set_axis_off()
    ax.set_title(title or "|attribution| per node")
    fig.colorbar(sc, ax=ax, shrink=0.7)
    return fig


def heatmap(attr: Any, spec: DatasetSpec, mask: Any = None, *, graphs: Any = None,
            index: int = 0, title: str = "") -> Any:
    """The picture for spec's view: see the module docstring. A graph view draws graph
    `index` of `graphs` (a GraphStore or Batch of the attributed rows), its first output."""
    title = title or f"{spec.name} ({spec.modality.value} view)"
    if spec.modality is Modality.IMAGE:
        return table_grid(attr, mask, title=title)
    if spec.modality is Modality.GRAPH:
        if graphs is None:
            return output_by_input(attr, mask, title=title, xlabel="node")
        # the attributed rows are the graphs in order; a store gives graph `index` alone
        one = graphs.take(torch.tensor([index])) if hasattr(graphs, "take") else graphs
        at = 0 if hasattr(graphs, "take") else index
        start, stop = int(one.ptr[at]), int(one.ptr[at + 1])
        keep = (one.edge_index[0] >= start) & (one.edge_index[0] < stop)
        rel = None
        if mask is not None:
            m = torch.as_tensor(mask).bool()
            rel = m[min(index, m.shape[0] - 1), 0, : stop - start]
        return graph_drawing(torch.as_tensor(attr)[index, 0, : stop - start],
                             one.edge_index[:, keep] - start, rel, title=title)
    label = {Modality.SEQUENCE: "position", Modality.SET: "element"}.get(spec.modality, "feature")
    return output_by_input(attr, mask, title=title, xlabel=label)
