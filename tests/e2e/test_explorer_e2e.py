"""End to end in a real browser: JupyterLab 4 and Notebook 7 with Debian's Chromium (Playwright).

One JupyterLab server for the session. The notebook shows `nbfeat.explore` on resnet18 (random
weights) and a folder of generated images. In JupyterLab (light theme), then Notebook 7 (dark):

- click two layers in the tree and see two different PCA pictures (canvas pixels compared);
- click a patch on the PCA map and see the similarity maps of every linked layer, and the strip;
- take the code from the browser's code box, run it in a FRESH Python process and compare the
  array with the one the kernel showed, bit for bit; "To cell" puts the same code in a new cell;
- save the notebook, export it with nbconvert to HTML, and find the widgets' saved pictures.

Screenshots are kept under $NBFEAT_ARTIFACTS (default tests/artifacts/, git-ignored).
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = Path(os.environ.get("NBFEAT_ARTIFACTS", ROOT / "tests" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = "explorer_e2e.ipynb"
THEMES = "@jupyterlab/apputils-extension/themes.jupyterlab-settings"

# Written before the server starts: no news/update toasts, and every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    THEMES: {"theme": "JupyterLab Light"},
}

if not Path(CHROMIUM).exists():  # `make setup` installs it; in CI a missing browser is a failure
    if os.environ.get("CI"):
        pytest.fail(f"CI needs Chromium at {CHROMIUM}: `make setup` installs it", pytrace=False)
    pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)", allow_module_level=True)
sync_playwright = pytest.importorskip("playwright.sync_api").sync_playwright
expect = pytest.importorskip("playwright.sync_api").expect


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _env(tmp: Path) -> dict[str, str]:
    return dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp / "cfg"),
        JUPYTER_DATA_DIR=str(tmp / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp / "lab-workspaces"),
        IPYTHONDIR=str(tmp / "ipython"),
        # the kernel imports this checkout's nbfeat even where it is not pip-installed
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
    )


def _settings(tmp: Path, rel: str, data: dict) -> None:
    p = tmp / "lab-settings" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data))


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """One JupyterLab server (it also serves Notebook 7) for every e2e test."""
    tmp = tmp_path_factory.mktemp("lab")
    for rel, data in LAB_SETTINGS.items():
        _settings(tmp, rel, data)
    port = _free_port()
    log_path = tmp / "server.log"
    log = open(log_path, "w")
    root_dir = tmp / "work"
    root_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root_dir}", "--allow-root",
         "--ServerApp.jpserver_extensions", "jupyter_lsp=False"],
        cwd=root_dir, env=_env(tmp), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while True:
            if proc.poll() is not None:
                raise RuntimeError("jupyter lab exited:\n" + log_path.read_text())
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("jupyter lab did not come up in 120 s") from None
                time.sleep(0.25)
        yield {"url": url, "root": root_dir, "tmp": tmp, "log": log_path}
    finally:
        proc.terminate()  # the server shuts its kernels down on SIGTERM
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            pass
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
        log.close()


# Module scope: a live sync_playwright keeps its event loop running in this thread, and any
# later test that starts its own sync_playwright would be refused while it is open.
@pytest.fixture(scope="module")
def chromium(tmp_path_factory):
    home = tmp_path_factory.mktemp("chromium-home")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()


def _page(chromium, url):
    ctx = chromium.new_context(viewport={"width": 1500, "height": 1100})
    ctx.grant_permissions(["clipboard-read", "clipboard-write"], origin=url)
    pg = ctx.new_page()
    pg.set_default_timeout(90_000)
    return pg


DONE = """n => {
  const p = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
  return p.length >= n && p.slice(0, n).every(t => /^\\[\\d+\\]:$/.test(t));
}"""
STARTED = "() => [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].some(e => /\\[(\\*|\\d+)\\]/.test(e.textContent))"


def _accept_kernel_dialog(page) -> bool:
    """A "Select Kernel" dialog (a session whose kernel is not up yet): keep the preferred one."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        dialog.locator(".jp-mod-accept").first.click()
        return True
    return False


