"""Explorer: the tree and the browser linked through the kernel."""

from __future__ import annotations

import ipywidgets

import nbfeat


def test_clicking_a_layer_shows_it_and_writes_the_code(resnet, pictures, monkeypatch):
    ex = nbfeat.explore(resnet, pictures[:2])
    assert isinstance(ex, ipywidgets.HBox) and ex.children == (ex.tree, ex.browser)
    assert ex.browser.layer == "" and ex.selected == []  # nothing extracted before a click
    assert ex.source.extractions == 0
    # what a click in the tree view sends
    ex.tree.set_state({"selected": ["layer2"], "focused": "layer2"})
    assert ex.browser.layer == "layer2" and ex.selected == ["layer2"]
    assert "ds = bb.extract(inputs, layers=['layer2'], batch_size=2)\nx = ds['layer2'].isel(sample=0)" in ex.browser.code
    # ctrl-click adds a layer: the browser follows the last click, the code takes both
    ex.tree.set_state({"selected": ["layer2", "layer3.1"], "focused": "layer3.1"})
    assert ex.browser.layer == "layer3.1"
    assert "layers=['layer2', 'layer3.1'], batch_size=2)\nx = ds['layer3.1']['layer3.1'].isel(sample=0)" in ex.browser.code
    sent = []
    monkeypatch.setattr(ex.browser, "send", lambda msg, buffers=None: sent.append((msg, buffers)))
    ex.browser._on_custom_msg(ex.browser, {"type": "nbfeat:request", "id": 1, "kind": "view", "sample": 1, "layer": "layer3.1", "k": 3}, [])
    assert sent[0][0]["ok"] and sent[0][0]["channels"] and ex.source.extractions == 1


def test_picking_in_the_browser_selects_in_the_tree(resnet, pictures):
    ex = nbfeat.explore(resnet, pictures[:2], layer="layer1")
    assert ex.tree.selected == ["layer1"] and ex.browser.layer == "layer1"
    ex.browser.set_state({"layer": "layer4.0.bn2"})
    assert ex.tree.selected == ["layer4.0.bn2"] and ex.tree.focused == "layer4.0.bn2"
    ex.selected = ["fc"]
    assert ex.browser.layer == "fc" and ex.browser.channel == -1
