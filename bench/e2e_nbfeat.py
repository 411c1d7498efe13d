"""nbfeat end to end on a JPEG folder, in its own process (as THINGSvision's side runs).

A small server, like bench/e2e_thingsvision.py: each stdin line is a JSON request
`{"folder", "model", "layer", "batch_size", "out"}`, the reply one `@@bench@@ {json}` line.
Backbones are loaded once per process, and the libraries extract() imports on its first call
are imported at start (THINGSvision's imports are outside its timer too; both costs are
reported apart). The timing covers `bb.extract(folder, layers=[layer], out=store)`: listing,
decoding in DataLoader workers, forward with early exit, zarr writes. Falls back to the
in-memory result (and says so) when nbfeat.store has no `write`.

    echo '{"folder": "bench/out/images_32", "model": "timm:vit_small_patch16_224",
           "layer": "blocks.5", "batch_size": 32, "out": "bench/out/nb.zarr"}' |
        python -m bench.e2e_nbfeat
"""

from __future__ import annotations

import importlib
import json
import resource
import shutil
import sys
import time
import traceback
from typing import Any

from bench.common import peak_rss_mib, rss_mib

MARK = "@@bench@@ "
FIRST_CALL_IMPORTS = ("nbfeat.engine.run", "nbfeat.data.labelled", "nbfeat.store.writer", "nbfeat.store.reader", "zarr", "xarray", "pandas", "dask.array", "distributed")


def main() -> None:
    t = time.perf_counter()
    import torch

    import nbfeat

    for name in FIRST_CALL_IMPORTS:
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    imports_s = time.perf_counter() - t
    imports_rss = rss_mib()
    try:
        from nbfeat.store import write  # noqa: F401

        sink = "zarr"
    except ImportError:
        sink = "memory"
    backbones: dict[str, Any] = {}

    def handle(req: dict[str, Any]) -> dict[str, Any]:
        if req["model"] not in backbones:
            backbones[req["model"]] = nbfeat.load(req["model"], pretrained=False, device="cpu")
        bb = backbones[req["model"]]
        if req.get("load"):  # build the model only: the memory baseline before any extraction
            return {"rss_mib": rss_mib(), "imports_rss_mib": imports_rss, "torch_version": torch.__version__}
        kw: dict[str, Any] = {"layers": [req["layer"]], "batch_size": req["batch_size"], "num_workers": req.get("num_workers"), "progress": False}
        if sink == "zarr":
            kw.update(out=req["out"], overwrite=True)
        shutil.rmtree(req["out"], ignore_errors=True)
        r0 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        t0 = time.perf_counter()
        ds = bb.extract(req["folder"], **kw)
        seconds = time.perf_counter() - t0
        r1 = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        n = int(ds.sizes["sample"])
        del ds
        prep = bb.prepare(req["folder"], layers=[req["layer"]], batch_size=req["batch_size"], num_workers=req.get("num_workers"))
        shutil.rmtree(req["out"], ignore_errors=True)
        # CPU of this process and of its DataLoader workers (reaped children)
        cpu = sum((b.ru_utime - a.ru_utime) + (b.ru_stime - a.ru_stime) for a, b in zip(r0, r1))
        return {
            "seconds": seconds,
            "images": n,
            "cpu_s": cpu,
            "sys_s": sum(b.ru_stime - a.ru_stime for a, b in zip(r0, r1)),
            "sink": sink,
            "num_workers": prep._workers(n),
            # rows per forward pass for a full batch (engine.run: sized by the largest module output)
            "pass_rows": prep._pass_rows(torch.empty(1, prep._row_elements).expand(req["batch_size"], -1)),
            "max_rss_mib": peak_rss_mib(),
            "imports_s": imports_s,
            "torch_version": torch.__version__,
            "torch_threads": torch.get_num_threads(),
        }

    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            reply = handle(json.loads(line))
        except Exception as e:
            reply = {"error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-1500:]}
        sys.stdout.write("\n" + MARK + json.dumps(reply) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
