"""A failed input anywhere in a batch (first, middle, last) is recorded and the run goes on,
in memory and with out=, for files, in-memory images, tensors and texts.

Expected values come from the model's own forward (timm `forward_features`, HF
`output_hidden_states`), run here on the good inputs only.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.examples import save_tiny_gpt2
from tests.conftest import write_images

N = 7  # batch_size 4: positions 0 (first), 2 (middle of a batch), 6 (last)
WHERE = {"first": 0, "middle": 2, "last": N - 1}


@pytest.fixture(scope="module")
def resnet():
    return nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    return nbfeat.load("hf:" + str(save_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))), device="cpu")


def _reference_images(bb, pil_images):
    x = torch.stack([bb.preprocess(im) for im in pil_images])
    with torch.inference_mode():
        return bb.model.forward_features(x).mean((2, 3)).numpy()


def _check(ds, good_ids, bad_id, expected, name="layer4"):
    assert list(ds["sample"].values) == good_ids
    np.testing.assert_allclose(ds[name].values, expected, rtol=1e-4, atol=1e-5)
    failed = json.loads(ds.attrs["failed"])
    assert [r["sample"] for r in failed] == [bad_id] and ds.attrs["n_failed"] == 1


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("kind", ["files", "arrays", "tensor"])
@pytest.mark.parametrize("sink", ["memory", "store"])
def test_image_inputs_with_one_broken(resnet, tmp_path, where, kind, sink):
    from PIL import Image

    bad = WHERE[where]
    paths = write_images(tmp_path / "im", n_per_class=N, classes=("c",), size=(32, 40))
    good = [Image.open(p).convert("RGB") for i, p in enumerate(paths) if i != bad]
    if kind == "files":
        paths[bad].write_bytes(b"not an image")
        inputs, ids = tmp_path / "im", [f"c/img{i}.png" for i in range(N)]
        expected = _reference_images(resnet, good)
    elif kind == "arrays":
        inputs = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
        inputs[bad] = np.zeros((5,), dtype=np.uint8)  # not an image array
        ids = [str(i) for i in range(N)]
        expected = _reference_images(resnet, good)
    else:
        inputs = torch.stack([resnet.preprocess(Image.open(p).convert("RGB")) for p in paths])
        inputs[bad, 0, 3, 3] = float("nan")
        ids = [str(i) for i in range(N)]
        with torch.inference_mode():
            expected = resnet.model.forward_features(inputs[[i for i in range(N) if i != bad]]).mean((2, 3)).numpy()
    kw = dict(layers="layer4", pool="mean", batch_size=4, progress=False)
    if sink == "store":
        resnet.extract(inputs, out=tmp_path / "o.zarr", **kw)
        ds = nbfeat.open(tmp_path / "o.zarr")
    else:
        ds = resnet.extract(inputs, **kw)
    _check(ds, [i for k, i in enumerate(ids) if k != bad], ids[bad], expected)


@pytest.mark.parametrize("where", list(WHERE))
@pytest.mark.parametrize("sink", ["memory", "store"])
def test_texts_with_one_empty(gpt2, tmp_path, where, sink):
    from nbfeat.examples import SENTENCES

    bad = WHERE[where]
    texts = (SENTENCES + SENTENCES)[:N]
    texts[bad] = ""
    kw = dict(layers="h.0", pool="mean", batch_size=4, progress=False)
    if sink == "store":
        gpt2.extract(texts, out=tmp_path / "t.zarr", **kw)
        ds = nbfeat.open(tmp_path / "t.zarr")
    else:
        ds = gpt2.extract(texts, **kw)
    expected = []
    with torch.inference_mode():
        for t in texts:
            if t:
                ids = gpt2.tokenizer(t, return_tensors="pt")["input_ids"]
                expected.append(gpt2.model(input_ids=ids, output_hidden_states=True).hidden_states[1][0].mean(0).numpy())
    _check(ds, [str(i) for i in range(N) if i != bad], str(bad), np.stack(expected), name="h.0")
    assert list(ds["text"].values) == [t for t in texts if t]
