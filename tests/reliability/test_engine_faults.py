"""Out-of-memory halving, wrong tensor shapes and dtypes, determinism across runs and batch sizes."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.errors import InputError


@pytest.fixture(scope="module")
def resnet():
    torch.manual_seed(0)
    return nbfeat.load("torchvision:resnet18", pretrained=False)


def test_out_of_memory_halves_the_batch_and_goes_on(resnet):
    x = torch.randn(8, 3, 64, 64)
    want = resnet.extract(x, layers="layer2", pool="mean", batch_size=8, progress=False)["layer2"].values
    seen = []

    def oom_above_two(module, args):  # an injected device OOM for batches over 2 samples
        seen.append(args[0].shape[0])
        if args[0].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB (injected)")

    handle = resnet.model.layer1.register_forward_pre_hook(oom_above_two)
    try:
        with pytest.warns(RuntimeWarning, match="Out of memory at batch size 8") as record:
            got = resnet.extract(x, layers="layer2", pool="mean", batch_size=8, progress=False)
    finally:
        handle.remove()
    assert len([w for w in record if "Out of memory" in str(w.message)]) == 1  # reported once
    np.testing.assert_allclose(got["layer2"].values, want, rtol=1e-5, atol=1e-5)
    assert list(got["sample"].values) == [str(i) for i in range(8)]
    assert seen[1:] == [8, 4, 2, 2, 2, 2]  # after the 1-sample probe: halved twice, then 2 sticks


def test_stacked_nodes_survive_out_of_memory_halving():
    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32})
    x = torch.randn(6, 3, 32, 32)
    want = vit.extract(x, nodes=["attn", "block"], batch_size=6, progress=False)

    def oom_above_two(module, args):
        if args[0].shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory (injected)")

    handle = vit.model.blocks[0].register_forward_pre_hook(oom_above_two)
    try:
        with pytest.warns(RuntimeWarning, match="Out of memory at batch size 6"):
            got = vit.extract(x, nodes=["attn", "block"], batch_size=6, progress=False)
    finally:
        handle.remove()
    for name in ("attn", "block"):
        assert got[name].dims == ("sample", "layer", "token", "channel")
        np.testing.assert_allclose(got[name].values, want[name].values, rtol=1e-5, atol=1e-5)


def test_wrong_tensor_shapes_and_dtypes_are_clear(resnet):
    with pytest.raises(InputError, match=r"N x 3 x H x W"):
        resnet.extract(torch.randn(2, 1, 64, 64), progress=False)
    with pytest.raises(InputError, match=r"must be float"):
        resnet.extract(torch.zeros(2, 3, 64, 64, dtype=torch.int32), progress=False)
    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32})
    with pytest.raises(InputError, match=r"rejected inputs of shape \(1, 3, 48, 48\)"):
        vit.extract(torch.randn(2, 3, 48, 48), progress=False)


def test_bit_identical_across_runs_and_batch_sizes(resnet, image_dir):
    a = resnet.extract(image_dir, layers=["layer1", "fc"], batch_size=6, progress=False)
    b = resnet.extract(image_dir, layers=["layer1", "fc"], batch_size=6, progress=False)
    c = resnet.extract(image_dir, layers=["layer1", "fc"], batch_size=1, num_workers=1, progress=False)
    for layer in ("layer1", "fc"):
        assert np.array_equal(a[layer][layer].values, b[layer][layer].values)
        # across batch sizes CPU kernels may block differently: equal to float rounding
        np.testing.assert_allclose(a[layer][layer].values, c[layer][layer].values, rtol=1e-5, atol=1e-5)
