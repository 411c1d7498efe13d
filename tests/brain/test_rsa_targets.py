"""nbfeat.compare(features, targets): every model and layer against every target."""

from __future__ import annotations

import numpy as np
import pytest
import rsatoolbox
from rsatoolbox.inference.noise_ceiling import boot_noise_ceiling
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

import nbfeat
from nbfeat.analysis.align import SampleMismatchWarning
from nbfeat.brain import rdm_ceiling, target_rdms, to_rsatoolbox
from nbfeat.brain.result import BrainScores
from nbfeat.errors import NbfeatError
from tests.brain.helpers import simulated, three_layers

METHOD = {"pearson": "corr", "spearman": "spearman", "kendall": "tau-a"}


@pytest.fixture(scope="module")
def data():
    dt = three_layers(n=30)
    resp, _ = simulated(dt, v=8, k=3, noise=1.0)
    return dt, resp


def _rdm(dt, node, var, metric="correlation"):
    return rsatoolbox.rdm.RDMs(pdist(np.asarray(dt[node][var].values), metric)[None])


@pytest.mark.parametrize("corr", ["pearson", "spearman", "kendall"])
def test_scores_equal_rsatoolbox_and_the_ceiling_too(data, corr):
    dt, resp = data
    t = target_rdms(resp, "correlation", by="region")
    res = nbfeat.compare(dt, t, rsa_corr=corr)
    assert isinstance(res, BrainScores)
    assert res.scores.dims == ("rep", "target")
    assert list(res.scores["target"].values) == ["V1", "IT"]
    assert sorted(res.scores["rep"].values) == ["m1/a", "m1/b", "m2/c"]
    rt = to_rsatoolbox(t)
    for node, var, rep in (("/m1/a", "a", "m1/a"), ("/m1/b", "b", "m1/b"), ("/m2", "c", "m2/c")):
        model = _rdm(dt, node, var)
        for tgt in ("V1", "IT"):
            data_rdms = rt.subset("target", tgt)
            expected = rsatoolbox.rdm.compare(model, data_rdms, method=METHOD[corr]).mean()
            assert float(res.scores.sel(rep=rep, target=tgt)) == pytest.approx(expected, rel=1e-9, abs=1e-12)
    for tgt in ("V1", "IT"):
        with np.errstate(all="ignore"), pytest.warns(UserWarning) if corr == "kendall" else _nullctx():
            lo, hi = boot_noise_ceiling(rt.subset("target", tgt), method=METHOD[corr], rdm_descriptor="repeat")
        assert float(res.ceiling["lower"].sel(target=tgt)) == pytest.approx(lo, rel=1e-9)
        assert float(res.ceiling["upper"].sel(target=tgt)) == pytest.approx(hi, rel=1e-9)
    np.testing.assert_allclose(res.normalized.values, (res.scores / res.ceiling["upper"]).values)
    np.testing.assert_allclose(rdm_ceiling(t, corr)["lower"].values, res.ceiling["lower"].values)


class _nullctx:
    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


def test_single_rdm_target_scores_equal_scipy_and_bootstrap_brackets_it(data):
    dt, resp = data
    t = target_rdms(resp, "euclidean", per_repeat=False)
    res = nbfeat.compare(dt, t, rsa_corr="spearman", rdm_metric="euclidean", bootstrap=100, seed=0)
    tv = pdist(resp.mean("repeat").values, "euclidean")
    mv = pdist(np.asarray(dt["/m1/b"]["b"].values), "euclidean")
    s = float(res.scores.sel(rep="m1/b").squeeze())
    assert s == pytest.approx(spearmanr(mv, tv)[0], rel=1e-10)
    lo, hi = res.ci.sel(rep="m1/b", bound="low").item(), res.ci.sel(rep="m1/b", bound="high").item()
    assert lo < s < hi and hi - lo < 0.5
    assert res.ceiling is None
    again = nbfeat.compare(dt, t, rsa_corr="spearman", rdm_metric="euclidean", bootstrap=100, seed=0)
    np.testing.assert_array_equal(again.ci.values, res.ci.values)  # seeded
    tab = res.table
    assert {"model", "layer", "depth", "target", "score", "ci_low", "ci_high"} <= set(tab.columns)
    assert res.best.set_index("model").loc["m1", "layer"] == "b"
    assert res.source_of("m1/b") == {"model": "m1", "layer": "b", "node": "/m1/b", "variable": "b", "isel": {}}
    assert "<img" in res._repr_html_() and "<table" in res._repr_html_()


