"""Dask: shards of whole chunks, each worker loading the model once and writing its own chunks.

The client allocates the store; every task rebuilds the run from `run.spec` (cached per
worker process), skips chunks already marked done and writes the others through the same
path as a local run (nbfeat.store.chunks). A task lost with its worker is rerun by Dask
elsewhere; any chunk still pending afterwards is submitted again, so the store ends complete
and equal to a single-process run.

>>> from dask.distributed import Client
>>> nbfeat.store.write(run, "feats.zarr", client=Client("tcp://scheduler:8786"))  # doctest: +SKIP
"""

from __future__ import annotations

import json
import math
import multiprocessing
import threading
import uuid
from collections.abc import Callable
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.store.layout import PENDING, Layout

_SHARD_SAMPLES = 16384  # most samples per task: a lost task costs at most this much work
_ROUNDS = 3  # submissions of still-pending chunks before giving up
_LOST = {"KilledWorker", "CancelledError", "FutureCancelledError", "CommClosedError"}

# per worker process: the loaded backbone and the prepared run, reused by every task
_CACHE: dict[str, Any] = {}
_LOCK = threading.Lock()  # hooks live on the shared model: one extraction at a time


def write_distributed(
    run: Any,
    target: Any,
    layout: Layout,
    pending: list[int],
    client: Any,
    on_progress: Callable[[int], None] | None = None,
    samples_key: str = "",
) -> None:
    """Extract `pending` chunks of `run` on the workers of `client` into the store `target`."""
    import zarr
    from distributed import as_completed

    if not pending:
        return
    spec, fingerprint = run.spec, run.fingerprint()
    for value in spec["load"].values():  # a user's module travels by value: refuse now, with the reason
        if callable(getattr(value, "blob", None)):
            value.blob()
    # per call: workers keep a prepared run per key, and in-memory inputs of the same ids
    # may hold other content from one call to the next
    samples_key = f"{samples_key}:{uuid.uuid4().hex}"
    # Scattered to every worker: a worker that dies takes only its own copy with it.
    inputs = client.scatter(run.inputs, broadcast=True, hash=False)
    todo = list(pending)
    for _ in range(_ROUNDS):
        shards = _shards(todo, layout, _n_workers(client))
        futures = {
            client.submit(
                _write_shard,
                target,
                spec,
                fingerprint,
                layout,
                inputs,
                samples_key,
                shard,
                key=f"nbfeat-shard-{shard[0]}-{uuid.uuid4().hex[:8]}",
                retries=1,
                pure=False,
            ): shard
            for shard in shards
        }
        try:
            for fut in as_completed(futures):
                try:
                    n = fut.result()
                except Exception as e:
                    if type(e).__name__ in _LOST:
                        continue  # resubmitted below if its chunks are still pending
                    raise
                if on_progress is not None:
                    on_progress(n)
        except BaseException:
            client.cancel(list(futures))
            raise
        status = zarr.open_group(target, mode="r")["status"][:]
        done = layout.done_chunks(status)
        todo = [c for c in pending if not done[c]]
        if not todo:
            return
    raise NbfeatError(
        f"{len(todo)} chunks could not be written after {_ROUNDS} rounds (workers kept dying?). Run the same call again to resume."
    )


def _shards(chunks: list[int], layout: Layout, n_workers: int) -> list[list[int]]:
    """Consecutive chunks per task: about 4 tasks per worker, at most ~_SHARD_SAMPLES samples."""
    most = max(1, _SHARD_SAMPLES // layout.chunk)
    per = max(1, min(most, math.ceil(len(chunks) / (4 * max(1, n_workers)))))
    return [chunks[i : i + per] for i in range(0, len(chunks), per)]


def _n_workers(client: Any) -> int:
    try:
        return len(client.scheduler_info().get("workers", {})) or 1
    except Exception:
        return 1


def _write_shard(
    target: Any,
    spec: dict[str, Any],
    fingerprint: str,
    layout: Layout,
    inputs: Any,
    samples_key: str,
    chunks: list[int],
) -> int:
    """On a worker: extract and write the chunks of one shard that are not done yet."""
    import zarr

    from nbfeat.store.chunks import write_chunks

    with _LOCK:
        run = _worker_run(spec, inputs, samples_key)
        if run.fingerprint() != fingerprint:
            raise NbfeatError(
                f"A Dask worker rebuilt a different extraction (fingerprint {run.fingerprint()}, the store has {fingerprint}): "
                "check that workers have the same packages and the same weights files at the same paths."
            )
        group = zarr.open_group(target, mode="r+")
        status = group["status"]
        todo = [c for c in chunks if status[c * layout.chunk] == PENDING]
        write_chunks(run, group, layout, todo)
    return len(layout.chunk_positions(chunks))


def _worker_run(spec: dict[str, Any], inputs: Any, samples_key: str) -> Any:
    import nbfeat

    load_key = json.dumps(spec["load"], sort_keys=True, default=str)
    run_key = json.dumps([spec, samples_key or id(inputs)], sort_keys=True, default=str)
    run = _CACHE.get("run:" + run_key)
    if run is not None:
        return run
    bb = _CACHE.get("bb:" + load_key)
    if bb is None:
        _CACHE.clear()  # one model per worker process at a time
        bb = _CACHE["bb:" + load_key] = nbfeat.load(**spec["load"])
    extract = dict(spec["extract"])
    if multiprocessing.current_process().daemon:
        extract["num_workers"] = (
            0  # a daemon process (a Dask worker) cannot start DataLoader workers
        )
    run = bb.prepare(inputs, **extract)
    for key in [k for k in _CACHE if k.startswith("run:")]:
        del _CACHE[key]
    _CACHE["run:" + run_key] = run
    return run
