"""The store key covers everything that changes a value: a rerun after any change either
recomputes what changed or refuses naming the change; it never returns old values.

Expected values come from the model's own forward (timm `forward_features`, HF
`output_hidden_states`) on the current inputs.
"""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
import torch
import zarr
from PIL import Image

import nbfeat
import nbfeat.store as st
from nbfeat.examples import SENTENCES, save_tiny_gpt2
from tests.conftest import write_images

KW = dict(layers="layer4", pool="mean", batch_size=2, progress=False)


@pytest.fixture(scope="module")
def bb():
    return nbfeat.load("timm:test_resnet", pretrained=False, device="cpu")


def reference(bb, folder):
    paths = sorted(p for p in folder.rglob("*.png"))
    x = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in paths])
    with torch.inference_mode():
        return [p.relative_to(folder).as_posix() for p in paths], bb.model.forward_features(x).mean((2, 3)).numpy()


def check(ds, ids, values):
    assert list(ds["sample"].values) == ids
    np.testing.assert_allclose(ds["layer4"].values, values, rtol=1e-4, atol=1e-5)


class Counter:
    """Counts the samples the model really runs on (a plain forward hook, in the test)."""

    def __init__(self, model):
        self.n = 0
        self.h = model.register_forward_pre_hook(lambda m, a: setattr(self, "n", self.n + a[0].shape[0]))

    def close(self):
        self.h.remove()


def write(bb, inputs, out, chunk_size=2):
    """Prepare (the one-sample probe), then write: returns the samples the writing ran."""
    run = bb.prepare(inputs, layers="layer4", pool="mean", batch_size=2)
    count = Counter(bb.model)
    try:
        st.write(run, out, progress=False, chunk_size=chunk_size)
    finally:
        count.close()
    return count.n


def repaint(path, seed, keep_mtime=False):
    st_ = os.stat(path)
    arr = np.random.default_rng(seed).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    if keep_mtime:  # an edit that hides behind the old mtime (ctime still moves)
        os.utime(path, ns=(st_.st_atime_ns, st_.st_mtime_ns))


@pytest.mark.parametrize("keep_mtime", [False, True])
def test_changed_pixels_same_name_are_recomputed(bb, tmp_path, keep_mtime):
    folder = tmp_path / "im"
    write_images(folder, n_per_class=3, size=(32, 40))
    out = tmp_path / "f.zarr"
    write(bb, folder, out)
    repaint(folder / "dogs" / "img1.png", 99, keep_mtime)
    with pytest.warns(UserWarning, match=r"1 input\(s\) changed since .*dogs/img1.png.*recomputed"):
        assert write(bb, folder, out) == 2  # the one chunk (of 2 samples) holding the edited image
    check(nbfeat.open(out), *reference(bb, folder))
    assert write(bb, folder, out) == 0  # nothing changed now: nothing runs


def test_touched_but_same_bytes_is_not_recomputed(bb, tmp_path):
    folder = tmp_path / "im"
    write_images(folder, n_per_class=2, size=(32, 40))
    out = tmp_path / "f.zarr"
    write(bb, folder, out)
    os.utime(folder / "cats" / "img0.png")  # new mtime, same content: confirmed by the bytes
    shutil.copy(folder / "cats" / "img1.png", tmp_path / "copy.png")
    os.replace(tmp_path / "copy.png", folder / "cats" / "img1.png")  # a new inode, same bytes
    assert write(bb, folder, out) == 0


def test_two_files_that_swap_names_are_recomputed(bb, tmp_path):
    folder = tmp_path / "im"
    write_images(folder, n_per_class=3, size=(32, 40))
    out = tmp_path / "f.zarr"
    bb.extract(folder, out=out, **KW)
    a, b = folder / "cats" / "img0.png", folder / "dogs" / "img2.png"
    os.rename(a, tmp_path / "t.png")
    os.rename(b, a)
    os.rename(tmp_path / "t.png", b)
    with pytest.warns(UserWarning, match=r"2 input\(s\) changed"):
        ds = bb.extract(folder, out=out, **KW)
    check(ds, *reference(bb, folder))


def test_other_in_memory_inputs_of_the_same_count_are_recomputed(bb, tmp_path):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(6, 3, 32, 32, generator=g)
    out = tmp_path / "t.zarr"
    bb.extract(x, out=out, **KW)
    y = x.clone()
    y[4] = torch.randn(3, 32, 32, generator=g)
    with pytest.warns(UserWarning, match=r"1 input\(s\) changed since .*\(4\)"):
        ds = bb.extract(y, out=out, **KW)
    with torch.inference_mode():
        np.testing.assert_allclose(ds["layer4"].values, bb.model.forward_features(y).mean((2, 3)).numpy(), rtol=1e-4, atol=1e-5)
    arrays = [np.asarray(Image.fromarray(np.full((32, 40, 3), v, np.uint8))) for v in (0, 50, 100)]
    bb.extract(arrays, out=tmp_path / "a.zarr", **KW)
    arrays[1] = arrays[1].copy()
    arrays[1][3, 3] = 255  # one pixel
    with pytest.warns(UserWarning, match=r"1 input\(s\) changed"):
        bb.extract(arrays, out=tmp_path / "a.zarr", **KW)


