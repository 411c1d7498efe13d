"""Shared fixtures: generated images and tiny models saved the way a user's would be."""

from __future__ import annotations

import os

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never reach a hub
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def write_images(root, n_per_class=3, classes=("cats", "dogs"), size=(48, 64), seed=0):
    """A labelled image folder (class sub-folders) of random RGB PNGs; returns the paths."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    paths = []
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n_per_class):
            p = root / c / f"img{i}.png"
            Image.fromarray(rng.integers(0, 255, (*size, 3), dtype=np.uint8)).save(p)
            paths.append(p)
    return paths


@pytest.fixture
def image_dir(tmp_path):
    root = tmp_path / "images"
    write_images(root)
    return root
