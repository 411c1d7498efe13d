"""A feature cache for notebooks: re-running a cell reads stored features instead of extracting.

`bb.extract(..., cache=True)` (or `nbfeat.extract(..., cache=True)`) writes the features to a
store in the cache folder, named by the extraction's key (model, every load argument, the
digest of the loaded weights, config, preprocessing, targets, pools) and its inputs; the next
call with the same key reads them back, across kernel restarts. Inputs that changed since
(per-sample content keys, see nbfeat.store.key) are recomputed, never served stale.

The folder: `cache=` when it is a path, else `$NBFEAT_CACHE_DIR`, else
`$XDG_CACHE_HOME/nbfeat` (`~/.cache/nbfeat`).

>>> ds = bb.extract("images/", layers="layer4", pool="mean", cache=True)   # doctest: +SKIP
>>> nbfeat.cache.info()                                                   # doctest: +SKIP
>>> nbfeat.cache.clear()                                                  # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import re
import warnings
from pathlib import Path
from typing import Any

_ENTRY = re.compile(r"^[0-9a-f]{16}-[0-9a-f]{16}\.zarr$")  # only names nbfeat gives its entries


def directory(cache: Any = True) -> Path:
    """The cache folder for `cache=` (True: the configured or default one)."""
    if isinstance(cache, str | os.PathLike):
        return Path(cache).expanduser()
    env = os.environ.get("NBFEAT_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "nbfeat"


def entry_path(run: Any, cache: Any = True) -> Path:
    """Where the features of `run` live in the cache: `<fingerprint>-<inputs digest>.zarr`.

    Files are named by sample ids and paths (their bytes are checked per sample when the
    entry is used); in-memory inputs by their content, so two tensors of the same size get
    two entries.
    """
    from nbfeat.store.allocate import samples_digest

    inp = run.inputs
    if inp.kind == "files":
        inputs = samples_digest(run.samples)
    else:
        h = hashlib.sha256(samples_digest(run.samples).encode())
        for key in run.input_keys(range(len(inp))).values():
            h.update(key.encode())
        inputs = h.hexdigest()[:16]
    return directory(cache) / f"{run.fingerprint()}-{inputs}.zarr"


def extract(run: Any, cache: Any = True, progress: bool = True) -> Any:
    """The features of `run`, read from the cache or extracted into it; loaded in memory."""
    from nbfeat import store
    from nbfeat.store.lock import StoreBusyError

    path = entry_path(run, cache)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        store.write(run, path, progress=progress)
    except StoreBusyError:
        warnings.warn(
            f"The cache entry {path.name} is being written by another process: extracting in memory this time.",
            UserWarning,
            stacklevel=3,
        )
        return run.to_xarray(progress=progress)
    return store.open(path).load()


def info(cache: Any = True) -> Any:
    """A table of the cache entries: key, model, samples, variables, size (bytes), created, path.

    Example:
        >>> nbfeat.cache.info()         # doctest: +SKIP
    """
    import pandas as pd

    from nbfeat.store import safety

    rows = []
    root = directory(cache)
    for entry in sorted(root.iterdir()) if root.is_dir() else []:
        if not _ENTRY.match(entry.name) or safety.state(entry) not in ("nbfeat", "unfinished", "damaged"):
            continue
        attrs: dict[str, Any] = {}
        try:
            attrs = json.loads((entry / "zarr.json").read_text()).get("attributes", {})
        except (OSError, ValueError):
            pass
        layout = json.loads(attrs.get("nbfeat_layout", "{}") or "{}")
        created = attrs.get("created") or _dt.datetime.fromtimestamp(entry.stat().st_mtime, _dt.timezone.utc).isoformat(timespec="seconds")
        rows.append(
            {
                "key": entry.name[: -len(".zarr")],
                "model": attrs.get("model", ""),
                "samples": int(layout.get("n", 0)),
                "variables": ", ".join(v["name"] for v in layout.get("variables", [])),
                "size": sum(f.stat().st_size for f in entry.rglob("*") if f.is_file()),
                "created": created,
                "path": str(entry),
            }
        )
    return pd.DataFrame(rows, columns=["key", "model", "samples", "variables", "size", "created", "path"])


def clear(cache: Any = True, model: str | None = None) -> int:
    """Remove cache entries (only stores nbfeat wrote, only their files); returns how many.

    Args:
        model: only the entries of this model id (e.g. "timm:resnet50").

    Example:
        >>> nbfeat.cache.clear(model="timm:resnet50")      # doctest: +SKIP
    """
    from nbfeat.store import safety
    from nbfeat.store.lock import StoreBusyError, lock_path, store_lock

    table = info(cache)
    n = 0
    for _, row in table.iterrows():
        if model is not None and row["model"] != model:
            continue
        try:
            with store_lock(row["path"]):  # not while a kernel writes it
                safety.remove_store(row["path"])
        except StoreBusyError:
            warnings.warn(f"Cache entry {row['key']} is being written: kept.", UserWarning, stacklevel=2)
            continue
        lock = Path(lock_path(row["path"]))
        if lock.is_file() and lock.stat().st_size == 0:
            lock.unlink()
        n += 1
    return n
