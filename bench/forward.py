"""Benchmark 1: nbfeat vs the plain forward pass on the same pre-decoded tensors.

Per batch, every variant runs back to back (order rotated each batch): the full forward
`model(x)`, the hand-written forward truncated at the requested layer, and nbfeat's engine
on the same positions (`run.iter_batches`, what `bb.extract(tensor)` runs, its batches
consumed and dropped as a sink would). The whole-call figure is the real thing: `bb.extract(x)`
over all images (prepare, probe, engine, the labelled result in memory) against the reference
loop over the same batches, and against that loop keeping its outputs, in alternating rounds.

>>> python -m bench.run --quick --only forward      # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.common import Paired, collect, median, r3, settle, timed

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


def vit_nodes(model: Any) -> Callable[[Any], Any]:
    """timm ViT forward keeping attn, mlp and block outputs of every depth (as nbfeat's
    adapter defines them: before LayerScale and the residual add), written by hand."""

    def forward(x: Any) -> list[Any]:
        x = model.norm_pre(model.patch_drop(model._pos_embed(model.patch_embed(x))))
        attn, mlp, block = [], [], []
        for blk in model.blocks:
            a = blk.attn(blk.norm1(x))
            x = x + blk.drop_path1(blk.ls1(a))
            m = blk.mlp(blk.norm2(x))
            x = x + blk.drop_path2(blk.ls2(m))
            attn.append(a)
            mlp.append(m)
            block.append(x)
        return [torch_stack(attn), torch_stack(mlp), torch_stack(block)]

    return forward


def torch_stack(parts: list[Any]) -> Any:
    import torch

    return torch.stack(parts, dim=1)


def cases(quick: bool) -> list[dict[str, Any]]:
    """Model, reference forwards and nbfeat targets. `ref` is what a target is compared to."""
    return [
        {
            "model": "torchvision:resnet50",
            "refs": {"to layer1": lambda m: resnet_upto(m, "layer1"), "to layer3": lambda m: resnet_upto(m, "layer3")},
            "targets": [
                {"name": "layer1", "kw": {"layers": ["layer1"]}, "ref": "to layer1", "goal": "early"},
                {"name": "layer3", "kw": {"layers": ["layer3"]}, "ref": "to layer3", "goal": "early"},
                {"name": "avgpool", "kw": {"layers": ["avgpool"]}, "ref": "full", "goal": "last"},
            ],
        },
        {
            "model": "timm:vit_small_patch16_224",
            "refs": {"to blocks.3": lambda m: vit_upto(m, 3)},
            "keepers": {"nodes attn/mlp/block x12": vit_nodes},
            "targets": [
                {"name": "blocks.3", "kw": {"layers": ["blocks.3"]}, "ref": "to blocks.3", "goal": "early"},
                {"name": "blocks.11 (last)", "kw": {"layers": ["blocks.11"]}, "ref": "full", "goal": "last"},
                {"name": "nodes attn/mlp/block x12", "kw": {"nodes": VIT_NODES}, "ref": "full", "goal": None},
            ],
        },
    ]


def run(quick: bool = False, n: int | None = None, batch_size: int | None = None) -> dict[str, Any]:
    n = n or (16 if quick else 96)  # three batches of 32
    bs = batch_size or (8 if quick else 32)
    rows: list[dict[str, Any]] = []
    for case in cases(quick):
        rows += measure_case(case, n, bs)
        collect()
    return {
        "params": {"images": n, "batch_size": bs, "dtype": "float32", "device": "cpu", "rounds": f"one per batch; whole calls: {WHOLE_ROUNDS}"},
        "rows": rows,
        "goals": goals(rows),
    }


def measure_case(case: dict[str, Any], n: int, bs: int) -> list[dict[str, Any]]:
    """One model: paired per-batch timings of its references and nbfeat targets, then whole calls."""
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

    def engine(r: Any, chunk: list[int]) -> Callable[[], None]:
        def call() -> None:
            for _ in r.iter_batches(chunk):  # consumed as a sink would: nothing kept
                pass

        return call

    # warm-up: first-call allocations and lazy init do not count (prepare is timed after it)
    for fn in refs.values():
        plain(fn, x[:bs])()
    runs, prepare_s = {}, {}
    for t in case["targets"]:
        prepare_s[t["name"]], runs[t["name"]] = timed(prepare(t["kw"]))
    chunks = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    for r in runs.values():
        engine(r, chunks[0])()

    pairs = Paired()
    for i, chunk in enumerate(chunks):
        xb = x[chunk[0] : chunk[-1] + 1]
        variants: dict[str, Callable[[], Any]] = {name: plain(fn, xb) for name, fn in refs.items()}
        variants.update({"nbfeat " + name: engine(r, chunk) for name, r in runs.items()})
        pairs.time_round(i, variants)
    del runs
    collect()

    rows = []
    for t in case["targets"]:
        name, ref = t["name"], t["ref"]
        nb = "nbfeat " + name
        # the preallocated-arrays reference where a goal asks for it (early layers, nodes)
        keeper = case.get("keepers", {}).get(name, lambda m, fn=refs[ref]: fn)(model) if t["goal"] != "last" else None
        whole = whole_calls(bb, x, bs, t["kw"], refs[ref], chunks, keeper)
        row = {
            "model": case["model"],
            "target": name,
            "reference": "model(x)" if ref == "full" else f"hand-written forward {ref}",
            "ratio_vs_reference": r3(pairs.ratio(nb, ref)),
            "ratio_spread": pairs.spread(nb, ref),
            "ratio_vs_full_forward": r3(pairs.ratio(nb, "full")),
            "whole_call_ratio_vs_reference": whole["ratio"],
            "whole_call_spread": whole["spread"],
            "prepare_s": r3(prepare_s[name]),
            "nbfeat_images_per_s": r3(n / whole["extract_s"]),
            "reference_images_per_s": r3(n / whole["reference_s"]),
            "goal": t["goal"],
        }
        if "ratio_prealloc" in whole:
            row.update({
                "whole_call_ratio_vs_preallocated": whole["ratio_prealloc"],
                "whole_call_preallocated_spread": whole["spread_prealloc"],
                "preallocated_vs_reference": whole["prealloc_vs_reference"],
                "result_mib": whole["result_mib"],
                "first_touch_s": whole["first_touch_s"],
                "first_touch_share_of_call": r3(whole["first_touch_s"] / whole["extract_s"]),
                "minor_faults_per_call": {k: whole.get(f"{k}_minor_faults") for k in ("extract", "prealloc", "reference")},
            })
        if ref != "full":
            row["reference_cost_vs_full"] = r3(pairs.ratio(ref, "full"))
            row["whole_call_ratio_vs_reference_kept"] = whole["ratio_kept"]
        rows.append(row)
        collect()
    return rows


WHOLE_ROUNDS = 5  # the median of five paired rounds: a kernel sys-time spike on one round moves it little


def whole_calls(bb: Any, x: Any, bs: int, kw: dict[str, Any], fn: Callable[[Any], Any], chunks: list[list[int]], keeper: Callable[[Any], Any]) -> dict[str, Any]:
    """`bb.extract(x)` (labelled result in memory) against the reference loop over the same
    batches, against that loop keeping its outputs (append + cat), and against a loop that
    writes what nbfeat returns into arrays preallocated for every input (the honest limit
    when features are returned); rounds alternate which goes first. Every call starts from a
    settled heap (`settle`), as a notebook call after a pause does, so each pays its own page
    faults (counted per call: `*_minor_faults`). `first_touch_s` is what writing the
    result's bytes once into fresh memory costs (page faults + zeroing)."""
    import resource

    import torch

    faults: dict[str, list[int]] = {}

    def counted(name: str, call: Callable[[], Any]) -> Callable[[], Any]:
        def run() -> Any:
            f0 = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            out = call()
            faults.setdefault(name, []).append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - f0)
            return out

        return run

    def reference() -> None:
        with torch.inference_mode():
            for c in chunks:
                fn(x[c[0] : c[-1] + 1])

    def extract() -> Any:
        return bb.extract(x, batch_size=bs, progress=False, **kw)

    extract()  # untimed: the first call imports what building the result needs (xarray, pandas)
    pairs = Paired()
    for i in range(WHOLE_ROUNDS):
        variants = {"extract": extract, "reference": reference, "kept": lambda: keeping(fn, x, chunks)}
        if keeper is not None:
            variants["prealloc"] = lambda: preallocated(keeper, x, chunks)
        pairs.time_round(i, {k: counted(k, v) for k, v in variants.items()}, before=settle)
    settle()
    extra: dict[str, Any] = {}
    if keeper is not None:
        nbytes = preallocated(keeper, x, chunks[:1], size_only=True)
        touch = [first_touch(nbytes) for _ in range(WHOLE_ROUNDS)]
        extra = {
            "ratio_prealloc": r3(pairs.ratio("extract", "prealloc")),
            "spread_prealloc": pairs.spread("extract", "prealloc"),
            "prealloc_vs_reference": r3(pairs.ratio("prealloc", "reference")),
            "result_mib": round(nbytes / 2**20, 1),
            "first_touch_s": r3(median(touch)),
        }
    return {
        **extra,
        **{f"{k}_minor_faults": int(median(v)) for k, v in faults.items()},
        "ratio": r3(pairs.ratio("extract", "reference")),
        "spread": pairs.spread("extract", "reference"),
        "ratio_kept": r3(pairs.ratio("extract", "kept")),
        "extract_s": median(pairs.times["extract"]),
        "reference_s": median(pairs.times["reference"]),
    }


