"""The conformance matrix: one row per architecture, checked by tests/conformance/test_matrix.py.

A row builds a small model with random weights (seeded), saves it, and names the public
nbfeat path that loads it back (`nbfeat.load(id, weights=...)` or `hf:<dir>`). Its
`reference(model, x)` computes, with the library's own API (timm `forward_intermediates`,
HF `output_hidden_states` / `AutoBackbone.feature_maps`, torchvision
`create_feature_extractor`) or hooks / block pieces written here, the expected value of every
variable nbfeat returns for `nodes=`, `stages=` and for `layers=[-1]` under every pool in
`pools` (keys `pool:<spec>`). Inputs are non-square unless the architecture cannot take it
(`square_only` says why). docs/support.md is generated from this table
(`python -m tests.conformance.support_table`).

To add a row: append a `Row` to `ROWS` (text rows may live in `tests/conformance/text_rows.py`
as `TEXT_ROWS`; they are appended below).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class Row:
    id: str
    library: str  # timm | torchvision | hf
    family: str  # the adapter nbfeat must pick (bb.adapter.family)
    build: Callable[[], Any]  # the reference model, eval mode, seeded random weights
    save: Callable[[Any, Path], tuple[str, dict[str, Any]]]  # -> (nbfeat id, nbfeat.load kwargs)
    inputs: Callable[[], Any]  # what bb.extract gets (an N x C x H x W tensor for images)
    reference: Callable[[Any, Any], dict[str, Any]]  # (model, inputs) -> {variable: expected}
    checked: str  # the reference, in words (docs/support.md)
    nodes: tuple[str, ...] = ()
    stages: tuple[int, ...] = ()
    pools: tuple[str, ...] = ()  # on layers=[-1]; reference keys "pool:<spec>"
    refused_pools: tuple[str, ...] = ()  # pools nbfeat must refuse with a short error
    square_only: str = ""  # why the input is square, when it has to be
    warns: str = ""  # a warning every extract must give (e.g. "truncated" for a long text)
    random_load: bool = False  # loaded with pretrained=False; the reference is a copy of that model
    extract_kwargs: dict[str, Any] = field(default_factory=dict)


# ---- building and saving -----------------------------------------------------------------


def _seeded(fn: Callable[[], Any]) -> Any:
    torch.manual_seed(0)
    return fn().eval()


def timm_model(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        import timm

        return _seeded(lambda: timm.create_model(name, pretrained=False, **kwargs))

    build.timm = (name, kwargs)  # type: ignore[attr-defined]
    return build


def save_timm(model: Any, tmp: Path) -> tuple[str, dict[str, Any]]:
    from safetensors.torch import save_file

    name, kwargs = model._nbfeat_build
    path = tmp / "model.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path))
    return f"timm:{name}", {"weights": str(path), "model_kwargs": kwargs}


def tv_model(name: str, **kwargs: Any) -> Callable[[], Any]:
    def build() -> Any:
        import torchvision

        return _seeded(lambda: torchvision.models.get_model(name, weights=None, **kwargs))

    build.tv = (name, kwargs)  # type: ignore[attr-defined]
    return build


def save_tv(model: Any, tmp: Path) -> tuple[str, dict[str, Any]]:
    name, kwargs = model._nbfeat_build
    path = tmp / "model.pt"
    torch.save(model.state_dict(), path)
    return f"torchvision:{name}", {"weights": str(path), "model_kwargs": kwargs}


def tv_random(name: str, **kwargs: Any) -> Callable[[Any, Path], tuple[str, dict[str, Any]]]:
    """torchvision's ViTs are 86M+ parameters whatever their image size: nbfeat loads one with
    (seeded) random weights, pretrained=False, and the reference runs a copy of that model
    through torchvision's own feature extractor, instead of writing 340 MB per run."""

    def save(model: Any, tmp: Path) -> tuple[str, dict[str, Any]]:
        return f"torchvision:{name}", {"pretrained": False, "model_kwargs": kwargs}

    return save


def hf_model(config: Callable[[], Any], cls: str) -> Callable[[], Any]:
    def build() -> Any:
        import transformers

        return _seeded(lambda: getattr(transformers, cls)(config()))

    return build


def save_hf(model: Any, tmp: Path) -> tuple[str, dict[str, Any]]:
    model.save_pretrained(tmp / "hf")
    return f"hf:{tmp / 'hf'}", {}


def image(h: int, w: int, n: int = 2) -> Callable[[], Any]:
    def make() -> Any:
        g = torch.Generator().manual_seed(1)
        return torch.randn(n, 3, h, w, generator=g)

    return make


# ---- reference helpers (library calls and hooks written here) ----------------------------


def hooked(model: Any, paths: list[str], run: Callable[[], Any], inputs: bool = False) -> dict[str, Any]:
    """Run `run()` with forward hooks on `paths`; {path: output (first tensor of a tuple)} or,
    with `inputs=True`, {path: the module's first input}."""
    modules = dict(model.named_modules())
    out: dict[str, Any] = {}

    def hook(path: str) -> Any:
        def fn(module: Any, args: Any, output: Any) -> None:
            value = args[0] if inputs else output
            if isinstance(value, tuple | list):
                value = value[0]
            if hasattr(value, "last_hidden_state"):
                value = value.last_hidden_state
            out.setdefault(path, value.detach().clone())

        return fn

    handles = [modules[p].register_forward_hook(hook(p)) for p in paths]
    try:
        with torch.no_grad():
            run()
    finally:
        for h in handles:
            h.remove()
    return out


