"""One writer per store: a lock file beside the store that a killed process cannot leave stuck.

`.<name>.nbfeat-lock` sits next to the store (it survives a rebuild renaming the store) and
is locked with `flock`: the kernel releases it when the holder dies, however it dies. It
also holds who has it (pid, host, process start time) for the message a second writer
gets. Where `flock` is not supported (some network file systems), the file's existence is
the lock, and a lock whose holder is gone (same host, and no process with that pid and
start time) is stale and taken over.

>>> with store_lock("/data/feats.zarr"):        # doctest: +SKIP
...     ...                                     # write the store
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import errno
import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

from nbfeat.errors import NbfeatError


class StoreBusyError(NbfeatError):
    """Another process is writing the store."""


def lock_path(target: str) -> str:
    head, name = os.path.split(os.path.normpath(target))
    return os.path.join(head, f".{name}.nbfeat-lock")


def process_start(pid: int) -> str:
    """The start time of process `pid` (clock ticks since boot on Linux), "" if unknown."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return ""


def holder_alive(info: dict[str, Any]) -> bool:
    """Whether the process named in a lock file still runs (unknown host: assume it does)."""
    if info.get("host") != socket.gethostname():
        return True
    pid = int(info.get("pid", 0) or 0)
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    start = info.get("start", "")
    return not start or not process_start(pid) or process_start(pid) == start


@contextlib.contextmanager
def store_lock(target: Any, wait: float = 0.0) -> Iterator[None]:
    """Hold the write lock of the store at `target` (a local path); other targets: no lock.

    A second writer raises StoreBusyError at once (or after `wait` seconds).
    """
    if not isinstance(target, str) or "://" in target:
        yield
        return
    path = lock_path(target)
    parent = os.path.dirname(path) or "."
    for up in [parent, *(p for p in _parents(parent))]:
        if os.path.lexists(up):
            if not os.path.isdir(up):  # say it about the store path, as creating it would
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), target)
            break
    os.makedirs(parent, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        flocked = _flock(fd, path, target, wait)
        if not flocked:
            os.close(fd)
            fd = _exclusive(path, target, wait)
        me = {"pid": os.getpid(), "host": socket.gethostname(), "start": process_start(os.getpid()), "since": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(me).encode(), 0)
        try:
            yield
        finally:
            if flocked:
                os.ftruncate(fd, 0)  # released: the next holder writes its own details
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
    finally:
        with contextlib.suppress(OSError):
            os.close(fd)


def _flock(fd: int, path: str, target: str, wait: float) -> bool:
    """Take the flock; False where the file system (or the OS: Windows) has none."""
    try:
        import fcntl
    except ImportError:
        return False

    deadline = time.monotonic() + wait
    orphan_deadline = time.monotonic() + 10.0
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            info = _read(path)
            # The holder died but a child it forked (a DataLoader worker) still has the file
            # open for a moment: wait for it rather than refuse.
            if info and not holder_alive(info) and time.monotonic() < orphan_deadline:
                time.sleep(0.2)
                continue
            if time.monotonic() >= deadline:
                raise _busy(target, info) from None
            time.sleep(0.2)
        except OSError as e:
            if e.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                return False
            raise


def _exclusive(path: str, target: str, wait: float) -> int:
    """The lock as an exclusively created file (no flock): a dead holder's file is stale."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        except FileExistsError:
            info = _read(path)
            if info is not None and not info:
                # empty: a holder between create and write, or one that released with flock
                if time.monotonic() - os.path.getmtime(path) > 5:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(path)
                    continue
            elif info is not None and not holder_alive(info):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                continue
            if time.monotonic() >= deadline:
                raise _busy(target, info) from None
            time.sleep(0.2)


def _parents(path: str) -> Iterator[str]:
    while True:
        up = os.path.dirname(path)
        if up == path:
            return
        yield up
        path = up


def _read(path: str) -> dict[str, Any] | None:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return None
    try:
        return json.loads(text) if text.strip() else {}
    except ValueError:
        return {}


def _busy(target: str, info: dict[str, Any] | None) -> StoreBusyError:
    who = f"process {info.get('pid')} on {info.get('host')}, since {info.get('since')}" if info else "another process"
    return StoreBusyError(
        f"{target} is being written by {who}: one writer per store. Wait for it to finish "
        "(then run the same call again to use or resume the store), or write to another path."
    )
