"""Hugging Face vision families, chosen by `config.model_type`.

- ViT-likes (`vit`, `deit`, `dinov2`, `dinov2_with_registers`, CLIP/SigLIP vision towers):
  prefix tokens from the config (class + distillation + register tokens), patch grid from the
  input size and `config.patch_size`. Stages (Dinov2: `Dinov2Backbone` semantics): stage0 is
  the embeddings, stage k block k-1, through the final `layernorm`, prefix dropped, NCHW.
- Swin (`swin`): tokens on the patch grid the layer is called with (`input_dimensions`),
  window attention merged back with transformers' own `window_reverse` and the layer's
  `cyclic_shift`. Stages follow `SwinBackbone`: stage k is stage k's output *before*
  downsampling, through the backbone's per-stage LayerNorm (`hidden_states_norms`); a
  `SwinModel` has none, and `AutoBackbone` on its checkpoint adds fresh ones (weight 1,
  bias 0, eps 1e-5), which is what nbfeat applies then. So stage4 is not `SwinModel`'s
  `last_hidden_state` (that goes through the trained final `layernorm`).
"""

from __future__ import annotations

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
    rank_layout,
    tokens_to_map,
)


def _model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", "") or "")


def _layer_list(model: Any) -> str | None:
    """Path of the ModuleList of encoder layers (`encoder.layer`, `layers`, ...)."""
    import torch.nn as nn

    for path, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and path.rpartition(".")[2] in ("layer", "layers") and len(mod) > 0:
            return path
    return None


class HFViT(Adapter):
    family = "hf.vit"
    library = "hf"
    model_types = {"vit": 0, "deit": 1, "dinov2": 0, "dinov2_with_registers": 0, "clip_vision_model": 0, "siglip_vision_model": 0}

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _model_type(model) in cls.model_types and _layer_list(model) is not None

    where = {"attn": "attention output (after its output projection), before LayerScale and the residual add", "mlp": "MLP output, before LayerScale and the residual add", "block": "layer output (after both residual adds)"}

    def groups(self) -> list[Group]:
        base = _layer_list(self.model)
        return [Group("", tuple(f"{base}.{i}" for i in range(len(self.modules[base]))))]

    def roles(self, block: str) -> dict[str, str]:
        children = dict(self.modules[block].named_children())
        attn = next(n for n in ("attention", "self_attn") if n in children)
        mlp = next((n for n in ("mlp",) if n in children), None)
        if mlp is None and "output" in children:
            mlp = "output.dense"  # the BERT-style intermediate -> output.dense split
        out = {"attn": f"{block}.{attn}", "block": block}
        if mlp:
            out["mlp"] = f"{block}.{mlp}"
        return out

    @property
    def cfg(self) -> Any:
        return self.model.config

    @property
    def class_token(self) -> bool:
        return not _model_type(self.model).startswith("siglip")

    @property
    def prefix(self) -> int:
        extra = self.model_types.get(_model_type(self.model), 0)  # DeiT's distillation token
        return int(self.class_token) + extra + int(getattr(self.cfg, "num_register_tokens", 0) or 0)

    def grid(self, ctx: Context) -> tuple[int, int] | None:
        if ctx.input_hw is None:
            return None
        p = self.cfg.patch_size
        ph, pw = (p, p) if isinstance(p, int) else tuple(p)
        return (ctx.input_hw[0] // ph, ctx.input_hw[1] // pw)

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        if ndim == 3:
            return Layout(TOKENS, prefix_tokens=self.prefix, class_token=self.class_token, grid=self.grid(ctx))
        if ndim == 4 and path.endswith("projection"):
            return Layout(MAP)  # the patch-embedding convolution
        return rank_layout(ndim) if ndim == 2 else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))

    def forward_kwargs(self) -> dict[str, Any]:
        # CLIP and SigLIP towers take other (non-square) sizes only when asked to interpolate
        # their position embeddings (at the native size HF returns them unchanged). Not ViT/DeiT:
        # their interpolation assumes a square native grid and breaks a (h, w) config.
        if _model_type(self.model) in ("clip_vision_model", "siglip_vision_model"):
            import inspect

            if "interpolate_pos_encoding" in inspect.signature(self.model.forward).parameters:
                return {"interpolate_pos_encoding": True}
        return {}

    def stages(self) -> list[Stage]:
        if _model_type(self.model) not in ("dinov2", "dinov2_with_registers"):
            return []  # no AutoBackbone in transformers to match
        return [Stage(0, "embeddings")] + [Stage(i + 1, b, (b,)) for i, b in enumerate(self.blocks())]

    def stage_view(self, stage: Stage, ctx: Context) -> Any:
        norm = self.model.layernorm if getattr(self.cfg, "apply_layernorm", True) else None
        to_map = tokens_to_map(self.grid(ctx), self.prefix)  # type: ignore[arg-type]
        return lambda x: to_map(norm(x) if norm is not None else x)


