"""Extracted values equal a hand-written forward pass of the same model (timm, torchvision)."""

from __future__ import annotations

import numpy as np
import pytest
import timm
import torch
import torch.nn.functional as F
import torchvision

import nbfeat
from tests.core.helpers import assert_values, batch_from_paths, sorted_paths


@pytest.fixture(scope="module")
def timm_resnet18(tmp_path_factory):
    """A random timm resnet18 saved with torch.save and loaded back through weights=."""
    torch.manual_seed(0)
    ref = timm.create_model("resnet18", pretrained=False).eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    return ref, nbfeat.load("timm:resnet18", weights=str(path))


def _timm_resnet_forward(m, x):
    x = m.maxpool(m.act1(m.bn1(m.conv1(x))))
    out = {}
    for name in ("layer1", "layer2", "layer3", "layer4"):
        x = getattr(m, name)(x)
        out[name] = x
    out["fc"] = m.fc(m.global_pool(x))
    return out


def test_timm_resnet_early_and_late_layers(timm_resnet18, image_dir):
    ref, bb = timm_resnet18
    assert bb.pretrained is False or bb.provenance()["weights"].startswith("sha256:")
    paths = sorted_paths(image_dir)
    ds = bb.extract(image_dir, layers=["layer1", "layer4", "fc"], progress=False)
    with torch.no_grad():
        want = _timm_resnet_forward(ref, batch_from_paths(bb, paths))
    assert list(ds["sample"].values) == [p.relative_to(image_dir).as_posix() for p in paths]
    assert list(ds["label"].values) == [p.parent.name for p in paths]
    for layer in ("layer1", "layer4", "fc"):
        assert_values(ds[layer][layer].values, want[layer])
    assert ds["layer1"][layer := "layer1"].dims == ("sample", "channel", "y", "x")


def test_timm_resnet_pooled(timm_resnet18, image_dir):
    ref, bb = timm_resnet18
    paths = sorted_paths(image_dir)
    ds = bb.extract(image_dir, layers={"layer3": {"pool": ["avg2d", 2]}, "layer4": {"pool": "mean"}}, progress=False)
    with torch.no_grad():
        want = _timm_resnet_forward(ref, batch_from_paths(bb, paths))
    assert_values(ds["layer3"]["layer3"].values, F.adaptive_avg_pool2d(want["layer3"], 2))
    assert_values(ds["layer4"]["layer4"].values, want["layer4"].mean(dim=(2, 3)))
    assert ds["layer3"]["layer3"].attrs["pool"] == "avg2d:2"
    flat = bb.extract(image_dir, layers="layer4", flatten=True, progress=False)
    assert flat["layer4"].dims == ("sample", "feature")
    assert_values(flat["layer4"].values, want["layer4"].flatten(1))


def _vit_forward(m, x):
    """timm VisionTransformer by hand: attn/mlp outputs before the residual, block outputs."""
    x = m.norm_pre(m.patch_drop(m._pos_embed(m.patch_embed(x))))
    out = {"attn": [], "mlp": [], "block": []}
    for blk in m.blocks:
        a = blk.attn(blk.norm1(x))
        x = x + blk.ls1(a)
        h = blk.mlp(blk.norm2(x))
        x = x + blk.ls2(h)
        out["attn"].append(a)
        out["mlp"].append(h)
        out["block"].append(x)
    return {k: torch.stack(v, dim=1) for k, v in out.items()}


@pytest.mark.parametrize(
    "name, kwargs, prefix",
    [("vit_tiny_patch16_224", {"img_size": 64}, 1), ("vit_small_patch14_reg4_dinov2", {"img_size": 56}, 5)],
)
def test_timm_vit_nodes_and_layers(tmp_path, image_dir, name, kwargs, prefix):
    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False, **kwargs).eval()
    path = tmp_path / "vit.safetensors"
    from safetensors.torch import save_file

    save_file(ref.state_dict(), str(path))
    bb = nbfeat.load(f"timm:{name}", weights=str(path), model_kwargs=kwargs)
    assert bb.prefix_tokens == prefix
    paths = sorted_paths(image_dir)
    with torch.no_grad():
        want = _vit_forward(ref, batch_from_paths(bb, paths))
    ds = bb.extract(image_dir, nodes=["attn", "mlp", "block"], progress=False)
    for role in ("attn", "mlp", "block"):
        assert ds[role].dims == ("sample", "layer", "token", "channel")
        assert_values(ds[role].values, want[role])
    assert list(ds["module"].values) == [f"blocks.{i}" for i in range(len(ref.blocks))]
    early = bb.extract(image_dir, layers=["blocks.0.attn", -1], pool="cls", progress=False)
    assert_values(early["blocks.0.attn"].values, want["attn"][:, 0, 0])
    last = f"blocks.{len(ref.blocks) - 1}"
    assert_values(early[last].values, want["block"][:, -1, 0])
    grid = bb.extract(image_dir, layers=[-1], pool=("avg2d", 1), progress=False)
    patches = want["block"][:, -1, prefix:]
    assert_values(grid[last].values[:, :, 0, 0], patches.mean(dim=1))
    glob = bb.extract(image_dir, layers="blocks.*.mlp", pool="mean", progress=False)
    assert list(glob.data_vars) == [f"blocks.{i}.mlp" for i in range(len(ref.blocks))]
    # mean skips the class/register tokens (timm's global_pool="avg"); mean_all keeps them
    assert_values(glob["blocks.1.mlp"].values, want["mlp"][:, 1, prefix:].mean(dim=1))
    every = bb.extract(image_dir, layers="blocks.1.mlp", pool="mean_all", progress=False)
    assert_values(every["blocks.1.mlp"].values, want["mlp"][:, 1].mean(dim=1))


