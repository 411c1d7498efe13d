"""Where everything of a run lives in a zarr store, and how the samples split into chunks.

One layout serves the writer, the resume logic, the Dask workers and the reader. It mirrors
the in-memory data model (nbfeat.data.labelled): variables at the root when their dims agree
(`xr.open_zarr` reads a Dataset), otherwise one group per variable (`xr.open_datatree`).
Every array with a `sample` dim is chunked along `sample` only, `chunk` samples per chunk.

>>> lay = Layout(n=10, chunk=4, tree=False, variables=[], token=0, sample_columns=["sample"])
>>> [lay.chunk_range(c) for c in range(lay.n_chunks)]
[(0, 4), (4, 8), (8, 10)]
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

LAYOUT_VERSION = 2  # 2: per-sample `input_key`
# Big enough that a million samples of pooled features are a few hundred files, small enough
# that one chunk in flight (plus one being written) keeps memory flat.
TARGET_CHUNK_BYTES = 32 * 2**20
# A chunk of big features is stored as up to PIECES zarr chunks along `sample` (each at least
# MIN_PIECE_BYTES), so writing it compresses the pieces on several cores at once: the last
# chunk of a run is written while the forward pass has stopped and its cores are free.
PIECES = 4
MIN_PIECE_BYTES = 8 * 2**20
# Sample ids, labels and paths are written once up front, so they can use bigger chunks.
COORD_CHUNK = 65536

# status values: 0 = pending (the fill value: a chunk never written reads as pending)
PENDING, OK, FAILED = 0, 1, 2
STATUS_ATTRS = {
    "flag_values": [PENDING, OK, FAILED],
    "flag_meanings": "pending ok failed",
    "long_name": "extraction status per sample",
}


@dataclass
class VarPlan:
    """One feature variable: its name, its array path in the store, dims (sample first)."""

    name: str
    array: str
    group: str
    dims: list[str]
    shape: list[int]
    dtype: str

    @property
    def fill(self) -> Any:
        return np.nan if np.dtype(self.dtype).kind == "f" else 0


@dataclass
class Layout:
    n: int
    chunk: int
    tree: bool
    variables: list[VarPlan]
    token: int  # token length of text runs; 0 when there are no token coords
    sample_columns: list[str]  # sample, label, path (, text)
    token_groups: list[str] = field(default_factory=list)  # groups holding token_text/mask
    version: int = LAYOUT_VERSION
    piece: int = 0  # samples per zarr chunk of the feature arrays, divides `chunk` (0: `chunk`)

    @property
    def feature_chunk(self) -> int:
        return self.piece or self.chunk

    def pieces(self, c: int) -> range:
        """Indices (along `sample`) of the feature arrays' zarr chunks that make up chunk `c`."""
        start, stop = self.chunk_range(c)
        return range(start // self.feature_chunk, math.ceil(stop / self.feature_chunk))

    @property
    def n_chunks(self) -> int:
        return max(1, math.ceil(self.n / self.chunk))

    def chunk_range(self, c: int) -> tuple[int, int]:
        return c * self.chunk, min(self.n, (c + 1) * self.chunk)

    def chunk_positions(self, chunks: list[int]) -> np.ndarray:
        parts = [np.arange(*self.chunk_range(c), dtype=np.int64) for c in chunks]
        return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)

    def done_chunks(self, status: np.ndarray) -> np.ndarray:
        """Bool per chunk. A status chunk is written last and whole, so its first entry says."""
        return np.asarray(status[:: self.chunk] != PENDING)

    def token_arrays(self) -> list[str]:
        return [_join(g, name) for g in self.token_groups for name in ("token_text", "mask")]

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Layout:
        raw = json.loads(text)
        raw["variables"] = [VarPlan(**v) for v in raw["variables"]]
        return cls(**raw)


def plan(run: Any, chunk_size: int | None = None) -> Layout:
    """The layout for `run`: chunk size from the bytes per sample, rounded to whole batches."""
    from nbfeat.data.labelled import dims_agree

    n = len(run.samples)
    tree = not dims_agree(run.variables)
    variables = []
    for name, spec in run.variables.items():
        group = name.replace("/", "--") if tree else ""
        variables.append(
            VarPlan(
                name,
                _join(group, name),
                group,
                list(spec.dims),
                [int(s) for s in spec.shape],
                np.dtype(spec.dtype).str,
            )
        )
    token = 0
    token_groups: list[str] = []
    if "text" in run.samples.columns:
        with_token = [v for v in variables if "token" in v.dims]
        if with_token:
            v = with_token[0]
            token = v.shape[v.dims.index("token") - 1]
            token_groups = sorted({w.group for w in with_token}) if tree else [""]
    batch = int(getattr(run, "batch_size", 0) or run.spec.get("extract", {}).get("batch_size", 32))
    chunk = int(chunk_size) if chunk_size else choose_chunk(n, batch, bytes_per_sample(variables))
    if chunk < 1:
        from nbfeat.errors import NbfeatError

        raise NbfeatError(f"chunk_size must be at least 1, got {chunk_size}.")
    columns = [c for c in ("sample", "label", "path", "text") if c in run.samples.columns]
    chunk = min(chunk, max(n, 1))
    piece = choose_piece(chunk, bytes_per_sample(variables))
    return Layout(n, chunk, tree, variables, token, columns, token_groups, piece=piece)


def bytes_per_sample(variables: list[VarPlan]) -> int:
    return sum(
        int(np.prod(v.shape, dtype=np.int64)) * np.dtype(v.dtype).itemsize for v in variables
    )


def choose_chunk(n: int, batch_size: int, per_sample: int) -> int:
    """Samples per chunk: a whole number of batches, about TARGET_CHUNK_BYTES, at most n.

    >>> choose_chunk(1_000_000, 32, 1024 * 14 * 14 * 4)   # resnet50 layer3, unpooled
    32
    >>> choose_chunk(1_000_000, 32, 2048 * 4)             # pooled to 2048 channels
    4096
    """
    batches = max(1, TARGET_CHUNK_BYTES // (max(1, per_sample) * max(1, batch_size)))
    return int(max(1, min(batches * batch_size, n)))


def choose_piece(chunk: int, per_sample: int) -> int:
    """Samples per zarr chunk of the features: `chunk` split in PIECES (or 2) when big enough.

    >>> choose_piece(32, 256 * 56 * 56 * 4)   # resnet50 layer1: 4 pieces of 8 samples (25 MB)
    8
    >>> choose_piece(512, 2048 * 4)           # 4 MiB of pooled features: one piece
    512
    """
    for k in (PIECES, 2):
        if chunk % k == 0 and chunk // k * per_sample >= MIN_PIECE_BYTES:
            return chunk // k
    return chunk


def coord_chunk(layout: Layout) -> int:
    return max(1, min(layout.n, math.ceil(COORD_CHUNK / layout.chunk) * layout.chunk))


def _join(group: str, name: str) -> str:
    return f"{group}/{name}" if group else name
