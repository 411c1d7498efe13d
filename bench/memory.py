"""Benchmark: peak memory of streaming to zarr does not grow with the number of images.

N generated photo-sized JPEGs go through resnet50 `layer3` (1024x14x14 floats = 784 KiB per
image, unpooled: the worst case) into a zarr store with `nbfeat.store.write`, in a fresh
process per N. Recorded: peak RSS of that process (getrusage), of its DataLoader workers,
the peak of the whole process tree (PSS, sampled every 0.2 s), the RSS after the model is loaded
(baseline) and an RSS timeline. Goal: under 2 GiB at N = 20,000, and the same peak for any N.

    python -m bench.memory --n 200 --n 1000        # writes bench/out/memory.json
    python -m bench.run --only memory [--quick]    # the same, inside the benchmark table

The full 20,000 takes about 25 minutes on 2 CPU cores (and ~10 GB of disk for the store, removed
afterwards); --quick uses 200 and 1000.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import threading
import time
from typing import Any

from bench.common import OUT, emit, peak_rss_mib, python_module, run_json

GOAL_MIB = 2048
MODEL, LAYER = "torchvision:resnet50", "layer3"


def run(
    quick: bool = False, sizes: list[int] | None = None, batch_size: int = 32
) -> dict[str, Any]:
    """Measure each N in a fresh process; the result goes to bench/out/memory.json too."""
    from bench.images import jpeg_folder

    sizes = sizes or ([200, 1000] if quick else [1000, 20000])
    runs = []
    for n in sizes:
        folder = jpeg_folder(n)
        store = OUT / f"memory_{n}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        argv = python_module(
            "bench.memory",
            "--child",
            "--images",
            str(folder),
            "--store",
            str(store),
            "--batch-size",
            str(batch_size),
        )
        result = run_json(argv, env={"PYTHONPATH": str(OUT.parent.parent)}, timeout=6 * 3600)
        result["n"] = n
        runs.append(result)
        shutil.rmtree(store, ignore_errors=True)
        print(
            f"[memory] n={n}: "
            + json.dumps(
                {
                    k: result.get(k)
                    for k in (
                        "peak_tree_mib",
                        "max_rss_mib",
                        "baseline_mib",
                        "images_per_s",
                        "error",
                    )
                    if k in result
                }
            ),
            flush=True,
        )
    peaks = [r["peak_tree_mib"] for r in runs if "peak_tree_mib" in r]
    summary: dict[str, Any] = {
        "model": MODEL,
        "layer": LAYER,
        "batch_size": batch_size,
        "goal_mib": GOAL_MIB,
        "runs": runs,
        "peak_mib": max(peaks) if peaks else None,
        "under_goal": bool(peaks) and max(peaks) < GOAL_MIB,
        # flat memory: the largest N should peak no higher than the smallest (+ noise)
        "growth_mib_largest_vs_smallest": round(peaks[-1] - peaks[0], 1)
        if len(peaks) > 1
        else None,
    }
    if any("error" in r for r in runs):
        summary["status"] = "error"
        summary["reason"] = next(r["error"] for r in runs if "error" in r)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "memory.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def _child(images: str, store: str, batch_size: int) -> None:
    """In a fresh process: load, prepare, write; report memory."""
    import psutil
    import torch

    import nbfeat
    from nbfeat.store import write

    me = psutil.Process()
    timeline: list[tuple[float, float]] = []
    peak = [0.0]
    stop = threading.Event()

    def tree_rss() -> float:
        # PSS, not RSS: forked DataLoader workers share the parent's pages, and summing
        # their RSS would count those pages twice
        total = 0
        for proc in [me, *me.children(recursive=True)]:
            try:
                total += proc.memory_full_info().pss
            except psutil.Error:
                pass
        return total / 2**20

    def sample() -> None:
        t0 = time.perf_counter()
        while not stop.is_set():
            rss = tree_rss()
            peak[0] = max(peak[0], rss)
            timeline.append((round(time.perf_counter() - t0, 1), round(rss, 1)))
            stop.wait(0.2)

    bb = nbfeat.load(MODEL, pretrained=False, device="cpu")
    run = bb.prepare(images, layers=LAYER, batch_size=batch_size)
    baseline = tree_rss()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    t0 = time.perf_counter()
    write(run, store, progress=False)
    seconds = time.perf_counter() - t0
    stop.set()
    sampler.join()
    n = len(run.samples)
    size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(store) for f in files)
    step = max(1, len(timeline) // 24)
    emit(
        {
            "n": n,
            "seconds": round(seconds, 1),
            "images_per_s": round(n / seconds, 2),
            "baseline_mib": round(baseline, 1),
            "peak_tree_mib": round(peak[0], 1),
            "max_rss_mib": round(peak_rss_mib(), 1),  # VmHWM: ru_maxrss carries the parent's across exec
            "max_rss_children_mib": round(
                resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1
            ),
            "store_mib": round(size / 2**20, 1),
            "feature_mib": round(n * 1024 * 14 * 14 * 4 / 2**20, 1),
            "torch_threads": torch.get_num_threads(),
            "timeline_s_mib": timeline[::step],
        }
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.memory", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--n",
        type=int,
        action="append",
        help="number of images (repeatable); default 1000 and 20000",
    )
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--images", help=argparse.SUPPRESS)
    parser.add_argument("--store", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _child(args.images, args.store, args.batch_size)
        return 0
    summary = run(sizes=args.n, batch_size=args.batch_size)
    print(json.dumps({k: v for k, v in summary.items() if k != "runs"}, indent=1))
    return 0 if summary.get("status") != "error" else 1


if __name__ == "__main__":
    sys.exit(main())
