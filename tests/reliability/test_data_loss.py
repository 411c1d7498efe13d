"""Never destroy what nbfeat did not write: files planted beside and inside every path nbfeat
writes survive every call, damaged stores are refused (or rebuilt when asked), exports never
delete their source, and chunk files that are gone or damaged never read as values."""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch

import nbfeat
import nbfeat.store as st
from nbfeat.errors import NbfeatError

KW = dict(layers="layer4", pool="mean", batch_size=4, progress=False)


@pytest.fixture(scope="module")
def bb():
    return nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")


@pytest.fixture(scope="module")
def x():
    return torch.randn(10, 3, 32, 32, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def expected(bb, x):
    with torch.inference_mode():
        return bb.model.forward_features(x).mean((2, 3)).numpy()


def plant(*folders: Path) -> dict[Path, bytes]:
    """A user's own files in each folder (and a sub-folder of it); returns their bytes."""
    files = {}
    for i, d in enumerate(folders):
        for f in (d / f"mine{i}.txt", d / "my notes" / f"results{i}.csv"):
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_bytes(f"user data {i} {f.name}".encode())
            files[f] = f.read_bytes()
    return files


def assert_survived(files: dict[Path, bytes]) -> None:
    for f, data in files.items():
        assert f.is_file() and f.read_bytes() == data, f"{f} was lost"


def test_damaged_zarr_json_is_refused_then_rebuilt_only_when_asked(bb, x, expected, tmp_path):
    out = tmp_path / "f.zarr"
    bb.extract(x, out=out, **KW)
    mine = plant(tmp_path, out, out / "layer4", out / "status")
    (out / "zarr.json").write_text('{"zarr_format": 3, "node_ty')  # half-written by a crash
    with pytest.raises(NbfeatError, match="zarr.json is damaged.*overwrite=True"):
        bb.extract(x, out=out, **KW)
    assert_survived(mine)
    assert (out / "layer4" / "zarr.json").exists()  # nothing of the store deleted either
    ds = bb.extract(x, out=out, overwrite=True, **KW)
    np.testing.assert_allclose(ds["layer4"].values, expected, rtol=1e-5, atol=1e-6)
    assert_survived(mine)


@pytest.mark.parametrize("what", ["broken zarr.json", "other zarr store", "plain folder"])
def test_folder_nbfeat_did_not_make_is_never_deleted(bb, x, tmp_path, what):
    out = tmp_path / "theirs"
    out.mkdir()
    if what == "broken zarr.json":
        (out / "zarr.json").write_text("{not json")
    elif what == "other zarr store":
        import zarr

        zarr.open_group(out, mode="w").create_array("a", shape=(3,), dtype="f4")[:] = 1
    mine = plant(out)
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    for overwrite in (False, True):
        with pytest.raises(NbfeatError, match="not a store nbfeat made.*Use a new path"):
            bb.extract(x, out=out, overwrite=overwrite, **KW)
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before
    assert_survived(mine)


def test_overwrite_and_resume_keep_user_files_inside_the_store(bb, x, tmp_path):
    out = tmp_path / "f.zarr"
    bb.extract(x, out=out, **KW)
    mine = plant(tmp_path, out, out / "layer4", out / "layer4" / "c", out / "sample")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bb.extract(x, out=out, **KW)  # resume: everything done
        bb.extract(x, out=out, overwrite=True, **{**KW, "pool": "max"})
        nbfeat.open(out)
    assert_survived(mine)
    # the user's files are theirs, not a fault: zarr's "not recognized as a component" is not shown
    assert not [w for w in caught if "not recognized as a component" in str(w.message)], [str(w.message) for w in caught]
    with torch.inference_mode():
        want = bb.model.forward_features(x).amax((2, 3)).numpy()
    np.testing.assert_allclose(nbfeat.open(out)["layer4"].values, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("fmt", ["netcdf", "hdf5", "npy", "mat", "pt"])
def test_export_never_deletes_its_source(bb, x, expected, tmp_path, fmt):
    out = tmp_path / "f.zarr"
    bb.extract(x, out=out, **KW)
    mine = plant(out)
    for dest in (out, out / f"inside.{fmt}", tmp_path):
        for src in (out, nbfeat.open(out)):
            with pytest.raises(NbfeatError, match="destination is the source, or inside it, or holds it"):
                st.export(src, dest, format=fmt, overwrite=True)
    np.testing.assert_allclose(nbfeat.open(out)["layer4"].values, expected, rtol=1e-5, atol=1e-6)
    assert_survived(mine)


def test_export_overwrite_replaces_only_its_own_files(bb, x, expected, tmp_path):
    out = tmp_path / "f.zarr"
    bb.extract(x, out=out, **KW)
    npy = tmp_path / "npy"
    npy.mkdir()
    mine = plant(npy)
    (npy / "layer4.npy").write_bytes(b"old")
    st.export(out, npy, format="npy", overwrite=True)
    assert_survived(mine)
    np.testing.assert_allclose(np.load(npy / "layer4.npy"), expected, rtol=1e-5, atol=1e-6)
    assert sorted(os.listdir(npy)) == sorted(["file_names.txt", "layer4.npy", "mine0.txt", "my notes"])
    h5 = tmp_path / "f.h5"
    h5.write_bytes(b"previous export")
    with pytest.raises(NbfeatError, match="No variable 'nope'"):
        st.export(out, h5, variables=["nope"], overwrite=True)
    assert h5.read_bytes() == b"previous export"  # a failed export leaves the old file
    st.export(out, h5, overwrite=True)
    assert not [p for p in tmp_path.iterdir() if "nbfeat-tmp" in p.name]


def test_missing_or_damaged_chunk_files_never_read_as_values(bb, x, expected, tmp_path):
    out = tmp_path / "f.zarr"
    st.write(bb.prepare(x, layers="layer4", pool="mean", batch_size=4), out, progress=False, chunk_size=4)
    chunk_file = out / "layer4" / "c" / "1" / "0"
    chunk_file.unlink()  # samples 4..7
    half = nbfeat.open(out)
    assert list(half["sample"].values) == ["0", "1", "2", "3", "8", "9"] and half.attrs["n_pending"] == 4
    every = nbfeat.open(out, valid_only=False)
    assert list(every["valid"].values[4:8]) == [False] * 4 and (every["status"].values[4:8] == 0).all()
    assert np.isnan(every["layer4"].values[4:8]).all()  # missing reads as NaN, never as values
    st.write(bb.prepare(x, layers="layer4", pool="mean", batch_size=4), out, progress=False)  # resume
    import zarr

    zarr.open_group(str(out), mode="r+")["status"][0:4] = np.zeros(4, np.int8)  # pending, data still there
    assert np.isnan(nbfeat.open(out, valid_only=False)["layer4"].values[:4]).all()
    st.write(bb.prepare(x, layers="layer4", pool="mean", batch_size=4), out, progress=False)  # resume
    np.testing.assert_allclose(nbfeat.open(out)["layer4"].values, expected, rtol=1e-5, atol=1e-6)

    data = bytearray(chunk_file.read_bytes())
    data[len(data) // 2] ^= 0xFF  # damaged bytes: the checksum catches them
    chunk_file.write_bytes(bytes(data))
    with pytest.raises(ValueError, match="checksum"):
        _ = nbfeat.open(out)["layer4"].values
    assert st.verify(out) == [1]  # marks it pending
    assert nbfeat.open(out).attrs["n_pending"] == 4
    st.write(bb.prepare(x, layers="layer4", pool="mean", batch_size=4), out, progress=False)
    np.testing.assert_allclose(nbfeat.open(out)["layer4"].values, expected, rtol=1e-5, atol=1e-6)
    assert st.verify(out) == []
