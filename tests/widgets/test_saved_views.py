"""Saved views: a displayed widget comes with a picture of its view in an output of its own, and
the kernel replaces that picture after each change, so a notebook saved after the clicks (and
exported with nbconvert, as GitHub and nbviewer show it) has the last state without a kernel.

Displays go through a real IPython shell and its display publisher (`capture_output` records
what a front end would get: data, metadata, transient display id, update or not).
"""

from __future__ import annotations

import asyncio
import base64
import io

import numpy as np
import pytest
from IPython.core.interactiveshell import InteractiveShell
from IPython.display import display
from IPython.utils.capture import capture_output
from PIL import Image

import nbfeat
from nbfeat.widgets import snapshot

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


def _pixels(png: bytes) -> np.ndarray:
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def _png(bundle):
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert WIDGET_VIEW in data  # the live widget stays first
    return _pixels(base64.b64decode(data["image/png"]))


@pytest.fixture(scope="module")
def shell():
    return InteractiveShell.instance()


def _shown(cap, widget):
    """The two outputs of one display: the live view and its picture (with its display id)."""
    view, picture = cap.outputs[0], cap.outputs[1]
    assert view.data[WIDGET_VIEW]["model_id"] == widget.model_id and "image/png" not in view.data
    # a widget view of no model: JupyterLab's widget renderer shows nothing for it (hides
    # itself), nbconvert drops it (no saved state) and shows the PNG
    assert picture.data[WIDGET_VIEW]["model_id"] == "" and not picture.update
    assert picture.transient["display_id"].startswith("nbfeat-")
    return view, picture


def test_each_widget_bundle_has_a_picture_of_its_current_view(resnet, pictures):
    w = nbfeat.browse(resnet, pictures, layer="layer2")
    first = _png(w._repr_mimebundle_())
    w.layer = "layer4"
    later = _png(w._repr_mimebundle_())
    assert first.shape[2] == 3 and len(np.unique(first.reshape(-1, 3), axis=0)) > 50
    assert not np.array_equal(first, later)  # the picture follows the view
    tree = resnet.tree()
    tree.selected = ["layer3"]
    assert _png(tree._repr_mimebundle_()).size
    ex = nbfeat.explore(resnet, pictures[:2], layer="layer1")
    assert _png(ex._repr_mimebundle_()).shape[1] > first.shape[1]  # tree beside the view
    ex.selected = ["layer4"]
    snap = ex.snapshot()  # one state kept on purpose, in a cell of its own
    assert snap.data[:4] == b"\x89PNG" and "image/png" in snap._repr_mimebundle_()[0]


def test_a_displayed_explorer_keeps_its_picture_at_the_last_state(shell, resnet, pictures):
    ex = nbfeat.explore(resnet, pictures[:2], layer="layer2")
    with capture_output() as cap:
        display(ex)
        _, picture = _shown(cap, ex)
        first = base64.b64decode(picture.data["image/png"])
        assert first == ex.snapshot().data
        ex.selected = ["layer1", "layer3", "layer4"]  # a ctrl-click selection: strip of 3
        no_patch = ex.snapshot().data
        ex.browser.patch = [0.3, 0.7]  # a click on the input: its similarity maps
        ex.browser.patch = [0.3, 0.7]  # the same again: no change, nothing sent
    updates = cap.outputs[2:]
    assert updates and all(u.update and u.transient == picture.transient for u in updates)
    assert all(u.data[WIDGET_VIEW]["model_id"] == "" for u in updates)  # never the live view's output
    last = base64.b64decode(updates[-1].data["image/png"])
    assert last == ex.snapshot().data  # exactly the view now
    assert not np.array_equal(_pixels(first)[:100], _pixels(last)[:100])
    # the clicked patch's similarity maps are in the picture: a row more than without it
    assert _pixels(last).shape[0] > _pixels(no_patch).shape[0]
    assert len({u.data["image/png"] for u in updates}) == len(updates)  # each one a change
    assert ex.__dict__["_nbfeat_saved"].updates == len(updates)


def test_every_display_of_a_widget_follows_it(shell, resnet, pictures):
    tree = resnet.tree()
    with capture_output() as cap:
        display(tree)
        display(tree)  # shown again (another cell): two pictures, both kept current
        tree.selected = ["layer4"]
    ids = [o.transient["display_id"] for o in cap.outputs if o.transient]
    assert len(set(ids)) == 2 and [o.update for o in cap.outputs if o.transient] == [False, False, True, True]
    assert base64.b64decode(cap.outputs[-1].data["image/png"]) == tree.snapshot().data


