"""Kill -9 part-way, start again: the store ends with exactly the values of an uninterrupted run."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import nbfeat
import nbfeat.store as st
from tests.store._killable_run import build_run
from tests.store.helpers import assert_same_store, done_chunks

SCRIPT = Path(__file__).with_name("_killable_run.py")
N, SIZE, CHUNKS = 128, 96, 16  # chunk_size=8 in the script


def _interrupt_after(path, chunks, args, sig):
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 240
        while done_chunks(path) < chunks:
            assert proc.poll() is None, proc.stdout.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the run made no progress"
            time.sleep(0.01)
        os.kill(proc.pid, sig)
    finally:
        proc.wait(timeout=120)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL
    else:  # Ctrl-C: KeyboardInterrupt stops the run after the chunk being written
        assert proc.returncode != 0 and b"KeyboardInterrupt" in proc.stdout.read()
    return done_chunks(path)


@pytest.mark.slow
def test_interrupted_and_killed_run_resumes_to_identical_values(weights_file, tmp_path):
    path = tmp_path / "killed.zarr"
    args = [weights_file, str(N), str(SIZE), str(path), str(torch.get_num_threads())]
    done_at_ctrl_c = _interrupt_after(path, 2, args, signal.SIGINT)
    assert 2 <= done_at_ctrl_c < CHUNKS - 3, "interrupted too late to test anything"
    done_at_kill = _interrupt_after(
        path, done_at_ctrl_c + 2, args, signal.SIGKILL
    )  # resumes, then dies
    assert done_at_ctrl_c + 2 <= done_at_kill < CHUNKS, "killed too late to test anything"

    half = nbfeat.open(path)  # a half-written store opens: the finished samples only
    assert half.sizes["sample"] == 8 * done_at_kill
    assert half.attrs["n_pending"] == N - 8 * done_at_kill
    everything = nbfeat.open(path, valid_only=False)
    assert everything.sizes["sample"] == N and int(everything["valid"].sum()) == 8 * done_at_kill

    status_files = {
        p: p.stat().st_mtime_ns
        for p in (path / "status" / "c").iterdir()
        if not p.name.endswith(".partial")
    }
    run = build_run(weights_file, N, SIZE)
    st.write(run, path, progress=False)  # the same call again: continues
    for p, mtime in status_files.items():
        assert p.stat().st_mtime_ns == mtime, f"finished chunk {p.name} was recomputed"

    reference = tmp_path / "uninterrupted.zarr"
    st.write(build_run(weights_file, N, SIZE), reference, progress=False, chunk_size=8)
    resumed = nbfeat.open(path)
    assert "n_pending" not in resumed.attrs and resumed.sizes["sample"] == N
    assert_same_store(resumed, nbfeat.open(reference), exact=True)
    np.testing.assert_array_equal(
        resumed["layer4"]["layer4"].values, run.to_xarray()["layer4"]["layer4"].values
    )
