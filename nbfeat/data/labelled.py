"""Batches -> labelled xarray: a Dataset when dims agree, a DataTree when they clash.

>>> ds = to_xarray(run, run.iter_batches())      # doctest: +SKIP
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import numpy as np

from nbfeat.engine.allocation import empty, release_soon


def to_xarray(run: Any, batches: Iterable[Any]) -> Any:
    """Collect batches in memory and label them (see docs/architecture.md).

    Each variable is allocated once for every input (untouched rows cost no memory) and
    each batch's rows are written at their input positions, so the result is in input order
    whatever order the batches come in (text batches are sorted by length) and there is no
    concatenation or reordering copy at the end: rows of failed inputs are squeezed out in
    place and the result holds views of those arrays.
    """
    total = len(run.inputs)
    arrays = {name: empty((total, *spec.shape), spec.dtype) for name, spec in run.variables.items()}
    coords: dict[str, np.ndarray] = {}
    done = np.zeros(total, dtype=bool)
    failed: list[tuple[int, str]] = []
    for batch in batches:
        failed += batch.failed
        if not len(batch.positions):
            continue
        rows = _as_slice(np.asarray(batch.positions, dtype=np.int64))
        done[rows] = True
        for name, arr in batch.features.items():
            arrays[name][rows] = arr
        for name, arr in batch.sample_coords.items():
            if name not in coords:  # strings as objects: a later batch may hold longer tokens
                coords[name] = np.empty((total, *arr.shape[1:]), object if arr.dtype.kind == "U" else arr.dtype)
            coords[name][rows] = arr
        batch = arr = None  # copied: not held while the engine runs the next forward
    release_soon()  # the freed activations go back to the system once idle (tune_malloc kept them)
    pos = np.flatnonzero(done)
    n = len(pos)
    for v in (*arrays.values(), *coords.values()):
        _squeeze(v, pos)
    return build(run, pos, {k: v[:n] for k, v in arrays.items()}, {k: v[:n].astype(str) if v.dtype == object else v[:n] for k, v in coords.items()}, failed)


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """Consecutive positions as a slice (a plain copy into a view), anything else unchanged."""
    if len(index) and index[-1] - index[0] == len(index) - 1 and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _squeeze(arr: np.ndarray, pos: np.ndarray) -> None:
    """Move rows `pos` (ascending) to the front of `arr`, in place, without a temporary copy.

    Rows only move towards the front, in ascending order, in blocks no longer than the gap
    they move by, so a block never overlaps its destination.
    """
    j, n = 0, len(pos)
    while j < n:
        p = int(pos[j])
        if p == j:
            j += 1
            continue
        # the run of consecutive positions starting at pos[j]
        k = j + 1
        while k < n and pos[k] == pos[k - 1] + 1:
            k += 1
        gap = p - j
        for s in range(j, k, gap):
            e = min(k, s + gap)
            arr[s:e] = arr[s + gap : e + gap]
        j = k


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
