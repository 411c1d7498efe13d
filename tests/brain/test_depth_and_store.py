"""Relative depth on real (tiny, random) timm models, and the whole path through a zarr store."""

from __future__ import annotations

import numpy as np
import pytest
import timm

import nbfeat
from nbfeat.analysis.depth import block_index, blocks_at
from nbfeat.errors import UnknownLayerError
from tests.brain.helpers import simulated

pytestmark = pytest.mark.filterwarnings("ignore:::zarr")


def _timm_blocks(name):
    """The repeated blocks as timm defines them (its own block classes), not as nbfeat finds them."""
    model = timm.create_model(name, pretrained=False)
    if name.startswith("resnet"):
        return [n for n, m in model.named_modules() if isinstance(m, timm.models.resnet.BasicBlock)]
    return [f"blocks.{i}" for i in range(len(model.blocks))]


def test_fractions_pick_the_same_relative_block_in_models_of_any_depth():
    assert [block_index(f, 8) for f in (0.0, 0.25, 0.5, 0.75, 1.0)] == [0, 2, 4, 5, 7]
    for name in ("resnet18", "vit_tiny_patch16_224"):
        bb = nbfeat.load(f"timm:{name}", pretrained=False)
        ref = _timm_blocks(name)
        assert blocks_at(bb, [0.0, 0.5, 1.0]) == [ref[0], ref[round((len(ref) - 1) * 0.5 + 1e-9)], ref[-1]]
    with pytest.raises(UnknownLayerError, match="between 0.0"):
        block_index(1.5, 8)


def test_float_layers_extract_through_a_store_and_encode_lazily(tmp_path):
    import xarray as xr

    from nbfeat.analysis._common import node_dataset

    images = nbfeat.examples.make_images(tmp_path / "img", per_class=4, size=32)
    bb = nbfeat.load("timm:resnet18", pretrained=False)
    out = tmp_path / "feats.zarr"
    bb.extract(images, layers=[0.5, 1.0], pool="mean", out=out, batch_size=12)
    lazy = nbfeat.open(out)
    assert isinstance(lazy, xr.DataTree)  # 128 and 512 channels: one node each
    assert {"layer3.0", "layer4.1"} <= {n.name for n in lazy.subtree}  # 0.5 * 7 = 3.5 rounds up to block 4
    top = node_dataset(lazy["layer4.1"])["layer4.1"]
    assert top.chunks is not None  # still lazy
    x = np.asarray(top.values, dtype=np.float64)
    dt = xr.DataTree.from_dict({"/": xr.Dataset(coords={"sample": top["sample"].values}), "/m": xr.Dataset({"layer4.1": (("sample", "channel"), x)})})
    resp, _ = simulated(dt, layer="/m", var="layer4.1", v=6, k=2, noise=0.3)
    alphas = np.logspace(-1, 4, 6)
    res = nbfeat.encode(lazy, resp, cv=3, alphas=alphas, backend="sklearn")
    eager = nbfeat.encode(lazy.load(), resp, cv=3, alphas=alphas, backend="sklearn")
    np.testing.assert_allclose(res.details["r"].values, eager.details["r"].values, rtol=1e-9)
    assert str(res.scores.mean("target").idxmax().item()).endswith("layer4.1")
    assert nbfeat.compare(lazy, resp).scores.sizes["rep"] == 2


def test_scores_carry_each_blocks_own_depth_not_its_rank_among_the_compared():
    import torch
    import xarray as xr

    ref = _timm_blocks("resnet18")
    bb = nbfeat.load("timm:resnet18", pretrained=False)
    ds = bb.extract(torch.randn(12, 3, 48, 64), layers=[0.25, 0.5, 1.0], pool="mean", progress=False)
    picked = blocks_at(bb, [0.25, 0.5, 1.0])
    want = [ref.index(p) / (len(ref) - 1) for p in picked]
    resp = xr.DataArray(np.random.default_rng(0).normal(size=(12, 3)), dims=("sample", "neuroid"), coords={"sample": ds["sample"].values})
    scores = nbfeat.encode(ds, resp, cv=3).scores
    np.testing.assert_allclose(scores["depth"].values, want, atol=1e-6)
    assert len(picked) == 1 or not np.allclose(want, np.linspace(0, 1, len(picked)))  # differs from the rank
    single = bb.extract(torch.randn(12, 3, 48, 64), layers=0.5, pool="mean", progress=False)
    (name,) = list(single.data_vars)
    assert float(single[name].attrs["depth"]) == pytest.approx(ref.index(name) / (len(ref) - 1))
