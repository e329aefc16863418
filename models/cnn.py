"""Convolutional networks: `cnn1d` on token sequences (or a vector read as a 1-channel
signal) and `cnn2d` on images; conv + batch norm + ReLU blocks, then global pooling.

On sequences, padded positions are zeroed after every block and left out of the
pooling, so in eval mode extra trailing padding acts like the convolution's own zero
padding and the output does not change. (In training, batch norm's batch statistics
still count the pad positions inside the batch's longest sequence.) A vector has no
padding, so it skips the masks. cnn2d convolves channels-last (NHWC), oneDNN's own
layout: the same function, without a reorder around every convolution.

Run: mlwm run --dataset descents --params encoding=matrix --model cnn2d --seed 0
"""

from __future__ import annotations

from itertools import pairwise
from typing import Literal

import torch
from torch import nn

from benchmarks.contract import PAD, DatasetSpec, Modality
from benchmarks.layers import check_positive, trim_padding
from benchmarks.registry import register_model

Pool = Literal["max", "mean"]


def conv_block(conv: type[nn.Module], bn: type[nn.Module], c_in: int, c_out: int,
               kernel_size: int) -> nn.Sequential:
    # No conv bias: batch norm's shift replaces it.
    return nn.Sequential(conv(c_in, c_out, kernel_size, padding="same", bias=False),
                         bn(c_out), nn.ReLU())


class CNN1d(nn.Module):
    def __init__(self, in_channels: int, vocab_size: int | None, embed_dim: int,
                 channels: int, depth: int, kernel_size: int, pool: str,
                 num_outputs: int) -> None:
        super().__init__()
        # Token sequences are embedded (PAD embeds to zero); vectors are one raw channel.
        self.embed = (nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
                      if vocab_size is not None else None)
        widths = [in_channels] + [channels] * depth
        self.blocks = nn.ModuleList(conv_block(nn.Conv1d, nn.BatchNorm1d, a, b, kernel_size)
                                    for a, b in pairwise(widths))
        self.pool = pool
        self.head = nn.Linear(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is None:  # a vector: every position is real, no mask to apply
            h = x.unsqueeze(1)
            for block in self.blocks:
                h = block(h)
            pooled = h.amax(dim=2) if self.pool == "max" else h.sum(dim=2) / h.shape[2]
            return self.head(pooled)
        # Columns after the batch's last real token are dropped: the same output at
        # less cost when a split is padded to a longer OOD length.
        x = trim_padding(x)
        mask = (x != PAD).unsqueeze(1)                # (B, 1, L)
        h = self.embed(x).transpose(1, 2)             # (B, E, L)
        for block in self.blocks:
            h = block(h) * mask  # padding stays zero, like the conv's own padding
        if self.pool == "max":
            # After ReLU every value is >= 0, so the zeroed pads never win the max.
            pooled = h.amax(dim=2)
        else:
            pooled = h.sum(dim=2) / mask.sum(dim=2).clamp(min=1)
        return self.head(pooled)


class CNN2d(nn.Module):
    def __init__(self, in_channels: int, channels: int, depth: int, kernel_size: int,
                 pool: str, num_outputs: int) -> None:
        super().__init__()
        widths = [in_channels] + [channels] * depth
        self.blocks = nn.Sequential(*(conv_block(nn.Conv2d, nn.BatchNorm2d, a, b, kernel_size)
                                      for a, b in pairwise(widths)))
        self.pool = pool
        self.head = nn.Linear(channels, num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Channels-last: oneDNN's convolutions take NHWC without reordering, and batch
        # norm reduces over the contiguous channel axis (on 4x4 to 20x20 images about
        # 1.1-1.4x a training step on CPU; the same function to float rounding). Made by
        # permutes rather than .contiguous(memory_format=...), which torch.vmap refuses.
        h = self.blocks(x.permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2))
        pooled = h.amax(dim=(2, 3)) if self.pool == "max" else h.mean(dim=(2, 3))
        return self.head(pooled)


@register_model("cnn1d", modalities=("sequence", "vector"), width="channels",
                space={"depth": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def cnn1d(spec: DatasetSpec, channels: int = 32, depth: int = 3, kernel_size: int = 5,
          embed_dim: int = 16, pool: Pool = "max") -> nn.Module:
    """1-D CNN (conv, batch norm, ReLU) with global pooling on sequences or vectors."""
    check_positive("cnn1d", channels=channels, depth=depth, kernel_size=kernel_size,
                   embed_dim=embed_dim)
    if spec.modality is Modality.SEQUENCE:
        return CNN1d(embed_dim, spec.vocab_size, embed_dim, channels, depth, kernel_size,
                     pool, spec.num_outputs)
    return CNN1d(1, None, embed_dim, channels, depth, kernel_size, pool, spec.num_outputs)


@register_model("cnn2d", modalities=("image",), width="channels",
                space={"depth": ("int", 2, 4), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def cnn2d(spec: DatasetSpec, channels: int = 32, depth: int = 3, kernel_size: int = 3,
          pool: Pool = "max") -> nn.Module:
    """2-D CNN (conv, batch norm, ReLU) with global pooling on images."""
    check_positive("cnn2d", channels=channels, depth=depth, kernel_size=kernel_size)
    return CNN2d(spec.input_shape[0], channels, depth, kernel_size, pool, spec.num_outputs)