def test_torchvision_alexnet_early_and_late(tmp_path, image_dir):
    torch.manual_seed(0)
    ref = torchvision.models.get_model("alexnet", weights=None).eval()
    path = tmp_path / "alexnet.pt"
    torch.save(ref.state_dict(), path)
    bb = nbfeat.load("torchvision:alexnet", weights=str(path))
    x = batch_from_paths(bb, sorted_paths(image_dir))
    ds = bb.extract(image_dir, layers=["features.0", "features.10", "classifier.4"], pool={"features.10": "max"}, progress=False)
    with torch.no_grad():
        conv1 = ref.features[0](x)
        conv5 = ref.features[:11](x)
        fc7 = ref.classifier[:5](torch.flatten(ref.avgpool(ref.features(x)), 1))
    assert_values(ds["features.0"]["features.0"].values, conv1)
    assert_values(ds["features.10"]["features.10"].values, conv5.amax(dim=(2, 3)))
    assert_values(ds["classifier.4"]["classifier.4"].values, fc7)
    assert bb.blocks[-1] == "classifier.6"


def test_torchvision_resnet50_two_shapes_inplace_relu_and_repeated_calls(image_dir):
    torch.manual_seed(0)
    bb = nbfeat.load("torchvision:resnet50", pretrained=False)
    ref = bb.model
    x = batch_from_paths(bb, sorted_paths(image_dir))
    ds = bb.extract(image_dir, layers=["bn1", "layer1.0.relu", "layer3", "layer4"], progress=False)
    assert isinstance(ds, __import__("xarray").DataTree)
    with torch.no_grad():
        bn1 = ref.bn1(ref.conv1(x))  # the in-place ReLU that follows must not leak into it
        stem = ref.maxpool(ref.relu(bn1.clone()))
        b = ref.layer1[0]
        r1 = torch.relu(b.bn1(b.conv1(stem)))
        r2 = torch.relu(b.bn2(b.conv2(r1)))
        r3 = torch.relu(b.bn3(b.conv3(r2)) + b.downsample(stem))
        l3 = ref.layer3(ref.layer2(ref.layer1(stem)))
        l4 = ref.layer4(l3)
    assert_values(ds["bn1"]["bn1"].values, bn1)
    assert (ds["bn1"]["bn1"].values < 0).any(), "bn1 was captured after the in-place ReLU"
    # a Bottleneck calls its ReLU three times with different widths: one variable per call
    for i, want in enumerate((r1, r2, r3)):
        var = ds[f"layer1.0.relu#{i}"][f"layer1.0.relu#{i}"]
        assert var.attrs["call"] == i
        assert_values(var.values, want)
    assert_values(ds["layer3"]["layer3"].values, l3)
    assert_values(ds["layer4"]["layer4"].values, l4)


def test_early_exit_later_modules_never_run(image_dir):
    bb = nbfeat.load("torchvision:resnet18", pretrained=False)
    calls = {}
    for name in ("layer2", "layer3", "layer4", "avgpool", "fc", "layer2.1.conv2"):
        module = dict(bb.model.named_modules())[name]
        module.register_forward_hook(lambda m, a, o, name=name: calls.__setitem__(name, calls.get(name, 0) + 1))
    bb.extract(image_dir, layers=["layer2.0"], batch_size=2, progress=False)
    assert calls.get("layer2", 0) == 0 or "layer2" not in calls  # layer2 never finished
    for later in ("layer2.1.conv2", "layer3", "layer4", "avgpool", "fc"):
        assert later not in calls, f"{later} ran after the deepest requested layer"


