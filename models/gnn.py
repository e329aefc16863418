"""Message-passing graph networks (torch_geometric): GCN, GIN, GAT and GraphSAGE.

One shape for all four: a linear node encoder, `layers` pre-norm residual blocks
h <- h + dropout(relu(conv(norm(h)))), a global pooling of the nodes of each graph
(mean, sum or max) and a two-layer head to (B, num_outputs). Only the convolution
differs, so at a fixed parameter budget the comparison is between message functions.

Run: mlwm run --dataset graph_properties --model gin --seed 0
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

from benchmarks.contract import DatasetSpec
from benchmarks.layers import check_dropout, check_positive
from benchmarks.registry import register_model

Pooling = Literal["mean", "sum", "max"]


class GraphNet(nn.Module):
    """Encoder, residual message-passing blocks, global pooling, head."""

    def __init__(self, in_features: int, out_features: int, hidden: int,
                 convs: list[nn.Module], pool: Callable[..., torch.Tensor],
                 dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Linear(in_features, hidden)
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in convs)
        self.dropout = nn.Dropout(dropout)
        self.pool = pool
        self.head = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                  nn.Linear(hidden, out_features))

    def forward(self, data: Any) -> torch.Tensor:
        h = self.encoder(data.x.float())
        for conv, norm in zip(self.convs, self.norms, strict=True):
            h = h + self.dropout(torch.relu(conv(norm(h), data.edge_index)))
        # size=num_graphs keeps a row for a trailing graph without nodes
        return self.head(self.pool(h, data.batch, size=data.num_graphs))


def graph_net(name: str, spec: DatasetSpec, hidden: int, layers: int, dropout: float,
              pooling: str, make_conv: Callable[[int], nn.Module]) -> GraphNet:
    """Check the shared hyperparameters and assemble a GraphNet from a conv builder."""
    from torch_geometric.nn import global_add_pool, global_max_pool, global_mean_pool

    check_positive(name, hidden=hidden, layers=layers)
    check_dropout(name, dropout)
    pool = {"mean": global_mean_pool, "sum": global_add_pool, "max": global_max_pool}[pooling]
    convs = [make_conv(hidden) for _ in range(layers)]
    return GraphNet(spec.input_shape[0], spec.num_outputs, hidden, convs, pool, dropout)


GRAPH = dict(modalities=("graph",), requires=("torch_geometric",), width="hidden",
             tags=("gnn",))


@register_model("gcn", **GRAPH,
                space={"layers": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def gcn(spec: DatasetSpec, hidden: int = 64, layers: int = 3, dropout: float = 0.0,
        pooling: Pooling = "mean") -> nn.Module:
    """Graph convolutional network (Kipf & Welling): degree-normalised neighbour sums."""
    from torch_geometric.nn import GCNConv

    return graph_net("gcn", spec, hidden, layers, dropout, pooling,
                     lambda h: GCNConv(h, h))


@register_model("gin", **GRAPH,
                space={"layers": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def gin(spec: DatasetSpec, hidden: int = 64, layers: int = 3, dropout: float = 0.0,
        pooling: Pooling = "sum") -> nn.Module:
    """Graph isomorphism network (Xu et al.): an MLP on (1+eps) self plus neighbour sum."""
    from torch_geometric.nn import GINConv

    def conv(h: int) -> nn.Module:
        return GINConv(nn.Sequential(nn.Linear(h, h), nn.ReLU(), nn.Linear(h, h)),
                       train_eps=True)

    return graph_net("gin", spec, hidden, layers, dropout, pooling, conv)


@register_model("gat", **GRAPH,
                space={"layers": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def gat(spec: DatasetSpec, hidden: int = 64, layers: int = 3, dropout: float = 0.0,
        heads: int = 2, pooling: Pooling = "mean") -> nn.Module:
    """Graph attention network (Velickovic et al.); heads averaged, so any width works."""
    from torch_geometric.nn import GATConv

    check_positive("gat", heads=heads)
    # concat=False averages the heads: the width stays `hidden` whatever `heads` is
    return graph_net("gat", spec, hidden, layers, dropout, pooling,
                     lambda h: GATConv(h, h, heads=heads, concat=False))


@register_model("graphsage", **GRAPH,
                space={"layers": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def graphsage(spec: DatasetSpec, hidden: int = 64, layers: int = 3, dropout: float = 0.0,
              pooling: Pooling = "mean") -> nn.Module:
    """GraphSAGE (Hamilton et al.): self and mean-of-neighbours weighted separately."""
    from torch_geometric.nn import SAGEConv

    return graph_net("graphsage", spec, hidden, layers, dropout, pooling,
                     lambda h: SAGEConv(h, h))
