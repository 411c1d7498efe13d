"""The notebook cache: the same extraction of the same inputs is read back, not recomputed
(also by a freshly loaded model, as after a kernel restart); changed inputs are recomputed;
info() lists entries; clear() removes only what nbfeat wrote."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat

KW = dict(layers="layer4", pool="mean", batch_size=4, progress=False)


def forwarded(model):
    """Samples the model runs on, counted by a plain forward hook in the test."""
    seen = []
    h = model.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    return seen, h


@pytest.fixture
def x():
    return torch.randn(8, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def reference(bb, x):
    with torch.inference_mode():
        return bb.model.forward_features(x).mean((2, 3)).numpy()


def test_same_call_reads_the_cache_across_a_reload(tmp_path, monkeypatch, x):
    monkeypatch.setenv("NBFEAT_CACHE_DIR", str(tmp_path / "cache"))
    bb = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    seen, h = forwarded(bb.model)
    first = bb.extract(x, cache=True, **KW)
    h.remove()
    assert sum(seen) == 1 + 8  # the probe, then every sample
    np.testing.assert_allclose(first["layer4"].values, reference(bb, x), rtol=1e-5, atol=1e-6)

    again = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")  # a new kernel's model
    seen, h = forwarded(again.model)
    second = again.extract(x, cache=True, **KW)
    h.remove()
    assert sum(seen) == 1  # the probe only: the features come from the cache
    np.testing.assert_array_equal(second["layer4"].values, first["layer4"].values)
    assert second["layer4"].chunks is None  # in memory, like an uncached result

    y = x.clone()
    y[3] += 1
    changed = again.extract(y, cache=True, **KW)  # other content: its own entry, never stale
    np.testing.assert_allclose(changed["layer4"].values, reference(again, y), rtol=1e-5, atol=1e-6)
    other = again.extract(x, cache=True, **{**KW, "pool": "max"})
    with torch.inference_mode():
        np.testing.assert_allclose(other["layer4"].values, again.model.forward_features(x).amax((2, 3)).numpy(), rtol=1e-5, atol=1e-6)

    table = nbfeat.cache.info()
    assert len(table) == 3 and set(table.columns) >= {"key", "model", "size", "created"}
    assert set(table["model"]) == {"timm:test_resnet"} and (table["size"] > 0).all()
    assert (table["samples"] == 8).all()


def test_a_folder_edit_is_recomputed_from_the_cache(tmp_path):
    from PIL import Image

    from tests.conftest import write_images

    paths = write_images(tmp_path / "im", n_per_class=2, size=(32, 40))
    bb = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    cache = tmp_path / "cache"
    bb.extract(tmp_path / "im", cache=cache, **KW)
    Image.fromarray(np.zeros((32, 40, 3), np.uint8)).save(paths[1])
    with pytest.warns(UserWarning, match="changed since"):
        ds = nbfeat.extract(bb, tmp_path / "im", cache=cache, **KW)
    xs = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in sorted(paths)])
    np.testing.assert_allclose(ds["layer4"].values, reference(bb, xs), rtol=1e-4, atol=1e-5)


def test_clear_removes_only_cache_entries(tmp_path, x):
    cache = tmp_path / "cache"
    bb = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    bb.extract(x, cache=cache, **KW)
    (cache / "notes.txt").write_text("mine")
    lookalike = cache / ("0" * 16 + "-" + "1" * 16 + ".zarr")  # nbfeat's name, not its store
    lookalike.mkdir()
    (lookalike / "data.bin").write_bytes(b"mine")
    assert len(nbfeat.cache.info(cache)) == 1
    assert nbfeat.cache.clear(cache, model="timm:other") == 0
    assert nbfeat.cache.clear(cache) == 1
    assert nbfeat.cache.info(cache).empty
    assert (cache / "notes.txt").read_text() == "mine" and (lookalike / "data.bin").read_bytes() == b"mine"
    assert sorted(p.name for p in cache.iterdir()) == sorted(["notes.txt", lookalike.name])


def test_cache_and_out_together_are_refused(tmp_path, x):
    bb = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    with pytest.raises(nbfeat.errors.NbfeatError, match="either out= .* or cache="):
        bb.extract(x, out=tmp_path / "o.zarr", cache=True, **KW)