def stack(tensors: list[Any]) -> Any:
    return torch.stack(list(tensors), dim=1)


def nhwc(x: Any) -> Any:
    return x.permute(0, 3, 1, 2)


def token_pools(tokens: Any, prefix: int, grid: tuple[int, int] | None, class_token: bool) -> dict[str, Any]:
    """Pools of ViT tokens: mean/max over patch tokens with timm's own `global_pool_nlc`."""
    from timm.models.vision_transformer import global_pool_nlc

    out = {
        "pool:mean": global_pool_nlc(tokens, "avg", prefix),
        "pool:max": global_pool_nlc(tokens, "max", prefix),
        "pool:mean_all": tokens.mean(dim=1),
        "pool:flatten": tokens.flatten(1),
    }
    if class_token:
        out["pool:cls"] = global_pool_nlc(tokens, "token", prefix)
    if grid is not None:
        patches = tokens[:, prefix:].transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], *grid)
        out["pool:avg2d:2"] = F.adaptive_avg_pool2d(patches, 2)
    return out


def map_pools(fmap: Any) -> dict[str, Any]:
    return {
        "pool:mean": fmap.mean(dim=(2, 3)),
        "pool:mean_all": fmap.mean(dim=(2, 3)),
        "pool:max": fmap.amax(dim=(2, 3)),
        "pool:avg2d:2": F.adaptive_avg_pool2d(fmap, 2),
        "pool:max2d:2": F.adaptive_max_pool2d(fmap, 2),
        "pool:flatten": fmap.flatten(1),
    }


MAP_POOLS = ("mean", "max", "avg2d:2", "max2d:2", "flatten")
VIT_POOLS = ("mean", "mean_all", "max", "cls", "avg2d:2")


def grouped(out: dict[str, Any], role: str, groups: list[list[str]], names: list[str] | None = None, fn: Callable[[str, Any], Any] = lambda p, x: x) -> dict[str, Any]:
    """{f"{role}.stage{k}": stacked outputs of the k-th group} (or {role: ...} for one unnamed group)."""
    if names is None:
        names = [f"{role}.stage{k + 1}" for k in range(len(groups))]
    return {n: stack([fn(p, out[p]) for p in g]) for n, g in zip(names, groups)}


# ---- timm ---------------------------------------------------------------------------------


def ref_timm_cnn(containers: Callable[[Any], list[str]]) -> Callable[[Any, Any], dict[str, Any]]:
    def ref(m: Any, x: Any) -> dict[str, Any]:
        groups = [[f"{c}.{n}" for n, _ in dict(m.named_modules())[c].named_children()] for c in containers(m)]
        blocks = [b for g in groups for b in g]
        out = hooked(m, blocks, lambda: m(x))
        with torch.no_grad():
            levels = m.forward_intermediates(x, indices=len(m.feature_info), intermediates_only=True)
        res = grouped(out, "block", groups)
        res.update({f"stage{i}": y for i, y in enumerate(levels)})
        res.update(map_pools(out[blocks[-1]]))
        return res

    return ref


def ref_timm_vit(m: Any, x: Any) -> dict[str, Any]:
    depth = len(m.blocks)
    paths = [f"blocks.{i}.{r}" for i in range(depth) for r in ("attn", "mlp")]
    out = hooked(m, paths, lambda: m(x))
    with torch.no_grad():
        pairs = m.forward_intermediates(x, indices=depth, output_fmt="NLC", return_prefix_tokens=True, intermediates_only=True)
        maps = m.forward_intermediates(x, indices=depth, output_fmt="NCHW", intermediates_only=True)
    prefix = m.num_prefix_tokens
    tokens = [torch.cat([p, y], dim=1) if prefix else y for y, p in pairs] if prefix else [y[0] if isinstance(y, tuple) else y for y in pairs]
    res = {
        "block": stack(tokens),
        "attn": stack([out[f"blocks.{i}.attn"] for i in range(depth)]),
        "mlp": stack([out[f"blocks.{i}.mlp"] for i in range(depth)]),
    }
    res.update({f"stage{i + 1}": y for i, y in enumerate(maps)})
    grid = tuple(maps[0].shape[-2:])
    res.update(token_pools(tokens[-1], prefix, grid, getattr(m, "cls_token", None) is not None))
    return res


def ref_timm_swin(m: Any, x: Any) -> dict[str, Any]:
    """attn: what each block's own `_attn` returns (windows merged, crop, reverse shift)."""
    groups = [[f"layers.{i}.blocks.{j}" for j in range(len(layer.blocks))] for i, layer in enumerate(m.layers)]
    blocks = [b for g in groups for b in g]
    modules = dict(m.named_modules())
    attn: dict[str, Any] = {}
    for b in blocks:
        blk = modules[b]
        own = blk._attn

        def spy(t: Any, b: str = b, own: Any = own) -> Any:
            y = own(t)
            attn[b] = y.clone()
            return y

        blk._attn = spy
    try:
        out = hooked(m, blocks + [f"{b}.mlp" for b in blocks] + ["patch_embed"], lambda: m(x))
    finally:
        for b in blocks:
            del modules[b]._attn
    with torch.no_grad():
        levels = m.forward_intermediates(x, indices=len(m.layers), output_fmt="NCHW", intermediates_only=True)
    res = grouped(out, "block", groups, fn=lambda p, y: nhwc(y))
    res.update(grouped(attn, "attn", groups, fn=lambda p, y: nhwc(y)))
    res.update(grouped(out, "mlp", [[f"{b}.mlp" for b in g] for g in groups], names=[f"mlp.stage{k + 1}" for k in range(len(groups))], fn=lambda p, y: nhwc(y.reshape(out[p.rpartition(".")[0]].shape))))
    res["stage0"] = nhwc(out["patch_embed"])
    res.update({f"stage{i + 1}": y for i, y in enumerate(levels)})
    res.update(map_pools(nhwc(out[blocks[-1]])))
    return res


