"""Benchmark 2: end to end from a folder of JPEGs, nbfeat (`out=` zarr) vs THINGSvision 2.7.3.

Each side is a long-lived subprocess (bench/e2e_nbfeat.py, bench/e2e_thingsvision.py) that
keeps its models loaded and answers one request per call: the same folder, model (random
weights), layer and batch size, called back to back in an order rotated every call, one
untimed warm-up call per model first. Each times itself from the call to the features on
disk; the figure is the median over rounds of the paired ratio. nbfeat runs twice: as
shipped, and with NBFEAT_MALLOC=default (glibc's allocator left alone, see benchmark 6). THINGSvision runs in its
own venv with its pinned torch; a plain `model(x)` control in each venv separates the torch
versions from the tools.

>>> python -m bench.run --quick --only e2e      # doctest: +SKIP
"""

from __future__ import annotations

import os
import sys
from typing import Any

from bench.common import OUT, Server, median, python_module, r3, run_json
from bench.images import jpeg_folder

# (label, nbfeat id, layer, THINGSvision source, THINGSvision model name, goal speed-up)
CONFIGS = [
    ("ViT-S/16 blocks.5", "timm:vit_small_patch16_224", "blocks.5", "timm", "vit_small_patch16_224", 1.8),
    ("resnet50 layer1", "torchvision:resnet50", "layer1", "torchvision", "resnet50", 3.0),
    ("resnet50 layer3", "torchvision:resnet50", "layer3", "torchvision", "resnet50", None),
    ("resnet50 avgpool (last)", "torchvision:resnet50", "avgpool", "torchvision", "resnet50", None),
]
QUIET = {"TF_CPP_MIN_LOG_LEVEL": "3", "TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
# nbfeat once more without its allocator settings: how much of the speed-up they make
UNTUNED = {"NBFEAT_MALLOC": "default"}


def run(quick: bool = False, n: int | None = None, rounds: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    from bench.tv_env import EnvError, thingsvision_python

    n = n or (32 if quick else 96)
    rounds = rounds or (1 if quick else 2)  # two rounds: the paired ratios spread less than the goals' margins
    folder = jpeg_folder(n)
    notes: list[str] = []
    tv_error = None
    try:
        tv_python: Any = thingsvision_python()
    except EnvError as e:
        tv_python, tv_error = None, str(e)
        notes.append(f"THINGSvision not measured: {tv_error}")
    servers = {
        "nb": Server(python_module("bench.e2e_nbfeat"), QUIET, OUT / "e2e_nbfeat.log"),
        "nb_untuned": Server(python_module("bench.e2e_nbfeat"), {**QUIET, **UNTUNED}, OUT / "e2e_nbfeat_untuned.log"),
    }
    if tv_python is not None:
        servers["tv"] = Server([str(tv_python), os.path.join(os.path.dirname(__file__), "e2e_thingsvision.py")], QUIET, OUT / "e2e_thingsvision.log")
    try:
        got, loaded = measure(servers, folder, rounds, batch_size)
    finally:
        for s in servers.values():
            s.close()
    rows, goals = [], []
    for k, (label, _model, layer, _src, _name, goal) in enumerate(CONFIGS):
        runs = got[k]
        row: dict[str, Any] = {"config": label, "layer": layer, "images": n, "batch_size": batch_size}
        nb_ok = [x for x in runs["nb"] if "seconds" in x]
        if not nb_ok:
            row["nbfeat_error"] = runs["nb"][-1].get("error")
        else:
            row["nbfeat_s"] = r3(median([x["seconds"] for x in nb_ok]))
            row["nbfeat_images_per_s"] = r3(n / row["nbfeat_s"])
            row["nbfeat_sink"] = nb_ok[0]["sink"]
            row["nbfeat_workers"] = nb_ok[0]["num_workers"]
            row["nbfeat_pass_rows"] = nb_ok[0].get("pass_rows")
            row["nbfeat_first_call_imports_s"] = r3(nb_ok[0]["imports_s"])
            row["nbfeat_max_rss_mib"] = round(max(x["max_rss_mib"] for x in nb_ok))
        tv_ok = [x for x in runs.get("tv", []) if "seconds" in x]
        if "tv" in runs and not tv_ok:
            row["thingsvision_error"] = runs["tv"][-1].get("error") if runs["tv"] else "not run"
        elif tv_ok:
            row["thingsvision_s"] = r3(median([x["seconds"] for x in tv_ok]))
            row["thingsvision_images_per_s"] = r3(n / row["thingsvision_s"])
            row["thingsvision_torch"] = tv_ok[0]["torch_version"]
            row["thingsvision_max_rss_mib"] = round(max(x["max_rss_mib"] for x in tv_ok))
        speedup = _paired(runs.get("tv", []), runs["nb"], "seconds")
        if speedup is not None:
            row["speedup_vs_thingsvision"] = speedup
            row["cpu_time_ratio_vs_thingsvision"] = _paired(runs["tv"], runs["nb"], "cpu_s")
            target = goal or 1.0
            goals.append({"goal": f"end to end vs THINGSvision, {label}", "target": f">= {target}", "measured": speedup, "met": speedup >= target})
        row["speedup_allocator_untouched"] = _paired(runs.get("tv", []), runs["nb_untuned"], "seconds")
        untuned_ok = [x for x in runs["nb_untuned"] if "max_rss_mib" in x]
        if untuned_ok:
            row["nbfeat_untuned_max_rss_mib"] = round(max(x["max_rss_mib"] for x in untuned_ok))
        row["raw"] = {who: [_brief(x) for x in rs] for who, rs in runs.items()}
        rows.append(row)
        print(f"[bench]   e2e {label}: speed-up {row.get('speedup_vs_thingsvision')}, allocator untouched {row.get('speedup_allocator_untouched')}", file=sys.stderr, flush=True)
    # peak memory: each server's high-water mark over the whole run (every config, every round)
    peaks = {k: max((r.get(k) or 0) for r in rows) for k in ("nbfeat_max_rss_mib", "nbfeat_untuned_max_rss_mib", "thingsvision_max_rss_mib")}
    memory = _memory(peaks, loaded)
    if peaks["thingsvision_max_rss_mib"]:
        for key, what in (("nbfeat_max_rss_mib", "as shipped"), ("nbfeat_untuned_max_rss_mib", "allocator untouched (NBFEAT_MALLOC=default)")):
            if peaks[key]:
                goals.append({"goal": f"peak RSS vs THINGSvision on the same end-to-end run, nbfeat {what}", "target": "<= 1.0", "measured": r3(peaks[key] / peaks["thingsvision_max_rss_mib"]), "met": peaks[key] <= peaks["thingsvision_max_rss_mib"]})
        notes.append(f"peak RSS over the whole run (MiB): nbfeat {peaks['nbfeat_max_rss_mib']}, nbfeat with the allocator untouched {peaks['nbfeat_untuned_max_rss_mib']}, THINGSvision {peaks['thingsvision_max_rss_mib']}.")
    if memory.get("tv"):
        nb, tv = memory["nb"], memory["tv"]
        goals.append({"goal": "memory the extraction adds to the loaded models (peak RSS minus RSS with imports and both models loaded) vs THINGSvision, nbfeat as shipped", "target": "<= 1.0", "measured": r3(nb["extraction_mib"] / tv["extraction_mib"]), "met": nb["extraction_mib"] <= tv["extraction_mib"]})
        notes.append(
            f"where the peak goes (MiB): imports (torch, torchvision, timm, the tools' first-call libraries) nbfeat {nb['imports_rss_mib']} under torch {nb['torch']}, THINGSvision {tv['imports_rss_mib']} under torch {tv['torch']}; "
            f"both models loaded: nbfeat {nb['loaded_rss_mib']}, THINGSvision {tv['loaded_rss_mib']}; added by extracting: nbfeat {nb['extraction_mib']}, THINGSvision {tv['extraction_mib']}."
        )
    controls = torch_controls(tv_python, rounds) if tv_python is not None else []
    for c in controls:
        if "ratio" in c:
            notes.append(f"control, plain model(x) of {c['model']} (batch {batch_size}): torch {c['ours_torch']} {c['ours_images_per_s']} img/s, THINGSvision's torch {c['tv_torch']} {c['tv_images_per_s']} img/s (time ratio ours/theirs {c['ratio']}).")
        else:
            notes.append(f"control for {c['model']} failed: {c.get('error')}")
    result: dict[str, Any] = {
        "params": {"images": n, "image_size": "500x375 JPEG", "batch_size": batch_size, "rounds": rounds, "device": "cpu", "calls": "warm (model loaded, one untimed call first)"},
        "rows": rows,
        "goals": goals,
        "controls": controls,
        "memory": memory,
        "notes": notes,
    }
    if tv_python is None:
        result["thingsvision"] = {"status": "unavailable", "reason": tv_error}
    return result


def measure(servers: dict[str, Server], folder: Any, rounds: int, batch_size: int) -> tuple[list[dict[str, list[dict[str, Any]]]], dict[str, dict[str, Any]]]:
    """Per config, per side: one reply per round; sides in an order rotated every call.
    Also each side's memory with both models loaded, before any extraction (`load` requests)."""
    def request(who: str, k: int) -> dict[str, Any]:
        _label, model, layer, tv_source, tv_model, _goal = CONFIGS[k]
        if who == "tv":
            return {"folder": str(folder), "source": tv_source, "model": tv_model, "layer": layer, "batch_size": batch_size, "out": str(OUT / "e2e_thingsvision")}
        return {"folder": str(folder), "model": model, "layer": layer, "batch_size": batch_size, "out": str(OUT / f"e2e_{who}.zarr")}

    names = list(servers)
    first_per_model: dict[str, int] = {}
    for k, config in enumerate(CONFIGS):
        first_per_model.setdefault(config[1], k)
    loaded: dict[str, dict[str, Any]] = {}
    for who in names:  # every model built, nothing extracted yet: the last reply is the baseline
        for k in first_per_model.values():
            loaded[who] = servers[who].call({**request(who, k), "load": True})
    # warm-up: first-call allocations; not timed
    for k in first_per_model.values():
        for who in names:
            servers[who].call(request(who, k))
    got: list[dict[str, list[dict[str, Any]]]] = [{who: [] for who in names} for _ in CONFIGS]
    step = 0
    for _r in range(rounds):
        for k in range(len(CONFIGS)):
            j = step % len(names)
            step += 1
            for who in names[j:] + names[:j]:
                got[k][who].append(servers[who].call(request(who, k)))
    return got, loaded


def _memory(peaks: dict[str, float], loaded: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per side: RSS after imports, with both models loaded, and what extracting added to that."""
    out = {}
    for who, key in (("nb", "nbfeat_max_rss_mib"), ("nb_untuned", "nbfeat_untuned_max_rss_mib"), ("tv", "thingsvision_max_rss_mib")):
        got = loaded.get(who) or {}
        if "rss_mib" in got and peaks.get(key):
            out[who] = {
                "imports_rss_mib": round(got["imports_rss_mib"]),
                "loaded_rss_mib": round(got["rss_mib"]),
                "peak_rss_mib": round(peaks[key]),
                "extraction_mib": round(peaks[key] - got["rss_mib"]),
                "torch": got.get("torch_version"),
            }
    return out


def _paired(ref: list[dict[str, Any]], ours: list[dict[str, Any]], key: str) -> float | None:
    """Median over rounds of ref[key] / ours[key] (above 1: ours is faster)."""
    pairs = [a[key] / b[key] for a, b in zip(ref, ours) if key in a and key in b and b[key] > 0]
    return r3(median(pairs)) if pairs else None


def torch_controls(tv_python: Any, rounds: int, n: int = 64, batch_size: int = 32) -> list[dict[str, Any]]:
    """Plain `model(x)` under each environment's torch, interleaved (see bench/torch_control.py)."""
    script = os.path.join(os.path.dirname(__file__), "torch_control.py")
    out = []
    for k, model in enumerate(dict.fromkeys(c[1] for c in CONFIGS)):
        argv = ["--model", model, "--n", str(n), "--batch-size", str(batch_size)]
        ours, theirs = [], []
        for r in range(2):  # one pair per order: a control beside the figures, not a goal
            for who in (["ours", "tv"] if (k + r) % 2 == 0 else ["tv", "ours"]):
                if who == "ours":
                    ours.append(run_json([sys.executable, script, *argv], env=QUIET))
                else:
                    theirs.append(run_json([str(tv_python), script, *argv], env=QUIET))
        ok = [(a, b) for a, b in zip(ours, theirs) if "seconds" in a and "seconds" in b]
        if not ok:
            out.append({"model": model, "error": next((x["error"] for x in ours + theirs if "error" in x), "no result")})
            continue
        out.append(
            {
                "model": model,
                "ours_torch": ok[0][0]["torch_version"],
                "tv_torch": ok[0][1]["torch_version"],
                "ours_images_per_s": r3(n / median([a["seconds"] for a, _ in ok])),
                "tv_images_per_s": r3(n / median([b["seconds"] for _, b in ok])),
                "ratio": r3(median([a["seconds"] / b["seconds"] for a, b in ok])),
            }
        )
    return out


def _brief(run: dict[str, Any]) -> dict[str, Any]:
    return {k: (r3(v) if isinstance(v, float) else v) for k, v in run.items() if k in ("seconds", "cpu_s", "sys_s", "max_rss_mib", "error")}
