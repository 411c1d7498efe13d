"""Shared fixtures for the widget tests: a small CNN with random weights and a few images."""

from __future__ import annotations

import numpy as np
import pytest


@pytest.fixture(scope="session")
def resnet():
    import nbfeat

    return nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu")


@pytest.fixture(scope="session")
def pictures():
    """Four generated RGB images (HxWx3 uint8), different sizes on purpose."""
    rng = np.random.default_rng(0)
    return [rng.integers(0, 255, (56 + 8 * i, 72, 3), dtype=np.uint8) for i in range(4)]
