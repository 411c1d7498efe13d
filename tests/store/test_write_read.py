"""A real zarr store: written chunk by chunk, read back lazily, equal to the in-memory result."""

from __future__ import annotations

import json

import numpy as np
import pytest
import xarray as xr
import zarr

import nbfeat
import nbfeat.store as st
from nbfeat.errors import NbfeatError
from nbfeat.store.layout import choose_chunk
from tests.store.helpers import assert_same_store, save_tiny_gpt2, tensors, write_pngs


def test_store_equals_in_memory_result_and_opens_lazily(bb, tmp_path):
    run = bb.prepare(tensors(40), layers=["layer3", "layer4"], batch_size=8)
    st.write(run, tmp_path / "f.zarr", progress=False, chunk_size=16)
    mem = run.to_xarray()
    got = nbfeat.open(tmp_path / "f.zarr")
    assert isinstance(got, xr.DataTree)  # layer3 and layer4 clash in channel size, as in memory
    assert got["layer3"]["layer3"].chunks[0] == (16, 16, 8)  # lazy, chunked along sample
    assert_same_store(got, mem)
    assert got["layer3"]["layer3"].dims == mem["layer3"]["layer3"].dims
    assert got["layer3"]["layer3"].attrs["module"] == "layer3"
    for key in ("model", "weights", "preprocessing", "torch_version"):
        assert got.attrs[key] == mem.attrs[key]
    assert got.attrs["n_failed"] == 0 and "n_pending" not in got.attrs
    raw = xr.open_datatree(
        tmp_path / "f.zarr", engine="zarr", consolidated=False
    )  # plain xarray reads it
    np.testing.assert_array_equal(raw["layer4"]["layer4"].values, mem["layer4"]["layer4"].values)
    assert (raw["status"].values == 1).all()


def test_one_group_when_dims_agree_reads_with_open_zarr(bb, tmp_path):
    run = bb.prepare(tensors(20), layers=["layer4", "global_pool"], batch_size=4)
    st.write(run, tmp_path / "p.zarr", progress=False)
    ds = xr.open_zarr(tmp_path / "p.zarr", consolidated=False)
    mem = run.to_xarray()
    assert isinstance(mem, xr.Dataset) and set(ds.data_vars) == {"layer4", "global_pool"}
    assert ds["global_pool"].dims == ("sample", "channel")
    assert_same_store(nbfeat.open(tmp_path / "p.zarr"), mem)
    assert list(ds["label"].values) == list(mem["label"].values)


def test_failed_inputs_are_recorded_not_fatal(bb, tmp_path):
    root = tmp_path / "images"
    write_pngs(root)
    (root / "cats" / "broken.png").write_bytes(b"not a png")
    (root / "notes.txt").write_text("not an image")
    run = bb.prepare(root, layers="layer4", pool="mean", batch_size=4, num_workers=0)
    st.write(run, tmp_path / "f.zarr", progress=False)
    mem = run.to_xarray()
    ds = nbfeat.open(tmp_path / "f.zarr")
    assert "cats/broken.png" not in ds["sample"].values and ds.sizes["sample"] == 10
    assert_same_store(ds, mem)
    assert list(ds["label"].values) == list(mem["label"].values)
    assert list(ds["path"].values) == list(mem["path"].values)
    failed = {r["sample"]: r["reason"] for r in json.loads(ds.attrs["failed"])}
    assert failed == {r["sample"]: r["reason"] for r in json.loads(mem.attrs["failed"])}
    assert set(failed) == {"cats/broken.png", "notes.txt"} and ds.attrs["n_failed"] == 2
    everything = nbfeat.open(tmp_path / "f.zarr", valid_only=False)
    bad = everything.sel(sample="cats/broken.png")
    assert (
        int(bad["status"]) == 2
        and not bool(bad["valid"])
        and "not an image" in str(bad["reason"].values)
    )
    assert np.isnan(bad["layer4"].values).all()
    assert everything["valid"].values.sum() == 10


def test_second_run_finds_everything_done(bb, tmp_path):
    run = bb.prepare(tensors(24), layers="layer4", batch_size=8)
    st.write(run, tmp_path / "f.zarr", progress=False, chunk_size=8)
    status = tmp_path / "f.zarr" / "status" / "c" / "0"
    before = status.stat().st_mtime_ns
    st.write(run, tmp_path / "f.zarr", progress=False)
    assert status.stat().st_mtime_ns == before  # nothing recomputed or rewritten
    st.write(run, tmp_path / "f.zarr", progress=False, overwrite=True)
    assert status.stat().st_mtime_ns != before
    assert_same_store(nbfeat.open(tmp_path / "f.zarr"), run.to_xarray())


