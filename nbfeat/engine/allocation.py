"""Memory allocation for extraction: glibc malloc settings and big output buffers.

A forward pass allocates and frees the same large activations batch after batch. With
glibc's defaults each one is a fresh `mmap`, so every batch pays for page faults and for the
kernel zeroing the pages: on a 2-core VM that was 25-50% of the CPU time and halved
throughput (`make bench`, section 6). `tune_malloc()` keeps such blocks in the heap for
reuse instead (the same knobs as the `MALLOC_*_` environment variables, set at run time).
Cost: up to `M_TOP_PAD` (512 MiB) of freed memory stays with the process for reuse.

Those blocks all come from one arena (`M_ARENA_MAX` 1). glibc gives each thread that
allocates its own arena (torch's threads, the store's writer and codec threads: a dozen on
2 cores), and with the pad no arena ever hands its freed memory back, so each held its own
high-water mark: peak RSS of resnet50 `layer1` on 96 JPEGs to zarr 1911-2022 MiB, against
1718-1918 MiB with one arena, for the same page faults and CPU time (three calls each, one
process per setting, 2026-12-02 on a loaded 2-core VM; `make bench` section 6 compares them).
The limit applies to arenas made after it, so `tune_malloc` runs before the first batch.
Set `NBFEAT_MALLOC=default` to leave the allocator alone. `release_soon()` hands the free
memory back a few seconds after an `extract` ends, so a long notebook session does not grow;
a run that starts before then cancels it, so back-to-back calls (a loop over layers or
folders) do not fault the whole heap in again at every call (resnet50 `layer1`: 170-230k
minor faults a call when released at once).

`empty()` allocates arrays that hold a whole run's features without transparent huge pages:
asking the kernel for hundreds of MiB of huge pages can stall for seconds while it compacts
memory, which costs more than the page faults it saves.

>>> tune_malloc()          # once per process; True where glibc took the settings  # doctest: +SKIP
>>> empty((1000, 2048), np.float32).shape
(1000, 2048)
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from typing import Any

import numpy as np

# glibc malloc.h. Setting either of the first two also freezes the trim threshold at 128 KiB,
# so freed memory beyond the pad still goes back to the system.
M_TOP_PAD, M_MMAP_THRESHOLD, M_ARENA_MAX = -2, -3, -8
SETTINGS = ((M_MMAP_THRESHOLD, 1 << 30), (M_TOP_PAD, 512 << 20), (M_ARENA_MAX, 1))
ENV = "NBFEAT_MALLOC"

RELEASE_DELAY_S = 3.0  # idle seconds after a run before its freed memory goes back

_tuned: bool | None = None
_pending: threading.Timer | None = None
_pending_lock = threading.Lock()


def tune_malloc() -> bool:
    """Apply the allocator settings once per process (glibc only); True if they are in effect.

    Example:
        >>> tune_malloc() in (True, False)
        True
    """
    global _tuned
    if _tuned is None:
        _tuned = _apply()
    _cancel_release()  # a run starts: the heap it is about to use again stays
    return _tuned


def _apply() -> bool:
    if os.environ.get(ENV, "").strip().lower() in ("default", "0", "off", "false", "no"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):  # not glibc (macOS, Windows, musl without mallopt)
        return False
    return all(mallopt(key, value) == 1 for key, value in SETTINGS)


def release() -> bool:
    """Give the heap's free memory back to the system (`malloc_trim`), at the end of a run.

    With `tune_malloc` in effect, freed activations stay with the process for the next batch;
    after the last batch they would stay until the process ends, and a notebook that runs
    extraction after extraction would keep growing. True where glibc released something.
    A pending `release_soon` is dropped: this one supersedes it.

    Example:
        >>> release() in (True, False)
        True
    """
    _cancel_release()
    if not _tuned:
        return False
    try:
        return bool(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0))
    except (OSError, AttributeError):
        return False


def release_soon(delay: float = RELEASE_DELAY_S) -> None:
    """`release()` after `delay` idle seconds, in a daemon thread; the next run's
    `tune_malloc()` cancels it. Called at the end of every `extract`.

    Example:
        >>> release_soon(0.0)
    """
    global _pending
    if not _tuned:
        return
    timer = threading.Timer(delay, release)
    timer.daemon = True
    with _pending_lock:
        if _pending is not None:
            _pending.cancel()
        _pending = timer
    timer.start()


def _cancel_release() -> None:
    global _pending
    with _pending_lock:
        if _pending is not None:
            _pending.cancel()
            _pending = None


def empty(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """`np.empty` without transparent huge pages (see the module docstring).

    Example:
        >>> empty((2, 3), np.float32).dtype
        dtype('float32')
    """
    toggle = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if toggle is None:
        return np.empty(shape, dtype)
    before = toggle(False)
    try:
        return np.empty(shape, dtype)
    finally:
        toggle(before)
