"""The allocator settings and buffers behind the engine's speed (see nbfeat.engine.allocation)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from nbfeat.engine.allocation import empty

GLIBC = sys.platform.startswith("linux") and os.confstr("CS_GNU_LIBC_VERSION").startswith("glibc")


def _tuned_in_fresh_process(env_value: str | None) -> str:
    env = {k: v for k, v in os.environ.items() if k != "NBFEAT_MALLOC"}
    if env_value is not None:
        env["NBFEAT_MALLOC"] = env_value
    code = textwrap.dedent(
        """
        from nbfeat.engine.allocation import tune_malloc
        print(tune_malloc(), tune_malloc())
        """
    )
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.skipif(not GLIBC, reason="mallopt is glibc's")
def test_tune_malloc_applies_once_and_can_be_turned_off():
    assert _tuned_in_fresh_process(None) == "True True"
    assert _tuned_in_fresh_process("default") == "False False"


def test_empty_leaves_numpys_huge_page_setting_as_it_was():
    toggle = getattr(getattr(np, "_core", np).multiarray, "_set_madvise_hugepage", None)
    if toggle is None:
        pytest.skip("this numpy has no huge-page setting")
    before = toggle(True)
    try:
        a = empty((3, 5), np.float32)
        assert a.shape == (3, 5) and a.dtype == np.float32 and a.flags.writeable
        assert toggle(True) is True  # still on after empty()
    finally:
        toggle(before)


def test_decoding_stays_in_the_main_process_when_the_forward_holds_every_core(image_dir):
    import nbfeat

    bb = nbfeat.load("torchvision:alexnet", pretrained=False)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    threads = torch.get_num_threads()
    try:
        run = bb.prepare(image_dir, layers=["features.0"], batch_size=2)
        torch.set_num_threads(cores)
        assert run._workers(6) == 0
        torch.set_num_threads(1)
        assert run._workers(6) == min(8, cores - 1)
        assert run._workers(1) == 0  # the one-image probe never starts workers
        assert bb.prepare(image_dir, layers=["features.0"], batch_size=2, num_workers=1)._workers(6) == 1
    finally:
        torch.set_num_threads(threads)


RELEASE = """
import time, torch
from nbfeat.engine import allocation as al

def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

assert al.tune_malloc()
blocks = [torch.ones(64, 1024, 1024) for _ in range(3)]  # 3 x 256 MiB from the tuned heap
del blocks
kept = rss()
al.release_soon(0.2)
al.tune_malloc()  # a run starts before the delay: nothing is released
time.sleep(0.6)
after_cancel = rss()
al.release_soon(0.2)
time.sleep(0.8)
print(kept, after_cancel, rss())
"""


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_memory_goes_back_once_idle_and_a_new_run_keeps_it():
    env = {k: v for k, v in os.environ.items() if k != "NBFEAT_MALLOC"}
    out = subprocess.run([sys.executable, "-c", RELEASE], env=env, capture_output=True, text=True, check=True).stdout
    kept, after_cancel, released = (int(v) for v in out.split())
    assert after_cancel > kept - 64, (kept, after_cancel)  # the next run's heap stayed
    assert released < kept - 256, (kept, released)  # then, idle, it went back to the system
