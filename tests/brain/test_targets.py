"""Targets as labelled data, and two-way conversion with rsatoolbox."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rsatoolbox
import xarray as xr
from scipy.spatial.distance import pdist, squareform

from nbfeat.brain import (
    as_responses,
    as_target_rdms,
    from_rsatoolbox,
    rdms,
    responses,
    target_rdms,
    to_rsatoolbox,
)
from nbfeat.errors import NbfeatError
from tests.brain.helpers import ids


def test_responses_and_rdms_are_labelled_and_match_scipy():
    rng = np.random.default_rng(0)
    vals = rng.normal(size=(8, 6, 3))
    r = responses(vals, samples=ids(8), neuroid_coords={"region": ["V1"] * 3 + ["IT"] * 3})
    assert r.dims == ("sample", "neuroid", "repeat") and list(r["sample"].values) == ids(8)
    t = target_rdms(r, "correlation", by="region")
    assert t.dims == ("target", "repeat", "sample", "sample_")
    assert list(t["target"].values) == ["V1", "IT"]
    np.testing.assert_allclose(t.sel(target="IT").isel(repeat=2).values, squareform(pdist(vals[:, 3:, 2], "correlation")), atol=1e-12)
    mean = target_rdms(r, "euclidean", per_repeat=False)
    np.testing.assert_allclose(mean.isel(target=0).values, squareform(pdist(vals.mean(2), "euclidean")), atol=1e-10)
    m = rdms(squareform(pdist(vals[:, :, 0])), samples=ids(8))
    assert m.dims == ("sample", "sample_") and list(m["sample_"].values) == ids(8)
    assert as_target_rdms(m).dims == ("target", "sample", "sample_")


def test_dataframes_are_responses():
    df = pd.DataFrame(np.arange(12.0).reshape(4, 3), index=ids(4), columns=["u1", "u2", "u3"])
    r = as_responses(df)
    assert r.dims == ("sample", "neuroid") and list(r["neuroid"].values) == ["u1", "u2", "u3"]


def test_round_trip_with_rsatoolbox_dataset_and_rdms():
    rng = np.random.default_rng(1)
    vals = rng.normal(size=(7, 5, 2))
    r = responses(vals, samples=ids(7), neuroid_coords={"region": list("aabbb")}, sample_coords={"label": list("xxxyyyy")})
    ds = to_rsatoolbox(r)
    assert isinstance(ds, rsatoolbox.data.Dataset)
    assert ds.measurements.shape == (14, 5)
    assert list(ds.obs_descriptors["sample"][:7]) == ids(7)
    back = from_rsatoolbox(ds)
    xr.testing.assert_allclose(back.drop_vars("label"), r.drop_vars("label"))
    assert list(back["label"].values) == list("xxxyyyy")
    # rsatoolbox's own RDMs of the dataset equal ours
    one = to_rsatoolbox(r.isel(repeat=0, drop=True))
    ref = rsatoolbox.rdm.calc_rdm(one, method="correlation", descriptor="sample")
    ours = target_rdms(r.isel(repeat=0, drop=True), "correlation")
    np.testing.assert_allclose(ours.isel(target=0).values, ref.get_matrices()[0], atol=1e-10)
    rd = to_rsatoolbox(target_rdms(r, "correlation"))
    assert isinstance(rd, rsatoolbox.rdm.RDMs) and rd.n_rdm == 2
    back_rdm = from_rsatoolbox(rd)
    xr.testing.assert_allclose(back_rdm, target_rdms(r, "correlation").drop_vars(["label", "label_"]).assign_coords(label=("sample", list("xxxyyyy")), label_=("sample_", list("xxxyyyy"))))
    # an RDMs object from rsatoolbox itself, with subjects and no target descriptor
    subj = rsatoolbox.rdm.RDMs(np.stack([ref.get_vectors()[0]] * 3), pattern_descriptors={"conds": ids(7)})
    got = from_rsatoolbox(subj)
    assert got.dims == ("target", "subject", "sample", "sample_") and got.sizes["subject"] == 3
    assert list(got["sample"].values) == ids(7)


def test_unequal_repeats_and_bad_shapes_are_clear():
    ds = rsatoolbox.data.Dataset(np.zeros((5, 2)), obs_descriptors={"stimulus": ["a", "a", "b", "b", "b"]})
    with pytest.raises(NbfeatError, match="different numbers of times"):
        from_rsatoolbox(ds)
    with pytest.raises(NbfeatError, match="sample, neuroid"):
        responses(np.zeros(3), samples=["a", "b", "c"])
    with pytest.raises(NbfeatError, match="by='roi'"):
        target_rdms(responses(np.zeros((3, 2)), samples=["a", "b", "c"]), by="roi")
    with pytest.raises(NbfeatError, match="names the stimuli"):
        from_rsatoolbox(rsatoolbox.data.Dataset(np.zeros((2, 2)), obs_descriptors={"foo": ["a", "b"]}))


def test_noise_ceiling_picks_the_ceiling_that_fits_and_missing_packages_name_pip(monkeypatch):
    import sys

    from nbfeat.brain import noise_ceiling, rdm_ceiling, split_half
    from nbfeat.errors import MissingDependencyError

    r = responses(np.random.default_rng(3).normal(size=(10, 4, 4)), samples=ids(10))
    xr.testing.assert_identical(noise_ceiling(r), split_half(r))
    xr.testing.assert_identical(noise_ceiling(r, kind="rsa", corr="spearman"), rdm_ceiling(target_rdms(r), "spearman"))
    with pytest.raises(NbfeatError, match="at least 2 repeats"):
        split_half(r.isel(repeat=0, drop=True))
    monkeypatch.setitem(sys.modules, "rsatoolbox", None)
    with pytest.raises(MissingDependencyError, match="pip install rsatoolbox"):
        to_rsatoolbox(r)