class HFSwin(Adapter):
    family = "hf.swin"
    library = "hf"
    where = {
        "attn": "window attention output merged back onto the image grid (window_reverse, reverse cyclic shift, crop), before dropout and the residual add",
        "mlp": "MLP output on the image grid, before dropout and the residual add",
        "block": "layer output on the image grid",
    }

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _model_type(model) in ("swin",) and hasattr(model, "encoder")

    def groups(self) -> list[Group]:
        return [Group(f"stage{i + 1}", tuple(f"encoder.layers.{i}.blocks.{j}" for j in range(len(st.blocks)))) for i, st in enumerate(self.model.encoder.layers)]

    def roles(self, block: str) -> dict[str, str]:
        return {"attn": f"{block}.attention", "mlp": f"{block}.mlp", "block": block}

    def _block_of(self, path: str) -> str | None:
        return next((b for b in self.blocks() if path == b or path.startswith(b + ".")), None)

    def context_for(self, path: str) -> str | None:
        return self._block_of(path)

    def _hw(self, block: str, ctx: Context) -> tuple[int, int]:
        if block == "embeddings":  # the patch grid, padded up to whole patches as SwinPatchEmbeddings does
            p = self.model.config.patch_size
            ph, pw = (p, p) if isinstance(p, int) else tuple(p)
            return (-(-ctx.input_hw[0] // ph), -(-ctx.input_hw[1] // pw))  # type: ignore[index]
        args, kwargs = ctx.calls[block]
        dims = kwargs.get("input_dimensions", args[1] if len(args) > 1 else None)
        return (int(dims[0]), int(dims[1]))

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        block = "embeddings" if path == "embeddings" else self.context_for(path)
        if ndim == 3 and block is not None:
            hw = self._hw(block, ctx)
            blk = self.modules[block]
            if path.startswith(f"{block}.attention"):
                ws = int(blk.window_size)
                hp, wp = -(-hw[0] // ws) * ws, -(-hw[1] // ws) * ws
                reverse = sys.modules[type(blk).__module__].window_reverse

                def undo(x: Any) -> Any:
                    x = blk.cyclic_shift(reverse(x.reshape(-1, ws, ws, x.shape[-1]), ws, hp, wp), reverse=True)
                    return x[:, : hw[0], : hw[1], :].permute(0, 3, 1, 2)

                return Layout(MAP, note=f"windows undone ({ws}x{ws}, shift {int(blk.shift_size)})", restore=undo)
            if not path.startswith(f"{block}.attention"):
                return Layout(MAP, note="tokens on the layer's grid", restore=tokens_to_map(hw))
        return rank_layout(ndim) if ndim in (2, 4) else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))

    def stages(self) -> list[Stage]:
        return [Stage(0, "embeddings")] + [Stage(k + 1, g.blocks[-1], g.blocks) for k, g in enumerate(self.groups())]

    def stage_view(self, stage: Stage, ctx: Context) -> Any:
        norms = getattr(self.model, "hidden_states_norms", None)
        norm = norms[stage.name] if norms is not None and stage.name in norms else None

        def view(x: Any) -> Any:  # x: (B, C, H, W), restored
            import torch.nn.functional as F

            y = x.permute(0, 2, 3, 1)
            y = norm(y) if norm is not None else F.layer_norm(y, (y.shape[-1],), eps=1e-5)
            return y.permute(0, 3, 1, 2)

        return view


class HFConvNet(Adapter):
    """ConvNeXt (`convnext`) and ResNet (`resnet`): NCHW stages `encoder.stages.i.layers.j`.

    Stages follow `ConvNextBackbone` / `ResNetBackbone`: stage0 is the embeddings (ResNet: after
    the stem max-pool), stage k the output of `encoder.stages.{k-1}`; ConvNeXt's backbone puts
    each through its per-stage channels-first LayerNorm (`hidden_states_norms`; fresh ones,
    eps 1e-6, when the checkpoint is a `ConvNextModel`), ResNet's through nothing.
    """

    family = "hf.convnet"
    library = "hf"
    where = {"block": "layer output (after the residual add)"}
    stems = {"convnext": "embeddings", "resnet": "embedder"}

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _model_type(model) in cls.stems and hasattr(model, "encoder") and hasattr(model.encoder, "stages")

    def groups(self) -> list[Group]:
        return [Group(f"stage{i + 1}", tuple(f"encoder.stages.{i}.layers.{j}" for j in range(len(st.layers)))) for i, st in enumerate(self.model.encoder.stages)]

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        # inside a ConvNeXt layer, layernorm .. pwconv2 run channels-last (the layer permutes)
        if ndim == 4 and _model_type(self.model) == "convnext" and path.rpartition(".")[2] in ("layernorm", "pwconv1", "act", "pwconv2") and ".layers." in path:
            from nbfeat.models.adapters.base import nhwc_layout

            return nhwc_layout()
        return rank_layout(ndim) if ndim in (2, 4) else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))

    def stages(self) -> list[Stage]:
        stem = self.stems[_model_type(self.model)]
        return [Stage(0, stem)] + [Stage(k + 1, f"encoder.stages.{k}", g.blocks) for k, g in enumerate(self.groups())]

    def stage_view(self, stage: Stage, ctx: Context) -> Any:
        if _model_type(self.model) != "convnext":
            return None
        norms = getattr(self.model, "hidden_states_norms", None)
        norm = norms[stage.name] if norms is not None and stage.name in norms else None

        def view(x: Any) -> Any:
            import torch.nn.functional as F

            if norm is not None:
                return norm(x)
            return F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), eps=1e-6).permute(0, 3, 1, 2)

        return view


ADAPTERS = [HFViT, HFSwin, HFConvNet]
