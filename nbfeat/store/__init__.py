"""Features on disk: stream runs into zarr (resumable, flat memory, Dask), read, sample, export.

>>> import nbfeat
>>> ds = nbfeat.load("timm:resnet50").extract("images/", layers="layer4",
...                                           out="feats.zarr")           # doctest: +SKIP
>>> nbfeat.store.sample("feats.zarr", 1000, seed=0)                    # doctest: +SKIP
>>> nbfeat.store.export("feats.zarr", "feats.h5")                       # doctest: +SKIP

Importing this package costs numpy only; zarr, xarray, dask load on first use.
"""

from __future__ import annotations

from nbfeat.store.export import export
from nbfeat.store.integrity import verify
from nbfeat.store.reader import layer, open, sample
from nbfeat.store.resume import StoreMismatchError
from nbfeat.store.writer import write

__all__ = ["StoreMismatchError", "export", "layer", "open", "sample", "verify", "write"]
