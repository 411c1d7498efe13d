"""Linear CKA that streams over samples, for any number of samples and features.

    CKA(X, Y) = ||Yc^T Xc||_F^2 / (||Xc^T Xc||_F ||Yc^T Yc||_F)      (Xc, Yc column-centred)

Two equal ways to get each term: in feature space (accumulate X^T Y over sample chunks, with
the centring applied afterwards from running sums: memory Fx x Fy, never N x N) or in sample
space (<Kc, Lc> with Kc = Xc Xc^T, summed block by block: memory one block, for very wide
features). "auto" picks the cheaper one.

>>> linear_cka(np.random.rand(50, 8), np.random.rand(50, 5))        # doctest: +SKIP
0.21
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import check_finite, is_dask, matrix
from nbfeat.errors import NbfeatError

METHODS = ("auto", "features", "gram")
# the feature-space path keeps an Fx x Fy float64 matrix: cap it (2**24 cells = 128 MiB)
FEATURE_CELLS = 2**24
CHUNK = 2048


def _pick(n: int, fx: int, fy: int, method: str) -> str:
    if method not in METHODS:
        raise NbfeatError(f"Unknown CKA method {method!r}: use one of {', '.join(METHODS)}.")
    if method != "auto":
        return method
    cells = fx * fy
    return "features" if cells <= FEATURE_CELLS and cells <= n * (fx + fy) else "gram"


def _pair(x: Any, y: Any) -> tuple[Any, Any]:
    """Both numpy, or both dask with the same sample chunks (one chunk across features)."""
    if x.shape[0] != y.shape[0]:
        raise NbfeatError(f"CKA needs the same samples on both sides: {x.shape[0]} vs {y.shape[0]}.")
    if not (is_dask(x) or is_dask(y)):
        return x, y
    import dask.array as da

    ref = x if is_dask(x) else y
    chunks = ref.chunks[0]
    x = da.asarray(x).rechunk({0: chunks, 1: -1})
    y = da.asarray(y).rechunk({0: chunks, 1: -1})
    return x, y


def _shift(x: Any) -> np.ndarray:
    """A rough mean from the first rows: subtracting it first keeps the centring exact in float64."""
    head = x[: min(x.shape[0], 256)].mean(axis=0)
    return np.asarray(head.compute() if is_dask(head) else head, dtype=np.float64)


def cross_term(x: Any, y: Any, method: str = "auto", chunk: int = CHUNK) -> float:
    """||Xc^T Yc||_F^2 = <Kc, Lc> for (N, F) arrays (numpy or dask)."""
    x, y = _pair(x, y)
    n = x.shape[0]
    path = _pick(n, x.shape[1], y.shape[1], method)
    if path == "features":
        c = _feature_cross(x, y, chunk)
        return float(np.sum(c * c))
    return _gram_cross(x, y, chunk)


def _feature_cross(x: Any, y: Any, chunk: int) -> np.ndarray:
    """Xc^T Yc from sums over sample chunks: sum((x-a)(y-b)^T) - n (mx-a)(my-b)^T."""
    n = x.shape[0]
    a, b = _shift(x), _shift(y)
    if is_dask(x):
        import dask

        xs, ys = x - a, y - b
        sx, sy, xty = dask.compute(xs.sum(axis=0), ys.sum(axis=0), xs.T @ ys)
    else:
        sx = np.zeros(x.shape[1])
        sy = np.zeros(y.shape[1])
        xty = np.zeros((x.shape[1], y.shape[1]))
        for i in range(0, n, chunk):
            xb = np.asarray(x[i : i + chunk], dtype=np.float64) - a
            yb = np.asarray(y[i : i + chunk], dtype=np.float64) - b
            sx += xb.sum(axis=0)
            sy += yb.sum(axis=0)
            xty += xb.T @ yb
    c = np.asarray(xty) - np.outer(sx, sy) / n
    check_finite(c)
    return c


def _gram_cross(x: Any, y: Any, chunk: int) -> float:
    """<Kc, Lc> summed over (chunk x chunk) blocks; the N x N Grams never exist whole."""
    n = x.shape[0]
    if is_dask(x):
        import dask

        xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
        total = dask.compute(((xc @ xc.T) * (yc @ yc.T)).sum())[0]
    else:
        mx, my = x.mean(axis=0), y.mean(axis=0)
        total = 0.0
        for i in range(0, n, chunk):
            xi, yi = x[i : i + chunk] - mx, y[i : i + chunk] - my
            for j in range(i, n, chunk):
                xj, yj = (xi, yi) if j == i else (x[j : j + chunk] - mx, y[j : j + chunk] - my)
                block = float(np.sum((xi @ xj.T) * (yi @ yj.T)))
                total += block if j == i else 2.0 * block
    check_finite(np.asarray(total))
    return float(total)


def self_term(x: Any, method: str = "auto", chunk: int = CHUNK) -> float:
    """||Xc^T Xc||_F = ||Kc||_F, the normaliser of CKA."""
    return float(np.sqrt(cross_term(x, x, method, chunk)))


def _as_matrix(v: Any) -> Any:
    if isinstance(v, xr.DataArray):
        return matrix(v, "CKA")
    if is_dask(v):
        return v.reshape(v.shape[0], -1).astype(np.float64)
    arr = np.asarray(v, dtype=np.float64)
    return arr.reshape(arr.shape[0], -1)


def linear_cka(x: Any, y: Any, method: str = "auto", chunk: int = CHUNK) -> float:
    """Linear CKA between two representations of the same samples (first axis = samples).

    Accepts numpy arrays, dask arrays or DataArrays with a `sample` dim (other dims are
    flattened); two DataArrays are paired by their `sample` ids (inner join). `method`: "auto", "features" (stream X^T Y) or "gram" (stream Kc blocks).

    >>> linear_cka(x, x @ q)          # any orthogonal q: 1.0        # doctest: +SKIP
    """
    if isinstance(x, xr.DataArray) and isinstance(y, xr.DataArray):
        from nbfeat.analysis.align import join_samples

        x, y = join_samples([x, y], ["x", "y"], "linear_cka()")
    mx, my = _as_matrix(x), _as_matrix(y)
    num = cross_term(mx, my, method, chunk)
    den = self_term(mx, method, chunk) * self_term(my, method, chunk)
    return num / den if den > 0 else float("nan")
