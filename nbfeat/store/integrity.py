"""Finished chunks whose files are gone or damaged count as missing, never as values.

A chunk is done when its `status` chunk says so; its feature files must then be there too.
A feature piece holding at least one extracted sample is never all fill values, so zarr
always stores it: when its file is missing (deleted, lost in a copy) or empty (truncated),
the chunk is missing. Damaged bytes inside a file fail the crc32c check on read instead of
reading as values (see `allocate.feature_compressors`).

>>> missing_chunks(group, layout, status)      # doctest: +SKIP
[3]
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from nbfeat.store.layout import OK, PENDING, Layout


def missing_chunks(group: Any, layout: Layout, status: np.ndarray) -> list[int]:
    """Done chunks (by `status`) with a required file missing or empty; local stores only."""
    root = _root(group)
    if root is None:
        return []
    done = layout.done_chunks(status)
    bad = []
    arrays = [group[v.array] for v in layout.variables] + [group[p] for p in layout.token_arrays()]
    for c in np.flatnonzero(done):
        c = int(c)
        start, stop = layout.chunk_range(c)
        ok = status[start:stop] == OK
        if not _exists(root, group["status"], (c,)):
            bad.append(c)
            continue
        if not ok.any():
            continue
        for arr in arrays:
            step = arr.chunks[0]
            pieces = range(start // step, -(-stop // step))
            needed = [i for i in pieces if ok[i * step - start : (i + 1) * step - start].any()]
            if any(not _exists(root, arr, (i,) + (0,) * (arr.ndim - 1)) for i in needed):
                bad.append(c)
                break
    return bad


def mark_missing_pending(group: Any, layout: Layout) -> list[int]:
    """Mark done chunks with missing files pending, so the run recomputes them."""
    status = group["status"][:]
    bad = missing_chunks(group, layout, status)
    for c in bad:
        start, stop = layout.chunk_range(c)
        group["status"][start:stop] = np.full(stop - start, PENDING, dtype=np.int8)
    return bad


def _exists(root: str, arr: Any, index: tuple[int, ...]) -> bool:
    path = os.path.join(root, arr.path, arr.metadata.encode_chunk_key(index))
    try:
        return os.path.getsize(path) > 0
    except OSError:
        return False


def _root(group: Any) -> str | None:
    store = group.store
    root = getattr(store, "root", None)
    return os.fspath(root) if root is not None and type(store).__name__ == "LocalStore" else None


def verify(path: Any, repair: bool = True) -> list[int]:
    """Read every finished chunk of the store at `path`; damaged or missing ones are returned
    (and, with `repair=True`, marked pending so the next run with the same call recomputes them).

    Example:
        >>> nbfeat.store.verify("feats.zarr")      # doctest: +SKIP
        []
    """
    import zarr

    from nbfeat.store.resume import resolve_target

    group = zarr.open_group(resolve_target(path), mode="r+" if repair else "r")
    layout = Layout.from_json(group.attrs["nbfeat_layout"])
    status = group["status"][:]
    bad = set(missing_chunks(group, layout, status))
    arrays = [group[v.array] for v in layout.variables] + [group[p] for p in layout.token_arrays()]
    for c in np.flatnonzero(layout.done_chunks(status)):
        if int(c) in bad:
            continue
        start, stop = layout.chunk_range(int(c))
        for arr in arrays:
            try:
                arr[start:stop]
            except Exception:  # a checksum or decode error: the bytes are not the values
                bad.add(int(c))
                break
    if repair:
        for c in sorted(bad):
            start, stop = layout.chunk_range(c)
            group["status"][start:stop] = np.full(stop - start, PENDING, dtype=np.int8)
    return sorted(bad)
