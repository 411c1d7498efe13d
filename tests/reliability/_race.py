"""Writers racing on one store: imports torch and nbfeat once, then forks them all at once.

usage: python _race.py FOLDER OUT:K:KILL_AFTER_CHUNKS ...   (one race per argument)
With KILL_AFTER_CHUNKS > 0, a first writer is SIGKILLed (holding the lock) once the store
marks that many chunks done; then K writers start together. Prints one JSON line per race:
the exit code of each racer (0 done, 3 refused as busy, 1 anything else), stderr tails.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

LOAD = {"model": "timm:test_resnet", "pretrained": False, "device": "cpu"}
EXTRACT = {"layers": "layer4", "pool": "mean", "batch_size": 2}
CHUNK = 2


def write(folder: str, out: str, go_at: float) -> int:
    import torch

    import nbfeat
    import nbfeat.store
    from nbfeat.store.lock import StoreBusyError

    torch.set_num_threads(1)
    run = nbfeat.load(**LOAD).prepare(folder, **EXTRACT)
    while time.time() < go_at:  # every racer starts writing at the same moment
        time.sleep(0.001)
    try:
        nbfeat.store.write(run, out, progress=False, chunk_size=CHUNK)
    except StoreBusyError as e:
        print(str(e), file=sys.stderr)
        return 3
    return 0


def fork(fn, *args) -> tuple[int, int]:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        os.dup2(w, 2)
        code = 1
        try:
            code = fn(*args)
        except BaseException:
            traceback.print_exc()
        sys.stderr.flush()
        os._exit(code)
    os.close(w)
    return pid, r


def done_chunks(out: str) -> int:
    import zarr

    try:
        status = zarr.open_group(out, mode="r")["status"][:]
    except Exception:
        return 0
    return int((status[::CHUNK] != 0).sum())


def main() -> None:
    import timm  # noqa: F401
    import torch  # noqa: F401
    import zarr  # noqa: F401

    import nbfeat.store  # noqa: F401

    folder = sys.argv[1]
    for spec in sys.argv[2:]:
        out, k, kill_after = spec.rsplit(":", 2)
        print(json.dumps(race(folder, out, int(k), int(kill_after))), flush=True)


def race(folder: str, out: str, k: int, kill_after: int) -> dict:
    if kill_after:
        pid, r = fork(write, folder, out, 0.0)
        deadline = time.time() + 120
        while done_chunks(out) < kill_after and time.time() < deadline:
            time.sleep(0.005)
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(r)
    go_at = time.time() + 1.0 + 0.25 * k  # after every fork has loaded its model
    racers = [fork(write, folder, out, go_at) for _ in range(k)]
    codes, errs = [], []
    for pid, r in racers:
        with os.fdopen(r) as f:
            errs.append(f.read()[-1500:])
        _, status = os.waitpid(pid, 0)
        codes.append(os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status))
    return {"out": out, "codes": codes, "errors": errs}


if __name__ == "__main__":
    main()
