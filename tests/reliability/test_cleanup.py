"""Clean-up on every exit path: no hook is ever left on the user's model (a paused, closed
or abandoned batch generator, an exception, Ctrl-C at random moments in memory and store
runs, with the progress bar on); the model stays usable, a rerun equals a fresh run, and
threads sharing one backbone each get their own correct results."""

from __future__ import annotations

import gc
import os
import random
import shutil
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import torch

import nbfeat
import nbfeat.store as st


@pytest.fixture(scope="module")
def bb():
    return nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def x():
    return torch.randn(24, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def reference(bb, x, fn=lambda f: f.mean((2, 3))):
    with torch.inference_mode():
        return fn(bb.model.forward_features(x)).numpy()


def assert_no_hooks(model):
    from torch.nn.modules import module as tm

    left = [n for n, m in model.named_modules() if m._forward_hooks or m._forward_pre_hooks or m._backward_hooks]
    assert not left, f"hooks left on {left[:5]}"
    assert not tm._global_forward_hooks and not tm._global_forward_pre_hooks


def test_paused_closed_and_abandoned_generators_leave_no_hooks(bb, x):
    run = bb.prepare(x, layers="layer4", pool="mean", batch_size=8)
    want = reference(bb, x)
    g = run.iter_batches()
    first = next(g)  # paused between batches
    assert_no_hooks(bb.model)
    with torch.inference_mode():  # the user's own forward works, unchanged, meanwhile
        np.testing.assert_allclose(bb.model.forward_features(x[:8]).mean((2, 3)).numpy(), want[:8], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(first.features["layer4"], want[:8], rtol=1e-5, atol=1e-6)
    other = bb.extract(x[:4], layers="layer4", pool="max", progress=False)  # another extraction meanwhile
    np.testing.assert_allclose(other["layer4"].values, reference(bb, x[:4], lambda f: f.amax((2, 3))), rtol=1e-5, atol=1e-6)
    second = next(g)
    np.testing.assert_allclose(second.features["layer4"], want[8:16], rtol=1e-5, atol=1e-6)
    g.close()
    assert_no_hooks(bb.model)
    g = run.iter_batches()
    next(g)
    del g  # abandoned
    gc.collect()
    assert_no_hooks(bb.model)


def test_an_exception_inside_the_forward_leaves_no_hooks(bb, x):
    calls = {"n": 0}

    def boom(module, args):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("a module failed")

    h = bb.model.layer2.register_forward_pre_hook(boom)
    try:
        with pytest.raises(RuntimeError, match="a module failed"):
            bb.extract(x, layers="layer4", pool="mean", batch_size=8, progress=False)
    finally:
        h.remove()
    assert_no_hooks(bb.model)
    np.testing.assert_allclose(
        bb.extract(x, layers="layer4", pool="mean", batch_size=8, progress=False)["layer4"].values, reference(bb, x), rtol=1e-5, atol=1e-6
    )


def _interrupt(fn, delay):
    """Run fn with a SIGINT to this process after `delay` s; True if it landed inside fn."""
    timer = threading.Timer(delay, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    inside = False
    try:
        try:
            fn()
        except KeyboardInterrupt:
            inside = True
        timer.join()
        time.sleep(0.05)  # a signal after the call lands here
    except KeyboardInterrupt:
        pass
    finally:
        timer.cancel()
    return inside


@pytest.mark.parametrize("sink", ["memory", "store"])
def test_ctrl_c_at_random_moments_leaves_no_hooks_and_a_rerun_equals_a_fresh_run(bb, x, tmp_path, sink):
    want = reference(bb, x)
    kw = dict(layers="layer4", pool="mean", batch_size=4)
    out = tmp_path / "f.zarr"

    def go(progress=True):
        if sink == "store":
            st.write(bb.prepare(x, **kw), out, progress=progress, chunk_size=4)
            return nbfeat.open(out)
        return bb.extract(x, progress=progress, **kw)

    t0 = time.perf_counter()
    go()
    span = time.perf_counter() - t0
    rng = random.Random(0)
    landed = 0
    for i in range(5):
        if sink == "store" and i % 2 == 0:
            shutil.rmtree(out)  # even tries start a new store, odd ones resume the interrupted one
        landed += _interrupt(go, rng.uniform(0, span))
        assert_no_hooks(bb.model)
    assert landed >= 2, "the interrupts all came too late to test anything"
    np.testing.assert_allclose(go(progress=False)["layer4"].values, want, rtol=1e-5, atol=1e-6)
    with torch.inference_mode():
        assert bb.model(x[:2]).shape[0] == 2  # the model itself still runs


def test_threads_sharing_one_backbone_each_get_their_own_results(bb, x):
    jobs = [
        (x[:16], "layer4", lambda f: f.mean((2, 3))),
        (x[12:24], "layer4", lambda f: f.mean((2, 3))),
        (x[8:20], "layer4", lambda f: f.amax((2, 3))),
        (x[4:16], "layer4", lambda f: f.mean((2, 3))),
    ]
    pools = ["mean", "mean", "max", "mean"]

    def one(i):
        inp, layer, _ = jobs[i]
        return bb.extract(inp, layers=layer, pool=pools[i], batch_size=4, progress=False)[layer].values

    with ThreadPoolExecutor(4) as ex:
        got = list(ex.map(one, range(4)))
    for (inp, _, fn), values in zip(jobs, got):
        np.testing.assert_allclose(values, reference(bb, inp, fn), rtol=1e-5, atol=1e-6)
    assert_no_hooks(bb.model)
