"""Neural model families (cnn, rnn, transformer, sets): output shapes per modality, the
invariances their designs promise (set permutations, sequence padding), widths that
build at any size with a growing parameter count, and one-line errors for bad hparams."""

from __future__ import annotations

import pytest
import torch

from benchmarks.contract import PAD, DatasetSpec, Modality, ViewSpec
from benchmarks.errors import UserError
from benchmarks.registry import create_model, get_model_entry

NEURAL = ("cnn1d", "cnn2d", "lstm", "gru", "transformer", "deepsets", "set_transformer")
SET_MODELS = ("deepsets", "set_transformer", "transformer")
SET_CASES = [("deepsets", {}), ("deepsets", {"pool": "mean"}), ("set_transformer", {}),
             ("set_transformer", {"block": "isab", "ln": False}), ("transformer", {})]
SEQUENCE_MODELS = ("lstm", "gru", "transformer", "cnn1d")

L, VOCAB, S, F = 9, 5, 7, 3
SPECS = {
    Modality.SEQUENCE: DatasetSpec("seq", "1", "binary", 1,
                                   (ViewSpec("sequence", (L,), vocab_size=VOCAB),
                                    ViewSpec("vector", (L,)))),
    Modality.VECTOR: DatasetSpec("vec", "1", "multiclass", 4, (ViewSpec("vector", (L,)),)),
    Modality.IMAGE: DatasetSpec("img", "1", "multilabel", 6,
                                (ViewSpec("image", (2, 6, 6)), ViewSpec("vector", (72,)))),
    Modality.SET: DatasetSpec("set", "1", "regression", 2,
                              (ViewSpec("set", (S, F)), ViewSpec("vector", (S * F,)))),
}


def build(name: str, modality: Modality, **hparams) -> torch.nn.Module:
    torch.manual_seed(0)
    return create_model(name, SPECS[modality].for_view(modality), **hparams).eval()


def batch(modality: Modality, b: int = 4):
    g = torch.Generator().manual_seed(1)
    if modality is Modality.SEQUENCE:
        x = torch.randint(1, VOCAB, (b, L), generator=g)
        for i in range(b):  # variable lengths: pad the tail of each row
            x[i, L - i:] = PAD
        return {"x": x}
    if modality is Modality.IMAGE:
        return {"x": torch.rand(b, 2, 6, 6, generator=g)}
    if modality is Modality.SET:
        mask = torch.ones(b, S, dtype=torch.bool)
        mask[1, 4:] = False
        mask[2, 1:] = False
        return {"x": torch.randn(b, S, F, generator=g), "mask": mask}
    return {"x": torch.rand(b, L, generator=g)}


@pytest.mark.parametrize("name", NEURAL)
def test_output_shape_on_every_modality(name):
    for modality in get_model_entry(name).modalities:
        out = build(name, modality)(**batch(modality))
        assert out.shape == (4, SPECS[modality].num_outputs), (name, modality)
        assert torch.isfinite(out).all()


