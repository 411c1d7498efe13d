"""A budget before the run: bytes per sample and in total for every variable, and the disk a
store will take; an in-memory extraction that cannot fit fails before its first batch.

Shapes come from the run's one-sample probe (the pass that also sizes a store up front),
at the dtype the run produces, with the run's pooling, token length and layout, so the
figures are those the extraction will really allocate.

>>> est = bb.estimate("images/", layers=["layer3", "layer4"], pool={"layer4": "mean"})  # doctest: +SKIP
>>> est.total_bytes, est.store_bytes                                                   # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError

# Per sample and token: the `token_text` string object (~60 bytes) and the `mask` byte.
_TOKEN_COORD_BYTES = 64
_SAMPLE_COORD_BYTES = 300  # sample id, label, path as Python strings
# Room left for everything else (the model, decoding, Python) when checking a fit.
_HEADROOM = 0.8


@dataclass
class Estimate:
    """What an extraction will produce. `table()` gives it per variable."""

    samples: int
    variables: dict[str, dict[str, Any]]  # name -> dims, shape, dtype, bytes_per_sample, total_bytes
    coords_bytes: int
    available_bytes: int | None
    notes: list[str] = field(default_factory=list)

    @property
    def bytes_per_sample(self) -> int:
        return sum(v["bytes_per_sample"] for v in self.variables.values())

    @property
    def total_bytes(self) -> int:
        """The feature arrays of an in-memory result (what `ds.nbytes` counts, coords aside)."""
        return sum(v["total_bytes"] for v in self.variables.values())

    @property
    def memory_bytes(self) -> int:
        """Features plus per-sample and per-token coords: what an in-memory result holds."""
        return self.total_bytes + self.coords_bytes

    @property
    def store_bytes(self) -> int:
        """An upper bound for a store on disk: uncompressed features and coords (zstd on
        activations typically saves a third or more; it is never counted here)."""
        return self.total_bytes + self.coords_bytes

    @property
    def fits_in_memory(self) -> bool:
        return self.available_bytes is None or self.memory_bytes <= _HEADROOM * self.available_bytes

    def table(self) -> Any:
        import pandas as pd

        rows = [{"variable": n, **v} for n, v in self.variables.items()]
        return pd.DataFrame(rows, columns=["variable", "dims", "shape", "dtype", "bytes_per_sample", "total_bytes"])

    def __repr__(self) -> str:
        lines = [f"<Estimate: {self.samples} samples, {human(self.total_bytes)} of features ({human(self.bytes_per_sample)} per sample)"]
        for n, v in self.variables.items():
            lines.append(f"  {n}: {v['dims']} {v['shape']} {v['dtype']}: {human(v['bytes_per_sample'])}/sample, {human(v['total_bytes'])}")
        lines.append(f"  in memory: {human(self.memory_bytes)} (available: {human(self.available_bytes) if self.available_bytes is not None else 'unknown'})")
        lines.append(f"  store on disk: at most {human(self.store_bytes)} (uncompressed upper bound; zstd usually writes less)>")
        return "\n".join(lines)


def estimate(run: Any) -> Estimate:
    """The Estimate of a prepared run (`bb.prepare(...)`)."""
    n = len(run.inputs)
    variables = {}
    for name, spec in run.variables.items():
        per = int(np.prod(spec.shape, dtype=np.int64)) * np.dtype(spec.dtype).itemsize
        variables[name] = {
            "dims": tuple(spec.dims),
            "shape": (n, *(int(s) for s in spec.shape)),
            "dtype": np.dtype(spec.dtype).name,
            "bytes_per_sample": per,
            "total_bytes": per * n,
        }
    tokens = int(getattr(run, "_tmax", 0) or 0) if run.bb.modality == "text" else 0
    coords = n * (_SAMPLE_COORD_BYTES + tokens * _TOKEN_COORD_BYTES)
    return Estimate(n, variables, coords, available_memory())


def check_fits_in_memory(run: Any) -> Estimate:
    """Raise before the first batch when an in-memory result cannot fit; the Estimate otherwise."""
    est = estimate(run)
    if not est.fits_in_memory:
        big = sorted(est.variables.items(), key=lambda kv: -kv[1]["total_bytes"])[:3]
        parts = ", ".join(f"{n}: {human(v['total_bytes'])}" for n, v in big)
        raise NbfeatError(
            f"This extraction needs {human(est.memory_bytes)} in memory ({parts}) but {human(est.available_bytes)} is available. "
            "Stream it to disk with out='feats.zarr' (bounded memory, resumable), pool the layers (pool='mean'), or extract fewer layers."
        )
    return est


def available_memory() -> int | None:
    """Bytes this process may still allocate: `NBFEAT_MEMORY_LIMIT` if set (bytes, or with
    K/M/G/T), else the smaller of the system's available memory and the cgroup's room."""
    env = os.environ.get("NBFEAT_MEMORY_LIMIT")
    if env:
        return parse_bytes(env)
    found = []
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
    except OSError:
        pass
    try:
        with open("/sys/fs/cgroup/memory.max") as f:
            limit = f.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current") as f:
                found.append(int(limit) - int(f.read().strip()))
    except (OSError, ValueError):
        pass
    if not found:
        try:
            import psutil

            found.append(int(psutil.virtual_memory().available))
        except ImportError:
            return None
    return max(0, min(found))


def parse_bytes(text: str) -> int:
    """'8G' -> 8 GiB, '512M', '1.5T', '1000000' (bytes)."""
    t = str(text).strip().upper().removesuffix("B").removesuffix("I")
    scale = {"K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}
    try:
        if t and t[-1] in scale:
            return int(float(t[:-1]) * scale[t[-1]])
        return int(float(t))
    except ValueError:
        raise NbfeatError(f"Cannot read {text!r} as a size: use bytes or K/M/G/T, e.g. NBFEAT_MEMORY_LIMIT=8G.") from None


def human(n: int | None) -> str:
    if n is None:
        return "unknown"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} B"
