"""End to end in a real browser: JupyterLab + Debian's Chromium driven by Playwright.

Opens a notebook that shows `nbfeat.explore` on resnet18 (random weights) and three generated
images, clicks `layer2` in the tree, and checks that (1) the kernel's `selected` holds it and
(2) the browser paints a non-blank activation image for it. Screenshots land in
tests/artifacts/ (git-ignored).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
NOTEBOOK = "explorer_e2e.ipynb"
LAYER = "layer2"

# Written before the server starts: no news/update toasts, and every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
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


@pytest.fixture
def lab(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    shutil.copy(HERE / NOTEBOOK, work)
    for rel, data in LAB_SETTINGS.items():
        p = tmp_path / "lab-settings" / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(data))
    env = dict(
        os.environ,
        JUPYTER_CONFIG_DIR=str(tmp_path / "cfg"),
        JUPYTER_DATA_DIR=str(tmp_path / "data"),
        JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"),
        JUPYTERLAB_SETTINGS_DIR=str(tmp_path / "lab-settings"),
        JUPYTERLAB_WORKSPACES_DIR=str(tmp_path / "lab-workspaces"),
        IPYTHONDIR=str(tmp_path / "ipython"),
        # the kernel imports this checkout's nbfeat even where it is not pip-installed
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p),
        PATH=os.pathsep.join((str(Path(sys.executable).parent), os.environ.get("PATH", ""))),
        HF_HUB_OFFLINE="1",
    )
    port = _free_port()
    log_path = tmp_path / "server.log"
    log = open(log_path, "w")
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={work}", "--allow-root",
         "--ServerApp.jpserver_extensions", "jupyter_lsp=False"],
        cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while True:
            if proc.poll() is not None:
                raise RuntimeError("jupyter lab exited:\n" + log_path.read_text())
            try:
                urllib.request.urlopen(url + "/api/status", timeout=2)
                break
            except OSError:
                if time.time() > deadline:
                    raise TimeoutError("jupyter lab did not come up in 90 s") from None
                time.sleep(0.25)
        yield {"url": url, "work": work, "log": log_path}
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


@pytest.fixture
def page(tmp_path):
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, env={**os.environ, "HOME": str(tmp_path / "home")})
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.set_default_timeout(60_000)
        try:
            yield pg
        finally:
            browser.close()


def _wait_cells_done(page, n: int, timeout: int = 120_000) -> None:
    """Every code cell shows an execution count and the kernel is idle."""
    page.wait_for_function(
        """n => {
          const p = [...document.querySelectorAll('.jp-Notebook .jp-CodeCell .jp-InputPrompt')].map(e => e.textContent.trim());
          const bar = document.querySelector('#jp-main-statusbar')?.textContent ?? '';
          return p.length === n && p.every(t => /^\\[\\d+\\]:$/.test(t)) && bar.includes('| Idle');
        }""",
        arg=n,
        timeout=timeout,
    )


# distinct colours among a canvas's pixels (1: blank or uniform)
DISTINCT_COLOURS = """canvas => {
  const ctx = canvas.getContext('2d');
  const {data} = ctx.getImageData(0, 0, canvas.width, canvas.height);
  const seen = new Set();
  for (let i = 0; i < data.length; i += 4) seen.add((data[i] << 16) | (data[i + 1] << 8) | data[i + 2]);
  return {colours: seen.size, width: canvas.width, height: canvas.height};
}"""


def test_click_a_layer_in_the_explorer(lab, page):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    try:
        page.goto(f"{lab['url']}/lab/tree/{NOTEBOOK}")
        expect(page.locator(".jp-Notebook .jp-Cell")).to_have_count(3, timeout=90_000)
        # the status bar, not the toolbar indicator: a Run All sent before the kernel is
        # really ready is dropped silently (jupyterlab#15420)
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Python 3 (ipykernel) | Idle", timeout=90_000)
        page.get_by_role("menuitem", name="Run", exact=True).click()
        page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
        _wait_cells_done(page, 3)

        tree = page.locator(".nbfeat-tree")
        expect(tree.locator(".nbfeat-tree-row[data-path='']")).to_contain_text("torchvision:resnet18")
        row = tree.locator(f".nbfeat-tree-viewport .nbfeat-tree-row[data-path='{LAYER}']")
        expect(row).to_contain_text("1×128×28×28")  # the dry run's output shape
        browser = page.locator(".nbfeat-browser")
        expect(browser.locator(".nbfeat-browser-status")).to_contain_text("Pick a layer")

        row.click()  # JS -> Python: selected; Python -> JS: browser.layer; JS asks for the view
        expect(row).to_have_class("nbfeat-tree-row nbfeat-selected nbfeat-focused")
        ready = page.locator(f".nbfeat-browser[data-state='ready'][data-layer='{LAYER}']")
        expect(ready).to_have_count(1, timeout=120_000)
        expect(browser.locator(".nbfeat-browser-status")).to_contain_text(f"{LAYER} · channel 128 × y 28 × x 28")

        pca = browser.locator("[data-panel='pca'] canvas")
        tiles = browser.locator(".nbfeat-channels [data-panel='channel'] canvas")
        expect(tiles).to_have_count(12)
        pca_px = pca.evaluate(DISTINCT_COLOURS)
        tile_px = tiles.first.evaluate(DISTINCT_COLOURS)
        thumb_px = browser.locator("[data-panel='input'] canvas").evaluate(DISTINCT_COLOURS)
        assert (pca_px["width"], pca_px["height"]) == (28, 28) and pca_px["colours"] > 20, pca_px
        assert (tile_px["width"], tile_px["height"]) == (28, 28) and tile_px["colours"] > 5, tile_px
        assert thumb_px["colours"] > 20, thumb_px

        # the kernel's side: re-run the last cell in place
        cell = page.locator(".jp-Notebook .jp-CodeCell").nth(2)
        cell.locator(".jp-InputArea-editor").click()
        page.keyboard.press("Control+Enter")
        expect(cell.locator(".jp-OutputArea-output")).to_contain_text(f"SELECTED = ['{LAYER}']", timeout=60_000)
        assert json.loads((lab["work"] / "selected.json").read_text()) == {"selected": [LAYER], "shown": LAYER}
    except Exception:
        page.screenshot(path=str(ARTIFACTS / "explorer_failure.png"), full_page=True)
        raise
    ex = page.locator(".nbfeat-explorer")
    ex.scroll_into_view_if_needed()
    ex.screenshot(path=str(ARTIFACTS / "explorer.png"))
