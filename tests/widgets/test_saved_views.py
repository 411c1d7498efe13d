"""Saved views: every widget's mime bundle carries a PNG of its view, and an exported notebook
(nbconvert HTML, as GitHub and nbviewer show one) has the pictures without a kernel."""

from __future__ import annotations

import base64
import os
import re
from pathlib import Path

import nbformat
import numpy as np
from nbclient import NotebookClient
from nbconvert import HTMLExporter
from PIL import Image

import nbfeat

ROOT = Path(nbfeat.__file__).resolve().parents[1]


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


def test_an_exported_notebook_shows_the_views_without_a_kernel(tmp_path, monkeypatch):
    nb = nbformat.v4.new_notebook()
    nb.cells = [
        nbformat.v4.new_code_cell(
            "import nbfeat\nfrom nbfeat.examples import make_images\n"
            "images = make_images('imgs', per_class=1, size=64)\n"
            "bb = nbfeat.load('torchvision:resnet18', pretrained=False, device='cpu')"
        ),
        nbformat.v4.new_code_cell("nbfeat.explore(bb, images, layer='layer2')"),
        nbformat.v4.new_code_cell("nbfeat.browse(bb, images, layer='layer3')"),
        nbformat.v4.new_code_cell("t = bb.tree()\nt.selected = ['layer4']\nt"),
    ]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    # JupyterLab saves no widget state unless asked: the exported page falls back on the PNG
    NotebookClient(nb, timeout=300, kernel_name="python3", store_widget_state=False, resources={"metadata": {"path": str(tmp_path)}}).execute()
    html, _ = HTMLExporter().from_notebook_node(nb)
    (tmp_path / "saved.html").write_text(html)
    images = re.findall(r"<img[^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"", html)
    assert len(images) == 3, len(images)
    for b64 in images:
        assert base64.b64decode(b64)[:4] == b"\x89PNG"
    artifacts = Path(os.environ.get("NBFEAT_ARTIFACTS", ROOT / "tests" / "artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    (artifacts / "saved_views.html").write_text(html)