def test_targets_in_another_order_or_with_fewer_samples(data):
    dt, resp = data
    t = target_rdms(resp, "correlation")
    ref = nbfeat.compare(dt, t).scores
    perm = np.random.default_rng(5).permutation(t.sizes["sample"])
    shuffled = t.isel(sample=perm, sample_=perm)
    np.testing.assert_allclose(nbfeat.compare(dt, shuffled).scores.values, ref.values, rtol=1e-10)
    fewer = resp.isel(sample=slice(0, 25))
    with pytest.warns(SampleMismatchWarning, match="25 samples are shared"):
        res = nbfeat.compare(dt, target_rdms(fewer, "correlation"))
    sub = t.isel(sample=slice(0, 25), sample_=slice(0, 25))
    np.testing.assert_allclose(res.scores.values, nbfeat.compare(dt.isel(sample=slice(0, 25)), sub).scores.values, rtol=1e-10)


def test_responses_as_targets_and_errors(data):
    dt, resp = data
    direct = nbfeat.compare(dt, resp, target_metric="correlation")
    np.testing.assert_allclose(direct.scores.values, nbfeat.compare(dt, target_rdms(resp)).scores.values)
    with pytest.raises(NbfeatError, match="encode"):
        nbfeat.compare(dt, resp, method="cka")
    with pytest.raises(NbfeatError, match="ci="):
        nbfeat.compare(dt, resp, bootstrap=5, ci=95)
    assert nbfeat.compare(dt, "cka").method == "cka"  # the method positionally, as before


def test_lazy_features_give_the_same_scores(data):
    dt, resp = data
    lazy = dt.chunk({"sample": 7})
    np.testing.assert_allclose(nbfeat.compare(lazy, resp).scores.values, nbfeat.compare(dt, resp).scores.values, rtol=1e-10)
    assert pearsonr  # scipy is the reference above


def test_stacked_layer_nodes_score_per_depth_and_know_their_source():
    import xarray as xr

    rng = np.random.default_rng(4)
    n = 20
    x = rng.normal(size=(n, 3, 6))
    ds = xr.Dataset(
        {"block": (("sample", "layer", "channel"), x)},
        coords={"sample": [f"s{i}" for i in range(n)], "layer": [0, 1, 2], "module": ("layer", ["h.0", "h.1", "h.2"])},
        attrs={"model": "hf:tiny"},
    )
    target = nbfeat.brain.rdms(squareform_of(x[:, 2]), samples=ds["sample"].values)
    res = nbfeat.compare(ds, target)
    assert list(res.scores["layer"].values) == ["block[0]", "block[1]", "block[2]"]
    assert list(res.scores["depth"].values) == [0.0, 0.5, 1.0]
    assert float(res.scores.sel(rep="hf:tiny/block[2]").squeeze()) == pytest.approx(1.0)
    assert res.source_of("hf:tiny/block[1]")["isel"] == {"layer": 1}
    enc = ds.nbfeat.encode(nbfeat.brain.responses(x[:, 2] @ rng.normal(size=(6, 3)), samples=ds["sample"].values), cv=4, backend="sklearn")
    assert str(enc.scores.squeeze().idxmax().item()) == "hf:tiny/block[2]"


def squareform_of(x):
    from scipy.spatial.distance import squareform

    return squareform(pdist(x, "correlation"))