def test_one_changed_sentence_is_recomputed_with_its_text(tmp_path):
    lm = nbfeat.load("hf:" + str(save_tiny_gpt2(tmp_path / "gpt2")), device="cpu")
    texts = SENTENCES[:4]
    out = tmp_path / "t.zarr"
    kw = dict(layers="h.0", pool="mean", batch_size=2, progress=False)
    lm.extract(texts, out=out, **kw)
    texts = [texts[0], "a cat sat on the mat", *texts[2:]]
    with pytest.warns(UserWarning, match=r"1 input\(s\) changed since .*\(1\)"):
        ds = lm.extract(texts, out=out, **kw)
    assert list(ds["text"].values) == texts
    with torch.inference_mode():
        ids = lm.tokenizer(texts[1], return_tensors="pt")["input_ids"]
        want = lm.model(input_ids=ids, output_hidden_states=True).hidden_states[1][0].mean(0).numpy()
    np.testing.assert_allclose(ds["h.0"].values[1], want, rtol=1e-4, atol=1e-5)


def test_edited_config_json_is_refused_naming_the_config(tmp_path):
    folder = save_tiny_gpt2(tmp_path / "gpt2")
    out = tmp_path / "t.zarr"
    kw = dict(layers="h.0", pool="mean", progress=False)
    nbfeat.load(f"hf:{folder}", device="cpu").extract(SENTENCES[:2], out=out, **kw)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["layer_norm_epsilon"] = 0.1  # same weights, other values
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(st.StoreMismatchError, match=r"config: 'sha256:.*' in the store, 'sha256:.*' now"):
        nbfeat.load(f"hf:{folder}", device="cpu").extract(SENTENCES[:2], out=out, **kw)


def test_weights_file_swapped_at_the_same_path_is_refused(tmp_path):
    import timm

    path = tmp_path / "w.pth"
    out = tmp_path / "f.zarr"
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    for seed in (0, 1):
        torch.manual_seed(seed)
        torch.save(timm.create_model("test_resnet").state_dict(), path)
        bb = nbfeat.load("timm:test_resnet", weights=str(path), device="cpu")
        if seed == 0:
            bb.extract(x, out=out, **KW)
    with pytest.raises(st.StoreMismatchError, match=r"weights: 'sha256:.*' in the store, 'sha256:.*' now"):
        bb.extract(x, out=out, **KW)
    bb.model.layer4[0].conv1.weight.data.mul_(2)  # a model edited in memory
    before = bb.prepare(x, **{k: v for k, v in KW.items() if k != "progress"}).fingerprint()
    bb.model.layer4[0].conv1.weight.data.mul_(0.5)
    assert bb.prepare(x, **{k: v for k, v in KW.items() if k != "progress"}).fingerprint() != before


def test_model_kwargs_and_load_arguments_are_in_the_key(tmp_path):
    x = torch.randn(2, 3, 32, 32)
    out = tmp_path / "f.zarr"
    nbfeat.load("timm:test_resnet", pretrained=False, device="cpu").extract(x, out=out, **KW)
    other = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu", model_kwargs={"num_classes": 7})
    with pytest.raises(st.StoreMismatchError, match=r"model_kwargs: None in the store, \{'num_classes': 7\} now"):
        other.extract(x, out=out, **KW)
    amp = nbfeat.load("timm:test_resnet", pretrained=False, device="cpu", channels_last=True)
    with pytest.raises(st.StoreMismatchError, match=r"channels_last|memory_format"):
        amp.extract(x, out=out, **KW)


def test_images_added_and_removed_between_a_kill_and_a_resume(bb, tmp_path):
    folder = tmp_path / "im"
    write_images(folder, n_per_class=4, size=(32, 40))
    out = tmp_path / "f.zarr"
    write(bb, folder, out)
    mine = out / "my notes.txt"
    mine.write_text("keep me")
    for c in (2, 3):  # what a kill leaves: chunks 2 and 3 not marked done
        os.unlink(out / "status" / "c" / str(c))
    (folder / "cats" / "img1.png").unlink()
    write_images(tmp_path / "more", n_per_class=2, classes=("cats", "eels"), size=(32, 40), seed=5)
    shutil.move(tmp_path / "more" / "cats" / "img0.png", folder / "cats" / "img9.png")
    shutil.move(tmp_path / "more" / "eels", folder / "eels")
    n = write(bb, folder, out, chunk_size=None)
    ids, values = reference(bb, folder)
    check(nbfeat.open(out), ids, values)
    # old chunks: 0 cats/img0-1, 1 cats/img2-3 (done), 2-3 dogs (killed before done); now
    # cats/img1 is gone and cats/img9, eels/img0-1 are new: only cats/img0, 2, 3 are reused
    reused = {"cats/img0.png", "cats/img2.png", "cats/img3.png"}
    assert n == len(ids) - len(reused)
    assert mine.read_text() == "keep me"
    assert not [p for p in tmp_path.iterdir() if "nbfeat-rebuild" in p.name]
    assert zarr.open_group(str(out), mode="r")["status"].shape == (len(ids),)
