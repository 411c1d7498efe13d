"""timm vision families: ViT-likes, Swin, SAM, Hiera, SAM2 HieraDet, ConvNeXt, CNNs.

Everything here is read from timm's own metadata: `num_prefix_tokens`, `cls_token`,
`patch_embed.grid_size` / `dynamic_feat_size`, `feature_info`, `stage_ends`, block attributes
(`window_size`, `shift_size`, `use_conv_mlp`) and module classes. Window and unroll undoing
call the functions timm's blocks use themselves (`window_reverse`, `window_unpartition`,
`Hiera.reroll`), so a restored output is the tensor the block's own code path makes.

Stages (HF `out_indices` numbering): CNNs whose `feature_info` starts at stride 2 (ResNet,
RegNet, EfficientNet, MobileNetV3) number stages as `features_only` `out_indices` do (stage0
is timm's first level: ResNet `act1`, before the max-pool). Swin, ConvNeXt and HieraDet list
no stem level: stage0 is the stem / patch embedding and stage k is feature level k-1. Hiera,
SAM and ViTs start at stage1 (stage k: block or stage k-1 on its grid).
"""

from __future__ import annotations

import inspect
import re
import sys
from typing import Any

from nbfeat.models.adapters.base import (
    MAP,
    TOKENS,
    Adapter,
    Context,
    Group,
    Layout,
    Stage,
    is_instance_named,
    nhwc_layout,
    rank_layout,
    tokens_to_map,
)


def _timm(model: Any) -> bool:
    return type(model).__module__.startswith("timm.")


def _own(module: Any, name: str) -> Any:
    """A function from the module that defines `module`'s class (timm's own code path)."""
    return getattr(sys.modules[type(module).__module__], name)


def _is_conv(module: Any) -> bool:
    return is_instance_named(module, "Conv2d")


def _children(model: Any, path: str) -> list[str]:
    mod = dict(model.named_modules())[path]
    return [f"{path}.{n}" for n, _ in mod.named_children()]


def _under(path: str, base: str) -> bool:
    return path == base or path.startswith(base + ".")


class _TimmAdapter(Adapter):
    library = "timm"
    classes: tuple[str, ...] = ()

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _timm(model) and type(model).__name__ in cls.classes

    def _block_of(self, path: str) -> str | None:
        for b in self.blocks():
            if _under(path, b):
                return b
        return None

    def _feature_modules(self) -> list[str]:
        return [f["module"] for f in self.model.feature_info]


# ---- ViT-likes ---------------------------------------------------------------------------


class _AttnMlp(_TimmAdapter):
    """timm transformer blocks: `attn` and `mlp` children of every block."""

    def roles(self, block: str) -> dict[str, str]:
        return {"attn": f"{block}.attn", "mlp": f"{block}.mlp", "block": block}


