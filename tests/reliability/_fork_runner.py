"""A zygote for the crash tests: imports torch and nbfeat once, then forks one store run per request.

Each fork pays no import time, so a test can kill many real runs with SIGKILL cheaply. Nothing
heavy runs here before a fork (no torch ops, no zarr I/O): the children start with no threads.

Protocol (lines): stdin {"folder", "out", "chunk_size", "threads"} -> stdout {"pid": N}; then
stdin "kill" (SIGKILL it now) or "wait" -> stdout {"pid": N, "status": S} once it has ended (S:
the exit code, or -signal). The zygote sends the kill itself: its child is not reaped before,
so the pid cannot belong to anyone else, even if the run has just finished.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LOAD = {"model": "timm:test_resnet", "pretrained": False, "device": "cpu"}  # tiny, fast on a CPU
EXTRACT = {"layers": ["layer2", "layer4"], "pool": {"layer4": "mean"}, "batch_size": 2}


def run(request: dict) -> None:
    import torch

    import nbfeat
    import nbfeat.store

    torch.set_num_threads(request["threads"])  # the summation order of the test process
    bb = nbfeat.load(**LOAD)
    run = bb.prepare(request["folder"], **EXTRACT)
    nbfeat.store.write(run, request["out"], progress=False, chunk_size=request["chunk_size"])


def main() -> None:
    import timm  # noqa: F401
    import torch  # noqa: F401  (imported once here, shared by every fork)
    import xarray  # noqa: F401
    import zarr  # noqa: F401

    import nbfeat.models.sources.timm  # noqa: F401
    import nbfeat.store  # noqa: F401

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                run(request)
            except BaseException:
                traceback.print_exc()
                code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        print(json.dumps({"pid": pid}), flush=True)
        if sys.stdin.readline().strip() == "kill":
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"pid": pid, "status": code}), flush=True)


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    main()
