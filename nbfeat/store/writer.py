"""`write`: stream an extraction run into a zarr store, resumable, locally or on Dask.

>>> run = bb.prepare("images/", layers="layer4", pool="mean")      # doctest: +SKIP
>>> write(run, "feats.zarr")                                       # doctest: +SKIP
>>> write(run, "feats.zarr")    # again: finds every chunk done, returns at once  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from typing import Any

from nbfeat.store.allocate import failure_records
from nbfeat.store.chunks import write_chunks
from nbfeat.store.lock import store_lock
from nbfeat.store.rebuild import Rebuild
from nbfeat.store.resume import open_for_run, resolve_target


def write(
    run: Any,
    path: Any,
    client: Any = None,
    progress: bool = True,
    *,
    overwrite: bool = False,
    chunk_size: int | None = None,
) -> None:
    """Extract every sample of `run` into the zarr store at `path`, chunk by chunk.

    Memory stays flat whatever the number of samples. Killed and started again with the same
    arguments, it continues where it stopped and ends with the same values. A store written
    by a different extraction is refused, naming what changed (`overwrite=True` replaces it);
    inputs that changed since are recomputed, and when the inputs gained or lost samples only
    the new ones are extracted. Inputs that cannot be read are recorded (`status`,
    `reason`), not fatal. One writer per store at a time: a second one gets StoreBusyError.

    Args:
        run: an ExtractionRun (`bb.prepare(...)`).
        path: a local path or an fsspec URL of a zarr store (created if missing).
        client: a `dask.distributed.Client`: workers load the model once each and write their
            own chunks of the same store (the path must be reachable from every worker).
        progress: show a progress bar (images/s, ETA).
        overwrite: replace whatever is at `path`.
        chunk_size: samples per chunk (default: about 32 MiB of features, whole batches).

    Example:
        >>> write(bb.prepare("images/", layers="layer4"), "feats.zarr")   # doctest: +SKIP
    """
    target = resolve_target(path)
    with store_lock(target):
        opened = open_for_run(run, path, overwrite=overwrite, chunk_size=chunk_size)
        rebuild = opened if isinstance(opened, Rebuild) else None
        group, layout = (rebuild.group, rebuild.layout) if rebuild else opened
        where = rebuild.tmp if rebuild else target
        done = layout.done_chunks(group["status"][:])
        pending = [c for c in range(layout.n_chunks) if not done[c]]
        initial = layout.n - len(layout.chunk_positions(pending))
        with _bar(progress, layout.n, initial) as update:
            try:
                if client is None:
                    write_chunks(run, group, layout, pending, on_progress=update, reuse=rebuild)
                else:
                    from nbfeat.store.distributed import write_distributed

                    if rebuild is not None:  # copy what is reusable here; workers extract the rest
                        whole = [c for c in pending if rebuild.whole(c)]
                        write_chunks(run, group, layout, whole, on_progress=update, reuse=rebuild)
                        pending = [c for c in pending if c not in set(whole)]
                    write_distributed(
                        run,
                        where,
                        layout,
                        pending,
                        client,
                        on_progress=update,
                        samples_key=group.attrs["nbfeat_samples"],
                    )
            except KeyboardInterrupt:
                if progress:
                    sys.stderr.write(
                        f"Interrupted: finished chunks are kept in {path}; run the same call again to resume.\n"
                    )
                raise
        _finalize(group, layout)
        if rebuild is not None:
            rebuild.swap()


def _finalize(group: Any, layout: Any) -> None:
    """Record failures in the attrs, as the in-memory result does."""
    status = group["status"][:]
    records = failure_records(group, layout, status)
    group.attrs.update({"failed": json.dumps(records), "n_failed": len(records)})


@contextlib.contextmanager
def _bar(progress: bool, total: int, initial: int) -> Iterator[Any]:
    if not progress:
        yield lambda n: None
        return
    from tqdm.auto import tqdm

    with tqdm(
        total=total, initial=initial, unit="img", desc="nbfeat", smoothing=0.1, dynamic_ncols=True
    ) as bar:
        yield bar.update
