"""A real Dask LocalCluster (2 worker processes): the same store as one process, even when a
worker is SIGKILLed mid-run."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
import torch

import nbfeat
import nbfeat.store as st
from tests.store.helpers import assert_same_store, done_chunks, tensors

distributed = pytest.importorskip("distributed")


@pytest.fixture(scope="module")
def client():
    with distributed.LocalCluster(
        n_workers=2, processes=True, threads_per_worker=1, dashboard_address=None, silence_logs=50
    ) as cluster:
        with distributed.Client(cluster) as c:
            yield c


def _reference(run, path):
    # Dask workers run torch on one thread; the same thread count gives the same bits.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        st.write(run, path, progress=False, chunk_size=8)
    finally:
        torch.set_num_threads(threads)
    return nbfeat.open(path)


def test_dask_store_equals_single_process(bb, client, tmp_path):
    run = bb.prepare(tensors(40), layers=["layer3", "layer4"], batch_size=4)
    st.write(run, tmp_path / "dask.zarr", client=client, progress=False, chunk_size=8)
    assert_same_store(
        nbfeat.open(tmp_path / "dask.zarr"), _reference(run, tmp_path / "one.zarr"), exact=True
    )
    # both workers took part, each loading the model once
    loaded = client.run(
        lambda: sorted(
            k
            for k in __import__("nbfeat.store.distributed", fromlist=["_CACHE"])._CACHE
            if k.startswith("bb:")
        )
    )
    assert all(len(keys) == 1 for keys in loaded.values())


def test_random_weights_are_the_same_on_every_worker(client, tmp_path):
    # pretrained=False is seeded, so workers rebuild exactly the caller's random model
    bb = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    run = bb.prepare(tensors(8), layers="layer4", batch_size=4)
    st.write(run, tmp_path / "r.zarr", client=client, progress=False, chunk_size=4)
    assert_same_store(nbfeat.open(tmp_path / "r.zarr"), _reference(run, tmp_path / "one.zarr"), exact=True)


def test_a_worker_killed_mid_run_loses_nothing(bb, client, tmp_path):
    run = bb.prepare(tensors(96, size=64), layers=["layer3", "layer4"], batch_size=4)
    path = tmp_path / "dask.zarr"
    pids = client.run(os.getpid)
    errors: list[BaseException] = []

    def write():
        try:
            st.write(run, path, client=client, progress=False, chunk_size=8)
        except BaseException as e:  # surfaced in the test thread below
            errors.append(e)

    thread = threading.Thread(target=write)
    thread.start()
    deadline = time.monotonic() + 240
    while done_chunks(path) < 1:
        assert thread.is_alive() and time.monotonic() < deadline, errors
        time.sleep(0.01)
    busy: list[str] = []
    while not busy:  # a worker in the middle of a shard
        busy = [addr for addr, keys in client.processing().items() if keys and addr in pids]
        assert thread.is_alive() and time.monotonic() < deadline, errors
    os.kill(pids[busy[0]], signal.SIGKILL)
    killed_at = done_chunks(path)
    thread.join(timeout=300)
    assert not thread.is_alive() and not errors, errors
    assert killed_at < 12, "the kill came after the run had finished"
    assert_same_store(nbfeat.open(path), _reference(run, tmp_path / "one.zarr"), exact=True)
    assert nbfeat.open(path).sizes["sample"] == 96
