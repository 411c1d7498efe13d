"""Reference helpers for the value tests: the same preprocessing, by hand."""

from __future__ import annotations

import torch

from nbfeat.data.images import open_rgb


def batch_from_paths(bb, paths):
    """Preprocess files exactly as a user would by hand: PIL -> the model's transform."""
    return torch.stack([bb.preprocess(open_rgb(p, bb.input_size[-1])) for p in paths])


def sorted_paths(image_dir):
    return sorted(p for p in image_dir.rglob("*.png"))


def assert_values(actual, expected, **kw):
    torch.testing.assert_close(torch.as_tensor(actual), expected.detach().float(), rtol=1e-4, atol=1e-4, **kw)