def test_a_different_extraction_is_refused_naming_what_differs(bb, tmp_path):
    path = tmp_path / "f.zarr"
    st.write(
        bb.prepare(tensors(16), layers="layer4", pool="mean", batch_size=8), path, progress=False
    )
    with pytest.raises(
        st.StoreMismatchError, match=r"pool: 'mean' in the store, 'max' now.*overwrite=True"
    ):
        st.write(
            bb.prepare(tensors(16), layers="layer4", pool="max", batch_size=8), path, progress=False
        )
    with pytest.raises(st.StoreMismatchError, match=r"layers: 'layer4' in the store, 'layer3' now"):
        st.write(
            bb.prepare(tensors(16), layers="layer3", pool="mean", batch_size=8),
            path,
            progress=False,
        )
    other = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")
    with pytest.raises(
        st.StoreMismatchError, match=r"weights: 'sha256:.*' in the store, 'random\(seed=0\)' now"
    ):
        st.write(
            other.prepare(tensors(16), layers="layer4", pool="mean", batch_size=8),
            path,
            progress=False,
        )
    # another batch size changes nothing: the store is simply found complete
    st.write(
        bb.prepare(tensors(16), layers="layer4", pool="mean", batch_size=4), path, progress=False
    )
    run = bb.prepare(tensors(16), layers="layer4", pool="max", batch_size=8)
    st.write(run, path, progress=False, overwrite=True)
    assert_same_store(nbfeat.open(path), run.to_xarray())


