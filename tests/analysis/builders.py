"""Hand-built labelled features following docs/architecture.md (no model needed)."""

from __future__ import annotations

import numpy as np
import xarray as xr

import nbfeat  # noqa: F401  (registers the .nbfeat accessor)


def sample_coords(n: int, classes=("cats", "dogs")):
    labels = [classes[i * len(classes) // n] for i in range(n)]
    ids = [f"{lab}/img{i}.png" for i, lab in enumerate(labels)]
    return {
        "sample": ("sample", np.asarray(ids, dtype=str)),
        "label": ("sample", np.asarray(labels, dtype=str)),
        "path": ("sample", np.asarray([f"/data/{i}" for i in ids], dtype=str)),
    }


def conv_dataset(n=8, c=6, h=5, w=4, seed=0) -> xr.Dataset:
    """A CNN extraction: a feature map (sample, channel, y, x) and a pooled vector (sample, channel)."""
    rng = np.random.default_rng(seed)
    fmap = rng.normal(size=(n, c, h, w)).astype(np.float32) + 0.5
    pooled = rng.normal(size=(n, c)).astype(np.float32)
    return xr.Dataset(
        {
            "layer3": xr.Variable(("sample", "channel", "y", "x"), fmap, attrs={"module": "layer3", "pool": ""}),
            "layer4": xr.Variable(("sample", "channel"), pooled, attrs={"module": "layer4", "pool": "mean"}),
        },
        coords=sample_coords(n),
        attrs={"model": "timm:resnet18", "source": "timm", "modality": "image", "pretrained": 0},
    )


def vit_tokens(n=4, grid=(3, 4), prefix=1, c=8, seed=1) -> xr.DataArray:
    """ViT block output (sample, token, channel) with a class token and a 3x4 patch grid."""
    rng = np.random.default_rng(seed)
    t = prefix + grid[0] * grid[1]
    data = rng.normal(size=(n, t, c)).astype(np.float32)
    return xr.DataArray(
        data,
        dims=("sample", "token", "channel"),
        coords={**sample_coords(n), "token": np.arange(t)},
        name="blocks.3",
        attrs={"module": "blocks.3", "pool": "", "grid": f"{grid[0]}x{grid[1]}", "prefix_tokens": prefix},
    )


def text_dataset(n=4, layers=3, t=6, c=8, seed=2) -> xr.Dataset:
    """Stacked node roles for text: `block` (sample, layer, token, channel), padded with NaN."""
    rng = np.random.default_rng(seed)
    lengths = np.array([t, t - 2, 3, t - 1][:n] + [t] * max(0, n - 4))
    mask = np.arange(t)[None, :] < lengths[:, None]
    data = rng.normal(size=(n, layers, t, c)).astype(np.float32)
    data[~np.broadcast_to(mask[:, None, :, None], data.shape)] = np.nan
    words = np.array([[f"w{i}_{j}" if mask[i, j] else "<pad>" for j in range(t)] for i in range(n)])
    coords = sample_coords(n, classes=("pos", "neg"))
    coords["text"] = ("sample", np.asarray([" ".join(w[m]) for w, m in zip(words, mask)], dtype=str))
    return xr.Dataset(
        {"block": xr.Variable(("sample", "layer", "token", "channel"), data, attrs={"pool": ""})},
        coords={
            **coords,
            "layer": np.arange(layers),
            "module": ("layer", np.asarray([f"h.{i}" for i in range(layers)])),
            "token": np.arange(t),
            "token_text": (("sample", "token"), words),
            "mask": (("sample", "token"), mask),
        },
        attrs={"model": "hf:tiny-gpt2", "modality": "text"},
    )


def two_model_tree(n=10, seed=3) -> xr.DataTree:
    """`nbfeat.extract([m1, m2], ...)`: one child per model, sample coords on the root."""
    rng = np.random.default_rng(seed)
    coords = sample_coords(n)
    a = xr.Dataset(
        {
            "layer3": (("sample", "channel"), rng.normal(size=(n, 5))),
            "layer4": (("sample", "channel"), rng.normal(size=(n, 5))),
        },
        attrs={"model": "timm:resnet18"},
    )
    # the second model's variables clash in size: a subtree, one node per variable
    b_root = xr.Dataset(attrs={"model": "torchvision:alexnet"})
    b1 = xr.Dataset({"features.10": (("sample", "channel", "y", "x"), rng.normal(size=(n, 4, 2, 2)))})
    b2 = xr.Dataset({"classifier.4": (("sample", "channel"), rng.normal(size=(n, 7)))})
    return xr.DataTree.from_dict(
        {
            "/": xr.Dataset(coords=coords),
            "/timm:resnet18": a,
            "/torchvision:alexnet": b_root,
            "/torchvision:alexnet/features.10": b1,
            "/torchvision:alexnet/classifier.4": b2,
        }
    )
