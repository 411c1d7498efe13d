"""Strings from users' files are data, never code; tokens never reach outputs.

Sample ids, labels, layer and module names come from folders and checkpoints nbfeat did not
write. The widgets must show them as text: the front end has no code path that turns a string
into code or markup (source scan), the Python side syncs only data, and a real Chromium renders
hostile names as text under a strict Content-Security-Policy (no inline script, no eval). A
notebook executed with HF_TOKEN set shows the token nowhere, in outputs or in files.
(YAML `!!python/...` tags are refused: tests/magics/test_magic_config.py and tests/test_cli.py.)
"""

from __future__ import annotations

import base64
import json
import os
import re
from pathlib import Path

import numpy as np
import pytest

import nbfeat

ROOT = Path(__file__).resolve().parents[2]
JS_SOURCES = sorted((ROOT / "js" / "src").glob("*.ts"))
BUNDLE = ROOT / "nbfeat" / "static" / "widgets.js"

# No dots: module names may not hold one. Each one, if it ever ran, sets top.__pwned.
PAYLOADS = [
    "<img src=x onerror=top['__pwned']=1>",
    "<script>top['__pwned']=2</script>",
    "${top['__pwned']=3}",
    "javascript:top['__pwned']=4",
    "\"><svg onload=top['__pwned']=5>",
]

# ways a string becomes code or markup in a browser
CODE_SINKS = {
    "eval": r"(?<![\w$.])eval\s*\(",
    "new Function": r"\bnew\s+Function\b",
    "Function(": r"(?<![\w$.])Function\s*\(",
    "innerHTML": r"\binnerHTML\b",
    "outerHTML": r"\bouterHTML\b",
    "insertAdjacentHTML": r"\binsertAdjacentHTML\b",
    "document.write": r"\bdocument\.write(ln)?\s*\(",
    "createContextualFragment": r"\bcreateContextualFragment\b",
    "DOMParser": r"\bDOMParser\b",
    "srcdoc": r"\bsrcdoc\b",
    "javascript: URL": r"javascript:",
    "string timer": r"\bset(Timeout|Interval)\s*\(\s*[\"'`]",
    "on* attribute": r"setAttribute\(\s*[\"'`]on",
    "dynamic import": r"(?<![\w$.])import\s*\(",
}


@pytest.mark.parametrize("path", [*JS_SOURCES, BUNDLE], ids=lambda p: p.name)
def test_front_end_has_no_way_to_run_a_string(path):
    if not path.is_file():
        pytest.skip(f"{path} is not built (make js)")
    text = path.read_text(encoding="utf-8")
    found = {name: m.group(0) for name, pattern in CODE_SINKS.items() if (m := re.search(pattern, text))}
    assert not found, f"{path.name} has code sinks: {found}"


def test_attribute_names_in_the_views_are_literals():
    # dom.ts `h(tag, {attrs})` sets attributes by name: every name must be written in the
    # source, so no kernel string can become an event-handler attribute
    for path in JS_SOURCES:
        for block in re.findall(r"attrs:\s*\{([^}]*)\}", path.read_text(encoding="utf-8")):
            for key in re.findall(r"(?:^|,)\s*([^:,]+?)\s*:", block):
                assert re.fullmatch(r"[\"']?[a-z][a-z-]*[\"']?", key), f"{path.name}: computed attribute name {key!r}"
                assert not key.strip("\"'").startswith("on"), f"{path.name}: event attribute {key!r}"


# ---- the Python side: data only --------------------------------------------------------------


