"""Recurrent networks: `lstm` and `gru` on token sequences (or a vector read as a sequence
of chunks of `patch` scalars), reading out the hidden state after the last real token.

Sequences of different lengths are packed with their true lengths (pack_padded_sequence),
so extra trailing padding, as in a padded out-of-distribution length split, leaves the
output unchanged. A batch whose rows all have one length (parity, descents, most splits
here) is cut to that length and run unpacked: the same final states, without the packed
path's per-step gradient buffers (on CPU a parity-ood step of the GRU spent half its time
zero-filling them).

Run: mlwm run --dataset parity --model gru --seed 0
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from benchmarks.contract import PAD, DatasetSpec, Modality
from benchmarks.layers import check_dropout, check_positive, real_lengths, vector_steps
from benchmarks.registry import register_model


class RecurrentClassifier(nn.Module):
    def __init__(self, cell: type[nn.RNNBase], vocab_size: int | None, embed_dim: int,
                 hidden: int, layers: int, bidirectional: bool, dropout: float,
                 patch: int, num_outputs: int) -> None:
        super().__init__()
        self.patch = patch
        self.embed = (nn.Embedding(vocab_size, embed_dim, padding_idx=PAD)
                      if vocab_size is not None else None)
        in_size = embed_dim if vocab_size is not None else patch
        self.rnn = cell(in_size, hidden, num_layers=layers, batch_first=True,
                        bidirectional=bidirectional, dropout=dropout if layers > 1 else 0.0)
        self.head = nn.Linear(hidden * (2 if bidirectional else 1), num_outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.embed is None:  # vector view: every step is real, nothing to pack
            _, h_n = self.rnn(vector_steps(x, self.patch))
        else:
            # Length = position of the last real token + 1 (not the count of real tokens),
            # so a stray PAD inside a sequence is read as a token rather than cutting it;
            # an all-PAD row keeps one step because packing refuses length 0.
            lengths = real_lengths(x).clamp(min=1).cpu()
            shortest, longest = int(lengths.min()), int(lengths.max())
            if shortest == longest:  # one length: its last step is every row's last
                _, h_n = self.rnn(self.embed(x[:, :longest]))
            else:
                packed = pack_padded_sequence(self.embed(x), lengths, batch_first=True,
                                              enforce_sorted=False)
                _, h_n = self.rnn(packed)  # final states at each sequence's own length
        if isinstance(h_n, tuple):  # LSTM returns (h_n, c_n)
            h_n = h_n[0]
        # h_n: (layers * directions, B, hidden); keep the top layer's directions.
        directions = 2 if self.rnn.bidirectional else 1
        top = h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)
        return self.head(top)


def build(name: str, cell: type[nn.RNNBase], spec: DatasetSpec, hidden: int, layers: int,
          embed_dim: int, bidirectional: bool, dropout: float, patch: int) -> nn.Module:
    check_positive(name, hidden=hidden, layers=layers, embed_dim=embed_dim, patch=patch)
    check_dropout(name, dropout)
    vocab = spec.vocab_size if spec.modality is Modality.SEQUENCE else None
    return RecurrentClassifier(cell, vocab, embed_dim, hidden, layers, bidirectional,
                               dropout, patch, spec.num_outputs)


@register_model("lstm", modalities=("sequence", "vector"), width="hidden",
                space={"layers": ("int", 1, 2), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def lstm(spec: DatasetSpec, hidden: int = 64, layers: int = 1, embed_dim: int = 16,
         bidirectional: bool = False, dropout: float = 0.0, patch: int = 1) -> nn.Module:
    """LSTM over tokens, read at the last real step (vectors: `patch` entries a step).

    embed_dim applies to token sequences, patch to the vector view only.
    """
    return build("lstm", nn.LSTM, spec, hidden, layers, embed_dim, bidirectional, dropout,
                 patch)


@register_model("gru", modalities=("sequence", "vector"), width="hidden",
                space={"layers": ("int", 1, 2), "lr": ("logfloat", 3e-4, 1e-2),
                       "weight_decay": ("logfloat", 1e-6, 1e-2)})
def gru(spec: DatasetSpec, hidden: int = 64, layers: int = 1, embed_dim: int = 16,
        bidirectional: bool = False, dropout: float = 0.0, patch: int = 1) -> nn.Module:
    """GRU over tokens, read at the last real step (vectors: `patch` entries a step).

    embed_dim applies to token sequences, patch to the vector view only.
    """
    return build("gru", nn.GRU, spec, hidden, layers, embed_dim, bidirectional, dropout,
                 patch)
