"""center / normalize / flatten / pool: values against numpy and torch references, labels kept."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from numpy.testing import assert_allclose

from nbfeat.errors import NbfeatError
from tests.analysis.builders import conv_dataset, text_dataset, vit_tokens


def _labels_kept(out, src):
    assert list(out["sample"].values) == list(src["sample"].values)
    assert list(out["label"].values) == list(src["label"].values)


def test_center_subtracts_the_sample_mean_and_keeps_labels_and_attrs():
    da = conv_dataset()["layer3"]
    out = da.nbfeat.center()
    x = da.values.astype(np.float64)
    assert_allclose(out.values, x - x.mean(axis=0), rtol=1e-5, atol=1e-6)
    assert out.dims == da.dims and out.attrs["module"] == "layer3" and out.name == "layer3"
    _labels_kept(out, da)


def test_normalize_l2_and_zscore():
    da = conv_dataset()["layer3"]
    x = da.values.astype(np.float64)
    l2 = da.nbfeat.normalize("l2").values
    assert_allclose(l2, x / np.linalg.norm(x.reshape(len(x), -1), axis=1)[:, None, None, None], rtol=1e-5)
    z = da.nbfeat.normalize("zscore").values
    assert_allclose(z, (x - x.mean(0)) / x.std(0), rtol=1e-4, atol=1e-5)
    assert da.nbfeat.normalize("zscore").attrs["normalized"] == "zscore"
    with pytest.raises(NbfeatError, match="l2, zscore"):
        da.nbfeat.normalize("minmax")


def test_normalize_l2_is_per_layer_for_stacked_nodes():
    da = text_dataset()["block"].nbfeat.pool("mean")  # (sample, layer, channel)
    out = da.nbfeat.normalize("l2")
    assert_allclose(np.linalg.norm(out.values, axis=-1), 1.0, rtol=1e-5)


def test_flatten_matches_torch_flatten_and_keeps_layer_when_asked():
    ds = conv_dataset()
    flat = ds["layer3"].nbfeat.flatten()
    assert flat.dims == ("sample", "feature")
    ref = torch.from_numpy(ds["layer3"].values).flatten(1).numpy()
    assert_allclose(flat.values, ref)
    assert flat.attrs["feature_dims"] == "channel,y,x" and flat.attrs["feature_shape"] == "6,5,4"
    _labels_kept(flat, ds)

    block = text_dataset()["block"]
    kept = block.nbfeat.flatten(keep="layer")
    assert kept.dims == ("sample", "layer", "feature")
    assert list(kept["module"].values) == ["h.0", "h.1", "h.2"]
    assert "token_text" not in kept.coords
    assert_allclose(kept.values, block.values.reshape(4, 3, -1))


@pytest.mark.parametrize("spec,fn", [(("avg2d", 3), F.adaptive_avg_pool2d), ("max2d:2", F.adaptive_max_pool2d)])
def test_pool_2d_matches_torch_adaptive_pooling(spec, fn):
    da = conv_dataset()["layer3"]  # 5 x 4: uneven windows for size 3
    out = da.nbfeat.pool(spec)
    size = 3 if spec[0] == "avg2d" else 2
    ref = fn(torch.from_numpy(da.values), size).numpy()
    assert out.dims == ("sample", "channel", "y", "x")
    assert_allclose(out.values, ref, rtol=1e-5, atol=1e-6)
    assert out.attrs["pool"] == f"{'avg2d' if size == 3 else 'max2d'}:{size}"
    _labels_kept(out, da)


def test_pool_mean_and_max_over_space():
    da = conv_dataset()["layer3"]
    assert_allclose(da.nbfeat.pool("mean").values, da.values.mean(axis=(2, 3)), rtol=1e-5)
    assert_allclose(da.nbfeat.pool("max").values, da.values.max(axis=(2, 3)))
    with pytest.raises(NbfeatError, match="needs tokens"):
        da.nbfeat.pool("cls")
    with pytest.raises(NbfeatError, match="Nothing to pool"):
        conv_dataset()["layer4"].nbfeat.pool("mean")


def test_text_pooling_is_mask_aware():
    ds = text_dataset()
    da = ds["block"]
    mask = ds["mask"].values
    x = da.values
    mean = da.nbfeat.pool("mean")
    assert mean.dims == ("sample", "layer", "channel")
    for i in range(x.shape[0]):
        real = x[i][:, mask[i]]  # (layer, real tokens, channel)
        assert_allclose(mean.values[i], real.mean(axis=1), rtol=1e-5, atol=1e-6)
        assert_allclose(da.nbfeat.pool("max").values[i], real.max(axis=1))
        assert_allclose(da.nbfeat.pool("last").values[i], real[:, -1])
    assert_allclose(da.nbfeat.pool("cls").values, x[:, :, 0])
    assert not np.isnan(mean.values).any()
    assert "token_text" not in mean.coords and "mask" not in mean.coords
    assert list(mean["module"].values) == ["h.0", "h.1", "h.2"]
    _labels_kept(mean, ds)


def test_vit_tokens_pool_through_their_patch_grid():
    da = vit_tokens()  # 1 prefix + 3x4 grid
    grid = da.nbfeat.to_grid()
    assert grid.dims == ("sample", "channel", "y", "x") and grid.shape[2:] == (3, 4)
    patches = da.values[:, 1:, :]  # drop the class token
    ref_grid = patches.transpose(0, 2, 1).reshape(4, 8, 3, 4)
    assert_allclose(grid.values, ref_grid)
    out = da.nbfeat.pool(("avg2d", 2))
    assert_allclose(out.values, F.adaptive_avg_pool2d(torch.from_numpy(ref_grid), 2).numpy(), rtol=1e-5, atol=1e-6)
    assert_allclose(da.nbfeat.pool("cls").values, da.values[:, 0])


def test_dask_backed_transforms_stay_lazy_and_match():
    ds = conv_dataset()
    lazy = ds.chunk({"sample": 3})
    for name, fn in [
        ("center", lambda d: d.nbfeat.center()),
        ("zscore", lambda d: d.nbfeat.normalize("zscore")),
        ("flatten", lambda d: d.nbfeat.flatten()),
        ("avg2d", lambda d: d.nbfeat.pool(("avg2d", 3))),
    ]:
        out = fn(lazy["layer3"])
        assert out.chunks is not None, name
        assert_allclose(out.values, fn(ds["layer3"]).values, rtol=1e-5, atol=1e-6, err_msg=name)
    text = text_dataset()
    for spec in ("mean", "last"):
        lazy_out = text.chunk({"sample": 2})["block"].nbfeat.pool(spec)
        assert lazy_out.chunks is not None
        assert_allclose(lazy_out.values, text["block"].nbfeat.pool(spec).values, rtol=1e-6)


def test_dataset_methods_apply_per_variable():
    ds = conv_dataset()
    centred = ds.nbfeat.center()
    assert set(centred.data_vars) == {"layer3", "layer4"}
    assert centred.attrs["model"] == "timm:resnet18"
    assert_allclose(centred["layer4"].values, ds["layer4"].values - ds["layer4"].values.mean(0), atol=1e-6)
    # flattened sizes clash (120 vs 6 features): a DataTree, one node per variable
    flat = ds.nbfeat.flatten()
    assert flat["layer3"]["layer3"].shape == (8, 120)
    assert flat["layer4"]["layer4"].shape == (8, 6)
    assert list(flat["layer3"].to_dataset()["label"].values) == list(ds["label"].values)
    arrays = ds.nbfeat.to_numpy()
    assert set(arrays) == {"layer3", "layer4"} and arrays["layer3"].shape == (8, 6, 5, 4)
