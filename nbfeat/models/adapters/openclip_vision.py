"""open_clip's own ViT image tower (`open_clip.transformer.VisionTransformer`): OpenAI and
LAION CLIP ViTs. Blocks `transformer.resblocks.i` over batch-first tokens; one class token
(`class_embedding`), the patch grid from `grid_size`. (open_clip's ConvNeXt/EVA towers wrap a
timm model: see nested.py.)
"""

from __future__ import annotations

from typing import Any

from nbfeat.models.adapters.base import MAP, TOKENS, Adapter, Context, Group, Layout, rank_layout


class OpenCLIPViT(Adapter):
    family = "open_clip.vit"
    library = "open_clip"
    where = {
        "attn": "attention output (nn.MultiheadAttention, element 0), before LayerScale ls_1 and the residual add",
        "mlp": "MLP output, before LayerScale ls_2 and the residual add",
        "block": "residual block output",
    }

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return type(model).__module__.startswith("open_clip.") and type(model).__name__ == "VisionTransformer" and hasattr(model, "transformer")

    def groups(self) -> list[Group]:
        return [Group("", tuple(f"transformer.resblocks.{i}" for i in range(len(self.model.transformer.resblocks))))]

    def roles(self, block: str) -> dict[str, str]:
        return {"attn": f"{block}.attn", "mlp": f"{block}.mlp", "block": block}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        if ndim == 3 and getattr(self.model.transformer, "batch_first", True):
            cls_token = getattr(self.model, "class_embedding", None) is not None
            return Layout(TOKENS, prefix_tokens=int(cls_token), class_token=cls_token, grid=tuple(self.model.grid_size))  # type: ignore[arg-type]
        if ndim == 4 and path == "conv1":
            return Layout(MAP)
        return rank_layout(ndim) if ndim == 2 else Layout(tuple(f"dim_{i}" for i in range(1, ndim)))


ADAPTERS = [OpenCLIPViT]
