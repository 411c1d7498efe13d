"""Batches -> labelled xarray: a Dataset when dims agree, a DataTree when they clash.

>>> ds = to_xarray(run, run.iter_batches())      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from nbfeat.engine.allocation import empty


def to_xarray(run: Any, batches: Iterable[Any]) -> Any:
    """Collect batches in memory and label them (see docs/architecture.md).

    Each variable is allocated once for every input (untouched rows cost no memory) and
    filled batch by batch, so there is no concatenation copy at the end.
    """
    total = len(run.inputs)
    arrays = {name: empty((total, *spec.shape), spec.dtype) for name, spec in run.variables.items()}
    coords: dict[str, np.ndarray] = {}
    pos = np.empty(total, dtype=np.int64)
    failed: list[tuple[int, str]] = []
    n = 0
    for batch in batches:
        failed += batch.failed
        k = len(batch.positions)
        if not k:
            continue
        pos[n : n + k] = batch.positions
        for name, arr in batch.features.items():
            arrays[name][n : n + k] = arr
        for name, arr in batch.sample_coords.items():
            if name not in coords:  # strings as objects: a later batch may hold longer tokens
                coords[name] = np.empty((total, *arr.shape[1:]), object if arr.dtype.kind == "U" else arr.dtype)
            coords[name][n : n + k] = arr
        n += k
    return build(run, pos[:n], {k: v[:n] for k, v in arrays.items()}, {k: v[:n].astype(str) if v.dtype == object else v[:n] for k, v in coords.items()}, failed)


def sample_coordinates(run: Any, positions: np.ndarray) -> dict[str, tuple[tuple[str, ...], np.ndarray]]:
    """The per-sample coords (sample, label, path[, text]) for `positions` of `run`'s inputs."""
    inp = run.inputs
    coords = {
        "sample": (("sample",), np.asarray([inp.ids[p] for p in positions], dtype=str)),
        "label": (("sample",), np.asarray([inp.labels[p] for p in positions], dtype=str)),
        "path": (("sample",), np.asarray([inp.paths[p] for p in positions], dtype=str)),
    }
    if inp.texts is not None:
        coords["text"] = (("sample",), np.asarray([inp.texts[p] for p in positions], dtype=str))
    return coords


def failure_records(run: Any, failed: list[tuple[int, str]]) -> list[dict[str, str]]:
    """`[{"sample", "path", "reason"}]` for failed positions plus skipped folder entries."""
    inp = run.inputs
    records = [{"sample": inp.ids[p], "path": inp.paths[p], "reason": r} for p, r in sorted(failed)]
    records += [{"sample": s, "path": p, "reason": r} for s, p, r in run.skipped]
    return records


def build(run: Any, positions: np.ndarray, arrays: dict[str, np.ndarray], sample_coords: dict[str, np.ndarray], failed: list[tuple[int, str]]) -> Any:
    import xarray as xr

    coords: dict[str, Any] = dict(sample_coordinates(run, positions))
    for name, arr in sample_coords.items():
        coords[name] = (("sample", "token"), arr)
    variables = {}
    for name, spec in run.variables.items():
        var_coords = {k: (dim, vals) for k, (dim, vals) in spec.coords.items()}
        variables[name] = xr.Variable(spec.dims, arrays[name], attrs=dict(spec.attrs)), var_coords
    attrs = dict(run.attrs)
    records = failure_records(run, failed)
    attrs["failed"] = json.dumps(records)
    attrs["n_failed"] = len(records)
    if dims_agree(run.variables):
        extra = {k: v for _, c in variables.values() for k, v in c.items()}
        ds = xr.Dataset({n: v for n, (v, _) in variables.items()}, coords={**coords, **extra}, attrs=attrs)
        return ds
    # DataTree inherits only indexed coords: each child carries the per-sample coords itself,
    # so dt["layer4"]["layer4"] keeps its labels
    per_sample = {k: v for k, v in coords.items() if k not in ("token_text", "mask")}
    children = {}
    for name, (var, var_coords) in variables.items():
        token_coords = {k: v for k, v in coords.items() if k in ("token_text", "mask") and "token" in var.dims}
        children[name.replace("/", "--")] = xr.Dataset({name: var}, coords={**per_sample, **var_coords, **token_coords})
    root = xr.Dataset(coords=per_sample, attrs=attrs)
    return xr.DataTree.from_dict({"/": root, **{f"/{k}": v for k, v in children.items()}})


def dims_agree(variables: dict[str, Any]) -> bool:
    """Whether all variables fit one Dataset (no dim with two sizes); else a DataTree is made."""
    sizes: dict[str, int] = {}
    for spec in variables.values():
        for dim, n in zip(spec.dims[1:], spec.shape):
            if sizes.setdefault(dim, n) != n:
                return False
    return True
