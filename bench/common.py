"""Timing helpers shared by the benchmarks: paired timings, medians, subprocesses, machine facts.

>>> pairs = Paired()                                      # doctest: +SKIP
>>> for batch in batches:                                 # doctest: +SKIP
...     pairs.time_round(batch_index, {"plain": f, "nbfeat": g})
>>> pairs.ratio("nbfeat", "plain")                        # median of per-batch ratios
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "out"  # scratch (git-ignored)


def median(values: list[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    """Wall seconds of one call, and its result."""
    t0 = time.perf_counter()
    result = fn()
    return time.perf_counter() - t0, result


class Paired:
    """Per-round timings of several variants run back to back on the same input.

    Each round runs every variant once, in an order rotated by the round index, so no variant
    is always first (cache-warm) or last. Ratios are medians of per-round ratios: noise that
    lasts longer than a round cancels.
    """

    def __init__(self) -> None:
        self.times: dict[str, list[float]] = {}
        self.results: dict[str, list[Any]] = {}

    def time_round(self, index: int, variants: dict[str, Callable[[], Any]], keep: tuple[str, ...] = (), before: Callable[[], None] | None = None) -> None:
        """Run every variant once; `before` (untimed) runs ahead of each, e.g. `settle`."""
        names = list(variants)
        k = index % len(names)
        for name in names[k:] + names[:k]:
            if before is not None:
                before()
            dt, result = timed(variants[name])
            self.times.setdefault(name, []).append(dt)
            if name in keep:
                self.results.setdefault(name, []).append(result)
            del result

    def total(self, name: str) -> float:
        return float(sum(self.times[name]))

    def ratio(self, name: str, ref: str) -> float:
        """Median over rounds of time(name) / time(ref): above 1 means `name` is slower."""
        return median([a / b for a, b in zip(self.times[name], self.times[ref])])

    def spread(self, name: str, ref: str) -> list[float]:
        """Min and max of the per-round ratios (how noisy the median is)."""
        r = [a / b for a, b in zip(self.times[name], self.times[ref])]
        return [round(min(r), 3), round(max(r), 3)] if r else []


def collect() -> None:
    gc.collect()


def settle() -> None:
    """Garbage-collect and hand the heap's free memory back, as nbfeat does three idle
    seconds after an extract (`release`), so the next timed call starts where a notebook call
    starts after a pause: every variant then pays its own page faults, and none runs in
    memory the one before it happened to leave behind."""
    gc.collect()
    from nbfeat.engine.allocation import release

    release()  # also drops the release_soon an extract left pending, which would fire mid-call


def peak_rss_mib() -> float:
    """Peak RSS of this process (VmHWM).

    Not getrusage's ru_maxrss: Linux carries the parent's high-water mark into a child across
    fork + exec, so a subprocess started by a big benchmark process would report the parent's.
    """
    return _status_mib("VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    """RSS of this process now (VmRSS); 0.0 where /proc is missing."""
    return _status_mib("VmRSS")


def _status_mib(field: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def rusage() -> dict[str, float]:
    """CPU seconds in user and kernel space, and peak RSS (MiB), of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return {"user_s": r.ru_utime, "sys_s": r.ru_stime, "max_rss_mib": peak_rss_mib()}


def run_json(argv: list[str], env: dict[str, str] | None = None, timeout: float = 1800, cwd: Path = ROOT) -> dict[str, Any]:
    """Run a command whose last stdout line is a JSON object; return it (or an error record)."""
    full_env = dict(os.environ)
    full_env.setdefault("PYTHONPATH", str(ROOT))
    full_env.update(env or {})
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=full_env, cwd=cwd)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s: {' '.join(argv[:4])}"}
    for line in reversed(proc.stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                break
    tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
    return {"error": f"exit {proc.returncode}: " + " | ".join(tail)[-800:]}


def python_module(module: str, *args: str) -> list[str]:
    """argv running `python -m module args` with this interpreter (the project venv)."""
    return [sys.executable, "-m", module, *args]


def emit(result: dict[str, Any]) -> None:
    """Print a subprocess's result as its last stdout line (read back by run_json)."""
    sys.stdout.write("\n" + json.dumps(result) + "\n")
    sys.stdout.flush()


def machine() -> dict[str, Any]:
    """Facts that change the figures: CPUs, load, library versions, device."""
    import torch

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.is_available(),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    for lib in ("timm", "torchvision", "transformers", "zarr", "xarray"):
        try:
            info[lib] = __import__(lib).__version__
        except Exception:  # a missing optional library is a fact, not a failure
            info[lib] = None
    try:
        info["nbfeat"] = __import__("nbfeat").__version__
    except Exception:
        info["nbfeat"] = None
    info["glibc"] = " ".join(platform.libc_ver())
    return info


def r3(x: float) -> float:
    return round(float(x), 3)


class Server:
    """A benchmark subprocess that answers JSON requests, one stdin line each.

    Replies are the stdout lines that start with `@@bench@@ ` (libraries may print anything
    else); stderr goes to `log`. Keeps models loaded between requests, so rounds can repeat
    cheaply and every timed call after the first is a warm, steady-state call.
    """

    MARK = "@@bench@@ "

    def __init__(self, argv: list[str], env: dict[str, str] | None = None, log: Path | None = None):
        import queue
        import threading

        full_env = dict(os.environ)
        full_env.setdefault("PYTHONPATH", str(ROOT))
        full_env.update(env or {})
        self.log = log or OUT / "server.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self._err = open(self.log, "w")  # closed in close()
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._err, text=True, env=full_env, cwd=ROOT, bufsize=1)
        self.lines: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            assert self.proc.stdout is not None
            for line in self.proc.stdout:
                if line.startswith(self.MARK):
                    self.lines.put(line[len(self.MARK) :])
            self.lines.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def call(self, request: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
        import queue

        if self.proc.poll() is not None:
            return {"error": f"server exited ({self.proc.returncode}); see {self.log}"}
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            self.close()
            return {"error": f"no reply in {timeout:.0f} s; see {self.log}"}
        if line is None:
            tail = " | ".join(self.log.read_text().strip().splitlines()[-4:])[-600:]
            return {"error": f"server exited ({self.proc.wait()}): {tail}"}
        return json.loads(line)

    def close(self) -> None:
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            try:
                self.proc.stdin.close()
            except OSError:
                pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self._err.close()
