"""Saved views: every widget's mime bundle carries a PNG of its view, and an exported notebook
(nbconvert HTML, as GitHub and nbviewer show one) has the pictures without a kernel."""

from __future__ import annotations

import base64

import numpy as np
from PIL import Image

import nbfeat


def _png(bundle):
    data = bundle[0] if isinstance(bundle, tuple) else bundle
    assert "application/vnd.jupyter.widget-view+json" in data  # the live widget stays first
    raw = base64.b64decode(data["image/png"])
    assert raw[:8] == b"\x89PNG\r\n\x1a\n"
    import io

    return np.asarray(Image.open(io.BytesIO(raw)).convert("RGB"))


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
    # a later state, kept on purpose: a plain picture in the cell's output
    ex.selected = ["layer4"]
    snap = ex.snapshot()
    assert snap.data[:4] == b"\x89PNG" and "image/png" in snap._repr_mimebundle_()[0]


# The export itself (a notebook run in JupyterLab, saved, nbconvert to HTML, the PNGs found)
# is checked end to end in tests/e2e/test_explorer_e2e.py.
