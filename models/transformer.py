"""A small Transformer encoder with masked mean pooling, on sequences, sets and vectors.

Sequences: token embedding + positional encoding, PAD keys masked out of attention.
Sets: a linear embedding of each element and NO positional encoding, so the encoder is
permutation equivariant and the masked mean makes the output permutation invariant.
Vectors: a sequence of chunks of `patch` consecutive entries (linear embedding + positions);
patch=1 reads one scalar a step, a larger patch shortens long vectors (attention is
quadratic in the number of steps).

Run: mlwm run --dataset parity --model transformer --seed 0
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from benchmarks.contract import PAD, DatasetSpec, Modality
from benchmarks.errors import UserError
from benchmarks.registry import register_model


def heads_for(d_model: int, nhead: int) -> int:
    """The largest head count <= nhead that divides d_model, so that any width builds
    (attention's parameter count does not depend on the number of heads)."""
    return max(h for h in range(1, min(nhead, d_model) + 1) if d_model % h == 0)


def compact_set(x: torch.Tensor,
                mask: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Real elements first, padded slots zeroed, slots that no row uses dropped: exact
    without positions, and the cost follows the largest set in the batch, not the padded
    width. (Copied from sets.py: model plugins do not import each other.)"""
    if mask is None:
        return x, torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    order = torch.argsort((~mask).to(torch.int8), dim=1, stable=True)
    order = order[:, : max(int(mask.sum(dim=1).max()), 1)]
    mask = torch.gather(mask, 1, order)
    x = torch.gather(x, 1, order.unsqueeze(-1).expand(-1, -1, x.shape[-1]))
    return x.masked_fill(~mask.unsqueeze(-1), 0.0), mask


def sinusoidal_table(length: int, d_model: int) -> torch.Tensor:
    """Vaswani et al.'s fixed encoding, (length, d_model); odd widths drop the last cosine."""
    pos = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    freq = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32)
                     * (-math.log(10000.0) / d_model))
    table = torch.zeros(length, d_model)
    table[:, 0::2] = torch.sin(pos * freq)
    table[:, 1::2] = torch.cos(pos * freq)[:, : d_model // 2]
    return table


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
        # Pre-norm layers need a final norm; nested tensors are off so that padded and
        # unpadded batches take the same code path.
        self.encoder = nn.TransformerEncoder(layer, layers, norm=nn.LayerNorm(d_model),
                                             enable_nested_tensor=False)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, x: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        if self.modality is Modality.SEQUENCE:
            # Drop the columns after the batch's last real token: padding to an OOD
            # length then costs nothing, and positions are unchanged.
            steps = torch.arange(1, x.shape[1] + 1, device=x.device)
            x = x[:, : max(int(((x != PAD) * steps).max()), 1)]
            real = x != PAD
        elif self.modality is Modality.SET:
            x, real = compact_set(x, mask)
        else:  # vector: (B, D) -> (B, ceil(D / patch), patch), the tail zero-padded
            x = x.flatten(1)
            x = nn.functional.pad(x, (0, -x.shape[1] % self.patch)).unflatten(1, (-1, self.patch))
            real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
        h = self.embed(x)
        if self.positions is not None:
            h = self.positions(h)
        # An all-padding row would give attention nothing to attend to (NaN): let it
        # attend to its first slot instead.
        empty = ~real.any(dim=1)
        keys = real.clone()
        keys[empty, 0] = True
        h = self.encoder(h, src_key_padding_mask=~keys)
        weights = real.unsqueeze(-1).to(h.dtype)
        pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
        return self.head(pooled)


@register_model("transformer", modalities=("sequence", "set", "vector"), width="d_model")
def transformer(spec: DatasetSpec, d_model: int = 32, nhead: int = 4, layers: int = 2,
                ff_mult: int = 2, dropout: float = 0.0,
                positions: Literal["sinusoidal", "learned"] = "sinusoidal",
                patch: int = 1) -> nn.Module:
    """Transformer encoder + masked mean pooling (no positions on sets).

    positions: sinusoidal (any length; on descents it trained better than learned codes)
    or learned (up to the spec's length). nhead is lowered to the largest divisor of d_model not above it, so that every width
    builds; the feed-forward width is ff_mult * d_model; patch applies to vectors only.
    """
    if min(d_model, nhead, layers, ff_mult, patch) < 1:
        raise UserError(f"model 'transformer': d_model, nhead, layers, ff_mult and patch must "
                        f"be >= 1, got {d_model}, {nhead}, {layers}, {ff_mult}, {patch}")
    if not 0.0 <= dropout < 1.0:
        raise UserError(f"model 'transformer': dropout must be in [0, 1), got {dropout}")
    shape = spec.input_shape
    if spec.modality is Modality.SET:
        in_dim, max_len = shape[1], shape[0]
    elif spec.modality is Modality.VECTOR:
        in_dim, max_len = patch, -(-shape[0] // patch)
    else:
        in_dim, max_len = 1, shape[0]
    return TransformerClassifier(spec.modality, in_dim, spec.vocab_size, max_len, d_model, nhead,
                                 layers, ff_mult, dropout, positions, patch, spec.num_outputs)