def ref_timm_sam(m: Any, x: Any) -> dict[str, Any]:
    """attn: the block's forward pieces (norm1, window_partition, attn, window_unpartition)."""
    from timm.models.vision_transformer_sam import window_partition, window_unpartition

    depth = len(m.blocks)
    blocks = [f"blocks.{i}" for i in range(depth)]
    ins = hooked(m, blocks, lambda: m(x), inputs=True)
    out = hooked(m, blocks + [f"{b}.mlp" for b in blocks], lambda: m(x))
    attn = []
    with torch.no_grad():
        for b, blk in zip(blocks, m.blocks):
            t = blk.norm1(ins[b])
            h, w = t.shape[1:3]
            if blk.window_size > 0:
                t, pad = window_partition(t, blk.window_size)
                a = window_unpartition(blk.attn(t), blk.window_size, (h, w), pad)
            else:
                a = blk.attn(t)
            attn.append(nhwc(a))
            # the pieces rebuild the block's own forward
            r = (ins[b] + blk.ls1(a)).reshape(ins[b].shape[0], h * w, -1)
            assert torch.allclose((r + blk.ls2(blk.mlp(blk.norm2(r)))).reshape(ins[b].shape), blk(ins[b]), atol=1e-5)
        maps = m.forward_intermediates(x, indices=depth, output_fmt="NCHW", intermediates_only=True)
    res = {"block": stack(maps), "attn": stack(attn), "mlp": stack([nhwc(out[f"{b}.mlp"].reshape(ins[b].shape)) for b in blocks])}
    res.update({f"stage{i + 1}": y for i, y in enumerate(maps)})
    res.update(map_pools(maps[-1]))
    return res


def ref_timm_hiera(m: Any, x: Any) -> dict[str, Any]:
    """Blocks, attn and mlp rerolled with the model's own `reroll` (what forward_intermediates does)."""
    ends = list(m.stage_ends)
    starts = [0] + [e + 1 for e in ends[:-1]]
    groups = [[f"blocks.{i}" for i in range(s, e + 1)] for s, e in zip(starts, ends)]
    blocks = [b for g in groups for b in g]
    out = hooked(m, blocks + [f"{b}.attn" for b in blocks] + [f"{b}.mlp" for b in blocks], lambda: m(x))
    with torch.no_grad():
        levels = m.forward_intermediates(x, indices=len(ends), output_fmt="NCHW", intermediates_only=True)
    def roll(p: str, y: Any) -> Any:
        return nhwc(m.reroll(y, int(p.split(".")[1])))

    res = {}
    for role, suffix in (("block", ""), ("attn", ".attn"), ("mlp", ".mlp")):
        res.update(grouped(out, role, [[b + suffix for b in g] for g in groups], names=[f"{role}.stage{k + 1}" for k in range(len(groups))], fn=roll))
    for k, e in enumerate(ends):  # forward_intermediates agrees with the rerolled block output
        assert torch.allclose(levels[k], roll(f"blocks.{e}", out[f"blocks.{e}"]), atol=1e-5)
    res.update({f"stage{k + 1}": y for k, y in enumerate(levels)})
    res.update(map_pools(levels[-1]))
    return res


