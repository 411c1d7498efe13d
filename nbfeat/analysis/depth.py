"""Layers by relative depth: `layers=[0.25, 0.5, 0.75, 1.0]` across the repeated blocks.

A fraction f in [0, 1] picks block `round(f * (n - 1))` of the model's `n` repeated blocks
(`bb.blocks`, from its family adapter), so 0.0 is the first block, 1.0 the last, and models
of different depth line up (a 12-block ViT and an 8-block ResNet both give their middle
block for 0.5). Halves round up (f * (n - 1) = 2.5 picks block 3).

>>> blocks_at(bb, [0.25, 0.5, 0.75, 1.0])        # doctest: +SKIP
['blocks.3', 'blocks.6', 'blocks.8', 'blocks.11']
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from nbfeat.errors import UnknownLayerError


def block_index(fraction: float, n_blocks: int) -> int:
    """The block a relative depth picks among `n_blocks`.

    >>> [block_index(f, 12) for f in (0.0, 0.25, 0.5, 0.75, 1.0)]
    [0, 3, 6, 8, 11]
    """
    f = float(fraction)
    if not (0.0 <= f <= 1.0) or math.isnan(f):
        raise UnknownLayerError(f"Relative depth {fraction!r}: use a float between 0.0 (first block) and 1.0 (last block), or an int block index.")
    if n_blocks < 1:
        raise UnknownLayerError("This model has no repeated blocks, so relative depths mean nothing; name modules instead (bb.layers()).")
    return int(math.floor(f * (n_blocks - 1) + 0.5))


def blocks_at(bb: Any, fractions: Iterable[float]) -> list[str]:
    """Module paths of the blocks at these relative depths (see the module docstring)."""
    blocks = list(bb.blocks)
    if not blocks:
        raise UnknownLayerError(f"{getattr(bb, 'id', 'This model')} has no repeated blocks, so relative depths mean nothing; name modules instead (bb.layers()).")
    return [blocks[block_index(f, len(blocks))] for f in fractions]
