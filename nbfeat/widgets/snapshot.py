"""Saved views: a static PNG of what a widget shows, drawn with matplotlib in the kernel.

Every widget's `_repr_mimebundle_` carries this picture (`image/png`) beside the widget view,
so a notebook exported with nbconvert, or shown by GitHub or nbviewer, shows the view without a
kernel. A live JupyterLab still renders the widget; the picture is what a page without a
kernel falls back on.

>>> png = browser_png(nbfeat.browse(ds))     # doctest: +SKIP
>>> png[:4]                                  # doctest: +SKIP
b'\\x89PNG'
"""

from __future__ import annotations

import base64
import io
from typing import Any

import numpy as np

MAX_ROWS = 28  # tree rows in the picture
N_CHANNELS = 8  # channel heatmaps in the picture


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=(width, height), dpi=90, layout="constrained")


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
            {"sample": browser.sample, "layer": browser.layer, "channel": browser.channel, "depth": browser.depth, "k": N_CHANNELS, "thumb": True}
        )
    except Exception:  # the view shows the error; the picture shows the title only
        return None


def _draw_browser(fig: Any, spec: Any, browser: Any) -> None:
    view = _view(browser)
    if view is None:
        ax = fig.add_subplot(spec)
        ax.set_axis_off()
        ax.text(0.02, 0.5, f"{browser.title}\n(no layer shown)", fontsize=9, transform=ax.transAxes)
        return
    meta, arrays = view
    panels: list[tuple[str, np.ndarray, str]] = []
    if "thumb" in arrays:
        panels.append(("input", arrays["thumb"], "rgb"))
    if "pca" in arrays and meta["view"] == "spatial":
        panels.append(("PCA → RGB", arrays["pca"], "rgb"))
    if meta["view"] == "spatial":
        for i, c in enumerate(meta["channels"][:N_CHANNELS]):
            panels.append((f"ch {c}", arrays["channels"][i], "heat"))
    elif meta["view"] == "tokens":
        if "stack" in arrays:
            panels.append((f"{meta.get('stack_value', '')} per token and layer", np.asarray(arrays["stack"], dtype=np.float32), "wide"))
        panels.append(("top channels by token", arrays["channels"], "wide"))
    else:
        panels.append(("largest values", np.asarray(arrays["values"], dtype=np.float32), "bars"))
    sub = spec.subgridspec(2, 1, height_ratios=[1, 12])
    head = fig.add_subplot(sub[0])
    head.set_axis_off()
    head.text(0, 0.5, f"{browser.title} · {meta['info']}", fontsize=9, transform=head.transAxes)
    wide = [p for p in panels if p[2] in ("wide", "bars")]
    small = [p for p in panels if p[2] not in ("wide", "bars")]
    ncols = max(1, min(5, len(small))) if small else 1
    nrows = -(-len(small) // ncols) + len(wide)
    grid = sub[1].subgridspec(max(nrows, 1), ncols)
    for i, (title, arr, kind) in enumerate(small):
        ax = fig.add_subplot(grid[i // ncols, i % ncols])
        ax.imshow(arr, cmap=None if kind == "rgb" else "magma", interpolation="nearest")
        ax.set_title(title, fontsize=7)
        ax.set_axis_off()
    first = -(-len(small) // ncols)
    for j, (title, arr, kind) in enumerate(wide):
        ax = fig.add_subplot(grid[first + j, :])
        if kind == "bars":
            ax.barh(range(len(arr)), arr, color="#1976d2")
            ax.set_yticks(range(len(arr)), [f"ch {c}" for c in meta["channels"][: len(arr)]], fontsize=6)
            ax.invert_yaxis()
        else:
            ax.imshow(arr, aspect="auto", cmap="magma", interpolation="nearest")
            tokens = meta.get("tokens") or []
            if tokens and len(tokens) == arr.shape[1] and len(tokens) <= 40:
                ax.set_xticks(range(len(tokens)), tokens, rotation=90, fontsize=6)
            else:
                ax.set_xticks([])
            ax.set_yticks([])
        ax.set_title(title, fontsize=7)


def tree_png(tree: Any) -> bytes:
    """The tree widget as a picture: top-level modules with shapes, the selection in bold."""
    fig = _figure(6, 0.22 * min(len(_tree_rows(tree)) + 3, MAX_ROWS + 4))
    _draw_tree(fig.add_subplot(), tree)
    return _png(fig)


def browser_png(browser: Any) -> bytes:
    """The browser widget's current view (sample, layer, channel, depth) as a picture."""
    fig = _figure(8, 4.2)
    _draw_browser(fig, fig.add_gridspec(1, 1)[0], browser)
    return _png(fig)


def explorer_png(explorer: Any) -> bytes:
    """The explorer: the tree beside the browser's current view."""
    fig = _figure(12, 4.6)
    spec = fig.add_gridspec(1, 2, width_ratios=[2, 3])
    _draw_tree(fig.add_subplot(spec[0]), explorer.tree)
    _draw_browser(fig, spec[1], explorer.browser)
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


__all__ = ["browser_png", "explorer_png", "tree_png", "with_png"]
