"""Stacked targets (`nodes=`) captured straight into one (batch, layer, ...) buffer.

A role such as `block` is one variable stacked over every depth. Rather than copy each
depth's output at capture and copy them all again with `torch.stack`, each depth is copied
once into its slice of a buffer made per forward pass. Text outputs go into a buffer as wide
as the run's longest text (`widths`), its pads NaN, so the batch needs no padding copy after.
When anything unusual happens (a
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
        # stacked target -> (token axis of a captured output, the run's token length): set
        # after the probe for text, so each batch lands at the run's width (pads NaN)
        self.widths: dict[str, tuple[int, int]] = {}
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
        axis, full = self.widths.get(name, (0, 0))
        width = int(pooled.shape[axis]) if axis else 0
        shape = list(pooled.shape)
        if axis and full > width and pooled.is_floating_point():
            shape[axis] = full
        else:
            axis = 0
        buf = self.buffers.get(name)
        if buf is None:
            buf = self.buffers[name] = torch.empty((shape[0], depths, *shape[1:]), dtype=pooled.dtype, device=pooled.device)
            if axis:
                buf.narrow(axis + 1, width, full - width).fill_(float("nan"))
        elif list(buf.shape[:1] + buf.shape[2:]) != shape or buf.dtype != pooled.dtype:
            return pooled
        view = buf[:, depth]
        if axis:
            view = view.narrow(axis, 0, width)
        view.copy_(pooled)
        self.filled.add((name, depth))
        return view

    def take(self, name: str, per_depth: list[Any]) -> Any:
        """The (batch, layer, ...) tensor of `name`: the buffer when every depth landed in it."""
        import torch

        buf = self.buffers.get(name)
        if buf is not None and len(per_depth) == buf.shape[1] and all(
            x.data_ptr() == buf[:, i].data_ptr() and _inside(x, buf[:, i]) for i, x in enumerate(per_depth)
        ):
            return buf
        return torch.stack(per_depth, dim=1)


def _inside(x: Any, depth: Any) -> bool:
    """`x` is `depth` itself, or its start along one axis (what `put` returns at run width)."""
    if x.shape == depth.shape:
        return True
    return x.dim() == depth.dim() and x.stride() == depth.stride() and sum(a != b for a, b in zip(x.shape, depth.shape)) == 1 and all(a <= b for a, b in zip(x.shape, depth.shape))
