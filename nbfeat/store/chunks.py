"""Batches in, whole chunks out: the one write path shared by the local run and Dask workers.

Batches are gathered into the chunk they belong to; a chunk goes to a background writer
thread as soon as every sample in it is accounted for (extracted or failed). Each chunk is
written exactly once, by one writer, so nothing is ever read back or merged.
Memory: the chunk being filled and the one being written (see `ChunkWriter.submit`).

>>> write_chunks(run, group, layout, chunks=[0, 1, 2])      # doctest: +SKIP
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from nbfeat.engine.allocation import empty
from nbfeat.store.layout import FAILED, OK, Layout


class ChunkBuffer:
    """The values of one chunk, filled batch by batch.

    A batch that covers the whole chunk (the usual case when a chunk is one batch) is kept
    as it is, without a copy; otherwise each variable is allocated on first use.
    """

    def __init__(self, layout: Layout, index: int):
        self.index = index
        self.start, self.stop = layout.chunk_range(index)
        m = self.stop - self.start
        self.plans = {v.name: v for v in layout.variables}
        # every row is written by add() or filled by fail() before the chunk is submitted
        self.data: dict[str, np.ndarray] = {}
        self.tokens: dict[str, np.ndarray] = {}
        if layout.token_groups:
            self.tokens = {
                "token_text": np.full((m, layout.token), "", dtype=object),
                "mask": np.zeros((m, layout.token), dtype=bool),
            }
        self.status = np.zeros(m, dtype=np.int8)
        self.reason = np.full(m, "", dtype=object)
        self.keys = np.full(m, "", dtype=object)  # content key per sample (resume, cache)

    @property
    def full(self) -> bool:
        return bool(self.status.all())

    def add(self, batch: Any, rows: np.ndarray, local: np.ndarray) -> None:
        src, dst = _as_slice(rows), _as_slice(local)  # the usual case: views, no fancy-index copies
        # `dst` is an index array when a failed input sits inside the batch
        whole = isinstance(dst, slice) and dst == slice(0, len(self.status))
        for name, arr in batch.features.items():
            plan = self.plans.get(name)
            if plan is None:
                continue
            values = arr[src]
            if whole and name not in self.data and values.dtype == np.dtype(plan.dtype):
                self.data[name] = values
            else:
                self._array(name)[dst] = values
        for name, arr in batch.sample_coords.items():
            if name in self.tokens:
                self.tokens[name][local, : arr.shape[1]] = arr[rows]
        if batch.keys:
            self.keys[local] = [batch.keys.get(int(p), "") for p in batch.positions[rows]]
        self.status[local] = OK

    def fail(self, local: int, reason: str, key: str = "") -> None:
        for name, plan in self.plans.items():
            self._array(name)[local] = plan.fill
        self.status[local] = FAILED
        self.reason[local] = str(reason) or "failed"
        self.keys[local] = key

    def _array(self, name: str) -> np.ndarray:
        if name not in self.data:
            plan = self.plans[name]
            self.data[name] = empty((len(self.status), *plan.shape), plan.dtype)
        return self.data[name]


class ChunkWriter:
    """Writes finished chunks on a background thread so compute and I/O overlap."""

    def __init__(
        self,
        group: Any,
        layout: Layout,
        durable: bool = True,
        on_written: Callable[[ChunkBuffer], None] | None = None,
    ):
        self.layout = layout
        self.arrays = {v.name: group[v.array] for v in layout.variables}
        self.token_arrays = [
            (name, group[path])
            for path in layout.token_arrays()
            for name in [path.rsplit("/", 1)[-1]]
        ]
        self.reason, self.status = group["reason"], group["status"]
        self.keys = group["input_key"]
        self.root = _local_root(group) if durable else None
        self.on_written = on_written
        self.queue: queue.Queue[ChunkBuffer | None] = queue.Queue()
        # the writer holds at most one chunk (queued or being written): see submit()
        self.slot = threading.Semaphore(1)
        self.error: BaseException | None = None
        self.stopping = False
        self.closing = False  # no chunk will follow the ones queued: see _write_pieces()
        self.thread = threading.Thread(target=self._loop, name="nbfeat-store-writer", daemon=True)
        self.thread.start()

    def submit(self, buf: ChunkBuffer) -> None:
        """Hand `buf` to the writer once it has finished the chunk before.

        So a run holds the chunk being written and the one just filled, never a queue of
        them: with big features (resnet50 `layer1`, 100 MiB a chunk) a queued chunk made
        the forward pass's next allocations land in fresh memory, 100 MiB more peak RSS.
        """
        while not self.slot.acquire(timeout=0.2):
            self._raise()
        self._raise()
        self.queue.put(buf)

    def close(self) -> None:
        """Write what is queued, stop the thread, re-raise its error if any."""
        self.closing = True
        self.queue.put(None)
        self.thread.join()
        self._raise()

    def abort(self) -> None:
        """Stop after the chunk being written (it stays unmarked unless it finished)."""
        self.stopping = True
        try:
            while True:
                self.queue.get_nowait()
        except queue.Empty:
            pass
        self.queue.put(None)
        self.thread.join()

    def _raise(self) -> None:
        if self.error is not None:
            raise self.error

    def _loop(self) -> None:
        while (buf := self.queue.get()) is not None:
            try:
                if not (self.stopping or self.error is not None):
                    self.write(buf)
                    if self.on_written is not None:
                        self.on_written(buf)
            except BaseException as e:  # surfaced in the main thread by submit/close
                self.error = e
            finally:
                del buf  # freed before the next chunk is handed over
                self.slot.release()

    def write(self, buf: ChunkBuffer) -> None:
        region = slice(buf.start, buf.stop)
        for name, arr in self.arrays.items():
            self._write_pieces(arr, buf.data[name], buf.start, buf.stop)
        for name, arr in self.token_arrays:
            arr[region] = buf.tokens[name]
        self.reason[region] = buf.reason
        self.keys[region] = buf.keys
        if self.root is not None:
            self._fsync(buf.index)
        self.status[region] = buf.status  # the done marker: only after the data is on disk
        if self.root is not None:
            _fsync_path(
                os.path.join(
                    self.root, self.status.path, self.status.metadata.encode_chunk_key((buf.index,))
                )
            )

    def _write_pieces(self, arr: Any, values: np.ndarray, start: int, stop: int) -> None:
        """Write one variable's chunk, a zarr chunk (piece) at a time while the run goes on.

        zarr encodes the pieces of one assignment all at once, each with a compressed copy
        and a checksummed copy alive: twice the chunk in transient buffers (200 MiB for
        resnet50 `layer1`), allocated while the forward pass holds its own activations. One
        piece at a time that is a quarter, for the same time on cores the forward pass keeps
        busy. Once the run has ended (`close`), the rest goes at once on the free cores.
        """
        step = self.layout.feature_chunk
        at = start
        while at < stop and not self.closing:
            end = min(stop, (at // step + 1) * step)
            arr[at:end] = values[at - start : end - start]
            at = end
        if at < stop:
            arr[at:stop] = values[at - start :]

    def _fsync(self, index: int) -> None:
        keys = [(arr, piece) for arr in self.arrays.values() for piece in self.layout.pieces(index)]
        keys += [(arr, index) for arr in [*(a for _, a in self.token_arrays), self.reason, self.keys]]
        for arr, i in keys:
            key = arr.metadata.encode_chunk_key((i,) + (0,) * (arr.ndim - 1))
            _fsync_path(os.path.join(self.root, arr.path, key))


def write_chunks(
    run: Any,
    group: Any,
    layout: Layout,
    chunks: list[int],
    on_progress: Callable[[int], None] | None = None,
    durable: bool = True,
    reuse: Any = None,
) -> int:
    """Extract and write `chunks` (chunk indices) of `run` into `group`; returns samples done.

    `reuse` (a nbfeat.store.rebuild.Rebuild) supplies rows copied from an older store:
    only the other rows are extracted.
    """
    if not chunks:
        return 0
    chunk_set = set(int(c) for c in chunks)
    open_chunks: dict[int, ChunkBuffer] = {}
    writer = ChunkWriter(group, layout, durable)
    done = 0
    batches: Any = None
    try:
        if reuse is not None:
            for c in sorted(c for c in chunk_set if reuse.whole(c)):
                buf = ChunkBuffer(layout, c)
                reuse.fill(buf)
                writer.submit(buf)
                chunk_set.discard(c)
                n = buf.stop - buf.start
                done += n
                if on_progress is not None:
                    on_progress(n)
            positions = np.concatenate([reuse.to_compute(c) for c in sorted(chunk_set)] or [np.zeros(0, np.int64)])
        else:
            positions = layout.chunk_positions(sorted(chunk_set))
        batches = run.iter_batches(positions, keys=True)
        for batch in batches:
            n = _gather(batch, layout, chunk_set, open_chunks, reuse)
            for index in [i for i, b in open_chunks.items() if b.full]:
                writer.submit(open_chunks.pop(index))
            del batch  # its chunk holds what it needs: not held through the next forward
            done += n
            if on_progress is not None:
                on_progress(n)
        if open_chunks:
            missing = sorted(open_chunks)[:3]
            raise RuntimeError(
                f"The engine returned no result for some samples of chunks {missing}; nothing was marked done for them."
            )
        writer.close()
    except BaseException:
        writer.abort()
        raise
    finally:
        close = getattr(batches, "close", None)
        if close is not None:
            close()  # stops DataLoader workers now rather than at garbage collection
    return done


def _gather(
    batch: Any, layout: Layout, chunk_set: set[int], open_chunks: dict[int, ChunkBuffer], reuse: Any = None
) -> int:
    pos = np.asarray(batch.positions, dtype=np.int64)
    index = pos // layout.chunk
    for c in np.unique(index):
        buf = _buffer(open_chunks, layout, int(c), chunk_set, reuse)
        rows = np.flatnonzero(index == c)
        buf.add(batch, rows, pos[rows] - buf.start)
    for p, reason in batch.failed:
        c = int(p) // layout.chunk
        buf = _buffer(open_chunks, layout, c, chunk_set, reuse)
        buf.fail(int(p) - buf.start, reason, batch.keys.get(int(p), ""))
    return len(pos) + len(batch.failed)


def _buffer(
    open_chunks: dict[int, ChunkBuffer], layout: Layout, c: int, chunk_set: set[int], reuse: Any = None
) -> ChunkBuffer:
    buf = open_chunks.get(c)
    if buf is None:
        if c not in chunk_set:
            raise RuntimeError(
                f"The engine returned a sample outside the requested chunks (chunk {c})."
            )
        buf = open_chunks[c] = ChunkBuffer(layout, c)
        if reuse is not None:
            reuse.fill(buf)  # rows copied from the older store; the engine brings the rest
        chunk_set.discard(c)  # a chunk is filled once; a second visit would be a bug
    return buf


def _as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (a view), anything else unchanged."""
    if len(index) and (np.diff(index) == 1).all():
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


def _local_root(group: Any) -> str | None:
    root = getattr(group.store, "root", None)
    return (
        os.fspath(root) if root is not None and type(group.store).__name__ == "LocalStore" else None
    )


def _fsync_path(path: str) -> None:
    # A chunk of fill values only is never stored (zarr skips it), so a missing file is fine.
    try:
        fd = os.open(path, os.O_RDONLY)
    except FileNotFoundError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        dfd = os.open(os.path.dirname(path), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)
