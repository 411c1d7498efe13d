"""Explorer: the tree and the browser linked through the kernel."""

from __future__ import annotations

import ipywidgets

import nbfeat


def test_clicking_a_layer_shows_it_and_writes_the_code(resnet, pictures, monkeypatch):
    ex = nbfeat.explore(resnet, pictures[:2])
    assert isinstance(ex, ipywidgets.HBox) and ex.children == (ex.tree, ex.splitter, ex.browser)
    assert ex.browser.layer == "" and ex.selected == []  # nothing extracted before a click
    assert ex.source.extractions == 0
    # what a click in the tree view sends
    ex.tree.set_state({"selected": ["layer2"], "focused": "layer2"})
    assert ex.browser.layer == "layer2" and ex.selected == ["layer2"]
    assert "# x: layer2 of sample '0' is written here once the view has loaded it" in ex.browser.code  # no forward pass yet
    ex.browser.handle_request({"id": 0, "kind": "view", "sample": 0, "layer": "layer2"})  # what the view asks next
    assert "ds = bb.extract(inputs, layers=['layer2'], batch_size=2)\nx = ds['layer2'].isel(sample=0)" in ex.browser.code
    # ctrl-click adds a layer: the browser follows the last click, the code takes both
    ex.tree.set_state({"selected": ["layer2", "layer3.1"], "focused": "layer3.1"})
    assert ex.browser.layer == "layer3.1"
    ex.browser.handle_request({"id": 0, "kind": "view", "sample": 0, "layer": "layer3.1"})
    assert "layers=['layer2', 'layer3.1'], batch_size=2)\nx = ds['layer3.1']['layer3.1'].isel(sample=0)" in ex.browser.code
    sent = []
    monkeypatch.setattr(ex.browser, "send", lambda msg, buffers=None: sent.append((msg, buffers)))
    ex.browser._on_custom_msg(ex.browser, {"type": "nbfeat:request", "id": 1, "kind": "view", "sample": 1, "layer": "layer3.1", "k": 3}, [])
    assert sent[0][0]["ok"] and sent[0][0]["channels"] and ex.source.extractions == 2  # layer2, layer3.1: once each


def test_picking_in_the_browser_selects_in_the_tree(resnet, pictures):
    ex = nbfeat.explore(resnet, pictures[:2], layer="layer1")
    assert ex.tree.selected == ["layer1"] and ex.browser.layer == "layer1"
    ex.browser.set_state({"layer": "layer4.0.bn2"})
    assert ex.tree.selected == ["layer4.0.bn2"] and ex.tree.focused == "layer4.0.bn2"
    ex.selected = ["fc"]
    assert ex.browser.layer == "fc" and ex.browser.channel == -1


def test_rows_show_bytes_per_sample_and_the_explorer_says_what_a_full_run_takes(resnet, pictures):
    ex = nbfeat.explore(resnet, pictures)
    row = ex.tree.row("layer2")
    assert row["shape"] == [1, 128, 28, 28] and row["bytes"] == 128 * 28 * 28 * 4  # float32
    relu = ex.tree.row("layer1.0.relu")
    assert relu["calls"] == 2 and relu["bytes"] == 2 * 64 * 56 * 56 * 4  # every call is stored
    ex.tree.set_state({"selected": ["layer2", "layer3"], "focused": "layer3"})
    per = (128 * 28 * 28 + 256 * 14 * 14) * 4
    got = resnet.extract(pictures[:1], layers=["layer2", "layer3"], progress=False).nbfeat.to_numpy()
    assert sum(a[0].nbytes for a in got.values()) == per  # what the extraction really holds
    assert ex.tree.note.startswith(f"full extraction of 2 layers: {per / 1024:.1f} KB/sample × 4 inputs = {4 * per / 1024 ** 2:.1f} MB in memory")
    half = nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu", dtype="float16")
    assert nbfeat.tree(half).row("layer2")["bytes"] == 128 * 28 * 28 * 2


def test_the_explorer_reads_layers_back_from_the_notebook_cache(resnet, pictures, tmp_path):
    import numpy as np

    broken = np.zeros((5,), dtype=np.uint8)  # not an image: recorded as failed, in the middle
    inputs = [pictures[0], broken, pictures[1]]
    calls = []
    handle = resnet.model.register_forward_pre_hook(lambda m, a: calls.append(a[0].shape[0]))
    try:
        plain = nbfeat.explore(resnet, inputs).source.layer(2, "layer2")
        first = nbfeat.explore(resnet, inputs, cache=tmp_path).source
        a = first.layer(2, "layer2")
        assert len(nbfeat.cache.info(tmp_path)) == 1
        n = len(calls)
        again = nbfeat.explore(resnet, inputs, cache=tmp_path).source  # a later session
        b = again.layer(2, "layer2")
        assert calls[n:] and all(k == 1 for k in calls[n:]), calls  # one-sample probes only (they make the key): the batch is read from the cache
    finally:
        handle.remove()
    for got in (a, b):
        np.testing.assert_array_equal(got.values, plain.values)
    assert 1 in again._cache["layer2"]["failed"]