def test_inputs_in_memory_match_files(image_dir):
    from PIL import Image

    bb = nbfeat.load("torchvision:resnet18", pretrained=False)
    paths = sorted_paths(image_dir)
    from_files = bb.extract(paths, layers="layer2", pool="mean", progress=False)
    pil = [Image.open(p) for p in paths]
    from_pil = bb.extract(pil, layers="layer2", pool="mean", progress=False)
    arrays = np.stack([np.asarray(im.convert("RGB")) for im in pil])
    from_arrays = bb.extract(arrays, layers="layer2", pool="mean", progress=False)
    tensors = batch_from_paths(bb, paths)
    from_tensor = bb.extract(tensors, layers="layer2", pool="mean", ids=[f"{p.parent.name}-{p.stem}" for p in paths], progress=False)
    for other in (from_pil, from_arrays, from_tensor):
        np.testing.assert_allclose(other["layer2"].values, from_files["layer2"].values, rtol=1e-5, atol=1e-5)
    assert list(from_tensor["sample"].values) == [f"{p.parent.name}-{p.stem}" for p in paths]
    assert list(from_files["sample"].values) == [p.relative_to(image_dir).as_posix() for p in paths]


def test_two_models_in_one_call(image_dir):
    dt = nbfeat.extract(
        ["torchvision:alexnet", "timm:resnet18"],
        image_dir,
        layers={"torchvision:alexnet": "features.10", "timm:resnet18": "layer4"},
        pool="mean",
        pretrained=False,
        progress=False,
    )
    assert set(dt.children) == {"torchvision:alexnet", "timm:resnet18"}
    assert dt["torchvision:alexnet"]["features.10"].shape == (6, 256)
    assert dt["timm:resnet18"]["layer4"].shape == (6, 512)
    assert dt["timm:resnet18"].attrs["model"] == "timm:resnet18"


def test_module_called_twice_same_shape_stacks_calls(image_dir):
    bb = nbfeat.load("torchvision:resnet18", pretrained=False)
    ref = bb.model
    x = batch_from_paths(bb, sorted_paths(image_dir))
    ds = bb.extract(image_dir, layers="layer1.0.relu", progress=False)
    with torch.no_grad():
        stem = ref.maxpool(ref.relu(ref.bn1(ref.conv1(x))))
        b = ref.layer1[0]
        r1 = torch.relu(b.bn1(b.conv1(stem)))
        r2 = torch.relu(b.bn2(b.conv2(r1)) + stem)
    calls = ds["layer1.0.relu"]
    assert calls.dims == ("sample", "call", "channel", "y", "x") and calls.sizes["call"] == 2
    assert_values(calls.values[:, 0], r1)
    assert_values(calls.values[:, 1], r2)


def test_per_model_dicts_give_each_model_its_own_entry(image_dir, tmp_path):
    # a model missing from a per-model dict gets the default (its last block), not the dict
    dt = nbfeat.extract(
        ["torchvision:alexnet", "timm:resnet18"],
        image_dir,
        layers={"torchvision:alexnet": "features.10"},
        pool="mean",
        pretrained=False,
        out=tmp_path / "stores",
        progress=False,
    )
    assert list(dt["torchvision:alexnet"].data_vars) == ["features.10"]
    assert list(dt["timm:resnet18"].data_vars) == ["layer4.1"]
    assert (tmp_path / "stores" / "timm_resnet18.zarr").is_dir()


def test_channels_last_and_autocast_match_the_hand_written_forward(timm_resnet18, image_dir, tmp_path):
    ref, _ = timm_resnet18
    path = tmp_path / "resnet18.pth"
    torch.save(ref.state_dict(), path)
    paths = sorted_paths(image_dir)
    fast = nbfeat.load("timm:resnet18", weights=str(path), channels_last=True)
    ds = fast.extract(image_dir, layers={"layer1": None, "layer4": "mean"}, progress=False)
    with torch.no_grad():
        want = _timm_resnet_forward(ref, batch_from_paths(fast, paths))
    assert ds["layer1"]["layer1"].dims == ("sample", "channel", "y", "x")  # NHWC inside, NCHW out
    assert_values(ds["layer1"]["layer1"].values, want["layer1"])
    assert_values(ds["layer4"]["layer4"].values, want["layer4"].mean(dim=(2, 3)))
    assert fast.provenance()["memory_format"] == "channels_last"

    amp = nbfeat.load("timm:resnet18", weights=str(path), amp=True)
    got = amp.extract(image_dir, layers={"layer4": "mean"}, progress=False)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        want_amp = _timm_resnet_forward(ref, batch_from_paths(amp, paths))["layer4"].float().mean(dim=(2, 3))
    assert got["layer4"].dtype == np.float32 and got.attrs["dtype"] == "float32+autocast(bfloat16)"
    torch.testing.assert_close(torch.from_numpy(got["layer4"].values), want_amp, rtol=2e-2, atol=2e-2)
    assert amp.load_kwargs()["amp"] is True and fast.load_kwargs()["channels_last"] is True
