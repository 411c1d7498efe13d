"""What every real-browser test shares: a JupyterLab server's settings and environment, and the
Playwright steps a user takes (open a notebook, run all, click a layer, read canvas pixels).

The fixtures (`lab`, `chromium`) are in conftest.py; tests import the steps:

>>> from labkit import ARTIFACTS, open_notebook, run_all, pixels   # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from pathlib import Path

import numpy as np
from playwright.sync_api import expect

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
ARTIFACTS = Path(os.environ.get("NBFEAT_ARTIFACTS", ROOT / "tests" / "artifacts"))
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
THEMES = "@jupyterlab/apputils-extension/themes.jupyterlab-settings"
THEME_NAMES = {"light": "JupyterLab Light", "dark": "JupyterLab Dark"}
FRONTENDS = ("lab", "nb7")  # JupyterLab 4 (/lab/tree/...) and Notebook 7 (/notebooks/...)

# Written before the server starts: no news/update toasts, and every cell kept in the DOM.
LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {"fetchNews": "false", "checkForUpdates": False},
    "@jupyterlab/notebook-extension/tracker.jupyterlab-settings": {"windowingMode": "none"},
    THEMES: {"theme": "JupyterLab Light"},
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env(tmp: Path) -> dict[str, str]:
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


def settings(tmp: Path, rel: str, data: dict) -> None:
    p = tmp / "lab-settings" / rel
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps(data))


def new_page(chromium, url):
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


def accept_kernel_dialog(page) -> bool:
    """A "Select Kernel" dialog (a session whose kernel is not up yet): keep the preferred one."""
    dialog = page.locator(".jp-Dialog")
    if dialog.count() and dialog.first.is_visible():
        dialog.locator(".jp-mod-accept").first.click()
        return True
    return False


def menu_run_all(page) -> None:
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def run_all(page, n: int, timeout: float = 240) -> None:
    """Run > Run All Cells, again if the kernel dropped it, until every prompt reads [n]:.

    If the cells stall (seen once under load in Notebook 7: the server started a second kernel
    for the notebook and the page's websocket went to the wrong one), reload the page and run
    them again, once."""
    for attempt in range(2):
        try:
            _run_all_once(page, n, timeout)
            return
        except TimeoutError:
            if attempt:
                raise
            page.reload()


def _run_all_once(page, n: int, timeout: float) -> None:
    expect(page.locator(".jp-Notebook .jp-CodeCell .jp-InputPrompt")).to_have_count(n, timeout=90_000)
    for _attempt in range(6):
        accept_kernel_dialog(page)
        menu_run_all(page)
        try:  # a Run All sent before the kernel is really ready is dropped silently (jupyterlab#15420)
            page.wait_for_function(STARTED, timeout=15_000)
            break
        except Exception:
            page.keyboard.press("Escape")
    deadline = time.time() + timeout
    while not page.evaluate(DONE, n):
        if time.time() > deadline:
            raise TimeoutError(f"the notebook did not finish running in {timeout:.0f} s")
        if accept_kernel_dialog(page):
            menu_run_all(page)  # the cells the dialog interrupted
        page.wait_for_timeout(1000)


PIXELS = """canvas => {
  const {data} = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height);
  return {w: canvas.width, h: canvas.height, rgb: Array.from(data).filter((_, i) => i % 4 !== 3)};
}"""


def pixels(locator) -> np.ndarray:
    got = locator.evaluate(PIXELS)
    return np.asarray(got["rgb"], dtype=np.uint8).reshape(got["h"], got["w"], 3)


def click_layer(page, layer: str) -> None:
    row = page.locator(f".nbfeat-tree .nbfeat-tree-viewport .nbfeat-tree-row[data-path='{layer}']")
    row.scroll_into_view_if_needed()
    row.click()
    expect(page.locator(f".nbfeat-browser[data-state='ready'][data-layer='{layer}']")).to_have_count(1, timeout=180_000)


def expand(page, path: str) -> None:
    row = page.locator(f".nbfeat-tree .nbfeat-tree-row[data-path='{path}']")
    if row.get_attribute("aria-expanded") == "false":
        row.locator(".nbfeat-tree-caret").click()


def rerun_cell(page, index: int, expect_text: str) -> None:
    """Run code cell `index` again in place (Control+Enter) and wait for `expect_text` in its output."""
    cell = page.locator(".jp-Notebook .jp-CodeCell").nth(index)
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")
    expect(cell.locator(".jp-OutputArea-output")).to_contain_text(expect_text, timeout=90_000)


def open_notebook(page, lab: dict, frontend: str, rel: str, theme: str = "light") -> None:
    """Open notebook `rel` (relative to the server root) in JupyterLab (`frontend="lab"`) or
    Notebook 7 (`"nb7"`) with the light or dark theme, and wait until the theme is applied."""
    settings(lab["tmp"], THEMES, {"theme": THEME_NAMES[theme]})  # read per request: no restart
    # a workspace of its own: JupyterLab would reopen the notebooks an earlier test left open
    workspace = "".join(c if c.isalnum() else "-" for c in rel)
    page.goto(f"{lab['url']}/lab/workspaces/{workspace}/tree/{rel}" if frontend == "lab" else f"{lab['url']}/notebooks/{rel}")
    light = "true" if theme == "light" else "false"
    page.wait_for_function(f"document.body.dataset.jpThemeLight === '{light}'", timeout=120_000)
    if frontend == "lab":
        expect(page.locator("#jp-main-statusbar")).to_contain_text("Python 3 (ipykernel) | Idle", timeout=120_000)
