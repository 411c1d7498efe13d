"""The comparison explorer: a Comparison's heatmap; click a cell to open both layers.

`nbfeat.explore(cmp, data)` (or `compare_view`) shows the matrix of `nbfeat.compare` as a
heatmap. A click on cell (i, j) opens the two representations it compares, side by side, in
two activation browsers over `data` (the Dataset or DataTree that was compared), at the same
sample; for text, hovering a token in one outlines the tokens of the other that share its
characters (see `nbfeat.widgets.pair`). Which variable and depth each row stands for comes
from `Comparison.sources` (the analysis says where each row came from); nothing is inferred
from names or shapes.

>>> cmp = nbfeat.compare(dt, method="rsa")      # doctest: +SKIP
>>> nbfeat.explore(cmp, dt)                     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import ipywidgets
import numpy as np
import traitlets

from nbfeat.errors import InputError
from nbfeat.widgets._base import NbfeatWidget
from nbfeat.widgets.browser import BrowserWidget
from nbfeat.widgets.pair import link_browsers
from nbfeat.widgets.sources import DatasetSource


class ComparisonWidget(NbfeatWidget):
    """The heatmap of a Comparison; `picked` is the clicked cell."""

    _kind = traitlets.Unicode("comparison").tag(sync=True)

    title = traitlets.Unicode("").tag(sync=True)
    """Heading: the method and how many representations."""

    labels = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """One label per row/column ("model/layer"), as in `Comparison.matrix["rep"]`."""

    picked = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """The clicked cell `[i, j]` ([] before a click); set it from Python to pick."""

    def __init__(self, comparison: Any, **kwargs: Any) -> None:
        self.comparison = comparison
        labels = [str(v) for v in comparison.matrix["rep"].values]
        n = len(labels)
        super().__init__(title=f"{comparison.method.upper()} between {n} representations", labels=labels, **kwargs)

    @traitlets.validate("picked")
    def _valid_picked(self, proposal: Any) -> list[int]:
        value = [int(v) for v in proposal["value"]]
        n = len(self.labels)
        if value and (len(value) != 2 or not all(0 <= v < n for v in value)):
            raise InputError(f"picked is a cell [i, j] with 0 <= i, j < {n}; got {value}.")
        return value

    def _request_matrix(self, content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        m = np.asarray(self.comparison.matrix.values, dtype=np.float32)
        finite = m[np.isfinite(m)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        return {"min": lo, "max": hi, "method": self.comparison.method}, {"matrix": m}


def _key(source: dict[str, Any], is_tree: bool) -> str:
    """The browser's layer name (a DatasetSource key) for one `Comparison.sources` entry."""
    variable = str(source.get("variable") or source.get("layer"))
    if not is_tree:
        return variable
    path = str(source.get("node") or "").strip("/")
    return path if path and path.rpartition("/")[2] == variable else "/".join(p for p in (path, variable) if p)


def _depth(source: dict[str, Any]) -> int:
    isel = source.get("isel") or {}
    return int(next(iter(isel.values()))) if isel else 0


class ComparisonExplorer(ipywidgets.VBox):
    """The heatmap (`.heatmap`) over two browsers (`.left`, `.right`) of the compared data."""

    def __init__(self, comparison: Any, data: Any):
        import xarray as xr

        if not getattr(comparison, "sources", None):
            raise InputError("This Comparison does not say where its rows came from (no `sources`): make it with nbfeat.compare.")
        self.comparison = comparison
        self.heatmap = ComparisonWidget(comparison)
        is_tree = isinstance(data, xr.DataTree)
        self.rep_layers = [_key(s, is_tree) for s in comparison.sources]
        self.left = BrowserWidget(DatasetSource(data))
        self.right = BrowserWidget(DatasetSource(data))
        missing = [k for k in self.rep_layers if k not in self.left.layers]
        if missing:
            raise InputError(f"The data given is not what was compared: no {', '.join(missing[:3])} in it.")
        pair = ipywidgets.HBox([self.left, self.right], layout=ipywidgets.Layout(width="100%"))
        for b in (self.left, self.right):
            b.layout = ipywidgets.Layout(flex="1 1 0%", min_width="320px", overflow="auto")
        super().__init__([self.heatmap, pair], layout=ipywidgets.Layout(width="100%"))
        self.add_class("nbfeat-comparison-explorer")
        self.heatmap.observe(self._on_pick, names=["picked"])
        # the same sample in both; for text, a hovered token outlines the other's tokens
        # sharing its characters (in the front end)
        self.link = link_browsers(self.left, self.right)

    def _on_pick(self, change: Any) -> None:
        if not change["new"]:
            return
        i, j = change["new"]
        for browser, k in ((self.left, i), (self.right, j)):
            with browser.hold_trait_notifications():
                browser.channel = -1
                browser.depth = _depth(self.comparison.sources[k])
                browser.layer = self.rep_layers[k]

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a PNG of the heatmap and the picked pair (for pages without a kernel)."""
        from nbfeat.widgets.snapshot import with_png

        return with_png(super()._repr_mimebundle_(**kwargs), self._png)

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the heatmap and the two browsers, and a picture of them that follows
        every change (the saved notebook shows the last state; see `nbfeat.widgets.snapshot`)."""
        from nbfeat.widgets.browser import SAVED_TRAITS
        from nbfeat.widgets.snapshot import saved_view

        watch = [(self.heatmap, ["picked"]), (self.left, list(SAVED_TRAITS)), (self.right, list(SAVED_TRAITS))]
        saved_view(self, self._png, watch, "comparison explorer").show()

    def snapshot(self) -> Any:
        """A picture of the heatmap and the picked pair now (`IPython.display.Image`)."""
        from IPython.display import Image

        return Image(data=self._png(), format="png")

    def _png(self) -> bytes:
        from nbfeat.widgets.snapshot import comparison_png

        return comparison_png(self)


def compare_view(comparison: Any, data: Any) -> ComparisonExplorer:
    """The heatmap of `comparison`; a click on a cell opens both layers of `data` side by side.

    Example:
        >>> cmp = nbfeat.compare(dt, method="cka")       # doctest: +SKIP
        >>> ex = compare_view(cmp, dt)                  # doctest: +SKIP
        >>> ex.heatmap.picked = [0, 3]                  # doctest: +SKIP
    """
    return ComparisonExplorer(comparison, data)


__all__ = ["ComparisonExplorer", "ComparisonWidget", "compare_view"]
