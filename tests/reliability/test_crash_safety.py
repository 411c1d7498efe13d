"""Killed runs and full disks lose nothing: the store opens, finished chunks hold the right
values, and running the same call again ends with the values of an uninterrupted run.

Real kills: `_fork_runner.py` imports torch once and forks real store runs, which the tests
SIGKILL at random moments (seeded) or once the store marks k chunks done. Full disks: a
2-3 MB tmpfs when the tests may mount one (root), and always a zarr store that raises
ENOSPC on its n-th chunk write (nbfeat.store.write takes a store object).
"""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nbfeat
import nbfeat.store
from nbfeat.errors import NbfeatError
from tests.conftest import write_images
from tests.reliability._fork_runner import EXTRACT, LOAD

RUNNER = Path(__file__).with_name("_fork_runner.py")
ROOT = Path(__file__).resolve().parents[2]
CHUNK = 2
N = 12
LAYERS = ("layer2", "layer4")


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """12 files in 6 chunks of 2: 10 images and 2 unreadable ones, in chunks 2 and 4."""
    root = tmp_path_factory.mktemp("crash") / "images"
    write_images(root, n_per_class=5, size=(32, 40))
    (root / "cats" / "img3_empty.png").write_bytes(b"")
    (root / "dogs" / "img2_text.jpg").write_text("not an image")
    return root


@pytest.fixture(scope="module")
def bb():
    return nbfeat.load(**LOAD)


@pytest.fixture(scope="module")
def reference(bb, folder):
    """The uninterrupted run, in memory."""
    return bb.extract(folder, progress=False, **EXTRACT)


def values(obj, name):
    return np.asarray(obj[name][name].values)


def assert_complete(store_path, reference):
    ds = nbfeat.open(store_path)
    assert "n_pending" not in ds.attrs
    assert list(ds["sample"].values) == list(reference["sample"].values)
    for name in LAYERS:
        np.testing.assert_allclose(values(ds, name), values(reference, name), rtol=1e-6, atol=1e-6)
    assert json.loads(ds.attrs["failed"]) == json.loads(reference.attrs["failed"])
    assert ds.attrs["n_failed"] == 2


def assert_partial_store_is_sound(store_path, reference):
    """After a kill: the store opens (or was never finished being created), and every sample
    it shows as done holds exactly the uninterrupted values."""
    if not store_path.exists():
        return 0
    try:
        ds = nbfeat.open(store_path)
    except NbfeatError as e:  # killed while allocating: one clear line, and a rerun starts over
        assert "Write it again" in str(e) or "No nbfeat store" in str(e), e
        return 0
    done = list(ds["sample"].values)
    want = list(reference["sample"].values)
    assert done == [s for s in want if s in set(done)]  # in order, a subset
    rows = [want.index(s) for s in done]
    for name in LAYERS:
        np.testing.assert_allclose(values(ds, name), values(reference, name)[rows], rtol=1e-6, atol=1e-6)
    assert ds.attrs.get("n_pending", 0) == N - len(done) - ds.attrs["n_failed"]
    return len(done)


def chunks_done(store_path) -> int:
    """Chunks the store marks done (its `status` array, written last for each chunk)."""
    import zarr

    try:
        group = zarr.open_group(str(store_path), mode="r")
        if "nbfeat_fingerprint" not in group.attrs:
            return 0
        status = group["status"][:]
    except Exception:  # not created yet, or being created
        return 0
    return int((status[::CHUNK] != 0).sum())


