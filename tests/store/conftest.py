"""Fixtures for the store tests: a tiny timm model with saved random weights, small inputs."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture(scope="session")
def weights_file(tmp_path_factory):
    """Random test_resnet weights saved as a user would (Dask workers load the same file)."""
    import timm

    torch.manual_seed(0)
    model = timm.create_model("test_resnet", pretrained=False)
    path = tmp_path_factory.mktemp("weights") / "test_resnet.pth"
    torch.save(model.state_dict(), path)
    return str(path)


@pytest.fixture(scope="session")
def bb(weights_file):
    import nbfeat

    return nbfeat.load("timm:test_resnet", weights=weights_file, device="cpu")
