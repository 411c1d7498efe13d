"""The budget before the run: bb.estimate is within 10% of the bytes really produced (images
and text), the store fits in its upper bound, and an in-memory extraction that cannot fit
fails before its first batch, saying how much it needs and what to do."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.examples import SENTENCES, save_tiny_gpt2
from tests.conftest import write_images


def produced(ds):
    """Bytes of the feature arrays of a result (Dataset or DataTree)."""
    if hasattr(ds, "children"):
        return sum(int(v.nbytes) for node in ds.subtree for v in node.to_dataset(inherit=False).data_vars.values())
    return sum(int(v.nbytes) for v in ds.data_vars.values())


@pytest.fixture(scope="module")
def bb():
    return nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")


def test_image_estimate_matches_what_is_produced(bb, tmp_path):
    write_images(tmp_path / "im", n_per_class=5, size=(48, 64))
    kw = dict(layers=["layer2", "layer4"], pool={"layer4": "mean"})
    est = bb.estimate(tmp_path / "im", **kw)
    ds = bb.extract(tmp_path / "im", progress=False, **kw)
    assert abs(est.total_bytes - produced(ds)) <= 0.1 * produced(ds)
    assert est.samples == 10 and set(est.variables) == {"layer2", "layer4"}
    assert est.variables["layer4"]["bytes_per_sample"] == ds["layer4"]["layer4"].values[0].nbytes
    out = tmp_path / "f.zarr"
    bb.extract(tmp_path / "im", out=out, progress=False, **kw)
    on_disk = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    assert on_disk <= est.store_bytes
    assert "upper bound" in repr(est) and list(est.table()["variable"]) == ["layer2", "layer4"]


def test_text_estimate_matches_what_is_produced(tmp_path):
    lm = nbfeat.load("hf:" + str(save_tiny_gpt2(tmp_path / "gpt2")), device="cpu")
    texts = SENTENCES + ["a", "the model reads one token at a time and then another and another"]
    est = lm.estimate(texts, nodes="block")
    ds = lm.extract(texts, nodes="block", progress=False)
    assert abs(est.total_bytes - produced(ds)) <= 0.1 * produced(ds)
    assert est.variables["block"]["dtype"] == ds["block"].dtype.name
    assert est.variables["block"]["shape"] == ds["block"].shape  # token length of the run


def test_an_extraction_that_cannot_fit_fails_before_the_first_batch(bb, monkeypatch):
    x = torch.randn(64, 3, 32, 32)
    monkeypatch.setenv("NBFEAT_MEMORY_LIMIT", "64K")
    seen = []
    h = bb.model.register_forward_pre_hook(lambda m, a: seen.append(a[0].shape[0]))
    try:
        with pytest.raises(nbfeat.errors.NbfeatError, match=r"needs .* in memory .* 64\.0 KiB is available.*out=.*pool.*fewer layers"):
            bb.extract(x, layers="layer2", progress=False)
    finally:
        h.remove()
    assert sum(seen) == 1  # the probe, no batch
    monkeypatch.setenv("NBFEAT_MEMORY_LIMIT", "1G")
    assert bb.extract(x[:4], layers="layer2", pool="mean", progress=False)["layer2"].shape[0] == 4
    np.testing.assert_equal(nbfeat.engine.estimate.parse_bytes("1.5M"), int(1.5 * 2**20))
