"""The explorer: the model tree and the activation browser, linked.

Clicking a layer in the tree shows it in the browser (extracted for the shown samples on
first look, with early exit, then cached); picking a layer in the browser selects it in the
tree. The browser's Copy code button gives the `bb.extract` call for the tree's selection.

>>> ex = nbfeat.explore(bb, "images/")     # doctest: +SKIP
>>> ex.selected                            # doctest: +SKIP
['layer3']
"""

from __future__ import annotations

from typing import Any

import ipywidgets
import traitlets

from nbfeat.widgets._base import NbfeatWidget
from nbfeat.widgets.browser import BrowserWidget, _backbone
from nbfeat.widgets.sources import BackboneSource
from nbfeat.widgets.tree_widget import TreeWidget, format_bytes, selection_bytes, tree


class Splitter(NbfeatWidget):
    """The drag handle between the explorer's tree and browser."""

    _kind = traitlets.Unicode("splitter").tag(sync=True)

    width = traitlets.Int(580).tag(sync=True)
    """Width of the tree column in pixels; a drag sets it. Default: 580."""

    min_width = traitlets.Int(280).tag(sync=True)
    """The narrowest the tree column gets. Default: 280."""


class Explorer(ipywidgets.HBox):
    """A TreeWidget (`.tree`) beside a BrowserWidget (`.browser`); build with `nbfeat.explore`."""

    def __init__(self, bb: Any, inputs: Any, max_samples: int = 16, height: int = 420, layer: str | None = None, pool: Any = None, cache: Any = None):
        self.bb = bb
        self.source = BackboneSource(bb, inputs, max_samples=max_samples, pool=pool, cache=cache)
        self.tree: TreeWidget = tree(bb, height=height)
        first = layer or ""
        self.browser = BrowserWidget(self.source, layer=first)
        # the whole cell wide: the tree at the splitter's width, the browser takes the rest
        self.splitter = Splitter()
        self.tree.layout = ipywidgets.Layout(flex=f"0 0 {self.splitter.width}px", min_width="260px")
        self.browser.layout = ipywidgets.Layout(flex="1 1 0%", min_width="320px", overflow="auto")
        super().__init__([self.tree, self.splitter, self.browser], layout=ipywidgets.Layout(flex_flow="row", align_items="stretch", width="100%"))
        self.add_class("nbfeat-explorer")
        self.tree.observe(self._on_tree, names=["selected", "focused"])
        self.browser.observe(self._on_browser, names=["layer"])
        if first:
            self.tree.selected = [first]
            self.tree.focused = first

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a PNG of the tree and the shown layer (for pages without a kernel)."""
        from nbfeat.widgets.snapshot import explorer_png, with_png

        return with_png(super()._repr_mimebundle_(**kwargs), lambda: explorer_png(self))

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the explorer, and a picture of the tree and the view that follows
        every change (the saved notebook shows the last state; see `nbfeat.widgets.snapshot`)."""
        from nbfeat.widgets.browser import SAVED_TRAITS
        from nbfeat.widgets.snapshot import explorer_png, saved_view

        watch = [(self.tree, ["selected"]), (self.browser, list(SAVED_TRAITS))]
        saved_view(self, lambda: explorer_png(self), watch, "explorer").show()

    def snapshot(self) -> Any:
        """A picture of the explorer now, tree and view (`IPython.display.Image`), to keep one
        state in a cell of its own (the displayed explorer's picture follows the view)."""
        from IPython.display import Image

        from nbfeat.widgets.snapshot import explorer_png

        return Image(data=explorer_png(self), format="png")

    @property
    def selected(self) -> list[str]:
        """The tree's selection (module paths); settable."""
        return list(self.tree.selected)

    @selected.setter
    def selected(self, paths: list[str]) -> None:
        self.tree.selected = list(paths)
        if paths:
            self.tree.focused = list(paths)[-1]

    def _on_tree(self, change: Any) -> None:
        sel = list(self.tree.selected)
        shown = self.tree.focused if self.tree.focused in sel else (sel[-1] if sel else "")
        if shown and shown != self.browser.layer:
            with self.browser.hold_trait_notifications():
                self.browser.channel = -1
                self.browser.depth = 0
                self.browser.layer = shown
        self.browser._update_code(sel or ([shown] if shown else []))
        self.tree.note = self.estimate_text(sel)
        linked = sel if len(sel) > 1 else self.source.default_linked()
        if linked != list(self.browser.linked_layers):
            self.browser.linked_layers = linked

    def estimate_text(self, selected: list[str]) -> str:
        """What a full extraction of `selected` over every input would take (one line)."""
        if not selected:
            return ""
        per = selection_bytes(self.tree.rows, selected)
        if per is None:
            return f"{len(selected)} selected · size unknown (a shape the dry run could not find)"
        n = self.source.n_total
        # a text model's dry run has 8 tokens: the real size scales with the texts' length
        per_what = "sample" if self.bb.modality != "text" else "8 tokens"
        total = format_bytes(per * n)
        return (
            f"full extraction of {len(selected)} layer{'s' if len(selected) > 1 else ''}: {format_bytes(per)}/{per_what} × {n} inputs "
            f"= {total} in memory, up to {total} on disk (zarr, compressed: usually less)"
        )

    def _on_browser(self, change: Any) -> None:
        layer = change["new"]
        if layer and layer not in self.tree.selected:
            self.tree.selected = [layer]
            self.tree.focused = layer


def explore(bb: Any, inputs: Any, max_samples: int = 16, height: int = 420, layer: str | None = None, pool: Any = None, cache: Any = None) -> Explorer:
    """Tree and activation browser side by side, linked; click a layer to see it.

    Args:
        bb: a Backbone (or a model id, loaded with `nbfeat.load`).
        inputs: images (folder, paths, PIL, arrays) or texts; the first `max_samples` are shown.
        height: tree height in pixels.
        layer: a module path to show first.
        pool: one pooling spec for every layer shown (None: the raw outputs).
        cache: True (or a cache folder): each layer looked at is kept in `nbfeat.cache`
            and read back from there in a later session, as `bb.extract(..., cache=True)` does.

    With a `Comparison` (from `nbfeat.compare`) and the data it compared, the heatmap of
    the comparison: a click on a cell opens both layers side by side (see
    `nbfeat.widgets.comparison`).

    Example:
        >>> bb = nbfeat.load("torchvision:resnet18", pretrained=False)     # doctest: +SKIP
        >>> nbfeat.explore(bb, "images/")                                 # doctest: +SKIP
        >>> nbfeat.explore(nbfeat.compare(dt), dt)                        # doctest: +SKIP
    """
    if hasattr(bb, "matrix") and hasattr(bb, "sources"):  # a Comparison
        from nbfeat.widgets.comparison import compare_view

        return compare_view(bb, inputs)  # type: ignore[return-value]
    return Explorer(_backbone(bb), inputs, max_samples=max_samples, height=height, layer=layer, pool=pool, cache=cache)


__all__ = ["Explorer", "Splitter", "explore"]
