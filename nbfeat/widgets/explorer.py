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

from nbfeat.widgets.browser import BrowserWidget, _backbone
from nbfeat.widgets.sources import BackboneSource
from nbfeat.widgets.tree_widget import TreeWidget, tree


class Explorer(ipywidgets.HBox):
    """A TreeWidget (`.tree`) beside a BrowserWidget (`.browser`); build with `nbfeat.explore`."""

    def __init__(self, bb: Any, inputs: Any, max_samples: int = 16, height: int = 420, layer: str | None = None, pool: Any = None):
        self.bb = bb
        self.source = BackboneSource(bb, inputs, max_samples=max_samples, pool=pool)
        self.tree: TreeWidget = tree(bb, height=height)
        first = layer or ""
        self.browser = BrowserWidget(self.source, layer=first)
        self.tree.layout = ipywidgets.Layout(flex="1 1 420px", min_width="340px", max_width="720px")
        self.browser.layout = ipywidgets.Layout(flex="2 1 480px", min_width="340px")
        super().__init__([self.tree, self.browser], layout=ipywidgets.Layout(flex_flow="row wrap", align_items="flex-start", width="100%"))
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
        linked = sel if len(sel) > 1 else self.source.default_linked()
        if linked != list(self.browser.linked_layers):
            self.browser.linked_layers = linked

    def _on_browser(self, change: Any) -> None:
        layer = change["new"]
        if layer and layer not in self.tree.selected:
            self.tree.selected = [layer]
            self.tree.focused = layer


def explore(bb: Any, inputs: Any, max_samples: int = 16, height: int = 420, layer: str | None = None, pool: Any = None) -> Explorer:
    """Tree and activation browser side by side, linked; click a layer to see it.

    Args:
        bb: a Backbone (or a model id, loaded with `nbfeat.load`).
        inputs: images (folder, paths, PIL, arrays) or texts; the first `max_samples` are shown.
        height: tree height in pixels.
        layer: a module path to show first.
        pool: one pooling spec for every layer shown (None: the raw outputs).

    Example:
        >>> bb = nbfeat.load("torchvision:resnet18", pretrained=False)     # doctest: +SKIP
        >>> nbfeat.explore(bb, "images/")                                 # doctest: +SKIP
    """
    return Explorer(_backbone(bb), inputs, max_samples=max_samples, height=height, layer=layer, pool=pool)


__all__ = ["Explorer", "explore"]