class TimmViT(_AttnMlp):
    """VisionTransformer (ViT, DINO(v2, +registers), MAE, CLIP towers in timm), DeiT (distilled),
    EVA/EVA02, BEiT: a plain stack of blocks over prefix + patch tokens."""

    family = "timm.vit"
    classes = ("VisionTransformer", "VisionTransformerDistilled", "Eva", "Beit")

    where = {
        "attn": "attention output, before LayerScale (ls1 / gamma_1) and the residual add",
        "mlp": "MLP output, before LayerScale (ls2 / gamma_2) and the residual add",
        "block": "block output (after both residual adds)",
    }

    def groups(self) -> list[Group]:
        return [Group("", tuple(f"blocks.{i}" for i in range(len(self.model.blocks))))]

    def grid(self, ctx: Context) -> tuple[int, int] | None:
        pe = self.model.patch_embed
        if getattr(self.model, "dynamic_img_size", False) and ctx.input_hw is not None:
            return tuple(int(i) for i in pe.dynamic_feat_size(ctx.input_hw))  # type: ignore[return-value]
        return tuple(int(i) for i in pe.grid_size)  # type: ignore[return-value]

    @property
    def prefix(self) -> int:
        return int(getattr(self.model, "num_prefix_tokens", 0) or 0)

    @property
    def class_token(self) -> bool:
        return getattr(self.model, "cls_token", None) is not None

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        mod = self.modules.get(path)
        if path == "patch_embed":
            grid = self.grid(ctx)
            return nhwc_layout() if ndim == 4 else Layout(TOKENS, grid=grid)
        if _under(path, "patch_embed") and ndim == 4 and _is_conv(mod):
            return Layout(MAP)
        if ndim == 3:
            return Layout(TOKENS, prefix_tokens=self.prefix, class_token=self.class_token, grid=self.grid(ctx))
        if ndim == 2:
            return rank_layout(2)
        return Layout(tuple(f"dim_{i}" for i in range(1, ndim)))  # attention internals: heads x tokens x ...

    def stages(self) -> list[Stage]:
        return [Stage(i + 1, b, (b,)) for i, b in enumerate(self.blocks())]

    def stage_view(self, stage: Stage, ctx: Context) -> Any:
        # timm forward_intermediates(output_fmt="NCHW"): prefix tokens dropped, patches on the grid
        return tokens_to_map(self.grid(ctx), self.prefix)  # type: ignore[arg-type]


# ---- Swin ----------------------------------------------------------------------------------


