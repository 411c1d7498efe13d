"""Representational dissimilarity matrices (RDMs) and RSA between them.

An RDM is a DataArray with dims (`sample`, `sample_`): the second axis repeats the sample
coords with a trailing underscore (`sample_`, `label_`, `path_`...), so labels read on both
axes. Built from the Gram matrix X X^T, which dask computes block by block on lazy data.

>>> r = rdm(ds["layer4"].nbfeat.pool("mean"), metric="correlation")   # doctest: +SKIP
>>> r.sel(sample="cats/img0.png", sample_="dogs/img1.png")           # doctest: +SKIP
>>> rsa(r, other_rdm, corr="spearman")                                # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import SAMPLE, is_dask, matrix, sample_coords
from nbfeat.errors import NbfeatError

METRICS = ("correlation", "euclidean", "cosine")
CORRS = ("pearson", "spearman", "kendall")
SECOND = SAMPLE + "_"


def check_metric(metric: str) -> None:
    if metric not in METRICS:
        raise NbfeatError(f"Unknown RDM metric {metric!r}: use one of {', '.join(METRICS)}.")


def rdm_array(x: Any, metric: str = "correlation") -> Any:
    """(N, F) float array -> (N, N) dissimilarities, equal to `scipy.spatial.distance.pdist`.

    numpy in, numpy out; dask in, lazy dask out.

    >>> rdm_array(np.eye(3), "euclidean").round(3)
    array([[0.   , 1.414, 1.414],
           [1.414, 0.   , 1.414],
           [1.414, 1.414, 0.   ]])
    """
    check_metric(metric)
    lazy = is_dask(x)
    xp: Any
    if lazy:
        import dask.array as xp
    else:
        xp = np
    if metric == "euclidean":
        x = x - x.mean(axis=0)  # distances do not change; the Gram identity loses less precision
        sq = (x * x).sum(axis=1)
        d2 = sq[:, None] + sq[None, :] - 2.0 * (x @ x.T)
        d = xp.sqrt(xp.maximum(d2, 0.0))
    else:
        if metric == "correlation":
            x = x - x.mean(axis=1, keepdims=True)
        norm = xp.sqrt((x * x).sum(axis=1, keepdims=True))
        with np.errstate(invalid="ignore", divide="ignore"):
            xn = x / norm
        d = 1.0 - xn @ xn.T
    d = (d + d.T) / 2.0
    if lazy:
        idx = xp.arange(x.shape[0], chunks=x.chunks[0])
        return xp.where(idx[:, None] == idx[None, :], 0.0, d)
    np.fill_diagonal(d, 0.0)
    return d


def second_axis(coords: dict[Any, Any]) -> dict[str, Any]:
    """Sample coords renamed for the second RDM axis: `sample` -> `sample_`, `label` -> `label_`."""
    return {f"{k}_": xr.Variable((SECOND,), v.data, attrs=v.attrs) for k, v in coords.items()}


def rdm(da: xr.DataArray, metric: str = "correlation") -> xr.DataArray:
    """Labelled RDM of `da` over samples (all other dims flattened into features).

    >>> rdm(da, "euclidean").dims                       # doctest: +SKIP
    ('sample', 'sample_')
    """
    check_metric(metric)
    x = matrix(da, "rdm()")
    d = rdm_array(x, metric)
    coords = sample_coords(da)
    out = xr.DataArray(d, dims=(SAMPLE, SECOND), coords={**coords, **second_axis(coords)}, name=da.name)
    out.attrs = {**da.attrs, "rdm_metric": metric}
    return out


def upper(r: Any) -> np.ndarray:
    """The strict upper triangle of a square RDM as a vector (what RSA correlates)."""
    arr = r.data if isinstance(r, xr.DataArray) else r
    if is_dask(arr):
        arr = arr.compute()
    arr = np.asarray(arr, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise NbfeatError(f"An RDM is a square (sample x sample) matrix; got shape {arr.shape}.")
    return arr[np.triu_indices(arr.shape[0], k=1)]


def check_corr(corr: str) -> None:
    if corr not in CORRS:
        raise NbfeatError(f"Unknown RSA correlation {corr!r}: use one of {', '.join(CORRS)}.")


def settle_ties(v: np.ndarray, digits: int = 11) -> np.ndarray:
    """Round to `digits` significant digits (relative to the largest value) before ranking.

    Dissimilarities from the Gram identity carry ~1e-15 relative error, so pairs that are
    equal exactly (ties, which tau-a and Spearman treat specially) would otherwise be ranked
    apart by rounding noise; scipy's `pdist` computes them directly and keeps them tied.
    """
    scale = float(np.max(np.abs(v))) if v.size else 0.0
    if not np.isfinite(scale) or scale == 0.0:
        return v
    return np.round(v / scale, digits) * scale


def standardize(v: np.ndarray, corr: str = "pearson") -> np.ndarray:
    """Vector -> zero mean, unit norm (ranked first for Spearman): dot products are correlations."""
    check_corr(corr)
    if corr == "kendall":
        raise NbfeatError("Kendall's tau-a is not a dot product of standardised vectors; use correlate().")
    if not np.all(np.isfinite(v)):
        from nbfeat.analysis._common import NAN_HINT

        raise NbfeatError(NAN_HINT)
    if corr == "spearman":
        from scipy.stats import rankdata

        v = rankdata(settle_ties(v))
    v = v - v.mean()
    norm = np.linalg.norm(v)
    return v / norm if norm > 0 else v


def tau_a(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-a (rsatoolbox's "tau-a"): (concordant - discordant) / (n (n - 1) / 2).

    Ties count as neither, and the denominator is not adjusted for them, so a model that
    predicts ties is not rewarded for it (Nili et al. 2014). From scipy's tau-b and the tie counts.
    """
    from scipy.stats import kendalltau

    n = x.size
    n0 = n * (n - 1) / 2.0
    if n0 == 0:
        return float("nan")

    def ties(v: np.ndarray) -> float:
        _, counts = np.unique(v, return_counts=True)
        return float((counts * (counts - 1) / 2.0).sum())

    t1, t2 = ties(x), ties(y)
    if t1 == n0 or t2 == n0:
        return 0.0
    tau_b = kendalltau(x, y, variant="b").statistic
    return float(np.clip(tau_b * np.sqrt((n0 - t1) * (n0 - t2)) / n0, -1.0, 1.0))