def _menu_run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _run_all(page, n: int) -> None:
    """Run > Run All Cells, again if the kernel dropped it, until every prompt reads [n]:."""
    expect(page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")).to_have_count(n, timeout=90_000)
    for _attempt in range(6):
        _accept_kernel_dialog(page)
        _menu_run_all(page)
        try:  # a Run All sent before the kernel is really ready is dropped silently (jupyterlab#15420)
            page.wait_for_function(STARTED, timeout=15_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    deadline = time.time() + 300
    while not page.evaluate(DONE, n):
        if time.time() > deadline:
            raise TimeoutError("the notebook did not finish running in 300 s")
        if _accept_kernel_dialog(page):
            _menu_run_all(page)  # the cells the dialog interrupted
        page.wait_for_timeout(1000)


PIXELS = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  return {w: canvas.width, h: canvas.height, rgb: Array.from(data).filter((_, i) => i % 4 !== 3)};
}"""


def _pixels(locator) -> np.ndarray:
    got = locator.evaluate(PIXELS)
    return np.asarray(got["rgb"], dtype=np.uint8).reshape(got["h"], got["w"], 3)


def _click_layer(page, layer: str) -> None:
    row = page.locator(f".nbfeat-tree .nbfeat-tree-viewport .nbfeat-tree-row[data-path='{layer}']")
    row.scroll_into_view_if_needed()
    row.click()
    expect(page.locator(f".nbfeat-browser[data-state='ready'][data-layer='{layer}']")).to_have_count(1, timeout=180_000)


def _expand(page, path: str) -> None:
    row = page.locator(f".nbfeat-tree .nbfeat-tree-row[data-path='{path}']")
    if row.get_attribute("aria-expanded") == "false":
        row.locator(".nbfeat-tree-caret").click()


def _rerun_last_cell(page, expect_text: str) -> None:
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(2)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    expect(cell.locator(".jp-OutputArea-output")).to_contain_text(expect_text, timeout=90_000)


def _explorer_story(page, lab, work: Path, tag: str) -> None:
    """Everything a researcher does in one frontend; screenshots named with `tag`."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    _run_all(page, 3)
    tree = page.locator(".nbfeat-tree")
    expect(tree.locator(".nbfeat-tree-row[data-path='']")).to_contain_text("torchvision:resnet18")
    expect(page.locator(".nbfeat-browser .nbfeat-browser-status")).to_contain_text("Pick a layer")
    _expand(page, "layer3")

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
    _click_layer(page, "layer3.0")
    pca = page.locator(".nbfeat-browser [data-panel='pca'] canvas")
    first = _pixels(pca)
    page.locator(".nbfeat-explorer").screenshot(path=str(ARTIFACTS / f"{tag}_layer3.0.png"))
    _click_layer(page, "layer3.1")
    second = _pixels(pca)
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
    maps = [_pixels(s) for s in sims.all()]
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
    _rerun_last_cell(page, "SELECTED = ['layer1', 'layer3.1', 'layer4']")
    shown = np.load(work / "shown.npy")
    script = code + "\nimport numpy as np\nnp.save('fresh.npy', np.asarray(x.values))\n"
    proc = subprocess.run([sys.executable, "-c", script], cwd=work, env=_env(lab["tmp"]), capture_output=True, text=True, timeout=600)
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
                         cwd=work, env=_env(lab["tmp"]), capture_output=True, text=True, timeout=300)  # fmt: skip
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


def test_jupyterlab_light(lab, chromium):
    work = _workdir(lab, "lab")
    page = _page(chromium, lab["url"])
    try:
        page.goto(f"{lab['url']}/lab/tree/lab/{NOTEBOOK}")
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Python 3 (ipykernel) | Idle", timeout=120_000)
        assert page.evaluate("document.body.dataset.jpThemeLight") == "true"
        _explorer_story(page, lab, work, "lab_light")
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "lab_light_failure.png"), full_page=True)
        raise
    finally:
        page.context.close()


def test_notebook7_dark(lab, chromium):
    _settings(lab["tmp"], THEMES, {"theme": "JupyterLab Dark"})  # read per request: no restart
    work = _workdir(lab, "nb7")
    page = _page(chromium, lab["url"])
    try:
        page.goto(f"{lab['url']}/notebooks/nb7/{NOTEBOOK}")
        page.wait_for_function("document.body.dataset.jpThemeLight === 'false'", timeout=120_000)
        _explorer_story(page, lab, work, "nb7_dark")
        # dark theme: the widget's text is light on dark (JupyterLab's theme variables)
        fg = page.locator(".nbfeat-tree-row[data-path='layer1'] .nbfeat-tree-name").evaluate("e => getComputedStyle(e).color")
        assert sum(int(v) for v in re.findall(r"\d+", fg)[:3]) > 400, fg
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "nb7_dark_failure.png"), full_page=True)
        raise
    finally:
        page.context.close()
