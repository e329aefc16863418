"""A small Transformer encoder with masked mean pooling, on sequences, sets and vectors.

Sequences: token embedding + positional encoding, PAD keys masked out of attention.
Sets: a linear embedding of each element and NO positional encoding, so the encoder is
permutation equivariant and the masked mean makes the output permutation invariant.
Vectors: a sequence of chunks of `patch` consecutive entries (linear embedding + positions);
patch=1 reads one scalar a step, a larger patch shortens long vectors (attention is
quadratic in the number of steps).

The encoder's modules are torch's (nn.TransformerEncoder of pre-norm layers, so the
parameters and their names are torch's), but `encode` runs them with attention written
out as two batched matmuls and a softmax: on CPU, nn.MultiheadAttention's path (SDPA's
flash kernel for CPU) spent ~40% of a training step on these tiny heads (length 10-40,
head width 8), and torch's softmax over a last axis shorter than 16 is ~8x slower than
exp and sum (its vectorised path needs 16 floats), so short sequences take the latter.
The same function to float rounding (tests/test_models_fast_paths.py).

Run: mlwm run --dataset parity --model transformer --seed 0
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from benchmarks.contract import PAD, DatasetSpec, Modality
from benchmarks.layers import (
    check_dropout,
    check_positive,
    compact_set,
    heads_for,
    key_padding_mask,
    trim_padding,
    vector_steps,
)
from benchmarks.registry import register_model


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding, (length, d_model); odd widths drop the last cosine."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table


def softmax_last(scores: torch.Tensor) -> torch.Tensor:
    """Softmax over the last axis; below 16 entries as exp over the sum (see the module
    docstring). Subtracting the detached max leaves value and gradient unchanged, since
    softmax ignores a shift, and keeps exp finite; masked -inf scores give exact zeros."""
    if scores.shape[-1] >= 16:
        return torch.softmax(scores, dim=-1)
    e = (scores - scores.amax(dim=-1, keepdim=True).detach()).exp()
    return e / e.sum(dim=-1, keepdim=True)


def self_attention(mha: nn.MultiheadAttention, x: torch.Tensor,
                   key_bias: torch.Tensor) -> torch.Tensor:
    """mha(x, x, x) with its own weights, for batch_first (B, L, E) inputs; key_bias is
    (B, 1, 1, L), 0 for a key to attend to and -inf for padding."""
    b, length, width = x.shape
    heads = mha.num_heads
    qkv = nn.functional.linear(x, mha.in_proj_weight, mha.in_proj_bias)
    q, k, v = qkv.view(b, length, 3, heads, width // heads).permute(2, 0, 3, 1, 4)
    scores = torch.matmul(q, k.transpose(-2, -1)) * (width // heads) ** -0.5 + key_bias
    weights = nn.functional.dropout(softmax_last(scores), mha.dropout, mha.training)
    out = torch.matmul(weights, v).transpose(1, 2).reshape(b, length, width)
    return mha.out_proj(out)


def encode(encoder: nn.TransformerEncoder, h: torch.Tensor, pad: torch.Tensor) -> torch.Tensor:
    """encoder(h, src_key_padding_mask=pad) for pre-norm layers (norm_first=True), with
    `self_attention` in place of nn.MultiheadAttention's path."""
    key_bias = torch.zeros(pad.shape, dtype=h.dtype, device=h.device)
    key_bias = key_bias.masked_fill(pad, float("-inf"))[:, None, None, :]
    for layer in encoder.layers:
        h = h + layer.dropout1(self_attention(layer.self_attn, layer.norm1(h), key_bias))
        ff = layer.linear2(layer.dropout(layer.activation(layer.linear1(layer.norm2(h)))))
        h = h + layer.dropout2(ff)
    return encoder.norm(h)


