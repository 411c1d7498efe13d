"""The generic fallback: a family nbfeat has no adapter for.

Blocks and roles come from the module tree (`nbfeat.models.blocks`: the repeated block class,
children named attn/mlp...). Layout by rank only: a 4-d output is read as NCHW, a 3-d one as
tokens (with the source's prefix-token count, no patch grid), a 2-d one as a vector. It never
guesses NHWC or a grid from shapes, so `avg2d` on tokens and `stages=` are refused with a clear
message; the tree and attrs say "generic".
"""

from __future__ import annotations

from typing import Any

from nbfeat.models.adapters.base import Adapter, Context, Group, Layout, rank_layout


class GenericAdapter(Adapter):
    family = "generic"
    where = {"attn": "output of the block's attention child (as the module returns it)", "mlp": "output of the block's MLP child", "block": "block output"}

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return True

    def groups(self) -> list[Group]:
        from nbfeat.models.blocks import find_blocks

        blocks = find_blocks(self.model)
        return [Group("", tuple(blocks))] if blocks else []

    def nodes(self) -> dict[str, list[str]]:
        from nbfeat.models.blocks import find_roles

        return find_roles(self.model, self.blocks())

    def roles(self, block: str) -> dict[str, str]:
        nodes = self.nodes()
        i = self.blocks().index(block)
        return {r: paths[i] for r, paths in nodes.items()}

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        return rank_layout(ndim, text=self.is_text, prefix_tokens=int(getattr(self.loaded, "prefix_tokens", 0) or 0))
