"""Length-bucketed text batches: texts of similar token length share a batch.

A batch runs at the token length of its longest text, so batching texts in the user's order
spends most of the compute on pads when lengths are mixed (one 500-token text makes 31
short ones cost 500 tokens each). Within a window of consecutive inputs, texts are sorted by
token length (longest first, so running out of memory shows in the first batch) and cut
into batches. Each batch carries its input positions (`Batch.positions`), and every sink
places rows by position, so the result is in the user's order and holds the same values:
a text's features do not depend on the texts it is batched with (pads are masked).

The window bounds what a streaming sink holds: a store's chunk is written when all its
samples are in, so a window that spans several chunks keeps them open. `window_for` sizes
it to about `WINDOW_BYTES` of features; the in-memory result allocates every row up front
and sorts the whole run.

>>> import numpy as np
>>> [b.tolist() for b in length_batches(np.arange(6), [5, 50, 6, 48, 7, 49], batch_size=2)]
[[1, 5], [3, 4], [2, 0]]
>>> [b.tolist() for b in length_batches(np.arange(6), [5, 50, 6, 48, 7, 49], batch_size=2, window=3)]
[[1, 2], [0], [5, 3], [4]]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

# A streaming sink holds up to about this many bytes of features more than without
# bucketing (the chunks a window touches stay open until the window is done).
WINDOW_BYTES = 256 * 2**20
# More than this many batches in a window buys little: lengths are already close.
MAX_WINDOW_BATCHES = 64


def length_batches(positions: np.ndarray, lengths: Sequence[int] | np.ndarray, batch_size: int, window: int | None = None) -> list[np.ndarray]:
    """Batches of `positions` (input positions), similar `lengths` together.

    Args:
        positions: input positions, in the order they were asked for.
        lengths: token length per input position (indexed by position).
        batch_size: inputs per batch (the last batch of a window may be smaller).
        window: consecutive positions sorted together (None: all of them).

    Example:
        >>> [b.tolist() for b in length_batches(np.array([4, 2, 0]), [3, 0, 9, 0, 1], 2)]
        [[2, 0], [4]]
    """
    positions = np.asarray(positions, dtype=np.int64)
    lengths = np.asarray(lengths)
    batch_size = max(1, int(batch_size))
    window = len(positions) if not window else max(int(window), batch_size)
    out: list[np.ndarray] = []
    for start in range(0, len(positions), window):
        w = positions[start : start + window]
        w = w[np.argsort(-lengths[w], kind="stable")]  # stable: equal lengths keep their order
        out += [w[i : i + batch_size] for i in range(0, len(w), batch_size)]
    return out


def window_for(batch_size: int, bytes_per_sample: int, n: int) -> int:
    """Inputs per sorting window for a streaming sink: whole batches, about WINDOW_BYTES.

    Example:
        >>> window_for(32, 12 * 768 * 4, 100_000)        # GPT-2 `block` pooled: 64 batches
        2048
        >>> window_for(32, 36 * 512 * 768 * 4, 100_000)  # 36 unpooled nodes at 512 tokens
        32
    """
    batches = WINDOW_BYTES // (max(1, int(bytes_per_sample)) * max(1, int(batch_size)))
    return int(max(1, min(n, max(1, min(MAX_WINDOW_BATCHES, batches)) * batch_size)))


def text_batches(run: Any, positions: np.ndarray, window: int | None = None) -> list[np.ndarray]:
    """The batches of an ExtractionRun's texts at `positions`, similar token lengths together.

    `window` None: sized by `window_for` from the run's variables (bounded memory in a store).

    Example:
        >>> batches = text_batches(bb.prepare(texts, nodes=["block"]), np.arange(len(texts)))  # doctest: +SKIP
    """
    lengths = getattr(run, "_token_lengths", None)
    if lengths is None or len(lengths) != len(run._ids):
        lengths = run._token_lengths = np.fromiter((len(r) for r in run._ids), dtype=np.int64, count=len(run._ids))
    if window is None:
        per_sample = sum(int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in run.variables.values())
        window = window_for(run.batch_size, per_sample, len(positions))
    return length_batches(positions, lengths, run.batch_size, window)
