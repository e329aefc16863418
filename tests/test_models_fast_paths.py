"""The faster forward paths of cnn1d, cnn2d, gru, lstm and transformer compute what the
earlier implementations computed: the same parameters (names, shapes, counts), and
outputs and gradients equal to 1e-5 on fixed inputs, in training and evaluation mode.

The earlier forwards are kept here, and only here, as references (from the commit before
the change); each is called on the very same module, so both read the same weights:
- cnn1d on vectors multiplied every block by an all-ones mask (now: no mask);
- cnn2d ran its convolutions on NCHW inputs (now: channels-last);
- gru and lstm packed every batch (now: unpacked when all rows share one length);
- transformer called nn.TransformerEncoder, i.e. nn.MultiheadAttention (now: `encode`,
  the same modules with attention as two matmuls and a softmax).
"""

from __future__ import annotations

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence

from benchmarks.contract import PAD, DatasetSpec, Modality, ViewSpec
from benchmarks.layers import (
    compact_set,
    key_padding_mask,
    real_lengths,
    trim_padding,
    vector_steps,
)
from benchmarks.registry import create_model, load_plugins

load_plugins()


# -- the references ------------------------------------------------------------------------
def cnn1d_reference(self, x):
    if self.embed is not None:
        x = trim_padding(x)
        mask = (x != PAD).unsqueeze(1)
        h = self.embed(x).transpose(1, 2)
    else:
        mask = torch.ones_like(x, dtype=torch.bool).unsqueeze(1)
        h = x.unsqueeze(1)
    for block in self.blocks:
        h = block(h) * mask
    if self.pool == "max":
        pooled = h.amax(dim=2)
    else:
        pooled = h.sum(dim=2) / mask.sum(dim=2).clamp(min=1)
    return self.head(pooled)


def cnn2d_reference(self, x):
    h = self.blocks(x)
    pooled = h.amax(dim=(2, 3)) if self.pool == "max" else h.mean(dim=(2, 3))
    return self.head(pooled)


def recurrent_reference(self, x):
    if self.embed is None:
        _, h_n = self.rnn(vector_steps(x, self.patch))
    else:
        lengths = real_lengths(x).clamp(min=1)
        packed = pack_padded_sequence(self.embed(x), lengths.cpu(), batch_first=True,
                                      enforce_sorted=False)
        _, h_n = self.rnn(packed)
    if isinstance(h_n, tuple):
        h_n = h_n[0]
    directions = 2 if self.rnn.bidirectional else 1
    top = h_n[-directions:].transpose(0, 1).reshape(x.shape[0], -1)
    return self.head(top)


