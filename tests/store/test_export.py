"""Exports read back to the same values with the readers users have: xarray, h5py, numpy,
scipy.io, torch.load."""

from __future__ import annotations

import h5py
import numpy as np
import pytest
import scipy.io
import torch
import xarray as xr

import nbfeat
import nbfeat.store as st
from nbfeat.errors import NbfeatError
from tests.store.helpers import tensors


@pytest.fixture(scope="module")
def store(bb, tmp_path_factory):
    path = tmp_path_factory.mktemp("export") / "f.zarr"
    run = bb.prepare(tensors(20), layers=["layer3", "layer4"], batch_size=4)
    st.write(run, path, progress=False, chunk_size=8)
    mem = run.to_xarray()
    return (
        path,
        {n: mem[n][n].values for n in ("layer3", "layer4")},
        [str(s) for s in mem["sample"].values],
    )


def test_netcdf_keeps_dims_groups_and_attrs(store, tmp_path):
    path, want, ids = store
    out = st.export(path, tmp_path / "f.nc")
    back = xr.open_datatree(out)
    for name, values in want.items():
        np.testing.assert_array_equal(back[name][name].values, values)
    assert list(back["sample"].values) == ids
    assert back.attrs["model"] == "timm:test_resnet" and back.attrs["n_failed"] == 0
    one = st.export(path, tmp_path / "one.nc", variables=["layer4"])
    assert list(xr.open_datatree(one).children) == ["layer4"]
    with pytest.raises(NbfeatError, match="flatten=True is for the flat formats"):
        st.export(path, tmp_path / "x.nc", flatten=True)


def test_hdf5_streams_each_variable(store, tmp_path):
    path, want, ids = store
    out = st.export(nbfeat.open(path), tmp_path / "f.h5")
    with h5py.File(out) as f:
        for name, values in want.items():
            np.testing.assert_array_equal(f[name][:], values)
        assert [s.decode() for s in f["sample"][:]] == ids
        assert f["layer3"].attrs["module"] == "layer3" and f.attrs["model"] == "timm:test_resnet"


def test_npy_folder_like_thingsvision(store, tmp_path):
    path, want, ids = store
    out = st.export(path, tmp_path / "npy", format="npy", flatten=True)
    for name, values in want.items():
        np.testing.assert_array_equal(np.load(out / f"{name}.npy"), values.reshape(len(ids), -1))
    assert (out / "file_names.txt").read_text().split() == ids
    single = st.export(path, tmp_path / "layer4.npy", variables=["layer4"])
    np.testing.assert_array_equal(np.load(single), want["layer4"])
    with pytest.raises(NbfeatError, match="one variable, there are 2"):
        st.export(path, tmp_path / "both.npy")


def test_mat_and_pt(store, tmp_path):
    path, want, ids = store
    mat = scipy.io.loadmat(st.export(path, tmp_path / "f.mat", flatten=True))
    for name, values in want.items():
        np.testing.assert_array_equal(mat[name], values.reshape(len(ids), -1))
    assert [str(np.squeeze(s)) for s in mat["sample"].ravel()] == ids
    pt = torch.load(st.export(path, tmp_path / "f.pt"), weights_only=True)
    for name, values in want.items():
        np.testing.assert_array_equal(pt[name].numpy(), values)
    assert pt["sample"] == ids


def test_in_memory_result_exports_too(bb, tmp_path):
    ds = bb.extract(tensors(6), layers="layer4", pool="mean", progress=False)
    out = st.export(ds, tmp_path / "f.pt")
    np.testing.assert_array_equal(
        torch.load(out, weights_only=True)["layer4"].numpy(), ds["layer4"].values
    )


def test_clear_errors(store, tmp_path):
    path, _, _ = store
    (tmp_path / "taken.h5").write_text("")
    with pytest.raises(NbfeatError, match="already exists: pass overwrite=True"):
        st.export(path, tmp_path / "taken.h5")
    st.export(path, tmp_path / "taken.h5", overwrite=True)
    with pytest.raises(NbfeatError, match=r"end it with \.nc, \.h5, \.npy, \.mat or \.pt"):
        st.export(path, tmp_path / "f.csv")
    with pytest.raises(NbfeatError, match="No variable 'fc' to export"):
        st.export(path, tmp_path / "f.h5", variables=["fc"])
