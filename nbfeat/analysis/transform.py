"""Shape-keeping and shape-changing transforms on labelled features: center, normalize, flatten, pool.

All of them return new DataArrays with the attrs and the coords that still apply, and stay lazy
on dask-backed data.

>>> da.nbfeat.pool("mean").nbfeat.normalize("zscore")     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import SAMPLE, coords_within, require_sample, with_attrs
from nbfeat.errors import NbfeatError

NORMALIZE_METHODS = ("l2", "zscore")


def center(da: xr.DataArray, dim: str = SAMPLE) -> xr.DataArray:
    """Subtract the mean over `dim` (default: over samples, so each feature has mean 0).

    Padded text positions (NaN) are skipped in the mean and stay NaN.

    >>> da.nbfeat.center().mean("sample")          # doctest: +SKIP
    """
    if dim not in da.dims:
        raise NbfeatError(f"Cannot center over '{dim}': the array has dims {tuple(da.dims)}.")
    return with_attrs(da - da.mean(dim), da)


def _feature_dims(da: xr.DataArray, keep: Iterable[Hashable]) -> list[Hashable]:
    kept = {SAMPLE, *keep}
    return [d for d in da.dims if d not in kept]


def normalize(
    da: xr.DataArray, method: str = "l2", keep: Iterable[Hashable] = ("layer", "call"), eps: float = 1e-12
) -> xr.DataArray:
    """Normalize features.

    - `"l2"`: each sample (and each layer/call, see `keep`) scaled to unit L2 norm over its
      feature dims.
    - `"zscore"`: each feature standardised over samples (mean 0, std 1; constant features
      are centred only).

    >>> da.nbfeat.normalize("l2")                  # doctest: +SKIP
    """
    require_sample(da, "normalize()")
    if method == "l2":
        dims = _feature_dims(da, keep)
        norm = np.sqrt((da * da).sum(dims))
        out = da / norm.where(norm > eps, 1.0)
    elif method == "zscore":
        std = da.std(SAMPLE)
        out = (da - da.mean(SAMPLE)) / std.where(std > eps, 1.0)
    else:
        raise NbfeatError(f"Unknown normalize method {method!r}: use one of {', '.join(NORMALIZE_METHODS)}.")
    return with_attrs(out, da, normalized=method)


def flatten(da: xr.DataArray, keep: Iterable[Hashable] | str | None = None) -> xr.DataArray:
    """All dims but `sample` (and those in `keep`, e.g. "layer") -> one `feature` dim.

    Row-major over the remaining dims in their current order (as `torch.flatten`): the attrs
    `feature_dims` ("channel,y,x") and `feature_shape` ("64,7,7") record how to undo it.

    >>> da.nbfeat.flatten().dims                   # doctest: +SKIP
    ('sample', 'feature')
    >>> da.nbfeat.flatten(keep="layer").dims       # doctest: +SKIP
    ('sample', 'layer', 'feature')
    """
    require_sample(da, "flatten()")
    keep = (keep,) if isinstance(keep, str) else tuple(keep or ())
    kept = [SAMPLE, *[d for d in keep if d in da.dims and d != SAMPLE]]
    rest = [d for d in da.dims if d not in kept]
    if rest == ["feature"]:
        return da.transpose(*kept, "feature")
    t = da.transpose(*kept, *rest)
    shape = [da.sizes[d] for d in rest]
    data = t.data.reshape(*[da.sizes[d] for d in kept], int(np.prod(shape)) if rest else 1)
    out = xr.DataArray(data, dims=(*kept, "feature"), coords=coords_within(da, tuple(kept)), name=da.name)
    return with_attrs(
        out, da, feature_dims=",".join(map(str, rest)), feature_shape=",".join(map(str, shape))
    )


def tokens_to_grid(da: xr.DataArray) -> xr.DataArray:
    """ViT patch tokens (..., token, channel) -> a feature map (..., channel, y, x).

    Uses the variable attrs `grid` ("HxW") and `prefix_tokens` (class/register tokens, dropped);
    without `grid`, a square grid is inferred when the token count allows it.

    >>> tokens_to_grid(vit["blocks.11"]).dims      # doctest: +SKIP
    ('sample', 'channel', 'y', 'x')
    """
    if "token" not in da.dims or "channel" not in da.dims:
        raise NbfeatError(f"Expected dims with 'token' and 'channel', got {tuple(da.dims)}.")
    prefix = int(da.attrs.get("prefix_tokens", 0) or 0)
    grid = str(da.attrs.get("grid", "") or "")
    n_patch = da.sizes["token"] - prefix
    if grid:
        h, w = (int(v) for v in grid.lower().split("x"))
    else:
        side = int(round(np.sqrt(max(n_patch, 0))))
        if side * side != n_patch or side == 0:
            raise NbfeatError(
                "These tokens have no patch grid (no 'grid' attr, not a square count): "
                "pool them with 'mean' or 'cls' instead."
            )
        h = w = side
    if h * w > n_patch:
        raise NbfeatError(f"grid {h}x{w} needs {h * w} patch tokens, the array has {n_patch}.")
    patches = da.isel(token=slice(prefix, prefix + h * w))
    lead = [d for d in patches.dims if d not in ("token", "channel")]
    t = patches.transpose(*lead, "channel", "token")
    data = t.data.reshape(*t.shape[:-1], h, w)
    out = xr.DataArray(data, dims=(*lead, "channel", "y", "x"), coords=coords_within(da, (*lead, "channel")))
    return with_attrs(out, da)


def _adaptive(da: xr.DataArray, size: int, how: str) -> xr.DataArray:
    """Adaptive 2-D pooling over y, x to size x size, with torch's window bounds."""
    h, w = da.sizes["y"], da.sizes["x"]
    if h % size == 0 and w % size == 0:
        c = da.coarsen(y=h // size, x=w // size)
        return c.mean() if how == "mean" else c.max()
    rows = []
    for i in range(size):
        y0, y1 = (i * h) // size, -((-(i + 1) * h) // size)
        cols = []
        for j in range(size):
            x0, x1 = (j * w) // size, -((-(j + 1) * w) // size)
            win = da.isel(y=slice(y0, y1), x=slice(x0, x1))
            cols.append(win.mean(("y", "x")) if how == "mean" else win.max(("y", "x")))
        rows.append(xr.concat(cols, "x"))
    return xr.concat(rows, "y").transpose(*da.dims)


def _drop_token_coords(da: xr.DataArray) -> xr.DataArray:
    return da.drop_vars([k for k, v in da.coords.items() if "token" in v.dims or k == "token"])


def poolable(da: xr.DataArray) -> bool:
    """Whether `da` has something to pool: y and x, or tokens."""
    return "token" in da.dims or ("y" in da.dims and "x" in da.dims)


def pool(da: xr.DataArray, spec: Any) -> xr.DataArray:
    """Pool over space (y, x) or tokens, like the engine's `pool=` but after the fact.

    Specs: "mean", "max", "cls" (first token), "last" (last real token), "flatten",
    ("avg2d", k) / ("max2d", k) or "avg2d:k" (adaptive pooling to k x k; ViT tokens go through
    their patch grid first). Text is mask-aware: the `mask` coord marks real tokens, padded
    positions (NaN) are left out of "mean"/"max" and skipped by "last".

    >>> da.nbfeat.pool("mean").dims                # doctest: +SKIP
    ('sample', 'channel')
    >>> da.nbfeat.pool(("avg2d", 2)).sizes["y"]    # doctest: +SKIP
    2
    """
    from nbfeat.engine.pooling import parse_pool

    ps = parse_pool(spec)
    if ps is None:
        return da
    if ps.kind == "flatten":
        return with_attrs(flatten(da, keep=("layer", "call")), da, pool=str(ps))
    spatial = "y" in da.dims and "x" in da.dims
    if not poolable(da):
        raise NbfeatError(
            f"Nothing to pool: '{da.name}' has dims {tuple(da.dims)} (no y/x or token). It may be pooled already."
        )
    kind = ps.kind
    if kind in ("avg2d", "max2d"):
        grid = da if spatial else tokens_to_grid(da)
        out = _adaptive(grid, ps.size, "mean" if kind == "avg2d" else "max")
    elif spatial:
        if kind not in ("mean", "max"):
            raise NbfeatError(f"Pooling '{kind}' needs tokens; this is a feature map. Use 'mean', 'max' or 'avg2d'.")
        out = da.mean(("y", "x")) if kind == "mean" else da.max(("y", "x"))
    else:
        out = _pool_tokens(da, kind)
    return with_attrs(out, da, pool=str(ps))


def _pool_tokens(da: xr.DataArray, kind: str) -> xr.DataArray:
    mask = da.coords.get("mask")
    if kind == "cls":
        return _drop_token_coords(da.isel(token=0))
    if kind == "last":
        if mask is None:
            return _drop_token_coords(da.isel(token=-1))
        # the indexer is one int per sample: computing it is cheap and dask cannot index lazily
        last = _drop_token_coords((mask.astype(int).sum("token") - 1).clip(min=0)).compute()
        return _drop_token_coords(da.isel(token=last))
    real = da.where(mask.astype(bool)) if mask is not None else da
    out = real.mean("token", skipna=True) if kind == "mean" else real.max("token", skipna=True)
    return _drop_token_coords(out)
