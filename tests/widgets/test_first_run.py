"""A first run that shows something: pretrained DINOv2 where its weights can be had (a hub cache
planted offline stands in for a machine that reached the hub); offline, the demo's model still
changes visibly with depth.

Measured on real photographs (scikit-image's), with the similarity structure of each layer's
spatial positions (cosine similarity of every pair of positions on a common 7x7 grid): the
same picture at two depths gives correlation 1; PCA colours are a view of that structure.
"""

from __future__ import annotations

import numpy as np
import pytest

import nbfeat
from nbfeat.demo import demo_images, demo_model, hub_reachable
from nbfeat.widgets.views import area_downsample


def _structure(fmap: np.ndarray) -> np.ndarray:
    x = area_downsample(fmap.astype(np.float64), 7)
    x = x.reshape(x.shape[0], -1).T
    x = x - x.mean(axis=0)
    x /= np.linalg.norm(x, axis=1, keepdims=True) + 1e-12
    return x @ x.T


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    sa, sb = _structure(a), _structure(b)
    iu = np.triu_indices_from(sa, 1)
    return float(np.corrcoef(sa[iu], sb[iu])[0, 1])


def _maps(bb, paths, layers):
    out = {}
    for layer in layers:
        v = bb.extract(paths, layers=[layer], progress=False)[layer].values[0]
        if v.ndim == 2:  # ViT tokens: the patch grid, after the prefix tokens
            side = int(round((v.shape[0] - bb.prefix_tokens) ** 0.5))
            v = v[-side * side :].T.reshape(-1, side, side)
        out[layer] = v
    return out


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = demo_images(tmp_path_factory.mktemp("demo") / "images", per_class=1)
    return sorted((folder / "photos").glob("*.png"))


def test_offline_the_demo_says_so_in_one_line_and_picks_a_cnn(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    assert not hub_reachable()
    m = demo_model()
    assert not m.pretrained and m.bb.id == "torchvision:resnet18" and m.layers == ["layer1", "layer2", "layer3", "layer4"]
    assert "\n" not in m.note and "offline" in m.note and "RANDOM" in m.note


def test_the_demo_images_include_real_photographs(photos):
    assert [p.stem for p in photos] == sorted(["astronaut", "coffee", "chelsea", "rocket"])
    from PIL import Image

    img = np.asarray(Image.open(photos[0]))
    assert img.ndim == 3 and len(np.unique(img.reshape(-1, 3), axis=0)) > 5000  # a photo, not a drawing


def test_random_resnet_depths_differ(photos):
    cnn = nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu")
    m = _maps(cnn, photos[:1], ["layer1", "layer3", "layer4"])
    assert _similarity(m["layer1"], m["layer3"]) < 0.85
    assert _similarity(m["layer1"], m["layer4"]) < 0.85
    # (the same measure gives 1.0000 for random DINOv2's blocks.5 and blocks.9: LayerScale 1e-5
    # makes each block's output its input, the first experience the demo no longer gives)


@pytest.fixture
def dinov2_in_hub_cache(tmp_path):
    """The demo's DINOv2 in a Hugging Face hub cache, as a download leaves it (the hub's file
    name and layout, 518-pixel position embeddings), with random weights: the offline stand-in
    for a machine that reached the hub once. Returns the cache folder."""
    import timm
    from safetensors.torch import save_file

    cache = tmp_path / "hub"
    repo = cache / "models--timm--vit_small_patch14_dinov2.lvd142m"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    model = timm.create_model("vit_small_patch14_dinov2.lvd142m", pretrained=False)  # img_size 518, as published
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(snapshot / "model.safetensors"))
    return cache


# Run as `make demo` runs it, in a process of its own: the hub client reads its cache folder
# and offline switch when it is imported.
PRETRAINED_DEMO = """
import sys, torch
from safetensors.torch import load_file
from nbfeat.demo import demo_model, main

m = demo_model()
assert m.pretrained and m.bb.id == "timm:vit_small_patch14_dinov2.lvd142m", m
assert m.note == "pretrained weights: timm:vit_small_patch14_dinov2.lvd142m", m.note
assert m.layers == ["blocks.2", "blocks.5", "blocks.8", "blocks.11"], m.layers
planted = load_file(sys.argv[1])
params = dict(m.bb.model.named_parameters())
for name in ("patch_embed.proj.weight", "blocks.11.mlp.fc2.weight", "norm.weight"):
    assert torch.equal(params[name], planted[name]), name
# timm resampled the published 37x37 position embeddings to the demo's img_size=224
assert params["pos_embed"].shape[1] == 1 + 16 * 16 and planted["pos_embed"].shape[1] == 1 + 37 * 37
sys.exit(main(["--out", sys.argv[2]]))
"""


def test_with_weights_in_the_hub_cache_the_demo_is_pretrained(dinov2_in_hub_cache, tmp_path):
    import os
    import subprocess
    import sys

    weights = next(dinov2_in_hub_cache.rglob("model.safetensors"))
    env = dict(os.environ, HF_HUB_CACHE=str(dinov2_in_hub_cache), HF_HUB_OFFLINE="1")  # the cache is all there is
    proc = subprocess.run([sys.executable, "-c", PRETRAINED_DEMO, str(weights), str(tmp_path / "demo")],
                          env=env, capture_output=True, text=True, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    assert "weights: pretrained weights: timm:vit_small_patch14_dinov2.lvd142m" in out and "RANDOM" not in out, out
    assert all(f"blocks.{i}" in out for i in (2, 5, 8, 11)), out