@pytest.fixture(scope="module")
def hostile():
    """A dataset and a module whose every name is a payload, as a stranger's files could make."""
    import torch
    import xarray as xr

    n = len(PAYLOADS)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {
            PAYLOADS[0]: (("sample", "channel", "y", "x"), rng.normal(size=(n, 4, 6, 6)).astype(np.float32)),
            PAYLOADS[1]: (("sample", "feature"), rng.normal(size=(n, 8)).astype(np.float32)),
        },
        coords={"sample": PAYLOADS, "label": ("sample", PAYLOADS[::-1]), "path": ("sample", PAYLOADS)},
        attrs={"model": PAYLOADS[2], "modality": "image"},
    )

    class Hostile(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.blocks = torch.nn.ModuleDict({p: torch.nn.Linear(2, 2) for p in PAYLOADS})

        def forward(self, x):
            for block in self.blocks.values():
                x = block(x)
            return x

    return ds, Hostile()


def _sync_traits(widget):
    return {name: trait for name, trait in widget.traits(sync=True).items()}


def test_python_widgets_sync_only_data_and_a_fixed_bundle(hostile):
    import traitlets

    from nbfeat.widgets._base import BUNDLE as PY_BUNDLE
    from nbfeat.widgets._base import STYLES

    ds, module = hostile
    data_traits = (traitlets.Unicode, traitlets.Int, traitlets.Float, traitlets.Bool, traitlets.List, traitlets.Dict, traitlets.Bytes, traitlets.Tuple, traitlets.Enum, traitlets.Instance)
    for widget in (nbfeat.browse(ds), nbfeat.tree(module)):
        # the front-end module is nbfeat's own built file, whatever the data
        state = widget.get_state()
        assert state["_esm"] == PY_BUNDLE.read_text(encoding="utf-8")
        assert state["_css"] == STYLES.read_text(encoding="utf-8")
        for name, trait in _sync_traits(widget).items():
            if name.startswith("_") and name not in ("_kind",):
                continue  # ipywidgets' own (model name, view module, layout): not from data
            assert isinstance(trait, data_traits), (name, type(trait).__name__)
        text = json.dumps({k: v for k, v in state.items() if k not in ("_esm", "_css")}, default=str)
        assert all(json.dumps(p)[1:-1] in text for p in PAYLOADS[:2])  # names travel as plain strings


def test_replies_are_json_data_and_binary_buffers(hostile):
    ds, _ = hostile
    widget = nbfeat.browse(ds)
    for content in (
        {"type": "nbfeat:request", "id": 1, "kind": "view", "sample": 2, "layer": PAYLOADS[0], "thumb": True},
        {"type": "nbfeat:request", "id": 2, "kind": "view", "sample": 0, "layer": PAYLOADS[1]},
        {"type": "nbfeat:request", "id": 3, "kind": "view", "sample": 0, "layer": PAYLOADS[3]},  # unknown: an error reply
        {"type": "nbfeat:request", "id": 4, "kind": PAYLOADS[4]},  # an unknown kind from the page
    ):
        reply, buffers = widget.handle_request(content)
        assert json.loads(json.dumps(reply)) == reply  # plain JSON: str, numbers, lists, dicts
        assert all(isinstance(b, memoryview) for b in buffers)
        assert reply["ok"] is (content["id"] in (1, 2)), reply


# ---- a real browser under a strict CSP ---------------------------------------------------------

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data: blob:; "
    "object-src 'none'; base-uri 'none'; frame-src 'none'"
)
PAGE = """<!doctype html><html><head><meta charset="utf-8"><link rel="stylesheet" href="/widgets.css">
<script type="module" src="/harness.js"></script></head><body></body></html>"""
# A stand-in for anywidget's model: state from the Python widget, custom messages answered by
# the Python widget's own request handler (through page.expose_function).
HARNESS = """
import widget from "/widgets.js";
window.__violations = []; window.__errors = []; window.__replies = 0;
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(`${e.violatedDirective} ${e.blockedURI} ${e.sample}`));
window.addEventListener("error", (e) => window.__errors.push(String(e.message)));
window.addEventListener("unhandledrejection", (e) => window.__errors.push(String(e.reason)));
function view(b64) {
  const bin = atob(b64); const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new DataView(bytes.buffer);
}
class Model {
  constructor(id, state) { this.id = id; this.state = state; this.handlers = new Map(); }
  get(k) { return this.state[k]; }
  set(k, v) { this.state[k] = v; this.emit(`change:${k}`); this.emit("change"); }
  on(ev, fn) { if (!this.handlers.has(ev)) this.handlers.set(ev, []); this.handlers.get(ev).push(fn); }
  off(ev, fn) {
    if (!ev) { this.handlers.clear(); return; }
    this.handlers.set(ev, (this.handlers.get(ev) || []).filter((f) => fn && f !== fn));
  }
  emit(ev, ...args) { for (const f of [...(this.handlers.get(ev) || [])]) f(...args); }
  save_changes() { window.kernel_sync(this.id, JSON.stringify(this.state)); }
  send(content) {
    window.kernel(this.id, JSON.stringify(content)).then((text) => {
      const { msg, buffers } = JSON.parse(text);
      this.emit("msg:custom", msg, buffers.map(view));
      window.__replies += 1;
    });
  }
}
const states = await (await fetch("/states.json")).json();
window.models = {};
for (const [id, state] of Object.entries(states)) {
  const el = document.createElement("div"); el.id = `widget-${id}`; document.body.append(el);
  window.models[id] = new Model(id, state);
  await widget.render({ model: window.models[id], el });
}
window.__ready = true;
"""


