"""Hugging Face models built tiny, saved with save_pretrained, loaded via nbfeat.load("hf:<dir>")."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.examples import save_tiny_dinov2 as save_dinov2
from nbfeat.examples import save_tiny_gpt2 as save_gpt2
from nbfeat.examples import save_tiny_vit as save_vit
from tests.core.helpers import assert_values, batch_from_paths, sorted_paths


def _first(out):
    return out[0] if isinstance(out, tuple | list) else out


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("hf")
    save_dinov2(root / "dinov2")
    save_vit(root / "vit")
    save_gpt2(root / "gpt2")
    return root


def _dinov2_by_hand(m, x):
    h = m.embeddings(x)
    out = {"attn": [], "mlp": [], "block": []}
    for layer in m.encoder.layer:
        a = _first(layer.attention(layer.norm1(h)))
        h = h + layer.layer_scale1(a)
        f = layer.mlp(layer.norm2(h))
        h = h + layer.layer_scale2(f)
        for k, v in zip(("attn", "mlp", "block"), (a, f, h)):
            out[k].append(v)
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def _vit_by_hand(m, x):
    h = m.embeddings(x)
    out = {"attn": [], "mlp": [], "block": []}
    for layer in m.layers:
        a = _first(layer.attention(layer.layernorm_before(h)))
        h = h + a
        f = layer.mlp(layer.layernorm_after(h))
        h = h + f
        for k, v in zip(("attn", "mlp", "block"), (a, f, h)):
            out[k].append(v)
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


@pytest.mark.parametrize("kind, by_hand, grid", [("dinov2", _dinov2_by_hand, "4x4"), ("vit", _vit_by_hand, "4x4")])
def test_hf_image_models_nodes_layers_pooled(hf_dir, image_dir, kind, by_hand, grid):
    from transformers import AutoModel

    bb = nbfeat.load(f"hf:{hf_dir / kind}")
    assert bb.modality == "image" and bb.prefix_tokens == 1
    ref = AutoModel.from_pretrained(hf_dir / kind).eval()
    x = batch_from_paths(bb, sorted_paths(image_dir))
    with torch.no_grad():
        want = by_hand(ref, x)
        hidden = ref(pixel_values=x, output_hidden_states=True).hidden_states
    ds = bb.extract(image_dir, nodes=["attn", "mlp", "block"], progress=False)
    for role in ("attn", "mlp", "block"):
        assert_values(ds[role].values, want[role])
    for depth in range(ds.sizes["layer"]):  # HF's own hidden states agree with the block node
        assert_values(ds["block"].values[:, depth], hidden[depth + 1])
    first, last = bb.blocks[0], bb.blocks[-1]
    pooled = bb.extract(image_dir, layers=[first, -1], pool={first: "mean", last: "cls"}, progress=False)
    assert_values(pooled[first].values, want["block"][:, 0, 1:].mean(dim=1))  # patch tokens only
    assert_values(pooled[last].values, want["block"][:, -1, 0])
    unpooled = bb.extract(image_dir, layers=[-1], progress=False)
    assert unpooled[last].attrs["grid"] == grid and unpooled[last].attrs["prefix_tokens"] == 1


def _gpt2_by_hand(m, ids):
    pos = torch.arange(ids.shape[1])[None]
    h = m.wte(ids) + m.wpe(pos)
    out = {"attn": [], "mlp": [], "block": []}
    for blk in m.h:
        a = _first(blk.attn(blk.ln_1(h)))
        h = h + a
        f = blk.mlp(blk.ln_2(h))
        h = h + f
        for k, v in zip(("attn", "mlp", "block"), (a, f, h)):
            out[k].append(v)
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


def test_gpt2_tokens_nodes_padding_and_pooling(hf_dir):
    from transformers import AutoModel, AutoTokenizer

    texts = ["I know this sky loves you", "a cat", "the quick brown fox jumps over the lazy dog"]
    lm = nbfeat.load(f"hf:{hf_dir / 'gpt2'}")
    assert lm.modality == "text"
    ds = lm.extract(texts, nodes=["attn", "mlp", "block"], batch_size=2, progress=False)
    ref = AutoModel.from_pretrained(hf_dir / "gpt2").eval()
    tok = AutoTokenizer.from_pretrained(hf_dir / "gpt2")
    assert ds["block"].dims == ("sample", "layer", "token", "channel")
    assert list(ds["text"].values) == texts
    for i, text in enumerate(texts):
        ids = torch.tensor([tok(text)["input_ids"]])
        n = ids.shape[1]
        with torch.no_grad():
            want = _gpt2_by_hand(ref, ids)
        for role in ("attn", "mlp", "block"):
            assert_values(ds[role].values[i, :, :n], want[role][0])
            assert np.isnan(ds[role].values[i, :, n:]).all()  # padding is NaN, never zeros
        assert ds["mask"].values[i].sum() == n
        assert "".join(ds["token_text"].values[i, :n]) == text
    last = lm.extract(texts, nodes="block", pool="last", progress=False)
    mean = lm.extract(texts, nodes="block", pool="mean", progress=False)
    for i in range(len(texts)):
        n = int(ds["mask"].values[i].sum())
        np.testing.assert_allclose(last["block"].values[i], ds["block"].values[i, :, n - 1], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(mean["block"].values[i], ds["block"].values[i, :, :n].mean(axis=1), rtol=1e-4, atol=1e-6)
    assert ds["block"].sel(layer=1).dims == ("sample", "token", "channel")


def test_gpt2_long_text_truncated_with_warning_and_empty_text_recorded(tmp_path):
    lm = nbfeat.load(f"hf:{save_gpt2(tmp_path / 'g', n_positions=8)}")
    with pytest.warns(UserWarning, match="truncated"):
        ds = lm.extract(["the quick brown fox jumps over the lazy dog " * 3, "", "a cat"], nodes="block", progress=False)
    assert ds.sizes["token"] == 8
    assert list(ds["sample"].values) == ["0", "2"]
    assert "empty text" in ds.attrs["failed"]
