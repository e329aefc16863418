"""Multi-layer perceptron: the reference family, on any dataset through its vector view.

Run: mlwm run --dataset parity --model mlp --seed 0
"""

from __future__ import annotations

import math

from torch import nn

from benchmarks.contract import DatasetSpec
from benchmarks.layers import check_positive
from benchmarks.registry import register_model


class MLP(nn.Module):
    def __init__(self, in_features: int, out_features: int, hidden: int, depth: int,
                 dropout: float) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = in_features
        for _ in range(depth - 1):
            layers += [nn.Linear(width, hidden), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = hidden
        layers.append(nn.Linear(width, out_features))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


@register_model("mlp", modalities=("vector", "tabular"), width="hidden",
                space={"depth": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def mlp(spec: DatasetSpec, hidden: int = 256, depth: int = 3, dropout: float = 0.0) -> nn.Module:
    """MLP with ReLU on the flattened vector view (depth counts linear layers)."""
    check_positive("mlp", hidden=hidden, depth=depth)
    return MLP(math.prod(spec.input_shape), spec.num_outputs, hidden, depth, dropout)