def _chromium():
    path = os.environ.get("CHROMIUM", "/usr/bin/chromium")
    if not Path(path).is_file():
        pytest.skip(f"needs Chromium at {path} (apt-get install -y chromium)")
    pytest.importorskip("playwright")
    return path


def wait_until(page, predicate, timeout=20.0):
    # polled from here: page.wait_for_function evaluates strings in the page, which the CSP
    # under test forbids (page.evaluate goes through the devtools protocol instead)
    import time

    deadline = time.monotonic() + timeout
    while not page.evaluate(predicate):
        assert time.monotonic() < deadline, f"timed out waiting for {predicate}"
        page.wait_for_timeout(20)


def test_hostile_names_render_as_text_under_a_strict_csp(hostile, tmp_path):
    from jupyter_client.jsonutil import json_default
    from playwright.sync_api import sync_playwright

    chromium = _chromium()
    if not BUNDLE.is_file():
        pytest.skip("the widget bundle is not built (make js)")
    ds, module = hostile
    widgets = {"browser": nbfeat.browse(ds), "tree": nbfeat.tree(module)}
    states = {k: {n: v for n, v in w.get_state().items() if n not in ("_esm", "_css")} for k, w in widgets.items()}
    files = {
        "/index.html": ("text/html", PAGE),
        "/harness.js": ("text/javascript", HARNESS),
        "/widgets.js": ("text/javascript", BUNDLE.read_text(encoding="utf-8")),
        "/widgets.css": ("text/css", BUNDLE.with_suffix(".css").read_text(encoding="utf-8")),
        "/states.json": ("application/json", json.dumps(states, default=json_default)),
    }
    synced = []

    def kernel(widget_id, content):
        # the kernel's side of a custom message, serialised as Jupyter's session does
        reply, buffers = widgets[widget_id].handle_request(json.loads(content))
        msg = json.loads(json.dumps(reply, default=json_default))
        return json.dumps({"msg": msg, "buffers": [base64.b64encode(bytes(b)).decode() for b in buffers]})

    def serve(route):
        path = route.request.url.removeprefix("http://nbfeat.test")
        if path not in files:
            return route.fulfill(status=404, body="")
        kind, body = files[path]
        route.fulfill(status=200, content_type=kind, body=body, headers={"Content-Security-Policy": CSP})

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True, env={**os.environ, "HOME": str(tmp_path)})
        try:
            page = browser.new_page()
            page.route("http://nbfeat.test/**", serve)
            page.expose_function("kernel", kernel)
            page.expose_function("kernel_sync", lambda widget_id, state: synced.append((widget_id, json.loads(state))))
            page.goto("http://nbfeat.test/index.html")
            wait_until(page, "() => window.__ready === true && window.__replies >= 1")
            # walk the browser over samples and layers, including one that does not exist
            for step, js in enumerate(
                [
                    "models.browser.set('sample', 3)",
                    f"models.browser.set('layer', {json.dumps(PAYLOADS[1])})",
                    f"models.browser.set('layer', {json.dumps(PAYLOADS[4])})",
                    f"models.tree.set('selected', [{json.dumps('blocks.' + PAYLOADS[0])}])",
                ],
                start=2,
            ):
                page.evaluate(js)
                if js.startswith("models.browser"):
                    wait_until(page, f"() => window.__replies >= {step}")
            page.wait_for_timeout(200)
            report = page.evaluate(
                """() => ({
                    pwned: window.__pwned ?? null,
                    violations: window.__violations,
                    errors: window.__errors,
                    handlers: [...document.querySelectorAll('*')].flatMap((e) => [...e.attributes].filter((a) => a.name.startsWith('on')).map((a) => e.tagName + ' ' + a.name)),
                    scripts: [...document.querySelectorAll('script')].map((s) => s.getAttribute('src')),
                    foreign: [...document.querySelectorAll('img, iframe, object, embed, frame, math')].map((e) => e.outerHTML),
                    text: document.body.innerText + ' ' + [...document.querySelectorAll('option')].map((o) => o.textContent).join(' '),
                })"""
            )
        finally:
            browser.close()
    assert report["pwned"] is None
    assert report["violations"] == [], report["violations"]  # no inline script ran, no eval
    assert report["errors"] == [], report["errors"]
    assert report["handlers"] == [] and report["scripts"] == ["/harness.js"] and report["foreign"] == []
    for payload in PAYLOADS[:2] + PAYLOADS[4:]:  # shown, as text
        assert payload in report["text"], payload