def transformer_reference(self, x, mask=None):
    if self.modality is Modality.SEQUENCE:
        x = trim_padding(x)
        real = x != PAD
    elif self.modality is Modality.SET:
        x, real = compact_set(x, mask)
    else:
        x = vector_steps(x, self.patch)
        real = torch.ones(x.shape[:2], dtype=torch.bool, device=x.device)
    h = self.embed(x)
    if self.positions is not None:
        h = self.positions(h)
    h = self.encoder(h, src_key_padding_mask=key_padding_mask(real))
    weights = real.unsqueeze(-1).to(h.dtype)
    pooled = (h * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
    return self.head(pooled)


REFERENCES = {"cnn1d": cnn1d_reference, "cnn2d": cnn2d_reference,
              "gru": recurrent_reference, "lstm": recurrent_reference,
              "transformer": transformer_reference}


# -- inputs ------------------------------------------------------------------------------------
def sequence_spec(length: int, vocab: int = 6) -> DatasetSpec:
    return DatasetSpec("seq", "1", "multiclass", 3, (ViewSpec("sequence", (length,),
                                                              vocab_size=vocab),
                                                     ViewSpec("vector", (length,))))


def tokens(rows: int, length: int, ragged: bool, seed: int = 1) -> torch.Tensor:
    """Random tokens 1..5; ragged: trailing PAD of different lengths, one all-PAD row."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randint(1, 6, (rows, length), generator=g)
    if ragged:
        for i in range(rows):
            x[i, length - (i % length):] = PAD
        x[-1] = PAD
    else:
        x[:, length - 3:] = PAD  # one length for all, padded past it (as an OOD split)
    return x


def image_spec(shape: tuple[int, int, int]) -> DatasetSpec:
    return DatasetSpec("img", "1", "multilabel", 5,
                       (ViewSpec("image", shape), ViewSpec("vector", (shape[0] * shape[1] * shape[2],))))


def vector_spec(width: int) -> DatasetSpec:
    return DatasetSpec("vec", "1", "regression", 2, (ViewSpec("vector", (width,)),))


def set_spec(size: int, features: int) -> DatasetSpec:
    return DatasetSpec("set", "1", "binary", 1, (ViewSpec("set", (size, features)),
                                                 ViewSpec("vector", (size * features,))))


def randn(*shape: int, seed: int = 2) -> torch.Tensor:
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


CASES = [  # (id, model, hparams, spec, inputs as keyword arguments)
    ("cnn1d-vector-max", "cnn1d", {}, vector_spec(23), {"x": randn(16, 23)}),
    ("cnn1d-vector-mean", "cnn1d", {"pool": "mean"}, vector_spec(23), {"x": randn(16, 23)}),
    ("cnn1d-sequence", "cnn1d", {"pool": "mean"}, sequence_spec(12),
     {"x": tokens(16, 12, ragged=True)}),
    ("cnn2d-4x4", "cnn2d", {}, image_spec((4, 4, 4)), {"x": randn(32, 4, 4, 4)}),
    ("cnn2d-10x10-mean", "cnn2d", {"pool": "mean"}, image_spec((1, 10, 10)),
     {"x": randn(32, 1, 10, 10)}),
    ("gru-one-length", "gru", {}, sequence_spec(12), {"x": tokens(16, 12, ragged=False)}),
    ("gru-ragged", "gru", {}, sequence_spec(12), {"x": tokens(16, 12, ragged=True)}),
    ("gru-bidirectional-2-layers", "gru", {"bidirectional": True, "layers": 2},
     sequence_spec(12), {"x": tokens(16, 12, ragged=False)}),
    ("lstm-one-length", "lstm", {}, sequence_spec(12), {"x": tokens(16, 12, ragged=False)}),
    ("lstm-ragged", "lstm", {"bidirectional": True}, sequence_spec(12),
     {"x": tokens(16, 12, ragged=True)}),
    ("gru-vector", "gru", {"patch": 3}, vector_spec(10), {"x": randn(16, 10)}),
    # lengths below and above 16: the two softmax paths
    ("transformer-short", "transformer", {}, sequence_spec(12), {"x": tokens(16, 12, ragged=True)}),
    ("transformer-long", "transformer", {"positions": "learned"}, sequence_spec(30),
     {"x": tokens(16, 30, ragged=True)}),
    ("transformer-set", "transformer", {"d_model": 24, "nhead": 3}, set_spec(9, 2),
     {"x": randn(16, 9, 2), "mask": torch.arange(9).expand(16, 9) < torch.arange(16)[:, None] % 10}),
    ("transformer-vector", "transformer", {"patch": 2, "layers": 3}, vector_spec(40),
     {"x": randn(16, 40)}),
]


def build(name: str, spec: DatasetSpec, hparams: dict, view: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, spec.for_view(view), **hparams)


def view_of(spec: DatasetSpec) -> str:
    return spec.views[0].key


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("mode", ["train", "eval"])
def test_fast_path_equals_the_reference(case, mode):
    _, name, hparams, spec, inputs = case
    model = build(name, spec, hparams, view_of(spec))
    model.train(mode == "train")
    reference = REFERENCES[name]
    outputs, grads = [], []
    for forward in (lambda **kw: model(**kw), lambda **kw: reference(model, **kw)):
        model.zero_grad(set_to_none=True)
        out = forward(**inputs)
        out.square().sum().backward()  # any loss: gradients of every parameter compared
        outputs.append(out.detach())
        grads.append({k: p.grad.clone() for k, p in model.named_parameters()
                      if p.grad is not None})
    assert torch.allclose(outputs[0], outputs[1], rtol=1e-5, atol=1e-5), \
        (outputs[0] - outputs[1]).abs().max()
    assert grads[0].keys() == grads[1].keys()
    for k in grads[0]:  # to 1e-5 of the gradient's own scale (a summed loss makes it large)
        scale = max(1.0, float(grads[1][k].abs().max()))
        assert float((grads[0][k] - grads[1][k]).abs().max()) <= 1e-5 * scale, k


# Parameter names and counts as at the commit before the change, for the cases above:
# the fast paths changed forward, never a module.
PARAMETERS = {"cnn1d-vector-max": (10658, 11), "cnn1d-vector-mean": (10658, 11),
              "cnn1d-sequence": (13187, 12), "cnn2d-4x4": (19941, 11),
              "cnn2d-10x10-mean": (19077, 11), "gru-one-length": (16035, 7),
              "gru-ragged": (16035, 7), "gru-bidirectional-2-layers": (106467, 19),
              "lstm-one-length": (21283, 7), "lstm-ragged": (42467, 11),
              "gru-vector": (13378, 6), "transformer-short": (17443, 29),
              "transformer-long": (18403, 30), "transformer-set": (9889, 30),
              "transformer-vector": (25858, 42)}


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_parameters_are_unchanged(case):
    key, name, hparams, spec, _ = case
    model = build(name, spec, hparams, view_of(spec))
    count, tensors = PARAMETERS[key]
    assert (sum(p.numel() for p in model.parameters()), len(list(model.parameters()))) == \
        (count, tensors)


def test_transformer_state_dict_keys_are_torchs():
    model = build("transformer", sequence_spec(12), {}, "sequence")
    keys = set(model.state_dict())
    assert {"encoder.layers.0.self_attn.in_proj_weight", "encoder.layers.1.linear2.bias",
            "encoder.layers.0.norm1.weight", "encoder.norm.weight"} <= keys
