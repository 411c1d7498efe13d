"""THINGSvision 2.7.3 end to end on a JPEG folder; runs inside bench/.venv-thingsvision.

Standalone on purpose (that venv has THINGSvision's old torch and no nbfeat). A small server:
each stdin line is a JSON request `{"folder", "source", "model", "layer", "batch_size",
"out"}`; the reply is one stdout line starting with `@@bench@@ ` and a JSON object. Models are
built once per process (outside the timing). It follows THINGSvision's documented path:
get_extractor, ImageDataset + its DataLoader, and extract_features(output_dir=...), which
streams the features to .npy files; the timing covers dataset listing, decoding, forward and
saving.

    echo '{"folder": "bench/out/images_32", "source": "timm", "model": "vit_small_patch16_224",
           "layer": "blocks.5", "batch_size": 32, "out": "bench/out/tv"}' |
        bench/.venv-thingsvision/bin/python bench/e2e_thingsvision.py
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import sys
import time
import traceback

MARK = "@@bench@@ "


def _status_mib(field: str = "VmHWM") -> float:
    # peak (VmHWM) or now (VmRSS); not ru_maxrss: Linux carries the parent's high-water mark across fork + exec
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    t = time.perf_counter()
    import thingsvision
    import torch
    from thingsvision import get_extractor
    from thingsvision.utils.data import DataLoader, ImageDataset

    imports_s = time.perf_counter() - t
    imports_rss = _status_mib("VmRSS")
    extractors: dict[tuple[str, str], object] = {}

    def handle(req: dict) -> dict:
        key = (req["source"], req["model"])
        if key not in extractors:
            extractors[key] = get_extractor(model_name=req["model"], source=req["source"], device="cpu", pretrained=False)
        extractor = extractors[key]
        if req.get("load"):  # build the model only: the memory baseline before any extraction
            return {"rss_mib": _status_mib("VmRSS"), "imports_rss_mib": imports_rss, "torch_version": torch.__version__}
        out = req["out"]
        shutil.rmtree(out, ignore_errors=True)
        r0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        dataset = ImageDataset(root=req["folder"], out_path=out, backend=extractor.get_backend(), transforms=extractor.get_transformations())
        batches = DataLoader(dataset=dataset, batch_size=req["batch_size"], backend=extractor.get_backend())
        extractor.extract_features(batches=batches, module_name=req["layer"], flatten_acts=False, output_dir=os.path.join(out, "features"))
        seconds = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_SELF)
        shutil.rmtree(out, ignore_errors=True)
        return {
            "seconds": seconds,
            "images": len(dataset),
            "cpu_s": (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime),
            "sys_s": r1.ru_stime - r0.ru_stime,
            "max_rss_mib": _status_mib(),
            "imports_s": imports_s,
            "torch_version": torch.__version__,
            "thingsvision_version": thingsvision.__version__,
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