# ---- tokens ----------------------------------------------------------------------------------

SECRET = "hf_RELIABILITYmarker0123456789abcdef"


def test_tokens_never_reach_an_executed_notebook_or_any_file(tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    cells = [
        "import json, os, nbfeat\nfrom nbfeat.examples import make_images, save_tiny_vit\n"
        "vit = save_tiny_vit('vit')\nimages = make_images('images', per_class=2, size=32)\nassert os.environ['HF_TOKEN']",
        "%load_ext nbfeat",
        "bb = nbfeat.load(f'hf:{vit}')\nbb",
        "ds = bb.extract(images, layers=[-1], pool='cls', out='feats.zarr', progress=False)\nds",
        "print(json.dumps(ds.attrs)); print(bb.load_kwargs()); ds.to_netcdf('feats.nc')",
        "%nbfeat extract hf:vit --inputs images/ --layers -1 --pool cls --out magic.zarr -o f2",
        "%%nbfeat --code\nmodel: hf:vit\ninputs: images/\nlayers: -1\n",
        "nbfeat.tree(bb)",
        "nbfeat.browse(ds)",
        "%nbfeat models llama",
        "try:\n    nbfeat.load('llama3.2_1b')\nexcept Exception as e:\n    print(type(e).__name__, e)",
        "%config NbfeatMagics.short_errors = False",
        "%nbfeat extract hf:meta-llama/Llama-3.2-1B --inputs images/",  # a traceback, shown in full
    ]
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in cells])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_TOKEN", SECRET)
    monkeypatch.setenv("HF_ACCESS_TOKEN", SECRET + "2")
    client = NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True, resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [(i, o.get("ename")) for i, c in enumerate(nb.cells) for o in c.outputs if o.get("output_type") == "error"]
    assert [i for i, _ in errors] == [len(cells) - 1], errors  # only the cell meant to fail
    out = tmp_path / "executed.ipynb"
    nbformat.write(nb, out)
    text = out.read_text(encoding="utf-8")
    assert "widget-state" in text and "feats.zarr" in text  # widget state and outputs were saved
    leaks = [p for p in tmp_path.rglob("*") if p.is_file() and SECRET.encode() in p.read_bytes()]
    assert leaks == []
    assert SECRET not in text