class TimmSwin(_AttnMlp):
    """SwinTransformer (and V2): NHWC stages, window attention with shifted windows."""

    family = "timm.swin"
    classes = ("SwinTransformer", "SwinTransformerV2")
    where = {
        "attn": "window attention output merged back onto the image grid (window_reverse, crop, reverse shift), before the residual add",
        "mlp": "MLP output on the image grid, before the residual add",
        "block": "block output (NHWC, moved to channel-first)",
    }

    def groups(self) -> list[Group]:
        return [Group(f"stage{i + 1}", tuple(f"layers.{i}.blocks.{j}" for j in range(len(layer.blocks)))) for i, layer in enumerate(self.model.layers)]

    def context_for(self, path: str) -> str | None:
        return self._block_of(path)

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        mod = self.modules.get(path)
        block = self._block_of(path)
        if ndim == 2:
            return rank_layout(2)
        if ndim == 4:
            if _is_conv(mod):
                return Layout(MAP)
            if block is not None and _under(path, f"{block}.attn"):
                return Layout(("dim_1", "dim_2", "dim_3"))  # attention internals (heads x tokens x tokens)
            return nhwc_layout()
        if ndim == 3 and block is not None:
            shape = ctx.arg_shape(block)  # (B, H, W, C): the block's input grid
            hw = (shape[1], shape[2])
            blk = self.modules[block]
            if _under(path, f"{block}.attn"):
                ws, shift = tuple(blk.window_size), tuple(blk.shift_size)
                reverse = _own(blk, "window_reverse")
                hp = -(-hw[0] // ws[0]) * ws[0]
                wp = -(-hw[1] // ws[1]) * ws[1]
                # V1 takes (H, W), V2 an (H, W) tuple: call it as the block's own module does
                size = ((hp, wp),) if len(inspect.signature(reverse).parameters) == 3 else (hp, wp)

                def undo(x: Any, ws: Any = ws, shift: Any = shift, size: Any = size, hw: Any = hw) -> Any:
                    import torch

                    x = reverse(x.reshape(-1, ws[0], ws[1], x.shape[-1]), ws, *size)[:, : hw[0], : hw[1], :]
                    if any(shift):
                        x = torch.roll(x, shifts=shift, dims=(1, 2))
                    return x.permute(0, 3, 1, 2)

                return Layout(MAP, note=f"windows undone ({ws[0]}x{ws[1]}, shift {shift[0]}x{shift[1]})", restore=undo)
            return Layout(MAP, note="tokens on the block's grid", restore=tokens_to_map(hw))
        return rank_layout(ndim)

    def stages(self) -> list[Stage]:
        out = [Stage(0, "patch_embed")]
        for g, m in zip(self.groups(), self._feature_modules()):
            out.append(Stage(len(out), m, g.blocks))
        return out


# ---- SAM (ViTDet-style windows) -----------------------------------------------------------


class TimmSAM(_AttnMlp):
    """VisionTransformerSAM (samvit_*): NHWC blocks, windowed and global attention."""

    family = "timm.sam"
    classes = ("VisionTransformerSAM",)
    where = {
        "attn": "attention output on the image grid (window_unpartition for windowed blocks), before LayerScale and the residual add",
        "mlp": "MLP output on the image grid, before LayerScale and the residual add",
        "block": "block output (NHWC, moved to channel-first)",
    }

    def groups(self) -> list[Group]:
        return [Group("", tuple(f"blocks.{i}" for i in range(len(self.model.blocks))))]

    def context_for(self, path: str) -> str | None:
        return self._block_of(path)

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        mod = self.modules.get(path)
        block = self._block_of(path)
        windowed = {f"{block}.{n}" for n in ("attn", "attn.qkv", "attn.proj", "ls1", "drop_path1")} if block else set()
        if block is not None and ndim == 3 and path not in windowed and not _under(path, f"{block}.attn"):
            shape = ctx.arg_shape(block)  # (B, H, W, C): the MLP runs on (B, H*W, C)
            return Layout(MAP, note="tokens on the block's grid", restore=tokens_to_map((shape[1], shape[2])))
        if ndim != 4:
            return rank_layout(ndim) if ndim == 2 else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))
        if _is_conv(mod) or _under(path, "neck"):
            return Layout(MAP)
        if path in windowed:
            blk = self.modules[block]
            ws = int(blk.window_size)
            if ws > 0:
                shape = ctx.arg_shape(block)
                hw = (shape[1], shape[2])
                pad_hw = (-(-hw[0] // ws) * ws, -(-hw[1] // ws) * ws)
                unpartition = _own(blk, "window_unpartition")
                return Layout(MAP, note=f"windows undone ({ws}x{ws})", restore=lambda x: unpartition(x, ws, hw, pad_hw).permute(0, 3, 1, 2))
        elif block is not None and _under(path, f"{block}.attn"):
            return Layout(("dim_1", "dim_2", "dim_3"))  # attention internals (heads x tokens x ...)
        return nhwc_layout()

    def stages(self) -> list[Stage]:
        return [Stage(i + 1, b, (b,)) for i, b in enumerate(self.blocks())]


# ---- SAM2 HieraDet -------------------------------------------------------------------------


class _StageEnds(_AttnMlp):
    """Blocks in one `blocks` list, stages ending where the model's `stage_ends` say (Hiera kinds)."""

    def groups(self) -> list[Group]:
        ends = list(self.model.stage_ends)
        starts = [0] + [e + 1 for e in ends[:-1]]
        return [Group(f"stage{k + 1}", tuple(f"blocks.{i}" for i in range(s, e + 1))) for k, (s, e) in enumerate(zip(starts, ends))]


class TimmHieraDet(_StageEnds):
    """HieraDet (sam2_hiera_*): NHWC multi-scale blocks, windowed attention with q-pooling."""

    family = "timm.sam2_hiera"
    classes = ("HieraDet",)
    where = {
        "attn": "attention output on the image grid (window_unpartition + unpad, as the block does), before LayerScale and the residual add",
        "mlp": "MLP output, before LayerScale and the residual add",
        "block": "block output (NHWC, moved to channel-first)",
    }

    def context_for(self, path: str) -> str | None:
        return self._block_of(path)

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        block = self._block_of(path)
        mod = self.modules.get(path)
        if ndim != 4:
            return rank_layout(ndim) if ndim == 2 else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))
        if _is_conv(mod):
            return Layout(MAP)
        if block is not None and path == f"{block}.attn":
            blk = self.modules[block]
            if blk.is_windowed:
                shape = ctx.arg_shape(block)
                hw = (shape[1], shape[2])
                ws = tuple(blk.window_size)
                if blk.q_stride is not None:
                    ws = (ws[0] // blk.q_stride[0], ws[1] // blk.q_stride[1])
                    hw = (hw[0] // blk.q_stride[0], hw[1] // blk.q_stride[1])  # the max-pooled shortcut
                hp, wp, _, _ = _own(blk, "_calc_pad")(hw[0], hw[1], ws)
                unpartition = _own(blk, "window_unpartition")
                return Layout(MAP, note=f"windows undone ({ws[0]}x{ws[1]})", restore=lambda x: unpartition(x, ws, (hp, wp))[:, : hw[0], : hw[1], :].permute(0, 3, 1, 2))
        if block is not None and _under(path, f"{block}.attn"):
            return Layout(("dim_1", "dim_2", "dim_3"))
        return nhwc_layout()

    def stages(self) -> list[Stage]:
        return [Stage(0, "patch_embed")] + [Stage(k + 1, f"blocks.{e}", g.blocks) for k, (e, g) in enumerate(zip(self.model.stage_ends, self.groups()))]


# ---- Hiera ---------------------------------------------------------------------------------


class TimmHiera(_StageEnds):
    """Hiera: tokens in mask-unit (unrolled) order; `Hiera.reroll` puts them on the grid."""

    family = "timm.hiera"
    classes = ("Hiera",)
    where = {
        "attn": "mask-unit attention output rerolled onto the image grid, before LayerScale and the residual add",
        "mlp": "MLP output rerolled onto the image grid, before LayerScale and the residual add",
        "block": "block output rerolled onto the image grid (Hiera.reroll, as forward_intermediates does)",
    }

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        block = self._block_of(path)
        if ndim == 3 and block is not None:
            rolled = {block, *(f"{block}.{n}" for n in ("attn", "attn.proj", "ls1", "drop_path1", "norm2", "mlp", "ls2", "drop_path2"))}
            if path in rolled:
                i = int(block.rpartition(".")[2])
                reroll = self.model.reroll
                return Layout(MAP, note=f"unrolled tokens rerolled onto the grid (Hiera.reroll, block {i})", restore=lambda x: reroll(x, i).permute(0, 3, 1, 2))
            return Layout(TOKENS, note="tokens in Hiera's unrolled (mask-unit) order")
        if path == "patch_embed" and ndim == 3:
            return Layout(TOKENS, grid=tuple(self.model.tokens_spatial_shape))  # type: ignore[arg-type]
        if path == "unroll" and ndim == 3:
            return Layout(TOKENS, note="tokens in Hiera's unrolled (mask-unit) order")
        return rank_layout(ndim) if ndim in (2, 4) else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))

    def stages(self) -> list[Stage]:
        return [Stage(k + 1, f"blocks.{e}", g.blocks) for k, (e, g) in enumerate(zip(self.model.stage_ends, self.groups()))]


