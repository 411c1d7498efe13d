"""Top-k classes from logits (or probabilities), with ImageNet names for 1000-way heads.

>>> ds["fc"].nbfeat.topk(3).to_dataframe()      # doctest: +SKIP
                 prob  class_index  class_name
sample rank
cats/a.png 1   0.41          281   tabby cat
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from functools import cache
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.errors import NbfeatError


@cache
def imagenet_classes() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, shipped with torchvision (no download)."""
    from torchvision.models import ResNet50_Weights

    return tuple(ResNet50_Weights.IMAGENET1K_V2.meta["categories"])


def _softmax(x: np.ndarray) -> np.ndarray:
    x = x - np.max(x, axis=-1, keepdims=True)
    e = np.exp(x)
    return e / e.sum(axis=-1, keepdims=True)


def _top(x: np.ndarray, k: int, softmax: bool) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    p = _softmax(x) if softmax else x
    idx = np.argsort(-p, axis=-1, kind="stable")[..., :k]
    return np.take_along_axis(p, idx, axis=-1), idx


def topk(
    da: xr.DataArray,
    k: int = 5,
    softmax: bool = True,
    dim: Hashable | None = None,
    names: Sequence[str] | None = None,
) -> xr.DataArray:
    """The k most probable classes along `dim` (default: the last dim).

    Returns probabilities with dims (..., `rank`) (rank 1 = best) and coords `class_index` and
    `class_name` on the same dims. `softmax=False` when the values are probabilities already.
    Names: `names=`, else string coords on `dim`, else ImageNet when `dim` has 1000 entries,
    else the index as text.

    >>> logits.nbfeat.topk(5).class_name.sel(rank=1).values        # doctest: +SKIP
    """
    dim = da.dims[-1] if dim is None else dim
    if dim not in da.dims:
        raise NbfeatError(f"topk: no dim {dim!r}; the array has dims {tuple(da.dims)}.")
    n = da.sizes[dim]
    if not 1 <= k <= n:
        raise NbfeatError(f"topk(k={k}): k must be between 1 and the number of classes ({n}).")
    label_coord = da.coords.get(dim)
    if names is None and label_coord is not None and label_coord.dtype.kind in "US":
        names = [str(v) for v in label_coord.values]
    if names is None and n == 1000:
        names = imagenet_classes()
    if names is not None and len(names) != n:
        raise NbfeatError(f"topk: {len(names)} names for {n} classes.")
    bare = da.drop_vars([c for c, v in da.coords.items() if dim in v.dims])
    prob, idx = xr.apply_ufunc(
        _top,
        bare,
        kwargs={"k": k, "softmax": softmax},
        input_core_dims=[[dim]],
        output_core_dims=[["rank"], ["rank"]],
        dask="parallelized",
        output_dtypes=[np.float64, np.int64],
        dask_gufunc_kwargs={"output_sizes": {"rank": k}, "allow_rechunk": True},
    )
    lookup: Any = np.asarray(names if names is not None else [str(i) for i in range(n)], dtype=str)
    class_name = xr.apply_ufunc(
        lambda i: lookup[i], idx, dask="parallelized", output_dtypes=[lookup.dtype]
    )
    out = prob.assign_coords(rank=np.arange(1, k + 1), class_index=idx, class_name=class_name)
    out.attrs = {**da.attrs, "topk_softmax": int(softmax)}
    return out.rename(da.name)
