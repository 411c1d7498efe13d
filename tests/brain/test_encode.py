"""nbfeat.encode: nested cross-validated ridge per layer, checked against scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.decomposition import PCA
from sklearn.linear_model import RidgeCV
from sklearn.metrics import r2_score
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline

import nbfeat
from nbfeat.brain import split_half
from nbfeat.errors import NbfeatError
from tests.brain.helpers import simulated, three_layers

ALPHAS = np.logspace(-2, 5, 8)


@pytest.fixture(scope="module")
def data():
    dt = three_layers(n=160)
    resp, ceiling = simulated(dt, v=12, k=4, noise=1.5)
    return dt, resp, ceiling


def _sklearn_reference(x, y, alphas, reduce=None, k=None):
    """The pipeline a careful user writes: outer KFold, alphas chosen by RidgeCV on the training fold."""
    pred = np.zeros_like(y)
    chosen = []
    for train, test in KFold(5, shuffle=True, random_state=0).split(x):
        steps = [PCA(n_components=k, random_state=0)] if reduce == "pca" else []
        pipe = make_pipeline(*steps, RidgeCV(alphas=alphas, alpha_per_target=True))
        pipe.fit(x[train], y[train])
        pred[test] = pipe.predict(x[test])
        chosen.append(pipe[-1].alpha_)
    r = np.array([np.corrcoef(pred[:, j], y[:, j])[0, 1] for j in range(y.shape[1])])
    return pred, r, r2_score(y, pred, multioutput="raw_values"), np.array(chosen)


@pytest.mark.parametrize("reduce", [None, "pca"])
def test_values_equal_a_scikit_learn_pipeline(data, reduce):
    dt, resp, _ = data
    res = nbfeat.encode(dt, resp, cv=5, alphas=ALPHAS, backend="sklearn", reduce=reduce, n_components=8, predictions=True)
    x = np.asarray(dt["/m1/b"]["b"].values)
    y = resp.mean("repeat").values
    pred, r, r2, chosen = _sklearn_reference(x, y, ALPHAS, reduce, 8)
    d = res.details.sel(rep="m1/b")
    np.testing.assert_allclose(d["predictions"].values, pred, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(d["r"].values, r, rtol=1e-7)
    np.testing.assert_allclose(d["r2"].values, r2, rtol=1e-7)
    np.testing.assert_array_equal(d["alpha"].values, chosen)
    folds = list(KFold(5, shuffle=True, random_state=0).split(x))
    np.testing.assert_array_equal(np.flatnonzero(res.details["test_fold"].values == 1), folds[1][1])
    assert float(res.scores.sel(rep="m1/b").squeeze()) == pytest.approx(np.median(r))


def test_ground_truth_layer_ranks_first_and_reaches_the_analytic_ceiling(data):
    dt, resp, analytic = data
    res = nbfeat.encode(dt, resp, cv=5, alphas=ALPHAS, by="region", backend="sklearn")
    assert list(res.scores["target"].values) == ["V1", "IT"]
    best = res.best
    assert set(best[best.model == "m1"].layer) == {"b"}
    overall = res.scores.mean("target")
    assert str(overall.idxmax().item()) == "m1/b"
    assert float(overall.sel(rep="m2/c")) < 0.2
    # the r that any model can reach for a repeat-average with this noise: sqrt(1 / (1 + s^2 / k))
    got = float(np.median(res.details["r"].sel(rep="m1/b")))
    assert got == pytest.approx(analytic, abs=0.05)
    # the split-half ceiling estimates that same analytic value, and normalises the score to ~1
    ceil = split_half(resp, n_splits=20, seed=0)
    assert float(ceil["r_ceiling"].median()) == pytest.approx(analytic, abs=0.05)
    assert float(res.normalized.sel(rep="m1/b").mean()) == pytest.approx(1.0, abs=0.08)
    lo, hi = res.ceiling["lower"].values, res.ceiling["upper"].values
    assert np.all(lo <= hi)
    assert "<img" in res._repr_html_()


def test_regularisation_never_sees_the_held_out_fold(data):
    """Replace one fold's held-out responses with wild values: that fold's alphas and
    predictions cannot change. A leaky selection (alphas chosen on all samples) would."""
    dt, resp, _ = data
    folds = list(KFold(5, shuffle=True, random_state=0).split(np.zeros(resp.sizes["sample"])))
    train, test = folds[2]
    wild = resp.copy(deep=True)
    rng = np.random.default_rng(9)
    wild[dict(sample=test)] = wild[dict(sample=test)] * 50 + 1000 * rng.normal(size=wild[dict(sample=test)].shape)
    kw = dict(cv=folds, alphas=ALPHAS, backend="sklearn", predictions=True, reduce="pca", n_components=10)
    a = nbfeat.encode(dt, resp, **kw).details
    b = nbfeat.encode(dt, wild, **kw).details
    np.testing.assert_array_equal(a["alpha"].sel(fold=2).values, b["alpha"].sel(fold=2).values)
    np.testing.assert_allclose(a["predictions"].isel(sample=test).values, b["predictions"].isel(sample=test).values, rtol=1e-9)
    # the check has teeth: choosing alphas with the held-out fold in view does change them
    x = np.asarray(dt["/m1/b"]["b"].values)
    leak_a = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, resp.mean("repeat").values).alpha_
    leak_b = RidgeCV(alphas=ALPHAS, alpha_per_target=True).fit(x, wild.mean("repeat").values).alpha_
    assert not np.array_equal(leak_a, leak_b)


def test_reordered_or_dropped_samples_in_the_responses(data):
    dt, resp, _ = data
    folds = [(np.asarray(a), np.asarray(b)) for a, b in KFold(4, shuffle=True, random_state=1).split(np.zeros(160))]
    ref = nbfeat.encode(dt, resp, cv=folds, alphas=ALPHAS, backend="sklearn").details["r"]
    perm = np.random.default_rng(2).permutation(160)
    # folds index the features' order; responses in any order are paired by sample id
    got = nbfeat.encode(dt, resp.isel(sample=perm), cv=folds, alphas=ALPHAS, backend="sklearn").details["r"]
    np.testing.assert_allclose(got.values, ref.values, rtol=1e-9)
    dup = resp.isel(sample=np.r_[np.arange(160), 3])
    with pytest.raises(NbfeatError, match="repeated sample ids"):
        nbfeat.encode(dt, dup, cv=5, alphas=ALPHAS)


def test_srp_reduction_lazy_features_and_errors(data):
    dt, resp, _ = data
    res = nbfeat.encode(dt, resp, cv=3, alphas=ALPHAS, backend="sklearn", reduce="srp", n_components=12)
    assert res.details["r"].shape == (3, 12)
    lazy = nbfeat.encode(dt.chunk({"sample": 40}), resp, cv=3, alphas=ALPHAS, backend="sklearn")
    eager = nbfeat.encode(dt, resp, cv=3, alphas=ALPHAS, backend="sklearn")
    np.testing.assert_allclose(lazy.details["r"].values, eager.details["r"].values, rtol=1e-9)
    with pytest.raises(NbfeatError, match="alphas"):
        nbfeat.encode(dt, resp, alphas=[-1.0])
    with pytest.raises(NbfeatError, match="reduce="):
        nbfeat.encode(dt, resp, reduce="umap")
    with pytest.raises(NbfeatError, match="backend="):
        nbfeat.encode(dt, resp, backend="jax")


def test_himalaya_backend_where_installed(data):
    pytest.importorskip("himalaya")
    dt, resp, analytic = data
    res = nbfeat.encode(dt, resp, cv=5, alphas=ALPHAS, backend="himalaya")
    assert res.attrs["backend"] == "himalaya"
    assert float(np.median(res.details["r"].sel(rep="m1/b"))) == pytest.approx(analytic, abs=0.06)


def test_himalaya_kernel_ridge_for_layers_wider_than_the_training_set():
    pytest.importorskip("himalaya")
    dt = three_layers(n=40, widths=(60, 80, 10))
    resp, analytic = simulated(dt, v=6, k=4, noise=0.5)
    res = nbfeat.encode(dt, resp, cv=4, alphas=ALPHAS, backend="himalaya", reduce=None)
    assert res.details["alpha"].shape == (3, 4, 6)
    assert str(res.scores.squeeze().idxmax().item()) == "m1/b"