def keeping(fn: Callable[[Any], Any], x: Any, chunks: list[list[int]]) -> None:
    """The reference loop keeping its outputs, as a hand-written loop would (append per batch,
    one torch.cat): what holding the features in memory costs."""
    import torch

    with torch.inference_mode():
        outs = [_tensor(fn(x[c[0] : c[-1] + 1])) for c in chunks]
        torch.cat(outs)


def preallocated(keeper: Callable[[Any], Any], x: Any, chunks: list[list[int]], size_only: bool = False) -> Any:
    """The reference loop writing its outputs into arrays made once for every input (nbfeat's
    `empty`, filled batch by batch, as nbfeat's in-memory result is). `size_only`: the bytes it
    would hold."""
    import numpy as np
    import torch

    from nbfeat.engine.allocation import empty

    n = len(x)
    outs = None
    with torch.inference_mode():
        for c in chunks:
            got = keeper(x[c[0] : c[-1] + 1])
            got = [got] if hasattr(got, "shape") else list(got) if isinstance(got, list) else [_tensor(got)]
            if size_only:
                return sum(int(np.prod(g.shape[1:])) * n * g.element_size() for g in got)
            if outs is None:
                # allocated as nbfeat allocates its result (no transparent huge pages): a
                # fresh 300 MiB np.empty can stall in compaction, which would flatter nbfeat
                outs = [empty((n, *g.shape[1:]), np.float32) for g in got]
            for o, g in zip(outs, got):
                o[c[0] : c[-1] + 1] = g.numpy()
    return outs


