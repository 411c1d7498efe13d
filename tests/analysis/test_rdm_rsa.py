"""RDMs equal scipy pdist; RSA equals scipy pearson/spearman; labels on both axes; dask = numpy."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from numpy.testing import assert_allclose
from scipy.spatial.distance import pdist, squareform
from scipy.stats import pearsonr, spearmanr

from nbfeat.analysis.rdm import rsa
from nbfeat.errors import NbfeatError
from tests.analysis.builders import conv_dataset, text_dataset


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_rdm_equals_scipy_pdist(metric):
    da = conv_dataset()["layer3"]
    r = da.nbfeat.rdm(metric)
    ref = squareform(pdist(da.values.reshape(8, -1).astype(np.float64), metric=metric))
    assert r.dims == ("sample", "sample_")
    assert_allclose(r.values, ref, rtol=1e-9, atol=1e-9)
    assert r.attrs["rdm_metric"] == metric and r.attrs["module"] == "layer3"


def test_rdm_labels_on_both_axes():
    ds = conv_dataset()
    r = ds["layer3"].nbfeat.rdm()
    assert list(r["sample_"].values) == list(ds["sample"].values)
    assert list(r["label_"].values) == list(ds["label"].values)
    assert list(r["label"].values) == list(ds["label"].values)
    a, b = str(ds["sample"][0].values), str(ds["sample"][5].values)
    assert float(r.sel(sample=a, sample_=b)) == pytest.approx(float(r.values[0, 5]))


@pytest.mark.parametrize("metric", ["correlation", "euclidean", "cosine"])
def test_rdm_on_dask_is_lazy_and_equal(metric):
    ds = conv_dataset()
    lazy = ds.chunk({"sample": 3})["layer3"].nbfeat.rdm(metric)
    assert lazy.chunks is not None
    assert_allclose(lazy.values, ds["layer3"].nbfeat.rdm(metric).values, rtol=1e-10, atol=1e-12)


def test_dataset_rdm_is_a_dataset_of_rdms():
    out = conv_dataset().nbfeat.rdm("euclidean")
    assert isinstance(out, xr.Dataset)
    assert out["layer3"].dims == ("sample", "sample_") and out["layer4"].shape == (8, 8)


@pytest.mark.parametrize("corr,ref", [("pearson", pearsonr), ("spearman", spearmanr)])
def test_rsa_equals_scipy(corr, ref):
    ds = conv_dataset(n=12)
    a, b = ds["layer3"].nbfeat.rdm(), ds["layer4"].nbfeat.rdm("euclidean")
    iu = np.triu_indices(12, k=1)
    expected = ref(a.values[iu], b.values[iu])[0]
    assert rsa(a, b, corr) == pytest.approx(expected, rel=1e-10)
    assert ds["layer3"].nbfeat.rsa(ds["layer4"], corr=corr, metric="correlation") == pytest.approx(
        ref(a.values[iu], ds["layer4"].nbfeat.rdm().values[iu])[0], rel=1e-10
    )
    assert rsa(a, a, corr) == pytest.approx(1.0)


def test_unpooled_text_tells_the_user_to_pool():
    block = text_dataset()["block"]
    with pytest.raises(NbfeatError, match="pool"):
        rsa(block.nbfeat.rdm(), block.nbfeat.rdm())
    pooled = block.nbfeat.pool("mean")
    assert rsa(pooled.nbfeat.rdm(), pooled.nbfeat.rdm()) == pytest.approx(1.0)