def correlate(va: np.ndarray, vb: np.ndarray, corr: str = "pearson") -> float:
    """Pearson, Spearman or Kendall tau-a between two vectors (RDM upper triangles)."""
    check_corr(corr)
    if va.shape != vb.shape:
        raise NbfeatError(f"RDMs over different numbers of samples: {va.size} vs {vb.size} pairs.")
    if corr == "kendall":
        if not (np.all(np.isfinite(va)) and np.all(np.isfinite(vb))):
            from nbfeat.analysis._common import NAN_HINT

            raise NbfeatError(NAN_HINT)
        return tau_a(settle_ties(va), settle_ties(vb))
    return float(standardize(va, corr) @ standardize(vb, corr))


def rsa(a: Any, b: Any, corr: str = "pearson") -> float:
    """Correlation of the upper triangles of two RDMs (DataArrays or square arrays).

    Labelled RDMs are paired by their `sample` ids (an inner join, with a warning when some
    are left out); plain arrays by position. `corr`: "pearson", "spearman" or "kendall"
    (tau-a, as rsatoolbox's "tau-a").

    >>> rsa(rdm_a, rdm_b, corr="spearman")              # doctest: +SKIP
    0.42
    """
    if isinstance(a, xr.DataArray) and isinstance(b, xr.DataArray):
        from nbfeat.analysis.align import join_samples

        a, b = join_samples([a, b], ["first RDM", "second RDM"], "rsa()")
    return correlate(upper(a), upper(b), corr)
