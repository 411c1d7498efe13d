"""Benchmark 8: what a Dask cluster buys: a LocalCluster (2 worker processes) vs one process.

The same JPEG folder, model (random weights), layer and batch size go to
`bb.extract(folder, out=store)` in a fresh process, and once more with
`client=Client(LocalCluster(n_workers=2, threads_per_worker=1))` in another fresh process.
Timed from the call to the finished store (the cluster's start-up is reported apart); peak
memory is the sum of each process's own peak (VmHWM): the client (with the scheduler) and
both workers. The two stores must hold the same values.

    python -m bench.scale --child single --images bench/out/images_96 --store bench/out/s.zarr
    python -m bench.run --only scale [--quick]
"""

from __future__ import annotations

import argparse
import shutil
import time
from typing import Any

from bench.common import OUT, emit, peak_rss_mib, python_module, r3, run_json

MODEL, LAYER = "torchvision:resnet50", "layer3"


def run(quick: bool = False, n: int | None = None, batch_size: int = 16) -> dict[str, Any]:
    import numpy as np

    from bench.images import jpeg_folder

    n = n or (32 if quick else 128)
    folder = jpeg_folder(n)
    rows, stores = [], {}
    for setup in ("single", "cluster"):
        store = OUT / f"scale_{setup}.zarr"
        shutil.rmtree(store, ignore_errors=True)
        got = run_json(python_module("bench.scale", "--child", setup, "--images", str(folder), "--store", str(store), "--batch-size", str(batch_size)), env={"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}, timeout=1800)
        got["setup"] = "one process" if setup == "single" else "LocalCluster, 2 worker processes (1 thread each)"
        got["images"] = n
        rows.append(got)
        stores[setup] = store
    if all("seconds" in r for r in rows):
        rows[1]["speedup_vs_single"] = r3(rows[0]["seconds"] / rows[1]["seconds"])
        rows[0]["speedup_vs_single"] = 1.0
        import nbfeat

        a, b = (nbfeat.open(stores[s]) for s in ("single", "cluster"))
        va, vb = a[LAYER].values, b[LAYER].values
        # workers run torch on one thread each (Dask sets OMP_NUM_THREADS=1): float sums in another order
        same = bool(np.allclose(va, vb, rtol=1e-4, atol=1e-5, equal_nan=True)) and list(a["sample"].values) == list(b["sample"].values)
        for r in rows:
            r["same_values"] = f"{'yes' if same else 'NO'} (max abs diff {float(np.nanmax(np.abs(va - vb))):.1e})"
    for s in stores.values():
        shutil.rmtree(s, ignore_errors=True)
    return {
        "params": {"model": MODEL, "layer": f"{LAYER} (unpooled, to zarr)", "images": n, "batch_size": batch_size, "device": "cpu"},
        "rows": rows,
        "notes": [
            "On this 2-core machine the two workers share the cores the single process's torch threads already use, so the cluster can only lose; the figure shows its overhead, what it costs in memory (a model per worker), and that the stores match. On a real cluster each worker brings its own cores.",
        ],
    }


def _vmhwm_mib() -> float:
    return peak_rss_mib()


def child(setup: str, images: str, store: str, batch_size: int) -> dict[str, Any]:
    import nbfeat

    bb = nbfeat.load(MODEL, pretrained=False, device="cpu")
    kw: dict[str, Any] = {"layers": [LAYER], "batch_size": batch_size, "out": store, "overwrite": True, "progress": False}
    result: dict[str, Any] = {}
    if setup == "cluster":
        from dask.distributed import Client, LocalCluster

        t0 = time.perf_counter()
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0")
        client = Client(cluster)
        result["cluster_start_s"] = r3(time.perf_counter() - t0)
        kw["client"] = client
    t0 = time.perf_counter()
    ds = bb.extract(images, **kw)
    seconds = time.perf_counter() - t0
    n = int(ds.sizes["sample"])
    result.update({"seconds": r3(seconds), "images_per_s": r3(n / seconds)})
    main = _vmhwm_mib()
    if setup == "cluster":
        workers = list(client.run(_vmhwm_mib).values())
        result["peak_per_process_mib"] = f"client+scheduler {main:.0f}, workers " + ", ".join(f"{w:.0f}" for w in workers)
        result["peak_mib"] = round(main + sum(workers))
        client.close()
        cluster.close()
    else:
        result["peak_per_process_mib"] = f"{main:.0f}"
        result["peak_mib"] = round(main)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", choices=["single", "cluster"], required=True)
    parser.add_argument("--images", required=True)
    parser.add_argument("--store", required=True)
    parser.add_argument("--batch-size", type=int, default=16)
    args = parser.parse_args()
    emit(child(args.child, args.images, args.store, args.batch_size))


if __name__ == "__main__":
    main()