class PositionalEncoding(nn.Module):
    """Adds a position code; learned codes exist up to max_len, sinusoidal ones at any length."""

    def __init__(self, kind: str, max_len: int, d_model: int) -> None:
        super().__init__()
        self.kind, self.d_model = kind, d_model
        if kind == "learned":
            self.table = nn.Parameter(torch.randn(max_len, d_model) * 0.02)
        else:
            self.register_buffer("table", sinusoidal_table(max_len, d_model), persistent=False)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        length, table = h.shape[1], self.table
        if length > table.shape[0]:  # longer than the spec promised
            if self.kind == "learned":
                raise ValueError(f"sequence of length {length} exceeds the {table.shape[0]} "
                                 "learned positions; use positions='sinusoidal'")
            table = sinusoidal_table(length, self.d_model).to(h.device)
        return h + table[:length]


class TransformerClassifier(nn.Module):
    def __init__(self, modality: Modality, in_dim: int, vocab_size: int | None, max_len: int,
                 d_model: int, nhead: int, layers: int, ff_mult: int, dropout: float,
                 positions: str, patch: int, num_outputs: int) -> None:
        super().__init__()
        self.modality, self.patch = modality, patch
        if modality is Modality.SEQUENCE:
            self.embed: nn.Module = nn.Embedding(vocab_size, d_model, padding_idx=PAD)
        else:
            self.embed = nn.Linear(in_dim, d_model)
        # Sets get no positions: that is what keeps the model permutation invariant.
        self.positions = (PositionalEncoding(positions, max_len, d_model)
                          if modality is not Modality.SET else None)
        layer = nn.TransformerEncoderLayer(d_model, heads_for(d_model, nhead),
                                           ff_mult * d_model, dropout, batch_first=True,
                                           norm_first=True)
        # Pre-norm layers need a final norm; `encode` runs them (nested tensors off:
        # torch's own forward, never called here, would otherwise build them).
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.modality is Modality.SEQUENCE:
            # Drop the columns after the batch's last real token: padding to an OOD
            # length then costs nothing, and positions are unchanged.
            x = trim_padding(x)
            real = x != PAD
        elif self.modality is Modality.SET:
            x, real = compact_set(x, mask)
        else:  # vector: (B, D) -> (B, ceil(D / patch), patch), the tail zero-padded
            x = vector_steps(x, self.patch)
            real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        h = self.embed(x)
        if self.positions is not None:
            h = self.positions(h)
        # An all-padding row attends to its first slot (no key at all would give NaN).
        h = encode(self.encoder, h, key_padding_mask(real))
        weights = real.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


@register_model("transformer", modalities=("sequence", "set", "vector"), width="d_model",
                space={"layers": ("int", 1, 3), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def transformer(spec: DatasetSpec, d_model: int = 32, nhead: int = 4, layers: int = 2,
                ff_mult: int = 2, dropout: float = 0.0,
                positions: Literal["sinusoidal", "learned"] = "sinusoidal",
                patch: int = 1) -> nn.Module:
    """Transformer encoder + masked mean pooling (no positions on sets).

    positions: sinusoidal (any length; on descents it trained better than learned codes)
    or learned (up to the spec's length). nhead is lowered to the largest divisor of d_model not above it, so that every width
    builds; the feed-forward width is ff_mult * d_model; patch applies to vectors only.
    """
    check_positive("transformer", d_model=d_model, nhead=nhead, layers=layers,
                   ff_mult=ff_mult, patch=patch)
    check_dropout("transformer", dropout)
    shape = spec.input_shape
    if spec.modality is Modality.SET:
        in_dim, max_len = shape[1], shape[0]
    elif spec.modality is Modality.VECTOR:
        in_dim, max_len = patch, -(-shape[0] // patch)
    else:
        in_dim, max_len = 1, shape[0]
    return TransformerClassifier(spec.modality, in_dim, spec.vocab_size, max_len, d_model, nhead,
                                 layers, ff_mult, dropout, positions, patch, spec.num_outputs)