# ---- ConvNeXt ------------------------------------------------------------------------------


class TimmConvNeXt(_TimmAdapter):
    """ConvNeXt (incl. the CLIP ConvNeXt towers timm builds): NCHW stages; the MLP runs
    channels-last unless the block uses conv MLPs."""

    family = "timm.convnext"
    classes = ("ConvNeXt",)
    where = {"mlp": "MLP output, before LayerScale (gamma, a parameter) and the residual add", "block": "block output (after the residual add)"}

    def groups(self) -> list[Group]:
        return [Group(f"stage{i + 1}", tuple(f"stages.{i}.blocks.{j}" for j in range(len(st.blocks)))) for i, st in enumerate(self.model.stages)]

    def roles(self, block: str) -> dict[str, str]:
        return {"mlp": f"{block}.mlp", "block": block}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        block = self._block_of(path)
        if ndim == 4 and block is not None and not self.modules[block].use_conv_mlp and (_under(path, f"{block}.mlp") or path == f"{block}.norm"):
            return nhwc_layout()
        return rank_layout(ndim)

    def stages(self) -> list[Stage]:
        return [Stage(0, "stem")] + [Stage(i + 1, m, g.blocks) for i, (m, g) in enumerate(zip(self._feature_modules(), self.groups()))]


# ---- CNNs with stages of different widths --------------------------------------------------


