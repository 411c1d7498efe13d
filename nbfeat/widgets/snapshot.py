"""Saved views: a static PNG of what a widget shows now, drawn with matplotlib in the kernel.

A widget displayed in a notebook (`_ipython_display_`) makes two outputs: the live widget view,
and beside it a picture of the view (`image/png`) that the kernel redraws after every change
(sample, layer, channel, depth, clicked patch, selection), about a second after the last one,
with `update_display`. A notebook saved after the clicks and exported with nbconvert (as GitHub
and nbviewer show it) shows the last state without a kernel.

The picture is a separate output on purpose: JupyterLab answers an `update_display_data` for
an output holding a widget view by rendering a new view (@jupyter-widgets/jupyterlab-manager's
`WidgetRenderer.renderModel`: "Loading widget...", then `create_view`; seen in JupyterLab 4.6
with jupyterlab-manager 5.0: the old view's element is gone), which would throw the live view
and its state away at every click. The picture's output also carries a widget view of no model
(`model_id: ""`), which that renderer shows as nothing (it hides itself), so a live notebook
shows the widget once; nbconvert drops a widget view without saved state and shows the PNG.

>>> png = browser_png(nbfeat.browse(ds))     # doctest: +SKIP
>>> png[:4]                                  # doctest: +SKIP
b'\\x89PNG'
"""

from __future__ import annotations

import base64
import io
import uuid
from typing import Any

import numpy as np

MAX_ROWS = 28  # tree rows in the picture
N_CHANNELS = 16  # at most this many channel heatmaps in the picture (the view shows n_top)
N_COLS = 8  # pictures per row of the browser's panel grid
DELAY_S = 1.0  # quiet time after the last change before the picture is redrawn
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
PATCH_COLOR = "#00e5ff"  # as the view outlines the clicked patch (js/src/linked_views.ts)


def _figure(width: float, height: float, layout: str | None = "constrained") -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=90, layout=layout)


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", facecolor="white")
    return buf.getvalue()