@pytest.mark.parametrize("name, hparams", SET_CASES)
def test_set_models_are_permutation_invariant(name, hparams):
    model = build(name, Modality.SET, **hparams)
    inputs = batch(Modality.SET)
    x, mask = inputs["x"], inputs["mask"]
    # Shuffle the slots (padding included) row by row; mask moves with its element.
    perm = torch.stack([torch.randperm(S, generator=torch.Generator().manual_seed(i))
                        for i in range(x.shape[0])])
    x_p = torch.gather(x, 1, perm.unsqueeze(-1).expand(-1, -1, F))
    mask_p = torch.gather(mask, 1, perm)
    with torch.no_grad():
        a, b = model(x=x, mask=mask), model(x=x_p, mask=mask_p)
    assert torch.allclose(a, b, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(a[0], a[3])  # not invariant merely by being constant


@pytest.mark.parametrize("name, hparams", SET_CASES)
def test_set_models_ignore_padding(name, hparams):
    model = build(name, Modality.SET, **hparams)
    x, mask = batch(Modality.SET).values()
    wider_x = torch.cat([x, torch.randn(x.shape[0], 3, F) * 100], dim=1)  # junk in pads
    wider_mask = torch.cat([mask, torch.zeros(x.shape[0], 3, dtype=torch.bool)], dim=1)
    junk_x = x.masked_fill(~mask.unsqueeze(-1), 7.0)
    with torch.no_grad():
        ref = model(x=x, mask=mask)
        assert torch.allclose(ref, model(x=wider_x, mask=wider_mask), atol=1e-5, rtol=1e-5)
        assert torch.allclose(ref, model(x=junk_x, mask=mask), atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name, hparams", [
    ("lstm", {}), ("gru", {}), ("cnn1d", {}), ("transformer", {"positions": "learned"}),
    ("transformer", {"positions": "sinusoidal"}), ("lstm", {"bidirectional": True}),
])
def test_sequence_models_ignore_padding(name, hparams):
    model = build(name, Modality.SEQUENCE, **hparams)
    x = batch(Modality.SEQUENCE)["x"]
    with torch.no_grad():
        out = model(x)
        # Each row alone, cut to its real length: neither padding nor batch-mates matter.
        alone = torch.cat([model(row[row != PAD][None]) for row in x])
        assert torch.allclose(out, alone, atol=1e-5, rtol=1e-5)
        if hparams.get("positions") == "learned":
            return  # learned positions stop at the spec's length; no longer input exists
        padded = torch.cat([x, torch.full((x.shape[0], 6), PAD)], dim=1)  # OOD-length split
        longer = model(padded)
    if name in ("lstm", "gru"):  # packing feeds the cell exactly the same steps
        assert torch.equal(out, longer)
    assert torch.allclose(out, longer, atol=1e-5, rtol=1e-5)


def test_sequence_models_read_the_last_real_step():
    model = build("gru", Modality.SEQUENCE)
    x = torch.tensor([[1, 2, 3, PAD, PAD], [1, 2, 4, PAD, PAD]])
    with torch.no_grad():
        out = model(x)
    assert not torch.allclose(out[0], out[1])  # the third token matters


@pytest.mark.parametrize("name", NEURAL)
def test_width_builds_small_and_large_and_grows(name):
    entry = get_model_entry(name)
    assert entry.width is not None
    modality = entry.modalities[0]
    counts = [sum(p.numel() for p in build(name, modality, **{entry.width: w}).parameters())
              for w in (4, 5, 7, 16, 30, 64, 1024)]
    assert counts == sorted(counts) and len(set(counts)) == len(counts), counts


@pytest.mark.parametrize("name, bad", [
    ("cnn1d", {"depth": 0}), ("cnn2d", {"channels": 0}), ("lstm", {"layers": 0}),
    ("gru", {"hidden": -1}), ("transformer", {"d_model": 0}), ("deepsets", {"phi_depth": 0}),
    ("set_transformer", {"inducing": 0}),
])
def test_bad_hyperparameter_is_one_line_user_error(name, bad):
    modality = get_model_entry(name).modalities[0]
    with pytest.raises(UserError) as err:
        build(name, modality, **bad)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_empty_sets_and_sequences_stay_finite():
    x = torch.randn(2, S, F)
    mask = torch.zeros(2, S, dtype=torch.bool)
    for name in SET_MODELS:
        with torch.no_grad():
            assert torch.isfinite(build(name, Modality.SET)(x=x, mask=mask)).all(), name
    for name in SEQUENCE_MODELS:
        with torch.no_grad():
            out = build(name, Modality.SEQUENCE)(torch.zeros(2, L, dtype=torch.long))
        assert torch.isfinite(out).all(), name


@pytest.mark.parametrize("name", ("lstm", "gru", "transformer"))
def test_vector_patches_cover_a_ragged_tail(name):
    model = build(name, Modality.VECTOR, patch=4)  # 9 entries: steps of 4, 4 and 1 + zeros
    x = batch(Modality.VECTOR)["x"]
    with torch.no_grad():
        out = model(x)
        changed = model(torch.cat([x[:, :-1], x[:, -1:] + 1.0], dim=1))
    assert out.shape == (4, 4)
    assert not torch.allclose(out, changed)  # the lone last entry is read
