"""BrowserWidget: requests answered with binary buffers, checked against bb.extract values."""

from __future__ import annotations

import numpy as np
import pytest

import nbfeat
from nbfeat.analysis.pca import pca_rgb
from nbfeat.widgets.views import MAX_SIDE, to_uint8


def ask(widget, monkeypatch, **content):
    """Send one request through the widget's real message handler; return (reply, buffers)."""
    sent = []
    monkeypatch.setattr(widget, "send", lambda msg, buffers=None: sent.append((msg, buffers)))
    widget._on_custom_msg(widget, {"type": "nbfeat:request", "id": 7, "kind": "view", **content}, [])
    assert len(sent) == 1
    reply, buffers = sent[0]
    assert reply["type"] == "nbfeat:response" and reply["id"] == 7
    return reply, buffers


def arrays(reply, buffers):
    """Decode the reply like js/src/codec.ts does, checking every buffer's size."""
    out = {}
    for spec, buf in zip(reply["arrays"], buffers, strict=True):
        dtype = np.dtype(spec["dtype"]).newbyteorder("<")
        assert len(bytes(buf)) == int(np.prod(spec["shape"])) * dtype.itemsize
        out[spec["name"]] = np.frombuffer(bytes(buf), dtype=dtype).reshape(spec["shape"])
    return out


@pytest.fixture(scope="module")
def reference(resnet, pictures):
    """A DataTree (the layers differ in shape): one node per layer."""
    return resnet.extract(pictures, layers=["layer2", "relu", "fc", "layer1.0.relu"], progress=False)


def values(tree, name):
    return tree[name][name].values


def test_spatial_view_values_and_sizes(resnet, pictures, reference, monkeypatch):
    w = nbfeat.browse(resnet, pictures, layer="layer2")
    reply, buffers = ask(w, monkeypatch, sample=1, layer="layer2", channel=-1, depth=0, k=5, thumb=True)
    assert reply["ok"] and reply["view"] == "spatial" and reply["n_channels"] == 128
    got = arrays(reply, buffers)
    assert {k: (v.dtype.name, v.shape) for k, v in got.items()} == {
        "channels": ("uint8", (5, 28, 28)),
        "pca": ("uint8", (28, 28, 3)),
        "thumb": ("uint8", (160, 160, 3)),  # the 224x224 input the model saw, at most 160 px
    }
    assert sum(len(b) for b in buffers) == 5 * 28 * 28 + 28 * 28 * 3 + 160 * 160 * 3
    fmap = values(reference, "layer2")[1]  # (128, 28, 28)
    top = np.argsort(-np.abs(fmap).mean(axis=(1, 2)), kind="stable")[:5]
    assert reply["channels"] == top.tolist()
    want, _, hi = to_uint8(fmap[top], axis=(1, 2))
    np.testing.assert_allclose(got["channels"].astype(int), want.astype(int), atol=1)
    np.testing.assert_allclose(reply["channel_max"], hi.reshape(-1), rtol=1e-5)
    np.testing.assert_array_equal(got["pca"], pca_rgb(np.moveaxis(fmap, 0, -1)))
    # the input as the model saw it: torchvision's own ResNet18 preset (resize 256, crop 224)
    # on the 64x72 picture, not the picture itself
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    preset = ResNet18_Weights.IMAGENET1K_V1.transforms()
    seen = Image.fromarray(pictures[1]).resize(_resized(pictures[1].shape[:2], preset.resize_size[0])[::-1], Image.BILINEAR)
    top_, left = ((np.asarray(seen.size[::-1]) - preset.crop_size[0]) / 2).round().astype(int)
    seen = seen.crop((left, top_, left + preset.crop_size[0], top_ + preset.crop_size[0]))
    seen.thumbnail((160, 160))
    assert reply["thumb_seen"] is True
    assert np.abs(got["thumb"].astype(int) - np.asarray(seen, dtype=int)).max() <= 2


def _resized(hw, short):
    """(h, w) after torchvision's Resize(short): the shorter side becomes `short`."""
    h, w = hw
    return (short, int(short * w / h)) if h <= w else (int(short * h / w), short)