def ref_timm_hieradet(m: Any, x: Any) -> dict[str, Any]:
    """attn: the MultiScaleBlock's forward pieces (pad, window_partition, attn, window_unpartition, unpad)."""
    from timm.models.hieradet_sam2 import _calc_pad, window_partition, window_unpartition

    ends = list(m.stage_ends)
    starts = [0] + [e + 1 for e in ends[:-1]]
    groups = [[f"blocks.{i}" for i in range(s, e + 1)] for s, e in zip(starts, ends)]
    blocks = [b for g in groups for b in g]
    ins = hooked(m, blocks, lambda: m(x), inputs=True)
    out = hooked(m, blocks + [f"{b}.mlp" for b in blocks] + ["patch_embed"], lambda: m(x))
    attn = {}
    with torch.no_grad():
        for b in blocks:
            blk = dict(m.named_modules())[b]
            t = blk.norm1(ins[b])
            shortcut = ins[b]
            if blk.dim != blk.dim_out:
                shortcut = blk.proj(t)
                if blk.pool is not None:
                    shortcut = blk.pool(shortcut.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
            ws = blk.window_size
            h, w = t.shape[1:3]
            if blk.is_windowed:
                hp, wp, ph, pw = _calc_pad(h, w, ws)
                t = window_partition(F.pad(t, (0, 0, 0, pw, 0, ph)), ws)
            a = blk.attn(t)
            if blk.q_stride is not None:
                ws = (ws[0] // blk.q_stride[0], ws[1] // blk.q_stride[1])
                h, w = shortcut.shape[1:3]
                hp, wp, _, _ = _calc_pad(h, w, ws)
            if blk.is_windowed:
                a = window_unpartition(a, ws, (hp, wp))[:, :h, :w, :]
            assert torch.allclose(shortcut + blk.ls1(a), out[b] - blk.ls2(out[f"{b}.mlp"]), atol=1e-5)
            attn[b] = a
        levels = m.forward_intermediates(x, indices=len(ends), output_fmt="NCHW", intermediates_only=True)
    res = grouped(out, "block", groups, fn=lambda p, y: nhwc(y))
    res.update(grouped(attn, "attn", groups, fn=lambda p, y: nhwc(y)))
    res.update(grouped(out, "mlp", [[f"{b}.mlp" for b in g] for g in groups], names=[f"mlp.stage{k + 1}" for k in range(len(groups))], fn=lambda p, y: nhwc(y)))
    res["stage0"] = nhwc(out["patch_embed"])
    res.update({f"stage{k + 1}": y for k, y in enumerate(levels)})
    res.update(map_pools(nhwc(out[blocks[-1]])))
    return res


def ref_timm_convnext(m: Any, x: Any) -> dict[str, Any]:
    groups = [[f"stages.{i}.blocks.{j}" for j in range(len(st.blocks))] for i, st in enumerate(m.stages)]
    blocks = [b for g in groups for b in g]
    out = hooked(m, blocks + [f"{b}.mlp" for b in blocks] + ["stem"], lambda: m(x))
    with torch.no_grad():
        levels = m.forward_intermediates(x, indices=len(m.stages), output_fmt="NCHW", intermediates_only=True)
    modules = dict(m.named_modules())
    res = grouped(out, "block", groups)
    res.update(grouped(out, "mlp", [[f"{b}.mlp" for b in g] for g in groups], names=[f"mlp.stage{k + 1}" for k in range(len(groups))], fn=lambda p, y: y if modules[p.rpartition(".")[0]].use_conv_mlp else nhwc(y)))
    res["stage0"] = out["stem"]
    res.update({f"stage{k + 1}": y for k, y in enumerate(levels)})
    res.update(map_pools(out[blocks[-1]]))
    return res


def ref_timm_levels(m: Any, x: Any) -> dict[str, Any]:
    """Any timm model with feature_info: stages from forward_intermediates, blocks per level by hooks."""
    from nbfeat.models.blocks import find_blocks  # which modules repeat: the fallback's own search

    levels_mod = [f["module"] for f in m.feature_info]
    offset = 0 if m.feature_info[0]["reduction"] <= 2 else 1
    modules = dict(m.named_modules())
    groups = [(i, [f"{lv}.{b}" for b in find_blocks(modules[lv])]) for i, lv in enumerate(levels_mod)]
    groups = [(i, g) for i, g in groups if g]
    blocks = [b for _, g in groups for b in g]
    out = hooked(m, blocks, lambda: m(x))
    nhwc_out = getattr(m, "output_fmt", "NCHW") == "NHWC"
    with torch.no_grad():
        levels = m.forward_intermediates(x, indices=len(levels_mod), output_fmt="NCHW", intermediates_only=True)
    res = {f"block.stage{i + offset}": stack([nhwc(out[b]) if nhwc_out else out[b] for b in g]) for i, g in groups}
    res.update({f"stage{i + offset}": y for i, y in enumerate(levels)})
    last = out[blocks[-1]]
    if last.dim() == 3:  # PVT blocks run on tokens; timm states no grid for them here
        res.update({"pool:mean": last.mean(dim=1), "pool:max": last.amax(dim=1)})
    else:
        res.update(map_pools(nhwc(last) if nhwc_out else last))
    return res


# ---- torchvision ----------------------------------------------------------------------------


def ref_tv(groups_of: Callable[[Any], list[list[str]]], stages_of: Callable[[Any], list[tuple[int, str]]] = lambda m: []) -> Callable[[Any, Any], dict[str, Any]]:
    """Blocks and stages through torchvision's own create_feature_extractor."""

    def ref(m: Any, x: Any) -> dict[str, Any]:
        from torchvision.models.feature_extraction import create_feature_extractor

        groups = groups_of(m)
        stages = stages_of(m)
        nodes = list(dict.fromkeys([b for g in groups for b in g] + [p for _, p in stages]))
        with torch.no_grad():
            out = create_feature_extractor(m, return_nodes=nodes)(x)
        res = grouped(out, "block", groups)
        res.update({f"stage{i}": out[p] for i, p in stages})
        res.update(map_pools(out[groups[-1][-1]]))
        return res

    return ref


def _tv_children(m: Any, path: str) -> list[str]:
    return [f"{path}.{n}" for n, _ in dict(m.named_modules())[path].named_children()]


def ref_tv_vit(m: Any, x: Any) -> dict[str, Any]:
    from torchvision.models.feature_extraction import create_feature_extractor

    layers = [f"encoder.layers.{n}" for n, _ in m.encoder.layers.named_children()]
    nodes = layers + [f"{b}.mlp" for b in layers]
    attn = hooked(m, [f"{b}.self_attention" for b in layers], lambda: m(x))
    with torch.no_grad():
        out = create_feature_extractor(m, return_nodes=nodes)(x)
    res = {"block": stack([out[b] for b in layers]), "mlp": stack([out[f"{b}.mlp"] for b in layers]), "attn": stack([attn[f"{b}.self_attention"] for b in layers])}
    side = m.image_size // m.patch_size
    res.update(token_pools(out[layers[-1]], 1, (side, side), True))
    return res


# ---- Hugging Face ---------------------------------------------------------------------------


def ref_hf_vit(attn_name: str, mlp_name: str, prefix: int, patch: int, backbone: bool = False, class_token: bool = True, **call: Any) -> Callable[[Any, Any], dict[str, Any]]:
    """Blocks from output_hidden_states; attn/mlp by hooks; stages from AutoBackbone.feature_maps.
    `call`: keyword arguments of the model call (interpolate_pos_encoding=True for CLIP)."""

    def ref(m: Any, x: Any) -> dict[str, Any]:
        import torch.nn as nn

        base = next(p for p, mod in m.named_modules() if isinstance(mod, nn.ModuleList) and p.rpartition(".")[2] in ("layer", "layers"))
        layers = [f"{base}.{i}" for i in range(len(dict(m.named_modules())[base]))]
        hooks = hooked(m, [f"{b}.{attn_name}" for b in layers] + [f"{b}.{mlp_name}" for b in layers], lambda: m(pixel_values=x, **call))
        with torch.no_grad():
            hidden = m(pixel_values=x, output_hidden_states=True, **call).hidden_states
        res = {"block": stack(hidden[1:]), "attn": stack([hooks[f"{b}.{attn_name}"] for b in layers]), "mlp": stack([hooks[f"{b}.{mlp_name}"] for b in layers])}
        grid = (x.shape[2] // patch, x.shape[3] // patch)
        res.update(token_pools(hidden[-1], prefix, grid, class_token))
        if backbone:
            res.update(hf_backbone_stages(m, x, range(len(layers) + 1)))
        return res

    return ref


def hf_backbone_stages(m: Any, x: Any, indices: Any) -> dict[str, Any]:
    """AutoBackbone on the same checkpoint: {f"stage{i}": feature_maps[...]} (HF's own numbering).

    The class is the one AutoBackbone picks (MODEL_FOR_BACKBONE_MAPPING); its own from_pretrained
    is called because AutoBackbone.from_pretrained asks the hub whether a local folder is a
    repo (HFValidationError offline, transformers 5.x)."""
    import tempfile

    from transformers.models.auto.modeling_auto import MODEL_FOR_BACKBONE_MAPPING

    with tempfile.TemporaryDirectory() as d:
        m.save_pretrained(d)
        bb = MODEL_FOR_BACKBONE_MAPPING[type(m.config)].from_pretrained(d, out_indices=list(indices)).eval()
    with torch.no_grad():
        maps = bb(pixel_values=x).feature_maps
    return {f"stage{i}": y for i, y in zip(indices, maps)}


def ref_hf_swin(m: Any, x: Any) -> dict[str, Any]:
    """attn: the SwinLayer's forward pieces (window_partition, attention, window_reverse,
    cyclic_shift back, crop); blocks from reshaped hidden states; stages from AutoBackbone."""
    import sys

    groups = [[f"encoder.layers.{i}.blocks.{j}" for j in range(len(st.blocks))] for i, st in enumerate(m.encoder.layers)]
    blocks = [b for g in groups for b in g]
    modules = dict(m.named_modules())
    calls: dict[str, Any] = {}

    def pre(path: str) -> Any:
        def fn(module: Any, args: Any, kwargs: Any) -> None:
            calls.setdefault(path, (args[0].detach().clone(), tuple(kwargs.get("input_dimensions", args[1] if len(args) > 1 else None))))

        return fn

    handles = [modules[b].register_forward_pre_hook(pre(b), with_kwargs=True) for b in blocks]
    try:
        out = hooked(m, blocks + [f"{b}.mlp" for b in blocks], lambda: m(pixel_values=x))
    finally:
        for h in handles:
            h.remove()
    swin = sys.modules[type(modules[blocks[0]]).__module__]
    attn, maps, mlps = {}, {}, {}
    with torch.no_grad():
        for b in blocks:
            layer = modules[b]
            hs, (h, w) = calls[b]
            t = layer.layernorm_before(hs).view(hs.shape[0], h, w, hs.shape[-1])
            t, pad = layer.maybe_pad(t, h, w)
            hp, wp = t.shape[1:3]
            win = swin.window_partition(layer.cyclic_shift(t), layer.window_size).view(-1, layer.window_size**2, hs.shape[-1])
            a = layer.attention(win, layer.get_attn_mask(hp, wp, dtype=t.dtype, device=t.device))[0]
            a = layer.cyclic_shift(swin.window_reverse(a.view(-1, layer.window_size, layer.window_size, hs.shape[-1]), layer.window_size, hp, wp), reverse=True)[:, :h, :w, :]
            attn[b] = nhwc(a)
            maps[b] = nhwc(out[b].view(hs.shape[0], h, w, -1))
            mlps[b] = nhwc(out[f"{b}.mlp"].view(hs.shape[0], h, w, -1))
            assert torch.allclose(out[b], hs + a.reshape(hs.shape) + out[f"{b}.mlp"], atol=1e-5)
    res = grouped(maps, "block", groups)
    res.update(grouped(attn, "attn", groups))
    res.update(grouped(mlps, "mlp", groups, names=[f"mlp.stage{k + 1}" for k in range(len(groups))]))
    res.update(hf_backbone_stages(m, x, range(len(groups) + 1)))
    res.update(map_pools(maps[blocks[-1]]))
    return res


def ref_hf_convnet(m: Any, x: Any) -> dict[str, Any]:
    """Blocks by hooks; stages from AutoBackbone.feature_maps (ConvNextBackbone / ResNetBackbone)."""
    groups = [[f"encoder.stages.{i}.layers.{j}" for j in range(len(st.layers))] for i, st in enumerate(m.encoder.stages)]
    blocks = [b for g in groups for b in g]
    out = hooked(m, blocks, lambda: m(pixel_values=x))
    with torch.no_grad():
        hidden = m(pixel_values=x, output_hidden_states=True).hidden_states
    assert torch.allclose(hidden[-1], out[blocks[-1]], atol=1e-5)
    res = grouped(out, "block", groups)
    res.update(hf_backbone_stages(m, x, range(len(groups) + 1)))
    res.update(map_pools(out[blocks[-1]]))
    return res


# ---- configs --------------------------------------------------------------------------------


def _cfg(cls: str, **kw: Any) -> Callable[[], Any]:
    def make() -> Any:
        import transformers

        return getattr(transformers, cls)(**kw)

    return make


_VIT_KW = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8)

ROWS: list[Row] = [
    # timm CNNs: NCHW everywhere, blocks per stage, stages = features_only levels
    Row("timm-resnet18", "timm", "timm.cnn", timm_model("resnet18"), save_timm, image(64, 80),
        ref_timm_cnn(lambda m: ["layer1", "layer2", "layer3", "layer4"]), "forward_intermediates (features_only levels); block hooks",
        nodes=("block",), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS, refused_pools=("cls",)),
    Row("timm-regnetx_002", "timm", "timm.cnn", timm_model("regnetx_002"), save_timm, image(64, 96),
        ref_timm_cnn(lambda m: ["s1", "s2", "s3", "s4"]), "forward_intermediates (features_only levels); block hooks",
        nodes=("block",), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    Row("timm-efficientnet_b0", "timm", "timm.cnn", timm_model("efficientnet_b0"), save_timm, image(64, 96),
        ref_timm_cnn(lambda m: [f"blocks.{i}" for i in range(len(m.blocks))]), "forward_intermediates (features_only levels); block hooks",
        nodes=("block",), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    Row("timm-mobilenetv3_small_050", "timm", "timm.cnn", timm_model("mobilenetv3_small_050"), save_timm, image(64, 96),
        ref_timm_cnn(lambda m: [f"blocks.{i}" for i in range(len(m.blocks))]), "forward_intermediates (features_only levels); block hooks",
        nodes=("block",), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    Row("timm-convnext_atto", "timm", "timm.convnext", timm_model("convnext_atto", dims=(8, 16, 24, 32), depths=(1, 2, 1, 1)), save_timm, image(64, 96),
        ref_timm_convnext, "forward_intermediates; block and mlp hooks", nodes=("block", "mlp"), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    Row("timm-convnext-nhwc-mlp", "timm", "timm.convnext", timm_model("convnext_tiny", dims=(8, 16, 24, 32), depths=(1, 2, 1, 1), conv_mlp=False), save_timm, image(64, 96),
        ref_timm_convnext, "forward_intermediates; block and mlp hooks (the MLP runs channels-last)", nodes=("block", "mlp"), stages=(0, 1, 2), pools=MAP_POOLS),
    # timm ViT-likes
    Row("timm-vit-dynamic", "timm", "timm.vit", timm_model("vit_tiny_patch16_224", depth=2, dynamic_img_size=True), save_timm, image(64, 96),
        ref_timm_vit, "forward_intermediates (NLC + prefix tokens, NCHW); attn/mlp hooks; global_pool_nlc", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=VIT_POOLS),
    Row("timm-vit-no-class-token", "timm", "timm.vit", timm_model("vit_tiny_patch16_224", depth=2, img_size=(64, 96), class_token=False, global_pool="avg"), save_timm, image(64, 96),
        ref_timm_vit, "forward_intermediates; attn/mlp hooks; global_pool_nlc", nodes=("block",), pools=("mean", "max", "avg2d:2"), refused_pools=("cls",)),
    Row("timm-deit-distilled", "timm", "timm.vit", timm_model("deit_tiny_distilled_patch16_224", depth=2, img_size=(64, 96)), save_timm, image(64, 96),
        ref_timm_vit, "forward_intermediates (class + distillation tokens); attn/mlp hooks; global_pool_nlc", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=VIT_POOLS),
    Row("timm-dinov2-reg4", "timm", "timm.vit", timm_model("vit_small_patch14_reg4_dinov2", depth=2, embed_dim=32, num_heads=2, img_size=(56, 84)), save_timm, image(56, 84),
        ref_timm_vit, "forward_intermediates (class + 4 register tokens); attn/mlp hooks; global_pool_nlc", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=VIT_POOLS),
    Row("timm-eva02", "timm", "timm.vit", timm_model("eva02_tiny_patch14_224", depth=2, img_size=(56, 84)), save_timm, image(56, 84),
        ref_timm_vit, "forward_intermediates; attn/mlp hooks; global_pool_nlc", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=VIT_POOLS),
    Row("timm-beit", "timm", "timm.vit", timm_model("beit_base_patch16_224", depth=2, embed_dim=32, num_heads=2, img_size=(64, 96)), save_timm, image(64, 96),
        ref_timm_vit, "forward_intermediates; attn/mlp hooks; global_pool_nlc", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=VIT_POOLS),
    # timm hierarchical / windowed
    Row("timm-swin", "timm", "timm.swin", timm_model("swin_tiny_patch4_window7_224", depths=(2, 2), embed_dim=16, num_heads=(1, 2), img_size=(64, 96), window_size=4), save_timm, image(64, 96),
        ref_timm_swin, "forward_intermediates; each block's own _attn (windows merged, shift reversed); hooks", nodes=("attn", "mlp", "block"), stages=(0, 1, 2), pools=MAP_POOLS, refused_pools=("cls",)),
    Row("timm-swinv2", "timm", "timm.swin", timm_model("swinv2_tiny_window8_256", depths=(2, 2), embed_dim=16, num_heads=(1, 2), img_size=(64, 96), window_size=4), save_timm, image(64, 96),
        ref_timm_swin, "forward_intermediates; each block's own _attn (windows merged, shift reversed); hooks", nodes=("attn", "mlp", "block"), stages=(0, 1, 2), pools=("mean", "avg2d:2")),
    Row("timm-samvit", "timm", "timm.sam", timm_model("samvit_base_patch16", depth=2, embed_dim=32, num_heads=2, img_size=(64, 96), global_attn_indexes=(1,), window_size=3), save_timm, image(64, 96),
        ref_timm_sam, "forward_intermediates; block pieces (window_partition, attn, window_unpartition)", nodes=("attn", "mlp", "block"), stages=(1, 2), pools=MAP_POOLS),
    Row("timm-hiera", "timm", "timm.hiera", timm_model("hiera_tiny_224", embed_dim=16, num_heads=1, stages=(1, 2, 1, 1), img_size=(64, 96)), save_timm, image(64, 96),
        ref_timm_hiera, "forward_intermediates; Hiera.reroll of block/attn/mlp hooks", nodes=("attn", "mlp", "block"), stages=(1, 2, 3, 4), pools=MAP_POOLS),
    Row("timm-sam2-hiera", "timm", "timm.sam2_hiera", timm_model("sam2_hiera_tiny", embed_dim=16, num_heads=1, stages=(1, 2, 1, 1), global_att_blocks=(), window_spec=(4, 4, 2, 2)), save_timm, image(64, 96),
        ref_timm_hieradet, "forward_intermediates; block pieces (window_partition, attn with q-pool, window_unpartition)", nodes=("attn", "mlp", "block"), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    # timm families without their own adapter: feature levels from feature_info
    Row("timm-pvt_v2_b0", "timm", "timm.features", timm_model("pvt_v2_b0"), save_timm, image(64, 96),
        ref_timm_levels, "forward_intermediates (feature levels); block hooks", nodes=("block",), stages=(1, 2, 3, 4), pools=("mean", "max"), refused_pools=("avg2d:2",)),
    Row("timm-mambaout", "timm", "timm.features", timm_model("mambaout_femto", depths=(1, 1, 1, 1), dims=(8, 16, 24, 32)), save_timm, image(64, 96),
        ref_timm_levels, "forward_intermediates (feature levels, NHWC model); block hooks", nodes=("block",), stages=(1, 2, 3, 4), pools=("mean", "avg2d:2")),
    # torchvision
    Row("tv-resnet18", "torchvision", "torchvision.cnn", tv_model("resnet18"), save_tv, image(64, 80),
        ref_tv(lambda m: [_tv_children(m, f"layer{i}") for i in range(1, 5)], lambda m: [(i, f"layer{i}") for i in range(1, 5)]), "create_feature_extractor",
        nodes=("block",), stages=(1, 2, 3, 4), pools=MAP_POOLS, refused_pools=("cls",)),
    Row("tv-efficientnet_b0", "torchvision", "torchvision.cnn", tv_model("efficientnet_b0"), save_tv, image(64, 96),
        ref_tv(lambda m: [_tv_children(m, f"features.{i}") for i in range(1, 8)]), "create_feature_extractor", nodes=("block",), pools=MAP_POOLS),
    Row("tv-mobilenet_v3_small", "torchvision", "torchvision.cnn", tv_model("mobilenet_v3_small"), save_tv, image(64, 96),
        ref_tv(lambda m: [["features.1"], ["features.2", "features.3"], ["features.4", "features.5", "features.6"], ["features.7", "features.8"], ["features.9", "features.10", "features.11"]]), "create_feature_extractor",
        nodes=("block",), pools=MAP_POOLS),
    Row("tv-regnet_y_400mf", "torchvision", "torchvision.cnn", tv_model("regnet_y_400mf"), save_tv, image(64, 96),
        ref_tv(lambda m: [_tv_children(m, f"trunk_output.block{i}") for i in range(1, 5)], lambda m: [(0, "stem")] + [(i, f"trunk_output.block{i}") for i in range(1, 5)]), "create_feature_extractor",
        nodes=("block",), stages=(0, 1, 2, 3, 4), pools=MAP_POOLS),
    Row("tv-vit", "torchvision", "torchvision.vit", lambda: None, tv_random("vit_b_16", image_size=32), image(32, 32),
        ref_tv_vit, "create_feature_extractor; self_attention hooks", nodes=("attn", "mlp", "block"), pools=("mean", "cls", "avg2d:2"),
        square_only="torchvision's ViT asserts its own square image_size", random_load=True),
    # Hugging Face
    Row("hf-vit", "hf", "hf.vit", hf_model(_cfg("ViTConfig", **_VIT_KW, image_size=[32, 48]), "ViTModel"), save_hf, image(32, 48),
        ref_hf_vit("attention", "mlp", 1, 8), "output_hidden_states; attention/mlp hooks", nodes=("attn", "mlp", "block"), pools=VIT_POOLS),
    Row("hf-deit", "hf", "hf.vit", hf_model(_cfg("DeiTConfig", **_VIT_KW, image_size=[32, 48]), "DeiTModel"), save_hf, image(32, 48),
        ref_hf_vit("attention", "mlp", 2, 8), "output_hidden_states (class + distillation tokens); attention/mlp hooks", nodes=("attn", "mlp", "block"), pools=VIT_POOLS),
    Row("hf-dinov2", "hf", "hf.vit", hf_model(_cfg("Dinov2Config", **_VIT_KW, image_size=32), "Dinov2Model"), save_hf, image(32, 48),
        ref_hf_vit("attention", "mlp", 1, 8, backbone=True), "output_hidden_states; AutoBackbone.feature_maps; hooks", nodes=("attn", "mlp", "block"), stages=(0, 1, 2), pools=VIT_POOLS),
    Row("hf-dinov2-registers", "hf", "hf.vit", hf_model(_cfg("Dinov2WithRegistersConfig", **_VIT_KW, image_size=32, num_register_tokens=4), "Dinov2WithRegistersModel"), save_hf, image(32, 48),
        ref_hf_vit("attention", "mlp", 5, 8, backbone=True), "output_hidden_states; AutoBackbone.feature_maps; hooks", nodes=("attn", "mlp", "block"), stages=(0, 1, 2), pools=VIT_POOLS),
    Row("hf-clip-vision", "hf", "hf.vit", hf_model(_cfg("CLIPVisionConfig", **_VIT_KW, image_size=32), "CLIPVisionModel"), save_hf, image(32, 48),
        ref_hf_vit("self_attn", "mlp", 1, 8, interpolate_pos_encoding=True), "output_hidden_states (interpolate_pos_encoding=True, as nbfeat calls it); self_attn/mlp hooks", nodes=("attn", "mlp", "block"), pools=VIT_POOLS),
    Row("hf-clip-vision-native", "hf", "hf.vit", hf_model(_cfg("CLIPVisionConfig", **_VIT_KW, image_size=32), "CLIPVisionModel"), save_hf, image(32, 32),
        ref_hf_vit("self_attn", "mlp", 1, 8), "output_hidden_states at the native size, called without interpolation (nbfeat's call must not change it)", nodes=("block",), pools=("cls",),
        square_only="the native size: interpolate_pos_encoding=True must leave it unchanged"),
    Row("hf-swin", "hf", "hf.swin", hf_model(_cfg("SwinConfig", embed_dim=16, depths=[2, 2], num_heads=[1, 2], image_size=64, patch_size=4, window_size=4), "SwinModel"), save_hf, image(64, 96),
        ref_hf_swin, "AutoBackbone.feature_maps (SwinBackbone norms); SwinLayer pieces (window_reverse, cyclic_shift)", nodes=("attn", "mlp", "block"), stages=(0, 1, 2), pools=MAP_POOLS, refused_pools=("cls",)),
    Row("hf-convnext", "hf", "hf.convnet", hf_model(_cfg("ConvNextConfig", hidden_sizes=[8, 16], depths=[1, 2], num_stages=2, image_size=64), "ConvNextModel"), save_hf, image(64, 96),
        ref_hf_convnet, "AutoBackbone.feature_maps (ConvNextBackbone norms); output_hidden_states; layer hooks", nodes=("block",), stages=(0, 1, 2), pools=("mean", "avg2d:2")),
    Row("hf-resnet", "hf", "hf.convnet", hf_model(_cfg("ResNetConfig", hidden_sizes=[8, 16], depths=[1, 2], embedding_size=8, layer_type="basic", image_size=64), "ResNetModel"), save_hf, image(64, 80),
        ref_hf_convnet, "AutoBackbone.feature_maps (ResNetBackbone); output_hidden_states; layer hooks", nodes=("block",), stages=(0, 1, 2), pools=("mean", "max")),
]

try:  # text rows (the text families) live beside these
    from tests.conformance.text_rows import TEXT_ROWS

    ROWS.extend(TEXT_ROWS)
except ModuleNotFoundError as e:
    if e.name != "tests.conformance.text_rows":
        raise


def _tag_builds() -> None:
    """Let save_timm/save_tv know the model id and kwargs of what they save."""
    for row in ROWS:
        for attr in ("timm", "tv"):
            if hasattr(row.build, attr):
                original = row.build
                name, kwargs = getattr(original, attr)

                def build(original: Any = original, name: str = name, kwargs: dict[str, Any] = kwargs) -> Any:
                    m = original()
                    m._nbfeat_build = (name, kwargs)
                    return m

                object.__setattr__(row, "build", build)


_tag_builds()
os.environ.setdefault("HF_HUB_OFFLINE", "1")
