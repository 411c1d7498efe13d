"""A single-process store write, run as a subprocess that the resume test kills part-way.

usage: python _killable_run.py WEIGHTS N SIZE OUT THREADS
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def build_run(weights: str, n: int, size: int):
    import nbfeat
    from tests.store.helpers import tensors

    bb = nbfeat.load("timm:test_resnet", weights=weights, device="cpu")
    return bb.prepare(tensors(n, size), layers=["layer3", "layer4"], batch_size=4)


if __name__ == "__main__":
    import torch

    import nbfeat.store as st

    weights, n, size, out, threads = (
        sys.argv[1],
        int(sys.argv[2]),
        int(sys.argv[3]),
        sys.argv[4],
        int(sys.argv[5]),
    )
    torch.set_num_threads(threads)  # the same summation order as the test process
    st.write(build_run(weights, n, size), out, progress=False, chunk_size=8)
