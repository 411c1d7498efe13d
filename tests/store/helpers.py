"""Helpers for the store tests: inputs, progress of a store, comparing two stores."""

from __future__ import annotations

import numpy as np
import torch
import zarr

from nbfeat.examples import save_tiny_gpt2  # noqa: F401  (re-exported for the store tests)


def tensors(n, size=32, seed=0):
    """Model-ready float inputs (N, 3, size, size), the same for the same arguments."""
    return torch.randn(n, 3, size, size, generator=torch.Generator().manual_seed(seed))


def done_chunks(path) -> int:
    """How many chunks a store marks done (0 while it is being allocated)."""
    try:
        group = zarr.open_group(str(path), mode="r")
        if "nbfeat_fingerprint" not in group.attrs:
            return 0
        status = group["status"][:]
    except Exception:
        return 0
    chunk = group["status"].chunks[0]
    return int((status[::chunk] != 0).sum())


def assert_same_store(a, b, exact=True):
    """Two opened stores (Dataset or DataTree) hold the same samples and values."""
    assert list(np.asarray(a["sample"].values)) == list(np.asarray(b["sample"].values))
    names = _names(a)
    assert names == _names(b)
    for name in names:
        x, y = _values(a, name), _values(b, name)
        if exact:
            np.testing.assert_array_equal(x, y)
        else:
            np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def _names(obj):
    if hasattr(obj, "children"):
        return sorted(obj.children)
    return sorted(map(str, obj.data_vars))


def _values(obj, name):
    return np.asarray(obj[name][name].values if hasattr(obj, "children") else obj[name].values)


def write_pngs(root, n_per_class=5, classes=("cats", "dogs"), size=(40, 40), seed=0):
    """A labelled folder of random RGB PNGs (class sub-folders)."""
    from tests.conftest import write_images

    write_images(root, n_per_class=n_per_class, classes=classes, size=size, seed=seed)
    return root
