"""The comparison explorer: a click on a heatmap cell opens both compared layers."""

from __future__ import annotations

import numpy as np
import pytest

import nbfeat
from nbfeat.examples import make_images


@pytest.fixture(scope="module")
def two_models(tmp_path_factory):
    folder = make_images(tmp_path_factory.mktemp("cmp") / "imgs", per_class=2, size=64)
    layers = {"torchvision:resnet18": ["layer3", "layer4"], "torchvision:alexnet": ["features.10"]}
    return nbfeat.extract(list(layers), folder, layers=layers, pool="mean", pretrained=False, device="cpu", progress=False)


def test_a_cell_opens_both_layers_and_the_samples_follow(two_models):
    cmp = nbfeat.compare(two_models, method="rsa")
    ex = nbfeat.explore(cmp, two_models)
    labels = ex.heatmap.labels
    assert labels == [str(v) for v in cmp.matrix["rep"].values] and len(labels) == 3
    reply, buffers = ex.heatmap.handle_request({"id": 1, "kind": "matrix"})
    got = np.frombuffer(bytes(buffers[0]), dtype=np.float32).reshape(3, 3)
    assert reply["ok"] and np.allclose(got, cmp.matrix.values)
    i = next(k for k, s in enumerate(cmp.sources) if s["model"] == "torchvision:alexnet")
    j = next(k for k, s in enumerate(cmp.sources) if s["layer"] == "layer4")
    ex.heatmap.set_state({"picked": [i, j]})  # what a click sends
    assert ex.left.layer == "torchvision:alexnet/features.10" and ex.right.layer == "torchvision:resnet18/layer4"
    # the browser shows the very values that were compared
    reply, _ = ex.right.handle_request({"id": 2, "kind": "view", "sample": 1, "layer": ex.right.layer})
    assert reply["ok"] and reply["view"] == "vector"
    ex.left.sample = 3
    assert ex.right.sample == 3
    with pytest.raises(nbfeat.errors.InputError):
        ex.heatmap.picked = [0, 7]
    assert "image/png" in ex._repr_mimebundle_()
