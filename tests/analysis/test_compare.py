"""nbfeat.compare over Datasets, DataTrees and dicts: values, labels, layer splitting, dask."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import pdist
from scipy.stats import spearmanr

import nbfeat
from nbfeat.analysis import compare as compare_mod
from nbfeat.analysis.cka import linear_cka
from nbfeat.analysis.compare import Comparison
from nbfeat.errors import NbfeatError
from tests.analysis.builders import conv_dataset, text_dataset, two_model_tree


def _flat(da):
    return da.values.reshape(da.sizes["sample"], -1).astype(np.float64)


def test_compare_is_the_public_entry_point():
    assert nbfeat.compare is compare_mod.compare


def test_rsa_over_a_two_model_tree_matches_scipy():
    dt = two_model_tree()
    res = nbfeat.compare(dt, method="rsa", rsa_corr="spearman", rdm_metric="euclidean")
    assert isinstance(res, Comparison)
    m = res.matrix
    assert m.dims == ("rep", "rep_")
    assert list(m["model"].values) == ["timm:resnet18"] * 2 + ["torchvision:alexnet"] * 2
    assert list(m["layer"].values) == ["layer3", "layer4", "features.10", "classifier.4"]
    assert list(m["rep_"].values) == list(m["rep"].values)
    assert list(m["model_"].values) == list(m["model"].values)
    arrays = [dt["timm:resnet18"]["layer3"], dt["timm:resnet18"]["layer4"],
              dt["torchvision:alexnet/features.10"]["features.10"], dt["torchvision:alexnet/classifier.4"]["classifier.4"]]
    vecs = [pdist(_flat(a), "euclidean") for a in arrays]
    for i in range(4):
        for j in range(4):
            assert float(m.values[i, j]) == pytest.approx(spearmanr(vecs[i], vecs[j])[0], rel=1e-10)
    assert np.allclose(np.diag(m.values), 1.0)
    t = res.table
    assert list(t.columns) == ["model1", "layer1", "model2", "layer2", "score"]
    assert len(t) == 6
    row = t[(t.layer1 == "layer4") & (t.layer2 == "features.10")].iloc[0]
    assert row.model1 == "timm:resnet18" and row.model2 == "torchvision:alexnet"
    assert row.score == pytest.approx(float(m.sel(rep="timm:resnet18/layer4", rep_="torchvision:alexnet/features.10")))


@pytest.mark.parametrize("gram_cache", [2048, 0])  # cached Gram matrices, then pairwise streaming
def test_cka_over_a_dict_matches_pairwise_linear_cka(monkeypatch, gram_cache):
    monkeypatch.setattr(compare_mod, "GRAM_CACHE_MAX_SAMPLES", gram_cache)
    ds = conv_dataset(n=10)
    data = {"a": ds["layer3"], "b": ds["layer4"], "c": ds["layer4"] * 3.0 + 1.0}
    res = nbfeat.compare(data, method="cka")
    m = res.matrix
    assert list(m["rep"].values) == ["a/layer3", "b/layer4", "c/layer4"]
    assert list(m["model"].values) == ["a", "b", "c"]
    expected = linear_cka(_flat(ds["layer3"]), _flat(ds["layer4"]))
    assert float(m.sel(rep="a/layer3", rep_="b/layer4")) == pytest.approx(expected, rel=1e-9)
    assert float(m.sel(rep="b/layer4", rep_="c/layer4")) == pytest.approx(1.0)
    assert np.allclose(m.values, m.values.T)


def test_stacked_layers_are_split_and_text_is_pooled_first():
    ds = text_dataset(n=4)
    with pytest.raises(NbfeatError, match="pool"):
        nbfeat.compare(ds, method="rsa")
    res = nbfeat.compare(ds, method="rsa", pool="mean")
    assert list(res.matrix["layer"].values) == ["block[0]", "block[1]", "block[2]"]
    assert list(res.matrix["model"].values) == ["hf:tiny-gpt2"] * 3
    pooled = ds["block"].nbfeat.pool("mean")
    r0 = pdist(pooled.isel(layer=0).values.astype(np.float64), "correlation")
    r2 = pdist(pooled.isel(layer=2).values.astype(np.float64), "correlation")
    assert float(res.matrix.values[0, 2]) == pytest.approx(np.corrcoef(r0, r2)[0, 1], rel=1e-9)
    cka = nbfeat.compare(ds, method="cka", pool="mean")
    assert cka.matrix.shape == (3, 3)


@pytest.mark.parametrize("method", ["rsa", "cka"])
def test_dask_backed_input_gives_the_same_numbers(method):
    ds = conv_dataset(n=9)
    ref = nbfeat.compare(ds, method=method).matrix.values
    lazy = nbfeat.compare(ds.chunk({"sample": 4}), method=method).matrix.values
    np.testing.assert_allclose(lazy, ref, rtol=1e-9, atol=1e-12)
    assert ds.nbfeat.compare(method=method).matrix.shape == (2, 2)


def test_samples_are_aligned_by_id():
    ds = conv_dataset(n=8)
    shuffled = ds["layer4"].isel(sample=[3, 1, 0, 2, 7, 6, 5, 4])
    res = nbfeat.compare({"a": ds["layer4"], "b": shuffled}, method="rsa")
    assert float(res.matrix.values[0, 1]) == pytest.approx(1.0)


def test_clear_errors():
    ds = conv_dataset()
    with pytest.raises(NbfeatError, match="'rsa' or 'cka'"):
        nbfeat.compare(ds, method="svcca")
    with pytest.raises(NbfeatError, match="at least 2"):
        nbfeat.compare({"a": ds["layer3"]})
    with pytest.raises(NbfeatError, match="Dataset, a DataTree or a dict"):
        nbfeat.compare([ds["layer3"], ds["layer4"]])
    with pytest.raises(NbfeatError, match="metric"):
        nbfeat.compare(ds, rdm_metric="manhattan")
    assert "Comparison(method='rsa'" in repr(nbfeat.compare(ds))


def test_tree_without_model_attrs_uses_node_names():
    dt = two_model_tree()
    plain = xr.DataTree.from_dict({
        "/": dt.to_dataset(inherit=False),
        "/m1": dt["timm:resnet18"].to_dataset(inherit=False).drop_attrs(),
        "/org--m2": xr.Dataset({"x": dt["timm:resnet18"]["layer4"].variable}),
    })
    res = nbfeat.compare(plain)
    assert list(res.matrix["model"].values) == ["m1", "m1", "org/m2"]
