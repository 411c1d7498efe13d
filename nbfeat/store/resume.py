"""Open the store for a run: create it, resume it, or refuse it when it holds something else.

A chunk counts as done once its `status` chunk exists; the writer writes (and on local disks
fsyncs) every other array of that chunk first, so a crash at any point leaves only whole,
finished chunks marked done. Resuming recomputes the rest, in the same batches.

>>> group, layout = open_for_run(run, "feats.zarr")      # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import warnings
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError
from nbfeat.store import safety
from nbfeat.store.allocate import allocate
from nbfeat.store.layout import PENDING, Layout, plan

# extract arguments that do not change the values (batching, devices)
_NOT_VALUES = {"batch_size", "num_workers", "device", "length_buckets"}


class StoreMismatchError(NbfeatError):
    """The store at `out=` was written by a different extraction."""


def open_for_run(
    run: Any, path: Any, overwrite: bool = False, chunk_size: int | None = None
) -> tuple[Any, Layout]:
    """The zarr group for `run` at `path` (allocated if new) and its layout.

    Never deletes what nbfeat did not write: a folder that is not a store nbfeat made is
    refused, even with `overwrite=True`; replacing a store removes only nbfeat's own files.
    """
    import zarr

    target = resolve_target(path)
    if not is_local(target):
        return _open_other(run, target, path, overwrite, chunk_size)
    from nbfeat.store.rebuild import recover

    recover(target)
    kind = safety.state(target)
    if kind == "file":
        raise StoreMismatchError(f"{path} is a file, not a store: nbfeat will not replace it. Use a new path.")
    if kind == "foreign":
        raise StoreMismatchError(
            f"{path} already exists and is not a store nbfeat made: nbfeat never deletes it, even with overwrite=True. Use a new path."
        )
    if kind == "damaged" and not overwrite:
        raise StoreMismatchError(
            f"{path} is an nbfeat store whose zarr.json is damaged (a crash while it was written?). "
            "Pass overwrite=True to rebuild it (nbfeat deletes only the files it wrote there), or use a new path."
        )
    if kind in ("missing", "empty"):
        return _create(run, target, chunk_size)
    if kind in ("unfinished", "damaged") or overwrite:
        safety.remove_store(target)
        return _create(run, target, chunk_size)
    try:
        group = zarr.open_group(target, mode="r+")
        layout = Layout.from_json(group.attrs["nbfeat_layout"])
        for name in ("status", "reason", *(v.array for v in layout.variables)):
            group[name]
    except Exception as e:  # a damaged array inside: the same answer as a damaged root
        if overwrite:
            raise
        raise StoreMismatchError(
            f"{path} is an nbfeat store with damaged metadata ({type(e).__name__}: {str(e)[:120]}). "
            "Pass overwrite=True to rebuild it, or use a new path."
        ) from None
    _check_same(group, run, path)
    if not same_samples(group, run):
        from nbfeat.store.rebuild import Rebuild

        return Rebuild.start(run, group, layout, target, path)
    from nbfeat.store.integrity import mark_missing_pending

    mark_missing_pending(group, layout)
    refresh(group, layout, run, path)
    return group, layout


def _open_other(run: Any, target: Any, path: Any, overwrite: bool, chunk_size: int | None) -> tuple[Any, Layout]:
    """A URL or a zarr store object: the same rules, read through zarr."""
    import zarr

    existing = _existing(target)
    if existing is not None and not (
        "nbfeat_fingerprint" in existing.attrs or "nbfeat_store" in existing.attrs
    ):
        raise StoreMismatchError(
            f"{path} already exists and is not a store nbfeat made: nbfeat never deletes it, even with overwrite=True. Use a new path."
        )
    if overwrite or existing is None or "nbfeat_fingerprint" not in existing.attrs:
        return _create(run, target, chunk_size)  # new, ours, or interrupted while allocating
    _check_same(existing, run, path)
    group = zarr.open_group(target, mode="r+")
    layout = Layout.from_json(group.attrs["nbfeat_layout"])
    if not same_samples(group, run):  # no rebuild beside a remote store: say so
        raise StoreMismatchError(
            f"{path} holds features for other inputs ({layout.n} samples in the store, {len(run.inputs)} now, ids differ). "
            "Write to a new path, or pass overwrite=True to replace it."
        )
    refresh(group, layout, run, path)
    return group, layout


def _create(run: Any, target: Any, chunk_size: int | None) -> tuple[Any, Layout]:
    import zarr

    layout = plan(run, chunk_size)
    if is_local(target):
        safety.write_marker(target)  # first: whatever happens next, this folder is ours
        group = zarr.create_group(target, zarr_format=3, overwrite=False)
    else:
        group = zarr.open_group(target, mode="w", zarr_format=3)
    allocate(group, run, layout)
    return group, layout


def is_local(target: Any) -> bool:
    return isinstance(target, str) and "://" not in target


def resolve_target(path: Any) -> Any:
    """Local paths become absolute (Dask workers may start elsewhere); URLs pass through."""
    if isinstance(path, str | os.PathLike):
        text = os.fspath(path)
        return text if "://" in text else os.path.abspath(os.path.expanduser(text))
    return path


def _existing(target: Any) -> Any:
    import zarr

    if isinstance(target, str) and "://" not in target:
        if not os.path.exists(target):
            return None
        if os.path.isdir(target) and not os.listdir(target):
            return None
        if not os.path.exists(os.path.join(target, "zarr.json")):
            raise StoreMismatchError(
                f"{target} already exists and is not a zarr store. Use a new path, or pass overwrite=True to replace it."
            )
    try:
        return zarr.open_group(target, mode="r")
    except (FileNotFoundError, KeyError, ValueError):
        return None
    except Exception as e:  # zarr's GroupNotFoundError and friends
        if type(e).__name__.endswith("NotFoundError"):
            return None
        raise


def _check_same(group: Any, run: Any, path: Any) -> None:
    """Refuse a store written by another extraction, naming what changed."""
    attrs = group.attrs
    layout = Layout.from_json(attrs["nbfeat_layout"])
    how = "Write to a new path, or pass overwrite=True to replace it."
    if layout.version != Layout.__dataclass_fields__["version"].default:
        raise StoreMismatchError(
            f"{path} was written by another nbfeat store format (version {layout.version}). {how}"
        )
    if attrs["nbfeat_fingerprint"] != run.fingerprint():
        diffs = describe_differences(attrs, run)
        detail = (
            "; ".join(diffs)
            if diffs
            else f"fingerprint {attrs['nbfeat_fingerprint']} in the store, {run.fingerprint()} now"
        )
        raise StoreMismatchError(
            f"{path} holds features from a different extraction ({detail}). {how}"
        )


def same_samples(group: Any, run: Any) -> bool:
    """Whether the store holds the run's sample ids, in the run's order."""
    if group["sample"].shape[0] != len(run.inputs):
        return False
    stored = np.asarray(group["sample"][:], dtype=object)
    return bool((stored == np.asarray(run.inputs.ids, dtype=object)).all())


def stale_positions(group: Any, layout: Layout, run: Any, rows: np.ndarray | None = None) -> np.ndarray:
    """Finished samples (store rows = run positions) whose input changed since they were written."""
    status = group["status"][:]
    done = np.flatnonzero(status != PENDING) if rows is None else rows
    if not len(done):
        return done
    stored = np.asarray(group["input_key"][:], dtype=object)
    return np.asarray([p for p in done if not input_unchanged(run, int(p), str(stored[p]))], dtype=np.int64)


def input_unchanged(run: Any, pos: int, stored: str) -> bool:
    """Whether input `pos` of `run` still holds what `stored` (its content key) describes."""
    from nbfeat.data.inputs import same_file

    if not stored:
        return False
    if run.inputs.kind == "files":
        return same_file(stored, run.inputs.items[pos])
    return run.input_keys([pos])[pos] == stored


def refresh(group: Any, layout: Layout, run: Any, path: Any) -> list[int]:
    """Same samples: mark the chunks of changed inputs pending; update per-sample coords."""
    stale = stale_positions(group, layout, run)
    chunks = sorted({int(p) // layout.chunk for p in stale})
    if len(stale):
        names = ", ".join(run.inputs.ids[int(p)] for p in stale[:5]) + (", ..." if len(stale) > 5 else "")
        warnings.warn(
            f"{len(stale)} input(s) changed since {path} was written ({names}): their features are recomputed.",
            UserWarning,
            stacklevel=4,
        )
    for c in chunks:
        start, stop = layout.chunk_range(c)
        group["status"][start:stop] = np.full(stop - start, PENDING, dtype=np.int8)
    samples = run.samples
    for col in layout.sample_columns:
        if col == "sample":
            continue
        new = np.asarray(samples[col], dtype=object)
        if not (np.asarray(group[col][:], dtype=object) == new).all():
            group[col][:] = new  # e.g. other labels= or a changed text (its chunk is recomputed)
    return chunks


def describe_differences(attrs: Any, run: Any) -> list[str]:
    """'what: stored -> now' for each setting that differs between a store and a run."""
    diffs = []
    for key in ("model", "weights", "dtype", "preprocessing"):
        old, new = attrs.get(key), run.attrs.get(key)
        if old != new:
            diffs.append(f"{key}: {_short(old)} in the store, {_short(new)} now")
    old_spec = json.loads(attrs.get("nbfeat_spec", "{}")).get("extract", {})
    new_spec = json.loads(json.dumps(run.spec, default=str)).get("extract", {})
    for key in sorted(set(old_spec) | set(new_spec)):
        if key not in _NOT_VALUES and old_spec.get(key) != new_spec.get(key):
            diffs.append(
                f"{key}: {_short(old_spec.get(key))} in the store, {_short(new_spec.get(key))} now"
            )
    if "nbfeat_key" in attrs:
        from nbfeat.store.key import differences

        said = {"model", "weights", "dtype", "preprocessing"} | ({"targets", "variables", "flatten"} if diffs else set())
        diffs += [
            d
            for d in differences(json.loads(attrs["nbfeat_key"]), json.loads(json.dumps(run.key(), default=str)))
            if d.split(":", 1)[0].split(".", 1)[0] not in said
        ]
    if not diffs:
        old_vars = {
            v.name: (v.dims, v.shape) for v in Layout.from_json(attrs["nbfeat_layout"]).variables
        }
        new_vars = {n: (list(s.dims), [int(x) for x in s.shape]) for n, s in run.variables.items()}
        if old_vars != new_vars:
            diffs.append(f"variables: {_short(old_vars)} in the store, {_short(new_vars)} now")
    return diffs


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