def test_one_channel_large_maps_are_downsampled(resnet, pictures, reference, monkeypatch):
    w = nbfeat.browse(resnet, pictures)
    reply, buffers = ask(w, monkeypatch, sample=0, layer="relu", channel=3, k=12)
    got = arrays(reply, buffers)
    assert reply["channels"] == [3] and got["channels"].shape == (1, 56, 56)  # 112 px -> <= 64
    assert max(got["channels"].shape[1:]) <= MAX_SIDE
    fmap = values(reference, "relu")[0, 3]
    pooled = fmap.reshape(56, 2, 56, 2).mean(axis=(1, 3))
    np.testing.assert_allclose(got["channels"][0].astype(int), to_uint8(pooled)[0].astype(int), atol=1)
    assert "thumb" not in got  # not asked for


def test_vector_view_and_module_called_twice(resnet, pictures, reference, monkeypatch):
    w = nbfeat.browse(resnet, pictures)
    reply, buffers = ask(w, monkeypatch, sample=2, layer="fc", k=4)
    got = arrays(reply, buffers)
    logits = values(reference, "fc")[2]
    top = np.argsort(-np.abs(logits), kind="stable")[:4]
    assert reply["view"] == "vector" and reply["channels"] == top.tolist()
    assert got["values"].dtype == np.float16 and got["strip"].shape == (1000,)
    np.testing.assert_allclose(got["values"].astype(np.float32), logits[top], rtol=1e-3, atol=1e-3)
    # layer1.0.relu runs twice per forward: `depth` picks the call
    reply, buffers = ask(w, monkeypatch, sample=0, layer="layer1.0.relu", depth=1, k=2)
    assert (reply["n_depth"], reply["depth_label"]) == (2, "call")
    fmap = values(reference, "layer1.0.relu")[0, 1]
    top = np.argsort(-np.abs(fmap).mean(axis=(1, 2)), kind="stable")[:2]
    assert reply["channels"] == top.tolist()


def test_layers_are_extracted_once_for_all_shown_samples(resnet, pictures, monkeypatch):
    calls = []
    handle = resnet.model.layer4.register_forward_hook(lambda *a: calls.append(1))
    try:
        w = nbfeat.browse(resnet, pictures)
        for i in range(len(pictures)):
            assert ask(w, monkeypatch, sample=i, layer="layer2")[0]["ok"]
        assert w.source.extractions == 1  # one batch for every sample, then the cache
        assert calls == []  # early exit: nothing after layer2 ran
        ask(w, monkeypatch, sample=0, layer="layer3")
        assert w.source.extractions == 2
    finally:
        handle.remove()


def test_errors_come_back_as_messages(resnet, pictures, monkeypatch):
    w = nbfeat.browse(resnet, pictures)
    reply, buffers = ask(w, monkeypatch, sample=0, layer="layer2", channel=500)
    assert not reply["ok"] and buffers == [] and reply["error"] == "Channel 500 is out of range: this layer has 128 channels (0..127)."
    reply, _ = ask(w, monkeypatch, sample=0, layer="layer22")
    assert not reply["ok"] and "Did you mean: layer2" in reply["error"]
    reply, _ = ask(w, monkeypatch, sample=9, layer="layer2")
    assert not reply["ok"] and "between 0 and 3" in reply["error"]
    reply, _ = w.handle_request({"id": 1, "kind": "nonsense"})
    assert reply == {"type": "nbfeat:response", "id": 1, "kind": "nonsense", "ok": False, "error": "unknown request 'nonsense'"}


def test_traits_and_code(resnet, pictures):
    w = nbfeat.browse(resnet, pictures, max_samples=3)
    assert w._kind == "browser" and w.modality == "image"
    assert w.layer == resnet.blocks[-1] and w.layers == resnet.layers()
    assert [s["id"] for s in w.samples] == ["0", "1", "2"] and "first 3 of 4" in w.title
    w.layer = "layer3"
    w.handle_request({"id": 0, "kind": "view", "sample": 0, "layer": "layer3"})
    assert "bb = nbfeat.load('torchvision:resnet18', pretrained=False, device='cpu')" in w.code
    assert "ds = bb.extract(inputs, layers=['layer3'], batch_size=3)\nx = ds['layer3'].isel(sample=0)  # sample '0'" in w.code
    assert "# inputs: in-memory images (PIL images or arrays), 3 shown" in w.code
    with pytest.raises(nbfeat.errors.UnknownLayerError):
        w.layer = "layer33"
    with pytest.raises(nbfeat.errors.InputError):
        w.sample = 3
    with pytest.raises(nbfeat.errors.InputError, match="pass the inputs"):
        nbfeat.browse(resnet)


