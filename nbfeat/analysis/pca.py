"""PCA: labelled fits for the accessor, and `pca_rgb` (features -> colours) for the widgets.

>>> fit = ds["layer4"].nbfeat.pool("mean").nbfeat.pca(3)        # doctest: +SKIP
>>> fit.scores.dims, fit.explained_variance_ratio.values         # doctest: +SKIP
(('sample', 'component'), array([0.31, 0.12, 0.08]))
>>> rgb = pca_rgb(np.random.rand(2, 7, 7, 64))                   # (2, 7, 7, 3) uint8
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import (
    SAMPLE,
    check_finite,
    coords_within,
    is_dask,
    matrix,
    sample_coords,
)
from nbfeat.errors import NbfeatError

# above this many features a lazy fit goes through the (N x N) Gram matrix instead of the
# (F x F) covariance, so memory stays at the smaller of the two
COVARIANCE_MAX_FEATURES = 4096


def _flip_signs(v: np.ndarray) -> np.ndarray:
    """Deterministic signs: the largest-magnitude loading of each component is positive."""
    idx = np.argmax(np.abs(v), axis=1)
    signs = np.sign(v[np.arange(v.shape[0]), idx])
    signs[signs == 0] = 1
    return signs


def svd_pca(x: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """Centred PCA of a (N, F) array by SVD.

    Returns (scores (N, k), components (k, F), singular values (k,), mean (F,), total sum of
    squares of the centred data).

    >>> s, comps, sv, mean, total = svd_pca(np.random.rand(10, 4), 2)
    """
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    xc = x - mean
    if xc.shape[0] >= xc.shape[1]:
        u, s, vt = np.linalg.svd(xc, full_matrices=False)
    else:  # wide data: the same factors from the transposed problem are cheaper
        v, s, ut = np.linalg.svd(xc.T, full_matrices=False)
        u, vt = ut.T, v.T
    total = float(np.sum(s**2))
    u, s, vt = u[:, :k], s[:k], vt[:k]
    signs = _flip_signs(vt)
    return u * s * signs, vt * signs[:, None], s, mean, total


def _lazy_pca(x: Any, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, float]:
    """The same factors for a dask array, chunk by chunk: (F x F) or (N x N) products only."""
    import dask

    mean = x.mean(axis=0)
    xc = x - mean
    n, f = x.shape
    if f <= COVARIANCE_MAX_FEATURES:
        cov, mean_np = dask.compute(xc.T @ xc, mean)
        w, v = np.linalg.eigh(cov)
        order = np.argsort(w)[::-1]
        w, v = np.clip(w[order], 0, None), v[:, order]
        vt = v[:, :k].T
        signs = _flip_signs(vt)
        vt = vt * signs[:, None]
        scores = np.asarray((xc @ vt.T).compute())
        return scores, vt, np.sqrt(w[:k]), np.asarray(mean_np), float(w.sum())
    gram, mean_np = dask.compute(xc @ xc.T, mean)
    w, u = np.linalg.eigh(gram)
    order = np.argsort(w)[::-1]
    w, u = np.clip(w[order], 0, None), u[:, order]
    s = np.sqrt(w[:k])
    safe = np.where(s > 0, s, 1.0)
    vt = np.asarray((xc.T @ (u[:, :k] / safe)).compute()).T
    signs = _flip_signs(vt)
    return u[:, :k] * s * signs, vt * signs[:, None], s, np.asarray(mean_np), float(w.sum())


def fit_pca(da: xr.DataArray, k: int = 3) -> xr.Dataset:
    """Centred PCA over samples; all non-sample dims are features.

    Returns a Dataset: `scores` (sample, component) with the sample coords, `loadings`
    (component, *feature dims), `mean` (*feature dims), and on `component` the coords
    `explained_variance` and `explained_variance_ratio`. Project new data with `project`.

    >>> fit = fit_pca(da, 3)                                          # doctest: +SKIP
    >>> fit.explained_variance_ratio.sum() <= 1                       # doctest: +SKIP
    """
    x = matrix(da, "pca()")
    n, f = x.shape
    if not 1 <= k <= min(n, f):
        raise NbfeatError(f"pca(k={k}): k must be between 1 and min(samples, features) = {min(n, f)}.")
    if is_dask(x):
        scores, comps, sv, mean, total = _lazy_pca(x, k)
        check_finite(scores)
    else:
        check_finite(x)
        scores, comps, sv, mean, total = svd_pca(x, k)
    feat_dims = tuple(d for d in da.dims if d != SAMPLE)
    feat_shape = tuple(da.sizes[d] for d in feat_dims)
    var = sv**2 / max(n - 1, 1)
    ratio = sv**2 / total if total > 0 else np.zeros_like(sv)
    comp = np.arange(k)
    fcoords = coords_within(da, feat_dims)
    return xr.Dataset(
        {
            "scores": (("sample", "component"), scores),
            "loadings": xr.Variable(("component", *feat_dims), comps.reshape(k, *feat_shape)),
            "mean": xr.Variable(feat_dims, mean.reshape(feat_shape)),
        },
        coords={
            **sample_coords(da),
            **fcoords,
            "component": comp,
            "explained_variance": ("component", var),
            "explained_variance_ratio": ("component", ratio),
        },
        attrs={**da.attrs, "pca_of": str(da.name) if da.name is not None else ""},
    )


def project(fit: xr.Dataset, da: xr.DataArray) -> xr.DataArray:
    """Scores of new samples `da` on the components of `fit` (same feature dims); stays lazy.

    >>> project(fit, other_da).dims                                   # doctest: +SKIP
    ('sample', 'component')
    """
    feat_dims = list(fit["mean"].dims)
    missing = [d for d in feat_dims if d not in da.dims]
    if missing:
        raise NbfeatError(f"This PCA was fitted on dims {feat_dims}; the new array lacks {missing}.")
    # bare arrays: the fit's own coords must not clash with (or realign) the new data's
    mean = xr.DataArray(fit["mean"].data, dims=feat_dims)
    loadings = xr.DataArray(fit["loadings"].data, dims=("component", *feat_dims))
    scores = xr.dot(da - mean, loadings, dim=feat_dims)
    out = scores.transpose(SAMPLE, ..., "component").assign_coords(
        component=fit["component"].values,
        explained_variance_ratio=("component", fit["explained_variance_ratio"].values),
    )
    out.attrs = dict(da.attrs)
    return out.rename(da.name)


def pca_rgb(features: np.ndarray, low: float = 1.0, high: float = 99.0) -> np.ndarray:
    """Map (..., C) features to (..., 3) uint8 colours through their top-3 principal components.

    One PCA over all positions (so colours are comparable across images); each component is
    scaled robustly to 0..255 between its `low`th and `high`th percentiles. Non-finite rows
    (padding) come out black.

    >>> pca_rgb(np.random.rand(2, 7, 7, 64)).shape
    (2, 7, 7, 3)
    """
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim < 2:
        raise NbfeatError(f"pca_rgb expects (..., C) features with at least 2 dims, got shape {arr.shape}.")
    lead, c = arr.shape[:-1], arr.shape[-1]
    flat = arr.reshape(-1, c)
    ok = np.all(np.isfinite(flat), axis=1)
    rgb = np.zeros((flat.shape[0], 3), dtype=np.uint8)
    good = flat[ok]
    if good.shape[0] >= 2 and c >= 1:
        centred = good - good.mean(axis=0)
        n = centred.shape[0]
        if n >= c:  # covariance (C x C): cheap for many positions
            w, v = np.linalg.eigh(centred.T @ centred)
        else:  # Gram (N x N): cheap for wide layers with few positions (text, C=4096)
            w, u = np.linalg.eigh(centred @ centred.T)
            v = centred.T @ u / np.sqrt(np.maximum(w, 1e-12))[None, :]
        v = v[:, np.argsort(w)[::-1][:3]]
        v = v * _flip_signs(v.T)[None, :]
        proj = centred @ v
        if proj.shape[1] < 3:
            proj = np.pad(proj, ((0, 0), (0, 3 - proj.shape[1])))
        lo = np.percentile(proj, low, axis=0)
        hi = np.percentile(proj, high, axis=0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        scaled = np.clip((proj - lo) / span, 0.0, 1.0)
        rgb[ok] = np.round(scaled * 255).astype(np.uint8)
    return rgb.reshape(*lead, 3)
