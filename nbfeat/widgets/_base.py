"""What every nbfeat widget shares: the built front end, and requests with binary replies.

The view asks for what it is about to show (`{"type": "nbfeat:request", "id", "kind", ...}`
as a custom message); the widget answers `{"type": "nbfeat:response", "id", "ok", ...,
"arrays": [{"name", "dtype", "shape"}]}` with one binary buffer per array. Nothing is pushed
unasked: a message sent before a view renders would be lost.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets

from nbfeat.errors import NbfeatError

STATIC = Path(__file__).resolve().parent.parent / "static"
BUNDLE = STATIC / "widgets.js"
STYLES = STATIC / "widgets.css"

# dtypes the JS codec reads (js/src/codec.ts); anything else is converted deliberately first
WIRE_DTYPES = ("uint8", "float16", "float32", "int32")


def pack(arrays: dict[str, np.ndarray]) -> tuple[list[dict[str, Any]], list[memoryview]]:
    """Array specs for the JSON part and little-endian C-ordered buffers, in the same order."""
    specs, buffers = [], []
    for name, arr in arrays.items():
        arr = np.asarray(arr)
        if arr.dtype.name not in WIRE_DTYPES:
            raise TypeError(f"array {name!r} has dtype {arr.dtype}; convert it to one of {WIRE_DTYPES} first")
        arr = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<"))
        specs.append({"name": name, "dtype": arr.dtype.name, "shape": [int(s) for s in arr.shape]})
        buffers.append(memoryview(arr).cast("B"))
    return specs, buffers


class NbfeatWidget(anywidget.AnyWidget):
    """Base class: loads the bundle from `nbfeat/static/`, answers `nbfeat:request` messages.

    A subclass answers request kind `k` with a method `_request_k(content) -> (meta, arrays)`.
    """

    if BUNDLE.is_file():  # a checkout without the built bundle still imports (and says why below)
        _esm = BUNDLE
        _css = STYLES

    _kind = traitlets.Unicode("").tag(sync=True)
    """Which view of the shared bundle renders this widget ("tree", "browser")."""

    def __init__(self, **kwargs: Any) -> None:
        if not BUNDLE.is_file():
            raise NbfeatError(
                f"nbfeat's widget bundle is missing ({BUNDLE}): build it with `make js` "
                "(or `cd js && npm ci && npm run build`), or install nbfeat from a wheel."
            )
        super().__init__(**kwargs)
        self.on_msg(self._on_custom_msg)

    def _on_custom_msg(self, _widget: Any, content: Any, buffers: list[Any]) -> None:
        if not isinstance(content, dict) or content.get("type") != "nbfeat:request":
            return
        reply, out = self.handle_request(content)
        self.send(reply, buffers=out)

    def handle_request(self, content: dict[str, Any]) -> tuple[dict[str, Any], list[memoryview]]:
        """The reply (JSON part, buffers) to one request; errors become `ok: False` replies."""
        head = {"type": "nbfeat:response", "id": content.get("id"), "kind": content.get("kind")}
        handler = getattr(self, f"_request_{content.get('kind')}", None)
        if handler is None:
            return {**head, "ok": False, "error": f"unknown request {content.get('kind')!r}"}, []
        try:
            meta, arrays = handler(content)
            specs, buffers = pack(arrays)
        except NbfeatError as e:
            return {**head, "ok": False, "error": str(e)}, []
        except Exception as e:  # shown in the widget: the kernel must keep serving the view
            first = str(e).strip().splitlines()[0] if str(e).strip() else ""
            return {**head, "ok": False, "error": f"{type(e).__name__}: {first}"[:500]}, []
        return {**head, "ok": True, **meta, "arrays": specs}, buffers
