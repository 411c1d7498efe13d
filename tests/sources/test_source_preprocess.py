"""preprocess= on nbfeat.load: presets, transforms, callables; recorded in provenance and the key."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nbfeat


def test_imagenet_preset_matches_the_thingsvision_pipeline(image_dir):
    from PIL import Image
    from torchvision import models
    from torchvision import transforms as T

    bb = nbfeat.load("torchvision:resnet50", pretrained=False, preprocess="imagenet")
    paths = sorted(image_dir.rglob("*.png"))[:2]
    ds = bb.extract(paths, layers=["layer1"], pool="mean", progress=False)
    # by hand: the transform THINGSvision and most papers use, and the same weights
    tf = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    net = models.resnet50()
    net.load_state_dict(bb.model.state_dict())
    net.eval()
    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in ds["path"].values])
    with torch.no_grad():
        h = net.layer1(net.maxpool(net.relu(net.bn1(net.conv1(x)))))
    np.testing.assert_allclose(ds["layer1"].values, h.mean((2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    prep = json.loads(ds.attrs["preprocessing"])
    assert prep["preset"] == "imagenet" and "Resize(size=256" in prep["transforms"]


def test_the_default_is_the_sources_own_and_the_key_follows_preprocess():
    default = nbfeat.load("torchvision:resnet50", pretrained=False)
    assert "resize_size=[232]" in default.provenance()["preprocessing"]  # the V2 weights' own transform
    x = torch.zeros(1, 3, 224, 224)
    runs = {p: nbfeat.load("torchvision:resnet18", pretrained=False, preprocess=p).prepare(x, layers="layer1") for p in (None, "imagenet", "clip")}
    keys = {p: r.fingerprint() for p, r in runs.items()}
    assert len(set(keys.values())) == 3  # the store key changes with the preprocessing
    again = nbfeat.load("torchvision:resnet18", pretrained=False, preprocess="imagenet").prepare(x, layers="layer1")
    assert again.fingerprint() == keys["imagenet"]


def test_a_callable_and_a_text_model():
    from torchvision import transforms as T

    def my_transform(img):
        return T.functional.to_tensor(img.resize((64, 48)))

    bb = nbfeat.load("timm:resnet18", pretrained=False, preprocess=my_transform)
    assert bb.input_size == (3, 48, 64)
    assert json.loads(bb.provenance()["preprocessing"])["transforms"].endswith("my_transform")
    assert bb.load_kwargs()["preprocess"] is my_transform  # rebuilt the same on a worker
    with pytest.raises(nbfeat.errors.NbfeatError, match="preset"):
        nbfeat.load("timm:resnet18", pretrained=False, preprocess="imagenet21k")
