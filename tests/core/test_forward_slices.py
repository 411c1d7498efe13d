"""On a CPU a batch runs as forward passes sized by the largest module output (lower peak
memory, same speed): the values are those of one forward over the whole batch, in order."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.engine import run as engine_run
from tests.core.test_text_buckets import TEXTS, _hidden_states_alone, _widths, gpt2  # noqa: F401  (fixture)


def _rows_seen(model):
    seen = []
    handle = model.register_forward_pre_hook(lambda m, args, kw: seen.append(int((args[0] if args else kw["input_ids"]).shape[0])), with_kwargs=True)
    return seen, handle


def _even(n, rows):
    passes = -(-n // rows)
    step = -(-n // passes)
    return [min(step, n - i) for i in range(0, n, step)]


def test_cpu_passes_are_sized_by_the_largest_module_output_and_hold_one_forwards_values(monkeypatch):
    from torchvision.models.feature_extraction import create_feature_extractor

    torch.manual_seed(0)
    bb = nbfeat.load("torchvision:resnet18", pretrained=False)
    x = torch.randn(20, 3, 48, 80)  # not square: the slices keep the layout
    with torch.no_grad():
        want = create_feature_extractor(bb.model, return_nodes=["layer1", "layer4"])(x)
    largest = 64 * 24 * 40 * 4  # resnet18's widest output per row: conv1's 64 x H/2 x W/2 floats
    assert bb.prepare(x[:1], layers=["layer4"])._row_bytes == largest
    rows = max(6, torch.get_num_threads())
    monkeypatch.setattr(engine_run, "CPU_PASS_BYTES", 6 * largest)  # six rows a pass
    seen, handle = _rows_seen(bb.model)
    try:
        ds = bb.extract(x, layers=["layer1", "layer4"], batch_size=20, progress=False)
    finally:
        handle.remove()
    assert seen[-len(_even(20, rows)) :] == _even(20, rows)  # 5, 5, 5, 5 on up to 6 threads
    for layer in ("layer1", "layer4"):
        got = ds[layer][layer]
        assert got.dims == ("sample", "channel", "y", "x")
        np.testing.assert_allclose(got.values, want[layer].numpy(), rtol=1e-5, atol=1e-5)


def test_stacked_nodes_from_slices_land_in_one_batch(monkeypatch):
    monkeypatch.setattr(engine_run, "CPU_PASS_BYTES", 1)  # one row per torch thread
    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, model_kwargs={"img_size": 32})
    x = torch.randn(5, 3, 32, 32)
    run = vit.prepare(x, nodes=["attn", "block"], batch_size=5)
    seen, handle = _rows_seen(vit.model)
    try:
        (batch,) = list(run.iter_batches())  # one batch of 5 from several passes
    finally:
        handle.remove()
    assert seen == _even(5, torch.get_num_threads())  # 2, 2, 1 on two threads
    assert batch.positions.tolist() == [0, 1, 2, 3, 4]
    want, hooks = [], [b.register_forward_hook(lambda m, a, out: want.append(out.clone())) for b in vit.model.blocks]
    try:
        with torch.no_grad():
            vit.model(x)  # one forward over the whole batch, every block's output
    finally:
        for h in hooks:
            h.remove()
    assert batch.features["block"].shape[:2] == (5, len(want))
    for d, w in enumerate(want):
        np.testing.assert_allclose(batch.features["block"][:, d], w.numpy(), rtol=1e-5, atol=1e-5)


def test_text_slices_share_their_batch_width_and_keep_hf_values(gpt2, monkeypatch):  # noqa: F811
    path, lm = gpt2
    monkeypatch.setattr(engine_run, "CPU_PASS_BYTES", 1)  # one row per torch thread
    seen, handle = _widths(lm)
    rows, rows_handle = _rows_seen(lm.model)
    try:
        ds = lm.extract(TEXTS, nodes=["block"], batch_size=len(TEXTS), progress=False)
    finally:
        handle.remove()
        rows_handle.remove()
    want_rows = _even(len(TEXTS), torch.get_num_threads())
    assert rows[-len(want_rows) :] == want_rows
    assert len(set(seen[-len(want_rows) :])) == 1  # every pass at the batch's longest text
    assert list(ds["text"].values) == TEXTS
    for i, text in enumerate(TEXTS):
        hs = _hidden_states_alone(path, text)
        n = hs[0].shape[0]
        for d in range(ds.sizes["layer"] - 1):  # the last block's hidden state has ln_f applied
            np.testing.assert_allclose(ds["block"].values[i, d, :n], hs[d + 1], rtol=1e-4, atol=1e-5)
        assert np.isnan(ds["block"].values[i, :, n:]).all()


@pytest.mark.parametrize("batch_size", [1, 3])
def test_small_rows_run_whole_batches(batch_size):
    """32 px resnet18 rows are far below CPU_PASS_BYTES: one pass per batch."""
    torch.manual_seed(0)
    bb = nbfeat.load("torchvision:resnet18", pretrained=False)
    seen, handle = _rows_seen(bb.model)
    try:
        bb.extract(torch.randn(3, 3, 32, 32), layers=["layer1"], batch_size=batch_size, progress=False)
    finally:
        handle.remove()
    assert seen[-len(range(0, 3, batch_size)) :] == [min(batch_size, 3 - i) for i in range(0, 3, batch_size)]