def test_browse_a_dataset_reads_one_sample_at_a_time(reference, monkeypatch):
    w = nbfeat.browse(reference)
    assert w.layers == ["layer2", "relu", "fc", "layer1.0.relu"] and w.title == "torchvision:resnet18"
    reply, buffers = ask(w, monkeypatch, sample=3, layer="layer2", k=3, thumb=True)
    got = arrays(reply, buffers)
    fmap = values(reference, "layer2")[3]
    top = np.argsort(-np.abs(fmap).mean(axis=(1, 2)), kind="stable")[:3]
    assert reply["channels"] == top.tolist() and "thumb" not in got  # in-memory inputs: no path
    w.layer = "fc"
    assert w.code == "# ds: the results given to nbfeat.browse\nx = ds['fc']['fc'].isel(sample=0)  # sample '0'"
    ns = {"ds": reference}
    exec(w.code, ns)
    assert np.array_equal(ns["x"].values, values(reference, "fc")[0])
    with pytest.raises(nbfeat.errors.InputError, match="no variable has a 'sample' dim"):
        nbfeat.browse(reference["fc"].to_dataset().drop_dims("sample"))


def test_browse_a_datatree_with_files(tmp_path, monkeypatch):
    from nbfeat.examples import make_images, save_tiny_dinov2

    vit = nbfeat.load("hf:" + str(save_tiny_dinov2(tmp_path / "dinov2")), device="cpu")
    folder = make_images(tmp_path / "images", per_class=1, size=48)
    dt = vit.extract(folder, layers=[vit.blocks[-1], "embeddings.patch_embeddings"], progress=False)
    w = nbfeat.browse(dt)
    assert w.layers == [vit.blocks[-1], "embeddings.patch_embeddings"]
    assert [s["label"] for s in w.samples] == ["circles", "squares", "stripes"]
    reply, buffers = ask(w, monkeypatch, sample=1, layer=vit.blocks[-1], k=2, thumb=True)
    got = arrays(reply, buffers)
    # ViT tokens on their 4x4 patch grid, class token dropped
    tokens = values(dt, vit.blocks[-1])[1]
    # the input as the model saw it: the repository's processor (rebuilt on the meta device,
    # its preprocessing the one the results record) resized and cropped it to 28 x 28
    assert got["pca"].shape == (4, 4, 3) and got["thumb"].shape == (28, 28, 3)
    assert reply["thumb_seen"] is True
    np.testing.assert_array_equal(got["pca"].reshape(16, 3), pca_rgb(tokens[1:]))


def test_text_tokens_and_token_by_layer_stack(tmp_path, monkeypatch):
    from nbfeat.examples import SENTENCES, save_tiny_gpt2

    lm = nbfeat.load("hf:" + str(save_tiny_gpt2(tmp_path / "gpt2")), device="cpu")
    texts = SENTENCES[:2]
    ref = lm.extract(texts, nodes=["block"], layers=["h.0.mlp"], progress=False)
    w = nbfeat.browse(lm, texts)
    assert w.modality == "text" and w.samples[0]["label"] == texts[0]
    reply, buffers = ask(w, monkeypatch, sample=1, layer="h.0.mlp", k=3)
    got = arrays(reply, buffers)
    n = int(ref["mask"].values[1].sum())
    assert reply["view"] == "tokens" and reply["tokens"] == [str(t) for t in ref["token_text"].values[1][:n]]
    assert got["channels"].shape == (3, n) and got["pca"].shape == (n, 3)
    blocks = ref["block"].values[1][:, :n]  # (layer, token, channel)
    np.testing.assert_allclose(got["stack"].astype(np.float32), np.linalg.norm(blocks, axis=-1), rtol=2e-3, atol=1e-3)
    assert reply["stack_labels"] == ["h.0", "h.1"] and reply["stack_row"] == 0  # h.0.mlp is in block 0
    # the same from the extracted dataset
    wd = nbfeat.browse(ref)
    reply, buffers = ask(wd, monkeypatch, sample=1, layer="block", depth=1, channel=5, k=3)
    got = arrays(reply, buffers)
    assert reply["stack_row"] == 1 and reply["stack_value"] == "channel 5"
    np.testing.assert_allclose(got["stack"].astype(np.float32), blocks[..., 5], rtol=2e-3, atol=1e-3)
