"""Samples pair by their `sample` id in every comparison; nothing else is aligned.

Reordering, dropping or duplicating samples in one input never changes a score silently:
the score equals scipy on the shared samples, or a warning / error says what happened.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from scipy.spatial.distance import pdist
from scipy.stats import pearsonr, spearmanr

import nbfeat
from nbfeat.analysis.align import SampleMismatchWarning
from nbfeat.analysis.cka import linear_cka
from nbfeat.analysis.rdm import rdm, rsa
from nbfeat.errors import NbfeatError
from tests.analysis.builders import sample_coords


def _pair(n=12, fa=5, fb=9, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, fa))
    b = a @ rng.normal(size=(fa, fb)) + 0.5 * rng.normal(size=(n, fb))  # related, different width
    coords = sample_coords(n)
    da = xr.DataArray(a, dims=("sample", "channel"), coords=coords, name="layer3")
    db = xr.DataArray(b, dims=("sample", "channel"), coords=coords, name="layer4")
    return da, db


def _rsa_ref(a, b, metric="correlation", corr="pearson"):
    f = pearsonr if corr == "pearson" else spearmanr
    return f(pdist(a, metric), pdist(b, metric))[0]


PERM = [5, 2, 11, 0, 7, 1, 9, 3, 10, 4, 8, 6]


@pytest.mark.parametrize("corr", ["pearson", "spearman"])
def test_reordered_input_gives_the_same_score_everywhere(corr):
    da, db = _pair()
    ref = _rsa_ref(da.values, db.values, corr=corr)
    shuffled = db.isel(sample=PERM)
    assert da.nbfeat.rsa(shuffled, corr=corr) == pytest.approx(ref, rel=1e-10)
    assert rsa(rdm(da), rdm(shuffled), corr) == pytest.approx(ref, rel=1e-10)
    res = nbfeat.compare({"a": da, "b": shuffled}, rsa_corr=corr)
    assert float(res.matrix.values[0, 1]) == pytest.approx(ref, rel=1e-10)
    cka_ref = linear_cka(da.values, db.values)
    assert da.nbfeat.cka(shuffled) == pytest.approx(cka_ref, rel=1e-10)
    assert float(nbfeat.compare({"a": da, "b": shuffled}, method="cka").matrix.values[0, 1]) == pytest.approx(cka_ref, rel=1e-9)


def test_an_rdm_with_its_second_axis_in_another_order_is_read_by_ids():
    da, db = _pair()
    r = rdm(db)
    scrambled = r.isel(sample_=PERM)
    assert rsa(rdm(da), scrambled) == pytest.approx(_rsa_ref(da.values, db.values), rel=1e-10)


def test_dropped_samples_warn_and_score_on_the_shared_ones():
    da, db = _pair()
    keep = [0, 1, 3, 4, 6, 7, 8, 10, 11]
    fewer = db.isel(sample=keep)
    ref = _rsa_ref(da.values[keep], db.values[keep])
    with pytest.warns(SampleMismatchWarning, match=r"9 samples are shared.*3 of"):
        got = da.nbfeat.rsa(fewer)
    assert got == pytest.approx(ref, rel=1e-10)
    with pytest.warns(SampleMismatchWarning, match="3 of a"):
        res = nbfeat.compare({"a": da, "b": fewer})
    assert float(res.matrix.values[0, 1]) == pytest.approx(ref, rel=1e-10)
    assert res.matrix.attrs["n_samples"] == 9
    with pytest.warns(SampleMismatchWarning):
        assert linear_cka(da, fewer) == pytest.approx(linear_cka(da.values[keep], db.values[keep]), rel=1e-10)


def test_no_shared_sample_is_an_error():
    da, db = _pair()
    other = db.assign_coords(sample=[f"x{i}" for i in range(db.sizes["sample"])])
    for call in (lambda: da.nbfeat.rsa(other), lambda: nbfeat.compare({"a": da, "b": other}), lambda: da.nbfeat.cka(other)):
        with pytest.raises(NbfeatError, match="no sample id is shared"):
            call()


def test_duplicated_ids_are_refused():
    da, db = _pair()
    dup = xr.concat([db, db.isel(sample=[2])], dim="sample")
    for call in (lambda: da.nbfeat.rsa(dup), lambda: nbfeat.compare({"a": da, "b": dup}), lambda: da.nbfeat.cka(dup),
                 lambda: nbfeat.compare({"a": da, "b": dup}, method="cka")):
        with pytest.raises(NbfeatError, match=r"repeated sample ids \(1 repeated: 'cats/img2.png'\)"):
            call()


def test_different_feature_sizes_and_unindexed_dims_just_work():
    """layer3 (channel=5, y, x) vs layer4 (channel=9): only `sample` is ever aligned."""
    rng = np.random.default_rng(3)
    n = 10
    coords = sample_coords(n)
    fmap = xr.DataArray(rng.normal(size=(n, 5, 3, 2)), dims=("sample", "channel", "y", "x"), coords=coords, name="layer3")
    vec = xr.DataArray(rng.normal(size=(n, 9)), dims=("sample", "channel"), coords={**coords, "channel": np.arange(9)}, name="layer4")
    ds3 = fmap.to_dataset().assign_coords(channel=np.arange(5))
    dt = xr.DataTree.from_dict({"/": xr.Dataset(coords=coords), "/m1": ds3, "/m2": vec.to_dataset()})
    for method in ("rsa", "cka"):
        res = nbfeat.compare(dt, method=method)
        assert res.matrix.shape == (2, 2)
    ref = _rsa_ref(fmap.values.reshape(n, -1), vec.values)
    assert float(nbfeat.compare(dt).matrix.values[0, 1]) == pytest.approx(ref, rel=1e-10)
    assert fmap.nbfeat.rsa(vec) == pytest.approx(ref, rel=1e-10)


def test_plain_arrays_pair_by_position_and_mixed_inputs_are_refused():
    da, db = _pair()
    assert rsa(rdm(da).values, rdm(db).values) == pytest.approx(_rsa_ref(da.values, db.values))
    bare = db.drop_vars(["sample", "label", "path"])
    with pytest.raises(NbfeatError, match="no 'sample' ids"):
        da.nbfeat.rsa(bare)


def test_kendall_tau_a_between_layers_equals_rsatoolbox():
    rsatoolbox = pytest.importorskip("rsatoolbox")
    da, db = _pair()
    # ties on purpose: a coarse RDM, where tau-a and tau-b differ
    coarse = da.round(0)
    res = nbfeat.compare({"a": coarse, "b": db.isel(sample=PERM)}, rsa_corr="kendall", rdm_metric="euclidean")
    r1 = rsatoolbox.rdm.RDMs(pdist(coarse.values, "euclidean")[None])
    r2 = rsatoolbox.rdm.RDMs(pdist(db.values, "euclidean")[None])
    expected = float(rsatoolbox.rdm.compare(r1, r2, method="tau-a")[0, 0])
    assert float(res.matrix.values[0, 1]) == pytest.approx(expected, rel=1e-10)
    assert coarse.nbfeat.rsa(db, corr="kendall", metric="euclidean") == pytest.approx(expected, rel=1e-10)
    assert ds_accessor_targets(da, db)


def ds_accessor_targets(da, db):
    """`.nbfeat.compare(targets)` and `.nbfeat.encode(responses)` reach the brain functions."""
    ds = xr.Dataset({"layer3": da, "layer4": db.rename(channel="c4")})
    target = rdm(db).rename("t")
    res = ds.nbfeat.compare(target)
    assert res.scores.dims == ("rep", "target")
    assert ds.nbfeat.compare(method="cka").method == "cka"
    return True
