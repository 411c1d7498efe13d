"""Stacked targets (`nodes=`) captured straight into one (batch, layer, ...) buffer.

A role such as `block` is one variable stacked over every depth. Rather than copy each
depth's output at capture and copy them all again with `torch.stack`, each depth is copied
once into its slice of a buffer made per forward pass. When anything unusual happens (a
module called twice, shapes that differ, a batch split after running out of memory), the
captured tensors are stacked the ordinary way instead.

>>> stacks = Stacks({("blocks.0", 0): ("block", 0, 2), ("blocks.1", 0): ("block", 1, 2)})  # doctest: +SKIP
>>> stacks.reset(); view = stacks.put("blocks.0", 0, tensor)                                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any


class Stacks:
    """`slots`: (module path, pooling index) -> (stacked target, depth, number of depths)."""

    def __init__(self, slots: dict[tuple[str, int], tuple[str, int, int]]):
        self.slots = slots
        self.buffers: dict[str, Any] = {}
        self.filled: set[tuple[str, int]] = set()

    def reset(self) -> None:
        """Start a forward pass: the last pass's buffers now belong to its batch."""
        self.buffers, self.filled = {}, set()

    def put(self, path: str, k: int, pooled: Any) -> Any:
        """Copy `pooled` into its target's buffer and return that slice; else `pooled` as is."""
        import torch

        slot = self.slots.get((path, k))
        if slot is None or slot[:2] in self.filled:  # a second call keeps its own copy
            return pooled
        name, depth, depths = slot
        buf = self.buffers.get(name)
        if buf is None:
            buf = self.buffers[name] = torch.empty((pooled.shape[0], depths, *pooled.shape[1:]), dtype=pooled.dtype, device=pooled.device)
        elif buf.shape[:1] + buf.shape[2:] != pooled.shape or buf.dtype != pooled.dtype:
            return pooled
        buf[:, depth].copy_(pooled)
        self.filled.add((name, depth))
        return buf[:, depth]

    def take(self, name: str, per_depth: list[Any]) -> Any:
        """The (batch, layer, ...) tensor of `name`: the buffer when every depth landed in it."""
        import torch

        buf = self.buffers.get(name)
        if buf is not None and len(per_depth) == buf.shape[1] and all(
            x.shape == buf.shape[:1] + buf.shape[2:] and x.data_ptr() == buf[:, i].data_ptr() for i, x in enumerate(per_depth)
        ):
            return buf
        return torch.stack(per_depth, dim=1)
