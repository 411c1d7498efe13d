"""A known model inside a wrapper: open_clip's `TimmModel` holds a timm model as `trunk`
(the CLIP ConvNeXt / EVA towers), and its family adapter applies under that prefix.

>>> adapter_for(open_clip_visual, loaded).family        # doctest: +SKIP
'timm.convnext'
"""

from __future__ import annotations

from typing import Any

from nbfeat.models.adapters.base import Adapter, Context, Group, Layout, Stage, rank_layout

# wrapper class (module, name) -> attribute holding the wrapped model
WRAPPERS = {("open_clip.timm_model", "TimmModel"): "trunk"}


class Nested(Adapter):
    """Delegates to the adapter of the wrapped model, every path under its prefix."""

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return cls._inner_class(model) is not None

    @staticmethod
    def _inner_class(model: Any) -> Any:
        attr = WRAPPERS.get((type(model).__module__, type(model).__name__))
        inner = getattr(model, attr, None) if attr else None
        if inner is None:
            return None
        from nbfeat.models.adapters import registry

        return next((c for c in registry() if c is not Nested and c.family != "generic" and c.matches(inner, None)), None)

    def __init__(self, model: Any, loaded: Any = None):
        super().__init__(model, loaded)
        self.prefix = WRAPPERS[(type(model).__module__, type(model).__name__)]
        self.inner = self._inner_class(model)(getattr(model, self.prefix), loaded)
        self.family = self.inner.family  # type: ignore[misc]
        self.library = self.inner.library  # type: ignore[misc]
        self.where = self.inner.where  # type: ignore[misc]

    def _in(self, path: str) -> str:
        return f"{self.prefix}.{path}" if path else self.prefix

    def _out(self, path: str) -> str | None:
        if path == self.prefix:
            return ""
        return path[len(self.prefix) + 1 :] if path.startswith(self.prefix + ".") else None

    def groups(self) -> list[Group]:
        return [Group(g.name, tuple(self._in(b) for b in g.blocks)) for g in self.inner.groups()]

    def roles(self, block: str) -> dict[str, str]:
        return {r: self._in(p) for r, p in self.inner.roles(self._out(block) or "").items()}

    def stages(self) -> list[Stage]:
        return [Stage(s.index, self._in(s.module), tuple(self._in(b) for b in s.blocks)) for s in self.inner.stages()]

    def context_for(self, path: str) -> str | None:
        inner = self._out(path)
        c = self.inner.context_for(inner) if inner is not None else None
        return self._in(c) if c is not None else None

    def _ctx(self, ctx: Context) -> Context:
        calls = {self._out(p): v for p, v in ctx.calls.items() if self._out(p) is not None}
        return Context(input_hw=ctx.input_hw, calls=calls)  # type: ignore[arg-type]

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        inner = self._out(path)
        if inner is None:
            return rank_layout(ndim)  # the wrapper's own head: pooled vectors
        return self.inner.layout(inner, ndim, self._ctx(ctx))

    def stage_view(self, stage: Stage, ctx: Context) -> Any:
        inner = next(s for s in self.inner.stages() if s.index == stage.index)
        return self.inner.stage_view(inner, self._ctx(ctx))


ADAPTERS = [Nested]