def test_a_burst_of_changes_redraws_the_picture_once(shell, resnet, pictures, monkeypatch):
    monkeypatch.setattr(snapshot, "DELAY_S", 0.05)
    w = nbfeat.browse(resnet, pictures, layer="layer1")

    async def clicks():  # as in a kernel: trait changes arrive while its event loop runs
        w.layer = "layer2"
        w.sample = 1
        w.patch = [0.5, 0.5]
        await asyncio.sleep(0.5)

    with capture_output() as cap:
        display(w)
        asyncio.run(clicks())
    _shown(cap, w)
    assert [o.update for o in cap.outputs[2:]] == [True]
    assert base64.b64decode(cap.outputs[2].data["image/png"]) == w.snapshot().data


def test_the_tree_and_a_browser_alone_follow_too(shell, resnet, pictures):
    tree = resnet.tree()
    w = nbfeat.browse(resnet, pictures, layer="layer3")
    with capture_output() as cap:
        display(tree)
        display(w)
        tree.selected = ["layer1", "layer2"]
        w.patch = [0.1, 0.9]
    pictures_by_id = {}
    for o in cap.outputs:
        if o.data.get(WIDGET_VIEW, {}).get("model_id") == "":
            pictures_by_id.setdefault(o.transient["display_id"], []).append(base64.b64decode(o.data["image/png"]))
    assert [len(v) for v in pictures_by_id.values()] == [2, 2]  # each shown, then updated once
    tree_last, browser_last = (v[-1] for v in pictures_by_id.values())
    assert tree_last == tree.snapshot().data and browser_last == w.snapshot().data


def test_the_comparison_explorer_follows_the_picked_cell(shell, resnet, pictures):
    dt = resnet.extract(pictures, layers=["layer2", "layer4"], progress=False)
    ex = nbfeat.explore(nbfeat.compare(dt, method="rsa"), dt)
    with capture_output() as cap:
        display(ex)
        _, picture = _shown(cap, ex)
        ex.heatmap.picked = [0, 1]  # both layers open, side by side
    last = base64.b64decode(cap.outputs[-1].data["image/png"])
    assert cap.outputs[-1].update and last == ex.snapshot().data
    # the heatmap alone first; then the heatmap beside two browsers
    assert _pixels(last).shape[1] > 2 * _pixels(base64.b64decode(picture.data["image/png"])).shape[1]


def test_updates_are_sent_as_part_of_the_cell_that_displayed_the_widget(shell, resnet, pictures):
    """A front end puts an output by the request it answers: an update sent while a widget
    message is handled must still name the displaying cell's request as its parent."""
    pub = shell.display_pub
    seen = []
    w = nbfeat.browse(resnet, pictures, layer="layer1")
    original = pub.publish

    def publish(data, metadata=None, *args, **kwargs):
        seen.append((dict(getattr(pub, "parent_header", {}) or {}), kwargs.get("update", False)))
        return original(data, metadata, *args, **kwargs)

    pub.publish = publish
    try:
        pub.parent_header = {"msg_id": "cell-1", "msg_type": "execute_request"}
        display(w)
        pub.parent_header = {"msg_id": "comm-7", "msg_type": "comm_msg"}  # a click in the view
        w.layer = "layer2"
        assert pub.parent_header["msg_id"] == "comm-7"  # put back as it was
    finally:
        pub.publish = original
        del pub.parent_header
    assert [(h["msg_id"], up) for h, up in seen] == [("cell-1", False), ("cell-1", False), ("cell-1", True)]


def test_pooled_and_text_views_draw_too(resnet, pictures, tmp_path):
    from nbfeat.examples import SENTENCES, save_tiny_gpt2

    w = nbfeat.browse(resnet, pictures, layer="fc")  # a vector: the input and the largest values
    assert len(np.unique(_pixels(snapshot.browser_png(w)).reshape(-1, 3), axis=0)) > 20
    gpt2 = nbfeat.load("hf:" + str(save_tiny_gpt2(tmp_path / "gpt2")), device="cpu")
    t = nbfeat.browse(gpt2, SENTENCES[:2])  # tokens: the token-by-layer stack and the channels
    assert len(np.unique(_pixels(snapshot.browser_png(t)).reshape(-1, 3), axis=0)) > 20


def test_bad_patch_values_are_refused(resnet, pictures):
    w = nbfeat.browse(resnet, pictures, layer="layer1")
    w.patch = [0, 1]
    assert w.patch == [0.0, 1.0]
    for bad in ([0.5], [1.5, 0.2], [0.1, 0.2, 0.3]):
        with pytest.raises(nbfeat.errors.InputError, match=r"patch is \[fy, fx\]"):
            w.patch = bad
    w.patch = []
    assert w.patch == []


# The export itself (a notebook in JupyterLab: clicks, save, nbconvert to HTML, the picture of
# the last state found) is checked end to end in tests/e2e/test_saved_views_e2e.py.