class TimmCNN(_TimmAdapter):
    """ResNet/ResNeXt, RegNet, EfficientNet, MobileNetV3 (and relatives): NCHW everywhere.

    Node groups are the block containers (`layer1`, `s1`, `blocks.0`, ...): `block.stage{k}`
    is the k-th container. For ResNet/RegNet these are the feature levels (`stages=[k]`);
    EfficientNet/MobileNetV3 have more block stages than feature levels (timm's
    `feature_info` skips stages that keep the stride), so there `stage{k}` of `nodes=`
    follows timm's block stages and `stages=` its feature levels.
    """

    family = "timm.cnn"
    classes = ("ResNet", "RegNet", "EfficientNet", "MobileNetV3")
    where = {"block": "block output (after the residual add and activation)"}

    def _containers(self) -> list[str]:
        name = type(self.model).__name__
        if name == "ResNet":
            return [f"layer{i}" for i in range(1, 5) if hasattr(self.model, f"layer{i}")]
        if name == "RegNet":
            return [n for n, _ in self.model.named_children() if re.fullmatch(r"s\d+", n)]
        return [f"blocks.{i}" for i in range(len(self.model.blocks))]

    def groups(self) -> list[Group]:
        return [Group(f"stage{k + 1}", tuple(_children(self.model, c))) for k, c in enumerate(self._containers())]

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        return rank_layout(ndim)

    def stages(self) -> list[Stage]:
        groups = {c: g.blocks for c, g in zip(self._containers(), self.groups())}
        return [Stage(i, m, groups.get(m, ())) for i, m in enumerate(self._feature_modules())]


class TimmFeatureLevels(_TimmAdapter):
    """Any other timm model with `feature_info` (PVT-v2, DenseNet, MaxViT, MambaOut, ...):
    stages are its feature levels (numbered as for CNNs when the first level is at stride 2,
    else from stage1), node groups the repeated blocks inside each level's module. Outputs
    are read by rank, channels-last where the model's `output_fmt` says NHWC (convolutions
    stay NCHW). Token outputs have no grid here: stages that end in tokens are refused."""

    family = "timm.features"
    where = {"attn": "output of the block's attention child, as the module returns it (no family knowledge)", "mlp": "output of the block's MLP child, as the module returns it", "block": "block output"}

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _timm(model) and bool(getattr(model, "feature_info", None))

    def _offset(self) -> int:
        return 0 if int(self.model.feature_info[0].get("reduction", 0)) <= 2 else 1

    def groups(self) -> list[Group]:
        from nbfeat.models.blocks import find_blocks

        out = []
        for i, m in enumerate(self._feature_modules()):
            inside = tuple(f"{m}.{b}" for b in find_blocks(self.modules[m])) if m in self.modules else ()
            if inside:
                out.append(Group(f"stage{i + self._offset()}", inside))
        return out

    def roles(self, block: str) -> dict[str, str]:
        # as the generic fallback: children named like attention / MLP (where they are taken is
        # the module's own output; no family knowledge here)
        from nbfeat.models.blocks import find_roles

        return {r: p[0] for r, p in find_roles(self.model, [block]).items()}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        if ndim == 4 and str(getattr(self.model, "output_fmt", "NCHW")).endswith("NHWC") and not _is_conv(self.modules.get(path)):
            return nhwc_layout()
        return rank_layout(ndim)

    def stages(self) -> list[Stage]:
        groups = {g.name: g.blocks for g in self.groups()}
        return [Stage(i + self._offset(), m, groups.get(f"stage{i + self._offset()}", ())) for i, m in enumerate(self._feature_modules())]


ADAPTERS = [TimmViT, TimmSwin, TimmSAM, TimmHieraDet, TimmHiera, TimmConvNeXt, TimmCNN, TimmFeatureLevels]
