"""Fixtures of the real-browser tests: one JupyterLab server (it also serves Notebook 7) per
module, and Debian's Chromium driven by Playwright. The steps a user takes are in labkit.py.

Without Chromium they are skipped, except in CI (`$CI` set),
where a missing browser is a failure: `make setup` installs it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from labkit import CHROMIUM, LAB_SETTINGS, env, free_port, settings


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab server in a temp dir: `{"url", "root", "tmp", "log"}`."""
    tmp = tmp_path_factory.mktemp("lab")
    for rel, data in LAB_SETTINGS.items():
        settings(tmp, rel, data)
    port = free_port()
    log_path = tmp / "server.log"
    log = open(log_path, "w")
    root_dir = tmp / "work"
    root_dir.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "jupyter", "lab", "--no-browser", "--ip=127.0.0.1", f"--port={port}", "--port-retries=0",
         "--IdentityProvider.token=", "--ServerApp.password=", f"--ServerApp.root_dir={root_dir}", "--allow-root",
         "--ServerApp.jpserver_extensions", "jupyter_lsp=False"],
        cwd=root_dir, env=env(tmp), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
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
    """A headless Chromium (Playwright `Browser`)."""
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):
            pytest.fail(f"CI needs Chromium at {CHROMIUM}: `make setup` installs it", pytrace=False)
        pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install -y chromium)")
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, env={**os.environ, "HOME": str(home)})
        try:
            yield browser
        finally:
            browser.close()
