"""Real inputs: a zarr store opened lazily, and features extracted from a tiny random model."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from scipy.spatial.distance import pdist

import nbfeat
from tests.analysis.builders import conv_dataset, text_dataset

# zarr 3 notes that fixed-width strings (sample ids) have no v3 spec yet: not ours to fix here
pytestmark = pytest.mark.filterwarnings("ignore:::zarr")


def test_zarr_store_opened_lazily_gives_the_in_memory_numbers(tmp_path):
    ds = conv_dataset(n=9)
    store = tmp_path / "feats.zarr"
    ds.chunk({"sample": 4}).to_zarr(store)
    lazy = xr.open_zarr(store)
    assert lazy["layer3"].chunks is not None
    rdm = lazy["layer3"].nbfeat.rdm()
    assert rdm.chunks is not None  # nothing computed yet
    assert_allclose(rdm.values, ds["layer3"].nbfeat.rdm().values, rtol=1e-10, atol=1e-12)
    for method in ("rsa", "cka"):
        assert_allclose(
            nbfeat.compare(lazy, method=method).matrix.values,
            nbfeat.compare(ds, method=method).matrix.values,
            rtol=1e-9,
        )
    fit = lazy["layer3"].nbfeat.pca(2)
    ref = ds["layer3"].nbfeat.pca(2)
    assert_allclose(np.abs(fit["scores"].values), np.abs(ref["scores"].values), rtol=1e-6, atol=1e-8)
    assert list(fit["label"].values) == list(ds["label"].values)


def test_text_zarr_pooling_is_lazy_and_mask_aware(tmp_path):
    ds = text_dataset()
    ds.chunk({"sample": 2}).to_zarr(tmp_path / "text.zarr")
    lazy = xr.open_zarr(tmp_path / "text.zarr")
    pooled = lazy["block"].nbfeat.pool("mean")
    assert pooled.chunks is not None
    assert_allclose(pooled.values, ds["block"].nbfeat.pool("mean").values, rtol=1e-6)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory):
    from tests.conftest import write_images

    root = tmp_path_factory.mktemp("e2e") / "images"
    write_images(root)
    bb = nbfeat.load("timm:resnet18", pretrained=False)
    return bb.extract(root, layers=["layer3", "layer4", "fc"], progress=False)


def test_analysis_on_real_extraction_output(extracted):
    dt = extracted
    pooled = dt.nbfeat.pool("mean")
    l4 = pooled["layer4"]["layer4"]
    assert l4.dims == ("sample", "channel")
    assert_allclose(l4.values, dt["layer4"]["layer4"].values.mean(axis=(2, 3)), rtol=1e-5, atol=1e-6)
    assert list(l4["label"].values) == list(dt["label"].values)  # root labels reach the children
    assert pooled["fc"]["fc"].attrs["pool"] == dt["fc"]["fc"].attrs["pool"]  # left as it was

    res = nbfeat.compare(dt, method="rsa", pool="mean")
    assert list(res.matrix["layer"].values) == ["layer3", "layer4", "fc"]
    assert set(res.matrix["model"].values) == {"timm:resnet18"}
    a = pdist(l4.values.astype(np.float64), "correlation")
    b = pdist(dt["fc"]["fc"].values.astype(np.float64), "correlation")
    assert float(res.matrix.sel(rep="timm:resnet18/layer4", rep_="timm:resnet18/fc")) == pytest.approx(
        np.corrcoef(a, b)[0, 1], rel=1e-8
    )
    top = dt["fc"]["fc"].nbfeat.topk(3)
    assert top["class_name"].shape == (6, 3) and top.values.sum(axis=1).max() <= 1.0
