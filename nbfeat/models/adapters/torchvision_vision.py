"""torchvision families, chosen by model class: CNNs (ResNet, RegNet, ConvNeXt, EfficientNet,
MobileNetV3), ViT and Swin.

Layout: NCHW for CNN outputs; inside ConvNeXt blocks, the modules between the block's
`Permute([0, 2, 3, 1])` and `Permute([0, 3, 1, 2])` run channels-last (read from the Permute
modules' own `dims`). torchvision's Swin runs channels-last from its first Permute on (its
window attention partitions and merges windows inside the module, so `attn` is already on
the grid). ViT: one class token, the patch grid from `image_size` / `patch_size` (torchvision's
ViT only takes its own image size).

Stages: ResNet `layer1..4` are stage1..4; RegNet stem + `trunk_output.block1..4`; ConvNeXt
`features.0` (stem) + `features.1, 3, 5, 7`. EfficientNet and MobileNetV3 have no feature
levels in torchvision: `stages=` is refused there (node groups exist).
"""

from __future__ import annotations

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
)


def _tv(model: Any) -> bool:
    return type(model).__module__.startswith("torchvision.")


def _children(model: Any, path: str) -> list[str]:
    mod = dict(model.named_modules())[path]
    return [f"{path}.{n}" for n, _ in mod.named_children()]


def _last_conv(module: Any) -> Any:
    convs = [m for m in module.modules() if is_instance_named(m, "Conv2d")]
    return convs[-1] if convs else None


def _strided(module: Any) -> bool:
    return any(is_instance_named(m, "Conv2d") and max(m.stride) > 1 for m in module.modules())


def _channels_last_paths(model: Any) -> set[str]:
    """Paths whose outputs are NHWC: children of a Sequential between Permute(0,2,3,1) and Permute(0,3,1,2)."""
    out = set()
    for path, mod in model.named_modules():
        if not is_instance_named(mod, "Sequential"):
            continue
        nhwc = False
        for name, child in mod.named_children():
            p = f"{path}.{name}" if path else name
            if is_instance_named(child, "Permute"):
                nhwc = list(child.dims) == [0, 2, 3, 1]
                if nhwc:
                    out.add(p)
                continue
            if nhwc:
                out.update({p, *(f"{p}.{n}" for n, _ in child.named_modules() if n)})
    return out


class _TVAdapter(Adapter):
    library = "torchvision"
    classes: tuple[str, ...] = ()

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _tv(model) and type(model).__name__ in cls.classes


class TVCNN(_TVAdapter):
    """ResNet, RegNet, ConvNeXt, EfficientNet, MobileNetV3: NCHW, blocks grouped per stage."""

    family = "torchvision.cnn"
    classes = ("ResNet", "RegNet", "ConvNeXt", "EfficientNet", "MobileNetV3")
    where = {"block": "block output (after the residual add)"}

    def _containers(self) -> list[str]:
        name = type(self.model).__name__
        if name == "ResNet":
            return [f"layer{i}" for i in range(1, 5)]
        if name == "RegNet":
            return [f"trunk_output.{n}" for n, _ in self.model.trunk_output.named_children()]
        if name == "ConvNeXt":
            return [f"features.{n}" for n, c in self.model.features.named_children() if any(is_instance_named(b, "CNBlock") for b in c.children())]
        if name == "EfficientNet":
            return [f"features.{n}" for n, c in self.model.features.named_children() if is_instance_named(c, "Sequential") and not is_instance_named(c, "Conv2dNormActivation")]
        return []

    def groups(self) -> list[Group]:
        if type(self.model).__name__ == "MobileNetV3":
            return self._runs()
        return [Group(f"stage{k + 1}", tuple(_children(self.model, c))) for k, c in enumerate(self._containers())]

    def _runs(self) -> list[Group]:
        """MobileNetV3's flat `features`: a new group where a block strides or changes width
        (read from its convolutions' `stride` / `out_channels`)."""
        groups: list[list[str]] = []
        width = None
        for name, block in self.model.features.named_children():
            if not is_instance_named(block, "InvertedResidual"):
                continue
            conv = _last_conv(block)
            if not groups or _strided(block) or conv.out_channels != width:
                groups.append([])
            groups[-1].append(f"features.{name}")
            width = conv.out_channels
        return [Group(f"stage{k + 1}", tuple(g)) for k, g in enumerate(groups)]

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        if ndim == 4 and path in self._nhwc:
            return nhwc_layout()
        return rank_layout(ndim)

    @property
    def _nhwc(self) -> set[str]:
        if not hasattr(self, "_nhwc_cache"):
            self._nhwc_cache = _channels_last_paths(self.model)
        return self._nhwc_cache

    def stages(self) -> list[Stage]:
        name = type(self.model).__name__
        groups = self.groups()
        if name == "ResNet":
            return [Stage(k + 1, c, g.blocks) for k, (c, g) in enumerate(zip(self._containers(), groups))]
        if name == "RegNet":
            return [Stage(0, "stem")] + [Stage(k + 1, c, g.blocks) for k, (c, g) in enumerate(zip(self._containers(), groups))]
        if name == "ConvNeXt":
            return [Stage(0, "features.0")] + [Stage(k + 1, c, g.blocks) for k, (c, g) in enumerate(zip(self._containers(), groups))]
        return []


class TVViT(_TVAdapter):
    family = "torchvision.vit"
    classes = ("VisionTransformer",)
    where = {"attn": "self-attention output (before dropout and the residual add)", "mlp": "MLP output (before the residual add)", "block": "encoder layer output"}

    def groups(self) -> list[Group]:
        return [Group("", tuple(f"encoder.layers.{n}" for n, _ in self.model.encoder.layers.named_children()))]

    def roles(self, block: str) -> dict[str, str]:
        return {"attn": f"{block}.self_attention", "mlp": f"{block}.mlp", "block": block}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        if ndim == 3:
            side = self.model.image_size // self.model.patch_size
            return Layout(TOKENS, prefix_tokens=1, class_token=True, grid=(side, side))
        return rank_layout(ndim)


class TVSwin(_TVAdapter):
    family = "torchvision.swin"
    classes = ("SwinTransformer",)
    where = {
        "attn": "shifted-window attention output, on the image grid (torchvision merges the windows inside the module), before the residual add",
        "mlp": "MLP output, before the residual add",
        "block": "block output (NHWC, moved to channel-first)",
    }

    def groups(self) -> list[Group]:
        stages = [f"features.{n}" for n, c in self.model.features.named_children() if any(is_instance_named(b, "SwinTransformerBlock", "SwinTransformerBlockV2") for b in c.children())]
        return [Group(f"stage{k + 1}", tuple(_children(self.model, s))) for k, s in enumerate(stages)]

    def roles(self, block: str) -> dict[str, str]:
        return {"attn": f"{block}.attn", "mlp": f"{block}.mlp", "block": block}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        mod = self.modules.get(path)
        if ndim != 4:
            return rank_layout(ndim)
        if is_instance_named(mod, "Conv2d") or path in ("permute", "features.0.0") or (is_instance_named(mod, "Permute") and list(mod.dims) == [0, 3, 1, 2]):
            return Layout(MAP)
        return nhwc_layout()

    def stages(self) -> list[Stage]:
        return [Stage(0, "features.0")] + [Stage(k + 1, g.blocks[0].rpartition(".")[0], g.blocks) for k, g in enumerate(self.groups())]


ADAPTERS = [TVCNN, TVViT, TVSwin]
