"""Allocate a store for a whole run up front: every array at its final size, nothing computed.

Unwritten chunks read as their fill value (NaN features, `status` 0 = pending), so a store
opens at any moment. The root attr `nbfeat_fingerprint` is written last: a store without it
was interrupted while being allocated and holds no features yet.

Layout (xarray conventions, zarr v3 `dimension_names`):

    /sample /label /path [/text]     sample coords, written now
    /status /reason                  per sample: 0 pending, 1 ok, 2 failed; why it failed
    /<var>  or  /<var>/<var>         features, chunked along sample (a group each if dims clash)
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

from nbfeat.store.layout import FAILED, STATUS_ATTRS, Layout, coord_chunk

# root attrs that are nbfeat's bookkeeping, not provenance
INTERNAL_ATTRS = (
    "nbfeat_store",
    "nbfeat_fingerprint",
    "nbfeat_layout",
    "nbfeat_spec",
    "nbfeat_samples",
    "nbfeat_skipped",
    "nbfeat_key",
)


def allocate(group: Any, run: Any, layout: Layout) -> None:
    """Create every array of `layout` in the empty zarr `group` and write the sample coords."""
    group.attrs.update({"nbfeat_store": 1})
    n, c = layout.n, layout.chunk
    samples = run.samples
    cc = coord_chunk(layout)
    for col in layout.sample_columns:
        arr = group.create_array(
            col, shape=(n,), chunks=(cc,), dtype=str, fill_value="", dimension_names=("sample",)
        )
        for start in range(0, n, cc):
            arr[start : start + cc] = np.asarray(
                samples[col].iloc[start : start + cc], dtype=object
            )
    group.create_array(
        "status",
        shape=(n,),
        chunks=(c,),
        dtype="int8",
        fill_value=0,
        dimension_names=("sample",),
        attributes=dict(STATUS_ATTRS),
    )
    group.create_array(
        "reason",
        shape=(n,),
        chunks=(c,),
        dtype=str,
        fill_value="",
        dimension_names=("sample",),
        attributes={"long_name": "why a sample failed"},
    )

    group.create_array(
        "input_key",
        shape=(n,),
        chunks=(c,),
        dtype=str,
        fill_value="",
        dimension_names=("sample",),
        attributes={"long_name": "content digest of each input (nbfeat.data.inputs.Inputs.content_key)"},
    )

    coord_names: dict[str, list[str]] = {
        "": [col for col in layout.sample_columns if col != "sample"] + ["status", "reason", "input_key"]
    }
    for v in layout.variables:
        spec = run.variables[v.name]
        g = group.require_group(v.group) if v.group else group
        g.create_array(
            v.name,
            shape=(n, *v.shape),
            chunks=(layout.feature_chunk, *v.shape),
            dtype=v.dtype,
            fill_value=v.fill,
            dimension_names=tuple(v.dims),
            compressors=feature_compressors(),
            attributes=_jsonable(spec.attrs),
        )
        for name, (dim, values) in spec.coords.items():
            if name in g.array_keys():
                continue
            dims = (dim,) if isinstance(dim, str) else tuple(dim)
            vals = np.asarray(values)
            dtype: Any = str if vals.dtype.kind in "USO" else vals.dtype
            g.create_array(name, shape=vals.shape, dtype=dtype, dimension_names=dims)[...] = (
                vals.astype(object) if dtype is str else vals
            )
            if dims != (name,):
                coord_names.setdefault(v.group, []).append(name)
    for gname in layout.token_groups:
        g = group.require_group(gname) if gname else group
        shape, chunks = (n, layout.token), (c, layout.token)
        g.create_array(
            "token_text",
            shape=shape,
            chunks=chunks,
            dtype=str,
            fill_value="",
            dimension_names=("sample", "token"),
        )
        g.create_array(
            "mask",
            shape=shape,
            chunks=chunks,
            dtype=bool,
            fill_value=False,
            dimension_names=("sample", "token"),
        )
        coord_names.setdefault(gname, []).extend(["token_text", "mask"])
    for gname, names in coord_names.items():
        if gname:
            group[gname].attrs.update({"coordinates": " ".join(names)})

    attrs = _jsonable(run.attrs)
    attrs.update(
        {
            "coordinates": " ".join(coord_names[""]),
            "nbfeat_layout": layout.to_json(),
            "nbfeat_spec": json.dumps(run.spec, sort_keys=True, default=str),
            "nbfeat_samples": samples_digest(run.samples),
            "nbfeat_key": json.dumps(run.key(), sort_keys=True, default=str),
            "nbfeat_skipped": json.dumps([list(s) for s in getattr(run, "skipped", [])]),
        }
    )
    group.attrs.update(attrs)
    group.attrs.update({"nbfeat_fingerprint": run.fingerprint()})  # last: the store is ready


def samples_digest(samples: Any) -> str:
    """A hash of the sample ids and paths, to refuse resuming with other inputs."""
    import pandas as pd

    h = hashlib.sha256()
    cols = [c for c in ("sample", "path") if c in samples.columns]
    for start in range(0, len(samples), 65536):
        part = samples[cols].iloc[start : start + 65536].astype(str)
        h.update(pd.util.hash_pandas_object(part, index=False).to_numpy().tobytes())
    h.update(str(len(samples)).encode())
    return h.hexdigest()[:16]


def failure_records(group: Any, layout: Layout, status: np.ndarray) -> list[dict[str, str]]:
    """`[{"sample", "path", "reason"}]` for failed samples, then the files skipped up front."""
    idx = np.flatnonzero(status == FAILED)
    records = []
    if len(idx):
        ids = group["sample"].get_coordinate_selection(idx)
        paths = (
            group["path"].get_coordinate_selection(idx)
            if "path" in layout.sample_columns
            else [""] * len(idx)
        )
        reasons = group["reason"].get_coordinate_selection(idx)
        records = [
            {"sample": str(s), "path": str(p), "reason": str(r)}
            for s, p, r in zip(ids, paths, reasons)
        ]
    skipped = json.loads(group.attrs.get("nbfeat_skipped", "[]"))
    return records + [{"sample": s, "path": p, "reason": r} for s, p, r in skipped]


def _jsonable(attrs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in attrs.items():
        if isinstance(v, np.generic):
            v = v.item()
        out[str(k)] = v if isinstance(v, str | int | float | bool | list) or v is None else str(v)
    return out


def feature_compressors() -> list[Any]:
    """zstd level 1: on activations it compresses as well as zarr's default (level 3), twice as fast.

    Measured on resnet50 `layer1` (32 images, 98 MiB, a third zeros): both 1.55x smaller;
    level 1 writes in half the time, which matters while the forward pass holds both cores.
    The crc32c checksum makes a damaged chunk fail on read instead of reading as values.
    """
    from zarr.codecs import Crc32cCodec, ZstdCodec

    return [ZstdCodec(level=1), Crc32cCodec()]
