"""Two and four processes racing on one new store and on one half-finished store (its writer
killed while holding the lock): one writes at a time, the others are refused with a clear
message, nothing is lost, the store is never left unusable, and the result equals a single
uninterrupted run. Real processes: the lock is between processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import nbfeat
import nbfeat.store as st
from nbfeat.store.lock import StoreBusyError, lock_path, store_lock
from tests.conftest import write_images
from tests.reliability._race import EXTRACT, LOAD

RACE = Path(__file__).with_name("_race.py")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("race") / "images"
    write_images(root, n_per_class=4, size=(32, 40))
    (root / "cats" / "img2_broken.png").write_bytes(b"not an image")
    return root


@pytest.fixture(scope="module")
def reference(folder):
    import torch

    torch.set_num_threads(1)
    try:
        return nbfeat.load(**LOAD).extract(folder, progress=False, **EXTRACT)
    finally:
        torch.set_num_threads(os.cpu_count() or 1)


CASES = [(k, start) for start in ("new", "half-finished") for k in (2, 4)]


@pytest.fixture(scope="module")
def races(folder, tmp_path_factory):
    """Every race in one subprocess (torch imported once), each on its own store."""
    root = tmp_path_factory.mktemp("stores")
    specs = [f"{root / f'{start}-{k}.zarr'}:{k}:{2 if start == 'half-finished' else 0}" for k, start in CASES]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run([sys.executable, str(RACE), str(folder), *specs], capture_output=True, text=True, timeout=400, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith("{")]
    return dict(zip(CASES, results))


@pytest.mark.parametrize("k, start", CASES)
def test_racing_writers_leave_one_complete_store(races, reference, k, start):
    got = races[(k, start)]
    out = Path(got["out"])
    codes = got["codes"]
    assert len(codes) == k and set(codes) <= {0, 3}, got["errors"]
    assert 0 in codes  # someone wrote it; the others were refused, or found it done
    for code, err in zip(codes, got["errors"]):
        if code == 3:
            assert "is being written by" in err and "one writer per store" in err
    ds = nbfeat.open(out)
    assert "n_pending" not in ds.attrs
    assert list(ds["sample"].values) == list(reference["sample"].values)
    np.testing.assert_allclose(ds["layer4"].values, reference["layer4"].values, rtol=1e-5, atol=1e-6)
    assert json.loads(ds.attrs["failed"]) == json.loads(reference.attrs["failed"])
    with store_lock(str(out)):  # released: nothing left stuck
        pass


def test_a_second_writer_in_the_same_process_is_refused(folder, tmp_path):
    out = str(tmp_path / "f.zarr")
    bb = nbfeat.load(**LOAD)
    with store_lock(out):
        with pytest.raises(StoreBusyError, match=rf"{out} is being written by process {os.getpid()} on "):
            st.write(bb.prepare(folder, **EXTRACT), out, progress=False)
    assert json.loads(Path(lock_path(out)).read_text() or "{}") == {}


def test_a_stale_lock_file_without_flock_is_taken_over(tmp_path, monkeypatch):
    """Where the file system has no flock, a lock file left by a dead process is stale."""
    import fcntl

    import nbfeat.store.lock as lock

    out = str(tmp_path / "f.zarr")
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    import socket

    Path(lock_path(out)).write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname(), "start": "1"}))

    def no_flock(fd, op):
        raise OSError(lock.errno.ENOLCK, "no locks")

    monkeypatch.setattr(fcntl, "flock", no_flock)
    with store_lock(out):
        info = json.loads(Path(lock_path(out)).read_text())
        assert info["pid"] == os.getpid()
        with pytest.raises(StoreBusyError):
            with store_lock(out):
                pass
    assert not Path(lock_path(out)).exists()
