"""Benchmark 1: nbfeat vs the plain forward pass on the same pre-decoded tensors.

Per batch, every variant runs back to back (order rotated each batch): the full forward
`model(x)`, the hand-written forward truncated at the requested layer, and nbfeat's engine
on the same positions (`run.iter_batches`, what `bb.extract(tensor)` runs). The whole-call
figure adds what `extract` does once per call: `prepare` (input checks and the one-sample
probe) and `to_xarray` (assembling the labelled result). A direct `bb.extract(tensor)` on
the first batches cross-checks the composition at the last layer.

>>> python -m bench.run --quick --only forward      # doctest: +SKIP
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from bench.common import Paired, collect, median, r3, timed

VIT_NODES = ["attn", "mlp", "block"]


def resnet_upto(model: Any, upto: str) -> Callable[[Any], Any]:
    """torchvision ResNet forward stopped after `upto` (layer1..layer4), written by hand."""

    def forward(x: Any) -> Any:
        x = model.maxpool(model.relu(model.bn1(model.conv1(x))))
        for name in ("layer1", "layer2", "layer3", "layer4"):
            x = getattr(model, name)(x)
            if name == upto:
                return x
        raise ValueError(upto)

    return forward


def vit_upto(model: Any, block: int) -> Callable[[Any], Any]:
    """timm VisionTransformer forward stopped after `blocks[block]`, written by hand."""

    def forward(x: Any) -> Any:
        x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        for blk in model.blocks[: block + 1]:
            x = blk(x)
        return x

    return forward


def cases(quick: bool) -> list[dict[str, Any]]:
    """Model, reference forwards and nbfeat targets. `ref` is what a target is compared to."""
    return [
        {
            "model": "torchvision:resnet50",
            "refs": {"to layer1": lambda m: resnet_upto(m, "layer1"), "to layer3": lambda m: resnet_upto(m, "layer3")},
            "targets": [
                {"name": "layer1", "kw": {"layers": ["layer1"]}, "ref": "to layer1", "goal": "early"},
                {"name": "layer3", "kw": {"layers": ["layer3"]}, "ref": "to layer3", "goal": "early"},
                {"name": "avgpool", "kw": {"layers": ["avgpool"]}, "ref": "full", "goal": "last", "direct": True},
            ],
        },
        {
            "model": "timm:vit_small_patch16_224",
            "refs": {"to blocks.3": lambda m: vit_upto(m, 3)},
            "targets": [
                {"name": "blocks.3", "kw": {"layers": ["blocks.3"]}, "ref": "to blocks.3", "goal": "early"},
                {"name": "blocks.11 (last)", "kw": {"layers": ["blocks.11"]}, "ref": "full", "goal": "last", "direct": True},
                {"name": "nodes attn/mlp/block x12", "kw": {"nodes": VIT_NODES}, "ref": "full", "goal": None},
            ],
        },
    ]


def run(quick: bool = False, n: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    n = n or (16 if quick else 256)
    bs = batch_size or (8 if quick else 32)
    rows: list[dict[str, Any]] = []
    checks: list[dict[str, Any]] = []
    for case in cases(quick):
        case_rows, case_checks = measure_case(case, n, bs)
        rows += case_rows
        checks += case_checks
        collect()
    return {
        "params": {"images": n, "batch_size": bs, "dtype": "float32", "device": "cpu", "rounds": "one per batch"},
        "rows": rows,
        "direct_checks": checks,
        "goals": goals(rows),
    }


def measure_case(case: dict[str, Any], n: int, bs: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """One model: paired per-batch timings of its references and nbfeat targets."""
    import torch

    import nbfeat

    torch.manual_seed(0)
    x = torch.randn(n, 3, 224, 224)
    bb = nbfeat.load(case["model"], pretrained=False, device="cpu")
    model = bb.model
    refs = {"full": model, **{k: f(model) for k, f in case["refs"].items()}}

    def plain(fn: Callable[[Any], Any], xb: Any) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                fn(xb)

        return call

    def prepare(kw: dict[str, Any]) -> Callable[[], Any]:
        return lambda: bb.prepare(x, batch_size=bs, **kw)

    def engine(r: Any, chunk: list[int]) -> Callable[[], Any]:
        return lambda: list(r.iter_batches(chunk))

    runs, prepare_s = {}, {}
    for t in case["targets"]:
        prepare_s[t["name"]], runs[t["name"]] = timed(prepare(t["kw"]))
    chunks = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    # warm-up: first-call allocations and lazy init do not count
    for fn in refs.values():
        plain(fn, x[:bs])()
    for r in runs.values():
        engine(r, chunks[0])()

    pairs = Paired()
    for i, chunk in enumerate(chunks):
        xb = x[chunk[0] : chunk[-1] + 1]
        variants: dict[str, Callable[[], Any]] = {name: plain(fn, xb) for name, fn in refs.items()}
        variants.update({"nbfeat " + name: engine(r, chunk) for name, r in runs.items()})
        pairs.time_round(i, variants, keep=tuple("nbfeat " + name for name in runs))

    rows = []
    for t in case["targets"]:
        name, ref = t["name"], t["ref"]
        nb = "nbfeat " + name
        batches = [b for bl in pairs.results.pop(nb) for b in bl]
        t0 = time.perf_counter()
        runs[name].to_xarray(batches)
        xr_s = time.perf_counter() - t0
        batches.clear()
        whole = prepare_s[name] + pairs.total(nb) + xr_s
        row = {
            "model": case["model"],
            "target": name,
            "reference": "model(x)" if ref == "full" else f"hand-written forward {ref}",
            "ratio_vs_reference": r3(pairs.ratio(nb, ref)),
            "ratio_spread": pairs.spread(nb, ref),
            "ratio_vs_full_forward": r3(pairs.ratio(nb, "full")),
            "whole_call_ratio_vs_reference": r3(whole / pairs.total(ref)),
            "prepare_s": r3(prepare_s[name]),
            "to_xarray_s": r3(xr_s),
            "nbfeat_images_per_s": r3(n / whole),
            "reference_images_per_s": r3(n / pairs.total(ref)),
            "goal": t["goal"],
        }
        if ref != "full":
            row["reference_cost_vs_full"] = r3(pairs.ratio(ref, "full"))
        rows.append(row)
        collect()

    checks = []
    m = min(n, 2 * bs)

    def full_loop() -> None:
        with torch.inference_mode():
            for i in range(0, m, bs):
                model(x[i : i + bs])

    def direct_extract(kw: dict[str, Any]) -> Callable[[], Any]:
        return lambda: bb.extract(x[:m], batch_size=bs, progress=False, **kw)

    for t in [t for t in case["targets"] if t.get("direct")]:
        direct = Paired()
        direct.time_round(len(checks), {"plain": full_loop, "extract": direct_extract(t["kw"])})
        checks.append({"model": case["model"], "target": t["name"], "images": m, "direct_extract_ratio": r3(direct.ratio("extract", "plain"))})
    return rows, checks


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["goal"] == "last":
            out.append({"goal": f"overhead vs model(x) at the last layer, {row['model']} {row['target']}", "target": "<= 1.05", "measured": row["whole_call_ratio_vs_reference"], "met": row["whole_call_ratio_vs_reference"] <= 1.05})
        elif row["goal"] == "early":
            out.append({"goal": f"early layer vs truncated forward, {row['model']} {row['target']}", "target": "<= 1.10", "measured": row["whole_call_ratio_vs_reference"], "met": row["whole_call_ratio_vs_reference"] <= 1.10})
    return out


def summary(result: dict[str, Any]) -> str:
    return ", ".join(f"{r['target']}: {r['whole_call_ratio_vs_reference']}" for r in result["rows"]) + f" (median {median([r['ratio_vs_reference'] for r in result['rows']]):.3f})"