def _tree_rows(tree: Any) -> list[tuple[str, bool]]:
    """Text lines of the tree: the top levels, and every selected module (marked)."""
    sel = set(tree.selected)
    lines = []
    for r in tree.rows:
        if r["path"] and r["depth"] > 1 and r["path"] not in sel:
            continue
        shape = "×".join(map(str, r["shape"])) if r.get("shape") else "?"
        name = r["path"] or tree.title or r["type"]
        lines.append((f"{'  ' * r['depth']}{name}  {r['type']}  {shape}", r["path"] in sel))
    if len(lines) > MAX_ROWS:
        picked = [ln for ln in lines if ln[1]][:MAX_ROWS // 2]
        lines = lines[: MAX_ROWS - len(picked)] + [("  …", False)] + picked
    return lines


def _draw_tree(ax: Any, tree: Any) -> None:
    ax.set_axis_off()
    rows = _tree_rows(tree)
    ax.set_title(f"{tree.title}: {len(tree.rows) - 1} modules, {len(tree.selected)} selected", loc="left", fontsize=9)
    for i, (text, selected) in enumerate(rows):
        ax.text(0, 1 - (i + 0.5) / max(len(rows), 12), text, family="monospace", fontsize=7.5, va="center",
                color="#0b5394" if selected else "#222222", weight="bold" if selected else "normal", transform=ax.transAxes)  # fmt: skip


def _view(browser: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """What the browser's view shows now (the same reply its front end gets), or None."""
    if not browser.layer:
        return None
    try:
        return browser._request_view(
            {"sample": browser.sample, "layer": browser.layer, "channel": browser.channel, "depth": browser.depth, "k": min(browser.n_top, N_CHANNELS), "thumb": True}
        )
    except Exception:  # the view shows the error; the picture shows the title only
        return None


def _linked(browser: Any, kind: str) -> tuple[dict[str, Any], dict[str, np.ndarray]] | None:
    """The similarity maps of the clicked patch ("similarity") or the layer strip ("strip"), as
    the view asks for them; None where the view shows none."""
    try:
        if kind == "similarity":
            if len(browser.patch) != 2:
                return None
            fy, fx = browser.patch
            return browser._request_similarity({"sample": browser.sample, "layer": browser.layer, "depth": browser.depth, "fy": fy, "fx": fx})
        if len(browser.linked_layers) < 2:
            return None
        return browser._request_strip({"sample": browser.sample})
    except Exception:  # the view shows the error there; the picture leaves the row out
        return None


# one picture of a panel row: (title, array, kind, outline), outline = (grid, patch) or None
Panel = tuple[str, np.ndarray, str, Any]


def _browser_rows(browser: Any) -> tuple[str, list[tuple[str, list[Panel]]]]:
    """The browser's view as rows of panels, each row with its caption, and the heading."""
    view = _view(browser)
    if view is None:
        return f"{browser.title}\n(no layer shown)", []
    meta, arrays = view
    rows: list[tuple[str, list[Panel]]] = []
    if meta["view"] == "spatial":
        sim = _linked(browser, "similarity")
        here = (sim[0]["maps"][0]["grid"], sim[0]["maps"][0]["patch"]) if sim and sim[0]["maps"] else None
        top: list[Panel] = []
        if "thumb" in arrays:
            seen = bool(meta.get("thumb_seen"))
            top.append(("input as the model sees it" if seen else "input (original image)", arrays["thumb"], "rgb", here if seen else None))
        if "pca" in arrays:
            top.append(("PCA → RGB", arrays["pca"], "rgb", here))
        rows.append(("", top))
        if sim is not None:
            smeta, sarr = sim
            rows.append((
                "cosine similarity to the clicked patch (outlined) at each linked layer",
                [(f"{m['layer']} · {m['grid'][0]}×{m['grid'][1]}", sarr["similarity"][k], "heat", (m["grid"], m["patch"])) for k, m in enumerate(smeta["maps"])],
            ))  # fmt: skip
        strip = _linked(browser, "strip")
        if strip is not None:
            rows.append(("layer strip: PCA → RGB at each linked layer", [(m["layer"], strip[1]["strip"][k], "rgb", None) for k, m in enumerate(strip[0]["strip"])]))
        rows.append(("most active channels", [(f"ch {c}", arrays["channels"][i], "heat", None) for i, c in enumerate(meta["channels"])]))
    elif meta["view"] == "tokens":
        if "stack" in arrays:
            rows.append(("", [(f"{meta.get('stack_value', '')} per token and layer", np.asarray(arrays["stack"], dtype=np.float32), "wide", meta)]))
        rows.append(("", [("top channels by token", arrays["channels"], "wide", meta)]))
    else:
        if "thumb" in arrays:  # an image model's pooled output: the input is still on screen
            rows.append(("", [("input as the model sees it" if meta.get("thumb_seen") else "input (original image)", arrays["thumb"], "rgb", None)]))
        rows.append(("", [("largest values", np.asarray(arrays["values"], dtype=np.float32), "bars", meta)]))
    return f"{browser.title} · {meta['info']}", rows


def _split(rows: list[tuple[str, list[Panel]]]) -> list[tuple[str, list[Panel]]]:
    """Rows of at most N_COLS panels (a long row continues, uncaptioned)."""
    out = []
    for caption, panels in rows:
        for k in range(0, max(len(panels), 1), N_COLS):
            out.append((caption if k == 0 else "", panels[k : k + N_COLS]))
    return out


def _outline(ax: Any, shape: tuple[int, ...], outline: Any) -> None:
    from matplotlib.patches import Rectangle

    (gh, gw), (row, col) = outline
    h, w = shape[:2]
    ax.add_patch(Rectangle((col * w / gw - 0.5, row * h / gh - 0.5), w / gw, h / gh, fill=False, edgecolor=PATCH_COLOR, linewidth=1.2))


def _draw_wide(ax: Any, title: str, arr: np.ndarray, kind: str, meta: dict[str, Any]) -> None:
    if kind == "bars":
        ax.barh(range(len(arr)), arr, color="#1976d2")
        ax.set_yticks(range(len(arr)), [f"ch {c}" for c in meta["channels"][: len(arr)]], fontsize=6)
        ax.invert_yaxis()
    else:
        ax.imshow(arr, aspect="auto", cmap="viridis", interpolation="nearest")
        tokens = meta.get("tokens") or []
        if tokens and len(tokens) == arr.shape[1] and len(tokens) <= 40:
            ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
        else:
            ax.set_xticks([])
        ax.set_yticks([])
    ax.set_title(title, fontsize=7)


HEAD_IN, SMALL_IN, WIDE_IN, CELL_IN = 0.4, 1.45, 1.9, 1.2  # row heights and panel pitch, inches
BROWSER_IN = N_COLS * CELL_IN + 0.2  # the browser's width in a picture
TREE_IN = 4.6  # the tree's width beside a browser


def _browser_height(rows: list[tuple[str, list[Panel]]]) -> float:
    return HEAD_IN + sum(WIDE_IN if _is_wide(panels) else SMALL_IN for _, panels in _split(rows)) + 0.1


def _is_wide(panels: list[Panel]) -> bool:
    return bool(panels) and panels[0][2] in ("wide", "bars")


def _draw_browser(fig: Any, left_in: float, heading: str, rows: list[tuple[str, list[Panel]]]) -> None:
    """The browser's rows from the top of `fig`, `left_in` inches from its left edge."""
    fw, fh = fig.get_size_inches()

    def axes(x: float, top: float, w: float, h: float) -> Any:  # inches from the top left
        return fig.add_axes((x / fw, 1 - (top + h) / fh, w / fw, h / fh))

    fig.text((left_in + 0.05) / fw, 1 - 0.25 / fh, heading, fontsize=9, va="center")
    top = HEAD_IN
    for caption, panels in _split(rows):
        if _is_wide(panels):
            ax = axes(left_in + 0.5, top + 0.3, BROWSER_IN - 0.7, WIDE_IN - 0.65)
            _draw_wide(ax, *panels[0][:3], panels[0][3])
            top += WIDE_IN
            continue
        if caption:
            fig.text((left_in + 0.1) / fw, 1 - (top + 0.08) / fh, caption, fontsize=7.5, color="#555555", va="center")
        for c, (title, arr, kind, outline) in enumerate(panels):
            ax = axes(left_in + 0.1 + c * CELL_IN, top + 0.36, CELL_IN - 0.12, SMALL_IN - 0.42)
            ax.imshow(arr, cmap=None if kind == "rgb" else "viridis", interpolation="nearest")
            if outline is not None:
                _outline(ax, arr.shape, outline)
            ax.set_title(title, fontsize=6.5, pad=2)
            ax.set_axis_off()
        top += SMALL_IN


def tree_png(tree: Any) -> bytes:
    """The tree widget as a picture: top-level modules with shapes, the selection in bold."""
    fig = _figure(6, 0.22 * min(len(_tree_rows(tree)) + 3, MAX_ROWS + 4))
    _draw_tree(fig.add_subplot(), tree)
    return _png(fig)


def browser_png(browser: Any) -> bytes:
    """The browser widget's current view as a picture: the input (the clicked patch outlined),
    the PCA map, the similarity maps of the clicked patch, the layer strip, the top channels."""
    heading, rows = _browser_rows(browser)
    fig = _figure(BROWSER_IN, _browser_height(rows), layout=None)
    _draw_browser(fig, 0.0, heading, rows)
    return _png(fig)


def _tree_beside(fig: Any, tree: Any) -> None:
    fw, fh = fig.get_size_inches()
    h = min(fh - 0.45, 0.2 * (len(_tree_rows(tree)) + 1))
    _draw_tree(fig.add_axes((0.1 / fw, 1 - (h + 0.4) / fh, (TREE_IN - 0.2) / fw, h / fh)), tree)


def explorer_png(explorer: Any) -> bytes:
    """The explorer: the tree beside the browser's current view."""
    heading, rows = _browser_rows(explorer.browser)
    fig = _figure(TREE_IN + BROWSER_IN, max(0.2 * (len(_tree_rows(explorer.tree)) + 1) + 0.5, _browser_height(rows)), layout=None)
    _tree_beside(fig, explorer.tree)
    _draw_browser(fig, TREE_IN, heading, rows)
    return _png(fig)


def comparison_png(explorer: Any) -> bytes:
    """The comparison explorer: the heatmap, and both browsers' views once a cell is picked."""
    parts = [_browser_rows(b) for b in (explorer.left, explorer.right)] if explorer.heatmap.picked else []
    side, label = 6.4, 2.4  # the heatmap's room and its labels' (model/layer names), inches
    fig = _figure(side + 0.4 + BROWSER_IN * len(parts), max([side] + [_browser_height(rows) for _, rows in parts]), layout=None)
    fw, fh = fig.get_size_inches()
    ax = fig.add_axes((label / fw, 1 - (side - label + 0.5) / fh, (side - label) / fw, (side - label) / fh))
    explorer.comparison.plot(ax=ax)
    if explorer.heatmap.picked:
        from matplotlib.patches import Rectangle

        i, j = explorer.heatmap.picked
        ax.add_patch(Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor=PATCH_COLOR, linewidth=2))
    for k, (heading, rows) in enumerate(parts):
        _draw_browser(fig, side + 0.4 + k * BROWSER_IN, heading, rows)
    return _png(fig)


def with_png(bundle: Any, draw: Any) -> Any:
    """`bundle` (a widget's mime bundle) with `image/png` added; a failed drawing adds nothing,
    so displaying the widget never fails because of its picture."""
    data, meta = bundle if isinstance(bundle, tuple) else (bundle, None)
    if data is None:
        return bundle
    try:
        png = draw()
    except Exception:  # the widget itself still shows
        return bundle
    data = {**data, "image/png": base64.b64encode(png).decode("ascii")}
    return (data, meta) if isinstance(bundle, tuple) else data


class SavedView:
    """Shows a widget with its picture beside it, and keeps the picture current.

    `show()` displays the widget view, then the picture as its own output (with a display id);
    after a change of any `watch` trait, and `DELAY_S` seconds without another, the picture is
    drawn again and every displayed copy replaced (`update_display`), sent as part of the cell
    that displayed it so the notebook keeps it. The widget's own output is never touched.

    >>> SavedView(w, lambda: browser_png(w), [(w, ["layer"])], "browser").show()   # doctest: +SKIP
    """

    def __init__(self, widget: Any, draw: Any, watch: list[tuple[Any, list[str]]], what: str):
        self.widget, self.draw, self.what = widget, draw, what
        self.targets: list[tuple[str, dict[str, Any]]] = []  # (display id, parent header) per display
        self.updates = 0  # pictures sent after a change (tests count them)
        self._last = b""
        self._timer: Any = None
        for owner, names in watch:
            owner.observe(self._changed, names=names)

    def _picture(self) -> dict[str, Any]:
        try:
            png = self.draw()
        except Exception:  # the live view still shows; the saved picture stays as it was
            png = self._last
        self._last = png
        data: dict[str, Any] = {
            WIDGET_VIEW: {"version_major": 2, "version_minor": 0, "model_id": ""},
            "text/plain": f"<saved view of the {self.what}>",
        }
        if png:
            data["image/png"] = base64.b64encode(png).decode("ascii")
        return data

    def show(self) -> None:
        from IPython.display import display

        data, metadata = _bundle(self.widget, f"nbfeat {self.what} (live with a kernel; its last state is the picture below)")
        display(data, raw=True, metadata=metadata)
        display_id = f"nbfeat-{uuid.uuid4().hex}"
        display(self._picture(), raw=True, display_id=display_id, metadata={"nbfeat": {"saved_view": self.what}})
        self.targets = [*self.targets[-7:], (display_id, _parent_header())]

    def _changed(self, change: Any = None) -> None:
        if not self.targets:
            return
        import asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (a plain shell, a test): draw now
            self.flush()
            return
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_later(DELAY_S, self.flush)

    def flush(self) -> None:
        """Draw the picture now and replace every displayed copy (when it changed)."""
        self._timer = None
        before = self._last
        data = self._picture()
        if self._last == before:
            return
        from IPython.display import update_display

        for display_id, parent in self.targets:
            with _as_child_of(parent):
                update_display(data, display_id=display_id, raw=True, metadata={"nbfeat": {"saved_view": self.what}})
        self.updates += 1


def saved_view(widget: Any, draw: Any, watch: list[tuple[Any, list[str]]], what: str) -> SavedView:
    """The widget's SavedView (made on first use, so the traits are observed once)."""
    sv = widget.__dict__.get("_nbfeat_saved")
    if sv is None:
        sv = SavedView(widget, draw, watch, what)
        widget.__dict__["_nbfeat_saved"] = sv
    return sv


def _bundle(widget: Any, text: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The widget view alone (no picture: that is the next output) and a short text line
    (the `repr` of a widget lists its traits: rows, samples, ...)."""
    data = {"text/plain": text, WIDGET_VIEW: {"version_major": 2, "version_minor": 1, "model_id": widget.model_id}}
    try:  # Colab needs its widget manager named in the metadata (anywidget knows how)
        from anywidget._util import get_repr_metadata

        return data, dict(get_repr_metadata())
    except Exception:
        return data, {}


def _parent_header() -> dict[str, Any]:
    """The message being answered now (the cell that displays the widget)."""
    from IPython import get_ipython

    pub = getattr(get_ipython(), "display_pub", None)
    return dict(getattr(pub, "parent_header", None) or {})


class _as_child_of:
    """Publish as part of `parent` (the displaying cell's request) rather than of the widget
    message being handled: a front end routes outputs by the request they answer, and outputs
    answering a widget message are that widget's traffic (JupyterLab's widget manager sends
    the ones it does not handle to its log console), not a cell's."""

    def __init__(self, parent: dict[str, Any]):
        self.parent, self.token, self.old = parent, None, None

    def __enter__(self) -> None:
        from IPython import get_ipython

        self.pub = getattr(get_ipython(), "display_pub", None)
        if not self.parent or self.pub is None or not hasattr(self.pub, "parent_header"):
            self.pub = None
        elif hasattr(self.pub, "set_thread_parent"):  # ipykernel 7: a context variable
            self.token = self.pub.set_thread_parent(self.parent)
        else:
            self.old, self.pub.parent_header = self.pub.parent_header, self.parent

    def __exit__(self, *exc: Any) -> None:
        if self.pub is None:
            return
        if self.token is not None:
            self.pub.reset_thread_parent(self.token)
        else:
            self.pub.parent_header = self.old


__all__ = ["SavedView", "browser_png", "comparison_png", "explorer_png", "saved_view", "tree_png", "with_png"]
