"""PCA: equals numpy SVD (up to sign) in memory and on dask; projection; pca_rgb."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose

from nbfeat.analysis import pca as pca_mod
from nbfeat.analysis.pca import pca_rgb
from nbfeat.errors import NbfeatError
from tests.analysis.builders import conv_dataset


def _reference(x, k):
    x = x.reshape(len(x), -1).astype(np.float64)
    xc = x - x.mean(0)
    u, s, vt = np.linalg.svd(xc, full_matrices=False)
    return u[:, :k] * s[:k], vt[:k], s**2 / (s**2).sum()


def _same_up_to_sign(a, b, axis):
    for i in range(a.shape[axis]):
        ai, bi = np.take(a, i, axis), np.take(b, i, axis)
        sign = np.sign(np.sum(ai * bi)) or 1.0
        assert_allclose(ai, sign * bi, rtol=1e-6, atol=1e-8)


def test_pca_matches_numpy_svd_and_keeps_labels():
    da = conv_dataset()["layer3"]  # 8 samples, 120 features (wide)
    fit = da.nbfeat.pca(3)
    scores, comps, ratio = _reference(da.values, 3)
    assert fit["scores"].dims == ("sample", "component")
    _same_up_to_sign(fit["scores"].values, scores, axis=1)
    assert fit["loadings"].dims == ("component", "channel", "y", "x")
    _same_up_to_sign(fit["loadings"].values.reshape(3, -1), comps, axis=0)
    assert_allclose(fit["explained_variance_ratio"].values, ratio[:3], rtol=1e-10)
    assert_allclose(fit["mean"].values, da.values.mean(0), rtol=1e-5)
    assert list(fit["label"].values) == list(da["label"].values)
    assert list(fit["sample"].values) == list(da["sample"].values)
    assert fit.attrs["module"] == "layer3" and fit.attrs["pca_of"] == "layer3"
    # tall data goes through the other SVD branch
    tall = xr.DataArray(np.random.default_rng(0).normal(size=(40, 5)), dims=("sample", "channel"))
    s2, c2, _ = _reference(tall.values, 2)
    _same_up_to_sign(tall.nbfeat.pca(2)["scores"].values, s2, axis=1)


@pytest.mark.parametrize("max_features", [4096, 10])  # covariance path, then the Gram path
def test_pca_on_dask_matches_in_memory(monkeypatch, max_features):
    monkeypatch.setattr(pca_mod, "COVARIANCE_MAX_FEATURES", max_features)
    ds = conv_dataset()
    fit = ds.chunk({"sample": 3})["layer3"].nbfeat.pca(4)
    ref = ds["layer3"].nbfeat.pca(4)
    _same_up_to_sign(fit["scores"].values, ref["scores"].values, axis=1)
    _same_up_to_sign(fit["loadings"].values.reshape(4, -1), ref["loadings"].values.reshape(4, -1), axis=0)
    assert_allclose(fit["explained_variance_ratio"].values, ref["explained_variance_ratio"].values, rtol=1e-8)


def test_project_reproduces_the_scores():
    da = conv_dataset()["layer3"]
    fit = da.nbfeat.pca(3)
    proj = da.nbfeat.project(fit)
    assert proj.dims == ("sample", "component")
    assert_allclose(proj.values, fit["scores"].values, rtol=1e-5, atol=1e-5)
    assert list(proj["label"].values) == list(da["label"].values)


def test_pca_errors_are_clear():
    da = conv_dataset()["layer3"]
    with pytest.raises(NbfeatError, match="between 1 and"):
        da.nbfeat.pca(50)
    bad = da.copy()
    bad[0, 0, 0, 0] = np.nan
    with pytest.raises(NbfeatError, match="NaN"):
        bad.nbfeat.pca(2)


def test_dataset_pca_gives_one_fit_per_variable():
    tree = conv_dataset().nbfeat.pca(2)
    assert isinstance(tree, xr.DataTree)
    assert tree["layer3"]["scores"].shape == (8, 2)
    assert tree["layer4"]["loadings"].dims == ("component", "channel")
    assert tree.attrs["model"] == "timm:resnet18"


def test_pca_rgb_colours_follow_the_top_components():
    rng = np.random.default_rng(0)
    feats = rng.normal(size=(2, 7, 6, 16))
    rgb = pca_rgb(feats)
    assert rgb.shape == (2, 7, 6, 3) and rgb.dtype == np.uint8
    assert rgb.min() == 0 and rgb.max() == 255  # robust 1..99 percentile stretch
    flat = feats.reshape(-1, 16)
    _, _, vt = np.linalg.svd(flat - flat.mean(0), full_matrices=False)
    first = (flat - flat.mean(0)) @ vt[0]
    # red channel is monotone in the first principal component (up to sign)
    r = rgb.reshape(-1, 3)[:, 0].astype(float)
    corr = np.corrcoef(r, first)[0, 1]
    assert abs(corr) > 0.95
    feats[0, 0, 0] = np.nan
    out = pca_rgb(feats)
    assert (out[0, 0, 0] == 0).all()
    assert pca_rgb(rng.normal(size=(5, 2))).shape == (5, 3)  # fewer than 3 channels


def test_pca_rgb_wide_layer_gram_path_equals_covariance_path():
    # few positions, many channels (text at C=4096) takes the N x N Gram route; repeating every
    # row keeps the mean and the principal axes, and pushes N past C onto the covariance route
    from nbfeat.analysis.pca import pca_rgb

    rng = np.random.default_rng(1)
    x = rng.normal(size=(12, 64)) * np.linspace(4, 0.1, 64)
    wide = pca_rgb(x, low=0, high=100)  # min/max scaling: percentiles would differ with N
    tall = pca_rgb(np.tile(x, (8, 1)), low=0, high=100)[:12]
    assert np.abs(wide.astype(int) - tall.astype(int)).max() <= 1
