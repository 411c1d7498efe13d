"""Notebook widgets: the model tree, the activation browser, and the explorer linking them.

>>> nbfeat.tree("timm:vit_small_patch14_dinov2")       # doctest: +SKIP
>>> nbfeat.browse(ds)                                  # doctest: +SKIP
>>> nbfeat.explore(bb, "images/")                      # doctest: +SKIP

The front end is built from `js/` into `nbfeat/static/`; anywidget, ipywidgets and torch are
imported when a widget is first made, not with `import nbfeat`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover
    from nbfeat.widgets.browser import BrowserWidget
    from nbfeat.widgets.explorer import Explorer
    from nbfeat.widgets.tree_widget import TreeWidget

__all__ = ["BrowserWidget", "Explorer", "TreeWidget", "browse", "explore", "tree"]


def tree(model: Any, height: int = 360, **load_kwargs: Any) -> TreeWidget:
    """The module tree widget of a Backbone, `nn.Module` or model id (see `nbfeat.widgets.tree_widget`)."""
    from nbfeat.widgets.tree_widget import tree as _tree

    return _tree(model, height=height, **load_kwargs)


def browse(data: Any, inputs: Any = None, layer: Any = None, max_samples: int = 16, pool: Any = None, **kwargs: Any) -> Any:
    """The activation browser over results or a backbone + inputs (see `nbfeat.widgets.browser`);
    a list of two (models or results) puts two browsers side by side, linked by sample and, for
    text, by the hovered token's characters (see `nbfeat.widgets.pair`).

    Example:
        >>> nbfeat.browse(bb, "images/", layer="layer3")                  # doctest: +SKIP
        >>> nbfeat.browse(["hf:gpt2", "hf:bert-base-uncased"], texts)     # doctest: +SKIP
    """
    if isinstance(data, list | tuple):
        from nbfeat.widgets.pair import browse_pair

        return browse_pair(data, inputs, layer=layer, max_samples=max_samples, pool=pool, **kwargs)
    from nbfeat.widgets.browser import browse as _browse

    return _browse(data, inputs, layer=layer, max_samples=max_samples, pool=pool, **kwargs)


def explore(bb: Any, inputs: Any, max_samples: int = 16, height: int = 420, layer: str | None = None, pool: Any = None, cache: Any = None) -> Explorer:
    """Tree and browser linked (see `nbfeat.widgets.explorer`)."""
    from nbfeat.widgets.explorer import explore as _explore

    return _explore(bb, inputs, max_samples=max_samples, height=height, layer=layer, pool=pool, cache=cache)


def __getattr__(name: str) -> Any:
    if name in ("TreeWidget", "BrowserWidget", "Explorer"):
        import importlib

        module = {"TreeWidget": "tree_widget", "BrowserWidget": "browser", "Explorer": "explorer"}[name]
        return getattr(importlib.import_module(f"nbfeat.widgets.{module}"), name)
    raise AttributeError(f"module 'nbfeat.widgets' has no attribute {name!r}")