class Zygote:
    """The fork server: `start` forks one run; `kill`/`wait` end it."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
        self.proc = subprocess.Popen([sys.executable, str(RUNNER)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, text=True, bufsize=1)
        assert json.loads(self.proc.stdout.readline()) == {"ready": True}

    def start(self, folder, out):
        request = {"folder": str(folder), "out": str(out), "chunk_size": CHUNK, "threads": torch.get_num_threads()}
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        return json.loads(self.proc.stdout.readline())["pid"]

    def wait(self, pid, kill=False):
        """The run's exit status (-9: killed), after a SIGKILL when `kill`."""
        self.proc.stdin.write("kill\n" if kill else "wait\n")
        self.proc.stdin.flush()
        reply = json.loads(self.proc.stdout.readline())
        assert reply["pid"] == pid
        return reply["status"]

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(timeout=30)


@pytest.fixture(scope="module")
def zygote():
    z = Zygote()
    yield z
    z.close()


def kill_run(zygote, folder, out, delay=None, after_chunks=None):
    """Start a run and SIGKILL it after `delay` seconds, or once `after_chunks` are done.
    Returns True if it was killed (False: it finished first)."""
    pid = zygote.start(folder, out)
    if after_chunks is None:
        time.sleep(delay)
    else:
        deadline = time.monotonic() + 60
        while chunks_done(out) < after_chunks and time.monotonic() < deadline:
            time.sleep(0.005)
    status = zygote.wait(pid, kill=True)
    assert status in (-signal.SIGKILL, 0), f"the run failed by itself (status {status})"
    return status == -signal.SIGKILL


@pytest.fixture(scope="module")
def clean_run(zygote, folder, tmp_path_factory):
    """An uninterrupted run in a fork: its store, and how long it takes (to draw kill times):
    the faster of two runs, since the first pays for cold caches."""
    durations = []
    for k in range(2):
        out = tmp_path_factory.mktemp("clean") / f"clean{k}.zarr"
        start = time.monotonic()
        assert zygote.wait(zygote.start(folder, out)) == 0
        durations.append(time.monotonic() - start)
    return out, min(durations)


def test_an_uninterrupted_forked_run_matches_python(clean_run, reference):
    assert_complete(clean_run[0], reference)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sigkill_at_random_points_then_resume(zygote, bb, folder, reference, clean_run, tmp_path, seed):
    rng = random.Random(seed)
    duration = clean_run[1]
    out = tmp_path / f"killed-{seed}.zarr"
    # three runs killed in a row, each resuming the last: at random times, and for seed 2
    # first once k chunks are done
    plan = [(None, rng.randint(1, 4))] if seed == 2 else []
    # within the first 70% of a run: a run faster than the clean one still gets killed
    plan += [(rng.uniform(0.0, 0.7 * duration), None) for _ in range(3 - len(plan))]
    killed = 0
    for delay, after in plan:
        killed += kill_run(zygote, folder, out, delay=delay, after_chunks=after)
        assert_partial_store_is_sound(out, reference)
    assert killed, "every run finished before its kill: nothing was tested"
    # the user's call, again: it continues where the killed runs stopped
    resumed = bb.extract(folder, out=str(out), progress=False, **EXTRACT)
    assert list(resumed["sample"].values) == list(reference["sample"].values)
    assert_complete(out, reference)


def test_a_kill_after_k_chunks_keeps_exactly_those_chunks(zygote, bb, folder, reference, tmp_path):
    out = tmp_path / "two.zarr"
    assert kill_run(zygote, folder, out, after_chunks=2)
    ds = nbfeat.open(out, valid_only=False)
    done = int((np.asarray(ds["status"].values) != 0).sum())
    assert done >= 2 * CHUNK and done % CHUNK == 0  # whole chunks only, never half of one
    status_files = {p: p.stat().st_mtime_ns for p in (out / "status" / "c").iterdir() if ".partial" not in p.name}
    bb.extract(folder, out=str(out), progress=False, **EXTRACT)
    for path, mtime in status_files.items():
        assert path.stat().st_mtime_ns == mtime, f"finished chunk {path.name} was written again"
    assert_complete(out, reference)


# ---- full disks --------------------------------------------------------------------------------