def test_refuses_a_folder_that_is_not_a_store(bb, tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(NbfeatError, match="not a store nbfeat made.*new path"):
        st.write(bb.prepare(tensors(4), layers="layer4"), tmp_path / "mine", progress=False)
    assert (tmp_path / "mine" / "thesis.tex").exists()
    with pytest.raises(NbfeatError, match="No nbfeat store"):
        nbfeat.open(tmp_path / "missing.zarr")


def test_an_interrupted_allocation_is_started_again(bb, tmp_path):
    path = tmp_path / "f.zarr"
    group = zarr.open_group(str(path), mode="w", zarr_format=3)
    group.attrs.update({"nbfeat_store": 1})  # what a kill during allocation leaves behind
    with pytest.raises(NbfeatError, match="interrupted while being created"):
        nbfeat.open(path)
    run = bb.prepare(tensors(8), layers="layer4", batch_size=4)
    st.write(run, path, progress=False)
    assert_same_store(nbfeat.open(path), run.to_xarray())


def test_sample_and_layer(bb, tmp_path):
    run = bb.prepare(tensors(30), layers=["layer3", "layer4"], batch_size=5)
    st.write(run, tmp_path / "f.zarr", progress=False, chunk_size=10)
    ds = nbfeat.open(tmp_path / "f.zarr")
    a = st.sample(ds, 7, seed=3)
    b = st.sample(str(tmp_path / "f.zarr"), 7, seed=3)
    assert list(a["sample"].values) == list(b["sample"].values)
    assert a.sizes["sample"] == 7 and len(set(a["sample"].values)) == 7
    assert list(a["sample"].values) == sorted(a["sample"].values, key=int)  # store order
    assert list(st.sample(ds, 7, seed=4)["sample"].values) != list(a["sample"].values)
    mem = run.to_xarray()
    np.testing.assert_array_equal(
        a["layer3"]["layer3"].values, mem["layer3"]["layer3"].sel(sample=a["sample"].values).values
    )
    with pytest.raises(NbfeatError, match="between 0 and 30"):
        st.sample(ds, 31)
    x = st.layer(tmp_path / "f.zarr", "layer4")
    assert (
        x.dims == ("sample", "channel", "y", "x") and "label" in x.coords and x.chunks is not None
    )
    np.testing.assert_array_equal(x.values, mem["layer4"]["layer4"].values)
    with pytest.raises(NbfeatError, match="No variable 'layer9'.*layer3, layer4"):
        st.layer(ds, "layer9")


def test_text_run_keeps_tokens_and_mask(tmp_path):
    lm = nbfeat.load(f"hf:{save_tiny_gpt2(tmp_path / 'gpt2')}", device="cpu")
    texts = [
        "I know this sky loves you",
        "a cat",
        "",
        "the quick brown fox jumps over the lazy dog",
    ]
    run = lm.prepare(texts, nodes="block", batch_size=2)
    st.write(run, tmp_path / "t.zarr", progress=False, chunk_size=2)
    mem = run.to_xarray()
    ds = nbfeat.open(tmp_path / "t.zarr")
    assert ds["block"].dims == ("sample", "layer", "token", "channel")
    np.testing.assert_array_equal(ds["block"].values, mem["block"].values)  # NaN padding included
    np.testing.assert_array_equal(ds["mask"].values, mem["mask"].values)
    np.testing.assert_array_equal(ds["token_text"].values.astype(str), mem["token_text"].values)
    assert list(ds["text"].values) == list(mem["text"].values)
    assert list(ds["module"].values) == list(mem["module"].values)
    assert json.loads(ds.attrs["failed"]) == json.loads(mem.attrs["failed"])  # the empty text
    back = xr.open_dataset(st.export(tmp_path / "t.zarr", tmp_path / "t.nc"))
    np.testing.assert_array_equal(back["token_text"].values.astype(str), mem["token_text"].values)


def test_chunks_are_whole_batches_of_bounded_size():
    assert choose_chunk(1_000_000, 32, 1024 * 14 * 14 * 4) % 32 == 0
    assert choose_chunk(1_000_000, 32, 2048 * 4) * 2048 * 4 <= 32 * 2**20
    assert choose_chunk(10, 32, 4) == 10
    assert choose_chunk(10**6, 7, 10**9) == 7  # a sample over the target: one batch per chunk


def test_progress_bar_counts_images(bb, tmp_path, capsys):
    run = bb.prepare(tensors(12), layers="layer4", batch_size=4)
    st.write(run, tmp_path / "f.zarr", progress=True)
    err = capsys.readouterr().err
    assert "12/12" in err and "img/s" in err


def test_extract_with_out_goes_through_the_store(bb, tmp_path):
    x = tensors(10)
    ds = bb.extract(x, layers="layer4", pool="mean", out=str(tmp_path / "e.zarr"), progress=False)
    assert ds["layer4"].chunks is not None  # lazy, from the store
    np.testing.assert_array_equal(
        ds["layer4"].values,
        bb.extract(x, layers="layer4", pool="mean", progress=False)["layer4"].values,
    )


def test_a_batch_that_fills_a_chunk_is_kept_without_a_copy(bb):
    from nbfeat.store.chunks import ChunkBuffer
    from nbfeat.store.layout import plan

    run = bb.prepare(tensors(8), layers=["layer4"], batch_size=4)
    layout = plan(run, chunk_size=4)
    first, second = list(run.iter_batches())
    whole = ChunkBuffer(layout, 0)
    whole.add(first, np.arange(4), np.arange(4))
    assert np.shares_memory(whole.data["layer4"], first.features["layer4"])
    part = ChunkBuffer(layout, 1)  # filled in two pieces and one failure: copies
    part.add(second, np.arange(2), np.arange(2))
    part.fail(2, "broken")
    part.add(second, np.arange(3, 4), np.arange(3, 4))
    assert part.full and not np.shares_memory(part.data["layer4"], second.features["layer4"])
    np.testing.assert_array_equal(part.data["layer4"][[0, 1, 3]], second.features["layer4"][[0, 1, 3]])
    assert np.isnan(part.data["layer4"][2]).all()


def test_big_chunks_are_stored_in_pieces_that_read_back_the_same(bb, tmp_path, monkeypatch):
    import nbfeat.store.layout as layout_module

    monkeypatch.setattr(layout_module, "MIN_PIECE_BYTES", 1)  # pieces even for a tiny model
    run = bb.prepare(tensors(20), layers=["layer4"], batch_size=8)
    st.write(run, tmp_path / "f.zarr", progress=False, chunk_size=8)
    group = zarr.open_group(str(tmp_path / "f.zarr"), mode="r")
    assert group["layer4"].chunks[0] == 2 and group["status"].chunks[0] == 8  # 4 pieces a chunk
    got = nbfeat.open(tmp_path / "f.zarr")
    assert_same_store(got, run.to_xarray())
    st.write(run, tmp_path / "f.zarr", progress=False, chunk_size=8)  # all done: nothing to redo
    assert_same_store(nbfeat.open(tmp_path / "f.zarr"), got)


def test_the_writer_holds_one_chunk_while_the_next_is_extracted(bb, tmp_path):
    """Memory: the chunk being written, never a queue of filled ones behind it."""
    import gc

    from nbfeat.store.chunks import ChunkBuffer, write_chunks
    from nbfeat.store.resume import open_for_run

    run = bb.prepare(tensors(48), layers=["layer4"], batch_size=4)
    group, layout = open_for_run(run, tmp_path / "f.zarr", chunk_size=4)
    alive: list[int] = []
    # after each batch's chunk is handed over: what is held is in the writer
    on_progress = lambda n: alive.append(sum(type(o) is ChunkBuffer for o in gc.get_objects()))  # noqa: E731
    assert write_chunks(run, group, layout, list(range(layout.n_chunks)), on_progress=on_progress) == 48
    assert len(alive) == 12 and max(alive) <= 1
    assert_same_store(nbfeat.open(tmp_path / "f.zarr"), run.to_xarray())