def first_touch(nbytes: int) -> float:
    """Seconds to write `nbytes` once into fresh memory (page faults + zeroing + the write).

    The memory is a new anonymous mapping, not `np.empty`: with nbfeat's allocator settings
    in this process, np.empty would reuse heap pages already faulted in and time a plain write.
    """
    import mmap
    import time

    import numpy as np

    t0 = time.perf_counter()
    mm = mmap.mmap(-1, nbytes, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    a = np.frombuffer(mm, dtype=np.uint8)
    a.fill(1)
    dt = time.perf_counter() - t0
    del a
    mm.close()
    return dt


def _tensor(out: Any) -> Any:
    return out if hasattr(out, "shape") else out[0]


def goals(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in rows:
        if row["goal"] in ("early", None):
            out.append({"goal": f"whole call vs a loop keeping the same outputs in preallocated arrays, {row['model']} {row['target']}", "target": "<= 1.10", "measured": row["whole_call_ratio_vs_preallocated"], "met": row["whole_call_ratio_vs_preallocated"] <= 1.10})
        if row["goal"] == "last":
            out.append({"goal": f"overhead vs model(x) at the last layer, {row['model']} {row['target']}", "target": "<= 1.05", "measured": row["whole_call_ratio_vs_reference"], "met": row["whole_call_ratio_vs_reference"] <= 1.05})
        elif row["goal"] == "early":
            out.append({"goal": f"early layer vs truncated forward, {row['model']} {row['target']}", "target": "<= 1.10", "measured": row["whole_call_ratio_vs_reference"], "met": row["whole_call_ratio_vs_reference"] <= 1.10})
    return out


def summary(result: dict[str, Any]) -> str:
    return ", ".join(f"{r['target']}: {r['whole_call_ratio_vs_reference']}" for r in result["rows"]) + f" (median {median([r['ratio_vs_reference'] for r in result['rows']]):.3f})"