def make_store_that_fills_up(path, chunk_writes_allowed):
    """A zarr LocalStore whose chunk writes fail with ENOSPC after `chunk_writes_allowed`."""
    from zarr.storage import LocalStore

    class FillsUp(LocalStore):
        left = chunk_writes_allowed

        async def set(self, key, value):
            if "/c/" in f"/{key}":
                if FillsUp.left <= 0:
                    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), key)
                FillsUp.left -= 1
            await super().set(key, value)

    return FillsUp(path)


# chunk writes: sample, label, path at creation, then per chunk layer2, layer4 (+ reason where
# a sample failed) and the status marker last. 3: fails on the first data; 5: on the first
# marker; 14: mid-run, on chunk 3's layer4
@pytest.mark.parametrize("allowed", [3, 5, 14])
def test_disk_full_at_the_nth_write_then_resume(bb, folder, reference, tmp_path, allowed):
    out = tmp_path / "full.zarr"
    run = bb.prepare(folder, **EXTRACT)
    with pytest.raises(OSError) as info:
        nbfeat.store.write(run, make_store_that_fills_up(out, allowed), progress=False, chunk_size=CHUNK)
    assert info.value.errno == errno.ENOSPC and "No space left on device" in str(info.value)
    assert_partial_store_is_sound(out, reference)  # finished chunks intact, the rest pending
    bb.extract(folder, out=str(out), progress=False, **EXTRACT)  # space is back
    assert_complete(out, reference)


def test_disk_full_is_one_line_on_the_command_line_and_in_the_magic():
    from nbfeat.cli import is_user_error, user_message

    error = OSError(errno.ENOSPC, "No space left on device", "feats.zarr/layer4/c/3/0")
    assert is_user_error(error)
    assert user_message(error) == (
        "No space left on device (writing feats.zarr/layer4/c/3/0). Free some space and run the same "
        "command again: a store keeps its finished chunks and resumes."
    )
    assert not is_user_error(OSError(errno.EIO, "Input/output error"))  # a real fault: a traceback


@pytest.fixture
def tiny_disk(tmp_path):
    """(a 400 kB tmpfs, a function that grows it to 64 MB); skips where mounts are not allowed (root only)."""
    mount = tmp_path / "disk"
    mount.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        pytest.skip("a tiny filesystem needs root to mount a tmpfs")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=400k", "tmpfs", str(mount)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")

    def grow():
        subprocess.run(["mount", "-o", "remount,size=64m", str(mount)], check=True)

    try:
        yield mount, grow
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_a_real_full_disk_then_resume(bb, folder, reference, tiny_disk, capsys, monkeypatch):
    from nbfeat.cli import main as cli_main

    tiny_disk, grow = tiny_disk
    out = tiny_disk / "feats.zarr"
    with pytest.raises(OSError) as info:
        nbfeat.store.write(bb.prepare(folder, **EXTRACT), out, progress=False, chunk_size=CHUNK)
    assert info.value.errno == errno.ENOSPC
    assert assert_partial_store_is_sound(out, reference) >= CHUNK  # some chunks fit, and are kept

    # the command line on the full disk: one line, status 4 (docs/cli.md)
    monkeypatch.chdir(folder.parent)
    (folder.parent / "c.yaml").write_text(
        f"model: {LOAD['model']}\npretrained: false\ninputs: {folder.name}/\nlayers: {{layer2: null, layer4: {{pool: mean}}}}\n"
        f"batch_size: 2\nout: {tiny_disk / 'cli.zarr'}\nprogress: false\n"
    )
    capsys.readouterr()
    assert cli_main(["extract", "c.yaml"]) == 4
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("nbfeat extract: No space left on device"), err
    assert "Free some space and run the same command again" in err

    grow()
    bb.extract(folder, out=str(out), progress=False, **EXTRACT)
    assert_complete(out, reference)
    assert cli_main(["extract", "c.yaml"]) == 0
    assert_complete(tiny_disk / "cli.zarr", reference)
