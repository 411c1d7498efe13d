"""Read a store back: lazy, labelled, the same data model as an in-memory extraction.

`open` gives the samples extracted so far (failed and not-yet-extracted ones left out, as
`bb.extract` leaves out inputs it could not read); `valid_only=False` gives every sample with
its `status`, `reason` and `valid` coords. Nothing is read until asked for: `.values`,
`.load()`, `sample(...)`.

>>> ds = open("feats.zarr")                          # doctest: +SKIP
>>> small = sample(ds, 1000, seed=0)                 # in memory, 1000 random samples
>>> x = layer("feats.zarr", "layer4")                # one variable, lazy
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError
from nbfeat.store.allocate import INTERNAL_ATTRS, failure_records
from nbfeat.store.integrity import missing_chunks
from nbfeat.store.layout import OK, PENDING, Layout
from nbfeat.store.resume import resolve_target
from nbfeat.store.safety import users_files_quiet


def open(path: Any, valid_only: bool = True) -> Any:  # noqa: A001 - nbfeat.open, like xr.open_*
    """The store at `path` as a lazy (dask-backed) xarray Dataset, or DataTree if dims clash.

    Args:
        path: a store written by `bb.extract(..., out=path)` or `nbfeat.store.write`.
        valid_only: keep only samples extracted successfully. False keeps all samples, with
            coords `status` (0 pending, 1 ok, 2 failed), `reason` and `valid`.

    Attrs are the run's provenance plus `failed`/`n_failed`, and `n_pending` (samples not
    extracted yet) while a run is unfinished; opening never fails on a half-written store.

    Example:
        >>> ds = nbfeat.open("feats.zarr")          # doctest: +SKIP
    """
    import xarray as xr
    import zarr

    target = resolve_target(path)
    try:
        group = zarr.open_group(target, mode="r")
    except Exception as e:
        if isinstance(e, FileNotFoundError) or type(e).__name__.endswith("NotFoundError"):
            raise NbfeatError(f"No nbfeat store at {path}.") from None
        raise
    if "nbfeat_layout" not in group.attrs:
        raise NbfeatError(
            f"{path} is not a finished nbfeat store (it was interrupted while being created, or written by something else). Write it again."
        )
    layout = Layout.from_json(group.attrs["nbfeat_layout"])
    status = group["status"][:]
    for c in missing_chunks(group, layout, status):  # files gone: missing, not values
        start, stop = layout.chunk_range(c)
        status[start:stop] = PENDING
    records = failure_records(group, layout, status)
    if layout.tree:
        with users_files_quiet():
            tree = xr.open_datatree(target, engine="zarr", consolidated=False, chunks={}, zarr_format=3)
        # children in the run's order (the file system lists them in any order)
        nodes = {
            f"/{v.group}": _plain_strings(tree[v.group].to_dataset(inherit=False))
            for v in layout.variables
        }
        obj = xr.DataTree.from_dict({"/": _plain_strings(tree.to_dataset(inherit=False)), **nodes})
    else:
        with users_files_quiet():
            obj = _plain_strings(xr.open_zarr(target, consolidated=False, chunks={}, zarr_format=3))
    attrs = {k: v for k, v in _root(obj).attrs.items() if k not in INTERNAL_ATTRS}
    attrs.update({"failed": json.dumps(records), "n_failed": len(records)})
    n_pending = int((status == PENDING).sum())
    if n_pending:
        attrs["n_pending"] = n_pending
    root = _root(obj)
    if valid_only:
        keep = np.flatnonzero(status == OK)
        root = root.drop_vars(["status", "reason", "input_key"], errors="ignore")
    else:
        root = root.drop_vars(["input_key"], errors="ignore")
        root = root.assign_coords(status=("sample", status), valid=("sample", status == OK))
    root.attrs = attrs
    if isinstance(target, str):
        root.encoding["source"] = target  # export refuses to write into the store it reads
    if not valid_only and (status != OK).any():
        # what is not extracted (or must be recomputed) reads as NaN, never as values
        valid = xr.DataArray(status == OK, dims="sample")
        root = _mask_features(root, valid, layout)
        if hasattr(obj, "children"):
            for v in layout.variables:
                node = obj[v.group].to_dataset(inherit=False)
                obj[v.group].dataset = _mask_features(node, valid, layout)
    obj = _with_root(obj, root)
    if valid_only and len(keep) < layout.n:
        obj = obj.isel(sample=keep)
    return obj


def _mask_features(ds: Any, valid: Any, layout: Layout) -> Any:
    names = {v.name for v in layout.variables}
    masked = {k: ds[k].where(valid) for k in ds.data_vars if k in names and ds[k].dtype.kind == "f"}
    return ds.assign(masked) if masked else ds


def sample(source: Any, n: int, seed: int | None = 0) -> Any:
    """`n` random samples (without replacement, in store order), loaded into memory.

    `source` is a store path or what `open` returned. The same seed on the same store picks
    the same samples. What VISSL's `ExtractedFeaturesLoader.sample_features` does.

    Example:
        >>> small = nbfeat.store.sample("feats.zarr", 1000, seed=0)     # doctest: +SKIP
    """
    obj = open(source) if isinstance(source, str | os.PathLike) else source
    total = int(_root(obj).sizes["sample"])
    n = int(n)
    if not 0 <= n <= total:
        raise NbfeatError(f"Cannot sample {n} of {total} samples: pass n between 0 and {total}.")
    idx = np.sort(np.random.default_rng(seed).choice(total, size=n, replace=False))
    return obj.isel(sample=idx).compute()


def layer(source: Any, name: str) -> Any:
    """One variable as a lazy DataArray with its sample coords (a store path or an opened store).

    Example:
        >>> x = nbfeat.store.layer("feats.zarr", "layer4").values     # doctest: +SKIP
    """
    import xarray as xr

    obj = open(source) if isinstance(source, str | os.PathLike) else source
    if isinstance(obj, xr.DataTree):
        node = name.replace("/", "--")
        if node not in obj.children:
            raise NbfeatError(
                f"No variable {name!r} in the store; it has: {', '.join(obj.children)}."
            )
        root = obj.to_dataset(inherit=False)
        # a DataTree child inherits only indexed coords; label, path, valid... come from the root
        extra = {k: c for k, c in root.coords.items() if c.dims == ("sample",) and k != "sample"}
        return obj[node].to_dataset()[name].assign_coords(extra)
    if name not in obj.data_vars:
        raise NbfeatError(
            f"No variable {name!r} in the store; it has: {', '.join(map(str, obj.data_vars))}."
        )
    return obj[name]


def _plain_strings(ds: Any) -> Any:
    """numpy's StringDType (what zarr v3 strings read as) -> object: `.astype(str)` fails on it.

    Per-sample strings (label, path, ...) are read now, like the `sample` index: they are
    small, and grouping by label should not go through dask. `token_text` stays lazy.
    """
    strings = {k: ds[k].astype(object) for k in ds.variables if ds[k].dtype.kind == "T"}
    # read here, with dask's synchronous get passed as a function: naming any scheduler, even
    # "synchronous", makes dask import distributed to look for a client (11 MiB of RSS)
    from dask.local import get_sync

    strings = {k: v.load(scheduler=get_sync) if v.ndim == 1 else v for k, v in strings.items()}
    return ds.assign_coords({k: v for k, v in strings.items() if k in ds.coords}).assign(
        {k: v for k, v in strings.items() if k not in ds.coords}
    )


def _root(obj: Any) -> Any:
    return obj.to_dataset(inherit=False) if hasattr(obj, "children") else obj


def _with_root(obj: Any, root: Any) -> Any:
    if not hasattr(obj, "children"):
        return root
    obj.dataset = root
    return obj
