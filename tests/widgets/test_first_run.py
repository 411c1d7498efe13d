"""A first run that shows something: offline, the demo's model still changes visibly with depth.

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
