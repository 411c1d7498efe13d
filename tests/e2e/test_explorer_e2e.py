"""End to end in a real browser: JupyterLab 4 and Notebook 7 with Debian's Chromium (Playwright).

One JupyterLab server for the module. The notebook shows `nbfeat.explore` on resnet18 (random
weights) and a folder of generated images. In each of JupyterLab 4 and Notebook 7, in the light
and in the dark theme (four runs):

- click two layers in the tree and see two different PCA pictures (canvas pixels compared);
- click a patch on the PCA map and see the similarity maps of every linked layer, and the strip;
- take the code from the browser's code box, run it in a FRESH Python process and compare the
  array with the one the kernel showed, bit for bit; "To cell" puts the same code in a new cell;
- save the notebook, export it with nbconvert to HTML, and find the widgets' saved pictures;
- the widget's text follows the theme (dark on light, light on dark).

Screenshots are kept under $NBFEAT_ARTIFACTS (default tests/artifacts/, git-ignored).
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from labkit import (
    ARTIFACTS,
    FRONTENDS,
    HERE,
    click_layer,
    env,
    expand,
    new_page,
    open_notebook,
    pixels,
    rerun_cell,
    run_all,
)
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

NOTEBOOK = "explorer_e2e.ipynb"
# every frontend in every theme: JupyterLab 4 and Notebook 7, light and dark
PAIRS = [(f, t) for f in FRONTENDS for t in ("light", "dark")]


def _explorer_story(page, lab, work: Path, tag: str) -> None:
    """Everything a researcher does in one frontend; screenshots named with `tag`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    run_all(page, 3)
    tree = page.locator(".nbfeat-tree")
    expect(tree.locator(".nbfeat-tree-row[data-path='']")).to_contain_text("torchvision:resnet18")
    expect(page.locator(".nbfeat-browser .nbfeat-browser-status")).to_contain_text("Pick a layer")
    expand(page, "layer3")

    # layout: the whole output width; the handle between tree and browser resizes them
    ex = page.locator(".nbfeat-explorer")
    area = ex.locator("xpath=ancestor::*[contains(@class,'jp-OutputArea-output')][1]").bounding_box()
    assert ex.bounding_box()["width"] > 0.9 * area["width"], (ex.bounding_box(), area)
    tree_box = tree.bounding_box()
    handle = page.locator(".nbfeat-splitter").bounding_box()
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + 40)
    page.mouse.down()
    page.mouse.move(handle["x"] + 90, handle["y"] + 40, steps=5)
    page.mouse.up()
    assert tree.bounding_box()["width"] > tree_box["width"] + 60, (tree_box, tree.bounding_box())
    expect(tree.locator(".nbfeat-tree-title")).to_have_text("torchvision:resnet18")  # the model name, whole

    # two layers, two pictures: same grid (14x14), different features
    click_layer(page, "layer3.0")
    pca = page.locator(".nbfeat-browser [data-panel='pca'] canvas")
    first = pixels(pca)
    page.locator(".nbfeat-explorer").screenshot(path=str(ARTIFACTS / f"{tag}_layer3.0.png"))
    click_layer(page, "layer3.1")
    second = pixels(pca)
    page.locator(".nbfeat-explorer").screenshot(path=str(ARTIFACTS / f"{tag}_layer3.1.png"))
    assert first.shape == second.shape == (14, 14, 3)
    assert len(np.unique(first.reshape(-1, 3), axis=0)) > 20
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 8, "two layers drew the same picture"

    # select three layers (ctrl-click): the strip and the similarity maps span them
    for layer in ("layer1", "layer4"):
        page.locator(f".nbfeat-tree .nbfeat-tree-row[data-path='{layer}']").click(modifiers=["Control"])
    expect(page.locator(".nbfeat-browser[data-state='ready'][data-layer='layer4']")).to_have_count(1, timeout=180_000)
    strip = page.locator(".nbfeat-strip-box[data-state='ready'] .nbfeat-layer-strip canvas")
    expect(strip).to_have_count(3, timeout=180_000)
    box = pca.bounding_box()
    pca.click(position={"x": box["width"] * 0.7, "y": box["height"] * 0.3})
    sims = page.locator(".nbfeat-sim-box[data-state='ready'] canvas.nbfeat-sim")
    expect(sims).to_have_count(3, timeout=180_000)
    captions = page.locator(".nbfeat-sim-box figcaption").all_inner_texts()
    assert [c.split(" ·")[0] for c in captions] == ["layer4", "layer1", "layer3.1"], captions
    maps = [pixels(s) for s in sims.all()]
    assert all(len(np.unique(m.reshape(-1, 3), axis=0)) > 3 for m in maps)
    page.locator(".nbfeat-explorer").screenshot(path=str(ARTIFACTS / f"{tag}_similarity.png"))

    # the code of the view: from the code box (the clipboard where the browser allows it)
    code = page.locator(".nbfeat-browser .nbfeat-code-text").inner_text()
    page.locator(".nbfeat-browser [data-action='copy']").click()
    try:
        clip = page.evaluate("navigator.clipboard.readText()")
        assert clip.strip() == code.strip()
    except Exception as e:  # headless clipboard can be refused; the code box is the same text
        if "assert" in type(e).__name__.lower():
            raise
    assert "layers=['layer1', 'layer3.1', 'layer4']" in code and "x = ds['layer4']['layer4']" in code
    rerun_cell(page, 2, "SELECTED = ['layer1', 'layer3.1', 'layer4']")
    shown = np.load(work / "shown.npy")
    script = code + "\nimport numpy as np\nnp.save('fresh.npy', np.asarray(x.values))\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=env(lab["tmp"]), capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = np.load(work / "fresh.npy")
    assert fresh.shape == shown.shape and fresh.tobytes() == shown.tobytes()

    # "To cell": a new cell below the explorer holds the same code
    n_cells = page.locator(".jp-Notebook .jp-Cell").count()
    page.locator(".nbfeat-browser [data-action='to-cell']").click()
    expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(n_cells + 1, timeout=30_000)
    new_cell = page.locator(".jp-Notebook .jp-Cell").nth(2)  # right below the explorer's cell
    expect(new_cell.locator(".cm-content")).to_contain_text("bb = nbfeat.load('torchvision:resnet18'", timeout=30_000)
    assert "x = ds['layer4']['layer4']" in new_cell.locator(".cm-content").inner_text()
    page.screenshot(path=str(ARTIFACTS / f"{tag}_to_cell.png"), full_page=True)

    # save, export to HTML with nbconvert: the saved views are pictures in the page
    page.keyboard.press("Control+s")
    page.wait_for_timeout(1500)
    out = subprocess.run([sys.executable, "-m", "jupyter", "nbconvert", "--to", "html", NOTEBOOK, "--output", f"{tag}_export"],
                         cwd=work, env=env(lab["tmp"]), capture_output=True, text=True, timeout=300)  # fmt: skip
    assert out.returncode == 0, out.stderr[-2000:]
    html = (work / f"{tag}_export.html").read_text()
    pngs = re.findall(r"<img[^>]*src=\"data:image/png;base64,([A-Za-z0-9+/=]+)\"", html)
    assert pngs and all(base64.b64decode(p)[:4] == b"\x89PNG" for p in pngs)
    shutil.copy(work / f"{tag}_export.html", ARTIFACTS / f"{tag}_export.html")


def _workdir(lab, name: str) -> Path:
    work = lab["root"] / name
    work.mkdir()
    shutil.copy(HERE / NOTEBOOK, work)
    return work


@pytest.mark.parametrize(("frontend", "theme"), PAIRS, ids=[f"{f}-{t}" for f, t in PAIRS])
def test_explorer_story(lab, chromium, frontend, theme):
    tag = f"{frontend}_{theme}"
    work = _workdir(lab, tag)
    page = new_page(chromium, lab["url"])
    try:
        open_notebook(page, lab, frontend, f"{tag}/{NOTEBOOK}", theme)
        _explorer_story(page, lab, work, tag)
        # the widget follows the theme: JupyterLab's variables give dark text on light, light on dark
        fg = page.locator(".nbfeat-tree-row[data-path='layer1'] .nbfeat-tree-name").evaluate("e => getComputedStyle(e).color")
        brightness = sum(int(v) for v in re.findall(r"\d+", fg)[:3])
        assert brightness > 400 if theme == "dark" else brightness < 300, (theme, fg)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{tag}_failure.png"), full_page=True)
        raise
    finally:
        page.context.close()
