"""Per-layer pooling, applied on the device at capture time (so only pooled data is copied).

Specs: None (keep everything), "mean" (over positions; for ViT tokens over the patch tokens
only, skipping class/register/distillation tokens like timm's average pooling), "mean_all"
(over every token, prefix tokens included), "max" (likewise over patch tokens for ViTs), "cls" (the class token: only where the
model has one), "last" (last real token), "flatten", ("avg2d", k) / ("max2d", k) (adaptive
pooling to k x k; also "avg2d:8", {"avg2d": 8}). Token outputs with a patch grid are pooled in
2-D over their patch tokens. The layout comes from the family adapter: NHWC outputs and
windows are restored to the image grid before pooling, so every pool is valid on every layout.

>>> parse_pool(("avg2d", 8))
PoolSpec(kind='avg2d', size=8)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models.adapters.base import Layout, rank_layout

__all__ = ["KINDS", "Layout", "PoolSpec", "apply_pool", "infer_layout", "parse_pool", "pooled_dims"]

KINDS = ("mean", "mean_all", "max", "cls", "last", "flatten", "avg2d", "max2d")


@dataclass(frozen=True)
class PoolSpec:
    kind: str
    size: int = 0

    def __str__(self) -> str:
        return f"{self.kind}:{self.size}" if self.size else self.kind


def parse_pool(spec: Any) -> PoolSpec | None:
    """One pooling spec in any accepted spelling -> PoolSpec (None = no pooling)."""
    if spec is None or spec is False or (isinstance(spec, str) and spec.lower() in ("", "none")):
        return None
    if isinstance(spec, PoolSpec):
        return spec
    if isinstance(spec, dict) and len(spec) == 1:
        spec = next(iter(spec.items()))
    if isinstance(spec, str) and ":" in spec:
        kind, _, size = spec.partition(":")
        spec = (kind, size)
    if isinstance(spec, list | tuple):
        if len(spec) != 2:
            raise NbfeatError(f"Pooling {spec!r}: use a name like 'mean' or a pair like ('avg2d', 8).")
        kind, size = str(spec[0]).lower(), spec[1]
        if kind not in ("avg2d", "max2d"):
            raise NbfeatError(f"Pooling {kind!r} takes no size; sizes go with 'avg2d' or 'max2d'.")
        try:
            n = int(size)
        except (TypeError, ValueError):
            n = 0
        if n < 1:
            raise NbfeatError(f"Pooling size must be a positive integer, got {size!r}.")
        return PoolSpec(kind, n)
    if isinstance(spec, str):
        kind = spec.lower()
        if kind in ("avg2d", "max2d"):
            raise NbfeatError(f"'{kind}' needs an output size: ('{kind}', 8) or '{kind}:8'.")
        if kind in ("avg", "average"):
            kind = "mean"
        if kind in KINDS:
            return PoolSpec(kind)
    from nbfeat.errors import did_you_mean

    raise NbfeatError(
        f"Unknown pooling {spec!r}.{did_you_mean(str(spec), KINDS)} "
        f"Choose from {', '.join(KINDS)} (avg2d/max2d with a size)."
    )


def infer_layout(shape: tuple[int, ...], prefix_tokens: int = 0, text: bool = False) -> Layout:
    """The layout of an output from its rank only (the generic fallback's rule).

    Never decides NHWC or a patch grid from sizes: those come from the family adapter
    (`bb.adapter.layout`), which reads them from the library's metadata.
    """
    return rank_layout(len(shape), text=text, prefix_tokens=prefix_tokens)


def pooled_dims(layout: Layout, spec: PoolSpec | None, flatten: bool) -> tuple[str, ...]:
    """Dims (after the batch dim) once `spec` and `flatten` are applied."""
    dims = layout.dims
    if spec is not None:
        if spec.kind in ("avg2d", "max2d"):
            dims = ("channel", "y", "x")
        elif spec.kind == "flatten":
            dims = ("feature",)
        else:
            dims = ("channel",)
    if flatten and dims not in (("feature",), ("channel",)):
        dims = ("feature",)
    return dims


def apply_pool(x: Any, layout: Layout, spec: PoolSpec | None, flatten: bool, mask: Any = None) -> Any:
    """Pool a captured batch-first tensor `x`; `mask` (N, T) marks real text tokens."""
    import torch.nn.functional as F

    if layout.restore is not None:
        x = layout.restore(x)
    if spec is not None:
        kind = spec.kind
        if layout.dims == ("channel", "y", "x"):
            if kind in ("mean", "mean_all"):
                x = x.mean(dim=(2, 3))
            elif kind == "max":
                x = x.amax(dim=(2, 3))
            elif kind in ("avg2d", "max2d"):
                pool = F.adaptive_avg_pool2d if kind == "avg2d" else F.adaptive_max_pool2d
                x = pool(x, spec.size)
            elif kind == "flatten":
                x = x.flatten(1)
            else:
                raise NbfeatError(f"pool='{kind}': this layer gives a feature map (channel, y, x), which has no {'class token' if kind == 'cls' else 'token order'}. Use 'mean', 'max' or ('avg2d', k).")
        elif layout.dims == ("token", "channel"):
            x = _pool_tokens(x, layout, spec, mask)
        elif kind == "flatten":
            x = x.flatten(1)
        elif layout.dims != ("channel",) or kind not in ("mean", "mean_all", "max"):
            raise NbfeatError(f"pool='{spec}' does not apply to an output with dims {layout.dims}; use pool=None or 'flatten'.")
    if flatten and x.dim() > 2:
        x = x.flatten(1)
    return x


def _pool_tokens(x: Any, layout: Layout, spec: PoolSpec, mask: Any) -> Any:
    import torch.nn.functional as F

    kind = spec.kind
    if kind == "cls":
        if not layout.class_token:
            what = "text model" if layout.text else "model"
            alt = " or pool='last'" if layout.text else " (or mean_all)"
            raise NbfeatError(f"pool='cls': this {what} has no class token at this layer. Use pool='mean'{alt} instead.")
        return x[:, 0]
    if kind == "flatten":
        return x.flatten(1)
    if kind == "last":
        if mask is None:
            return x[:, -1]
        last = mask.long().sum(dim=1).clamp(min=1) - 1
        return x[torch_arange(x.shape[0], x.device), last]
    if kind in ("avg2d", "max2d"):
        if layout.grid is None:
            raise NbfeatError(f"pool='{kind}' on tokens needs the patch grid, which this layer's family does not state; use 'mean' or 'max'.")
        h, w = layout.grid
        patches = x[:, layout.prefix_tokens :].transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
        pool = F.adaptive_avg_pool2d if kind == "avg2d" else F.adaptive_max_pool2d
        return pool(patches, spec.size)
    if kind in ("mean", "max") and layout.prefix_tokens and mask is None:
        x = x[:, layout.prefix_tokens :]  # patch tokens only, like timm's global_pool avg/max
    if mask is not None:
        m = mask.to(x.dtype).unsqueeze(-1)
        if kind in ("mean", "mean_all"):
            return (x * m).sum(dim=1) / m.sum(dim=1).clamp(min=1)
        return x.masked_fill(m == 0, float("-inf")).amax(dim=1)
    return x.mean(dim=1) if kind in ("mean", "mean_all") else x.amax(dim=1)


def torch_arange(n: int, device: Any) -> Any:
    import torch

    return torch.arange(n, device=device)
