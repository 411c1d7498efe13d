"""Two activation browsers side by side on the same inputs, linked: `nbfeat.browse([a, b], texts)`.

Each of `a`, `b` is what `nbfeat.browse` takes: a Backbone or model id (run on `inputs`), or
extracted results (a Dataset/DataTree, e.g. one model's node of `nbfeat.extract([m1, m2], texts)`).
The two browsers show the same sample (picking one in either moves both). For text, hovering a
token in one outlines every token of the other whose characters overlap it and draws their
trajectories across layers: two tokenizers split the same text differently, so tokens are
linked by character span (`nbfeat.widgets.spans`), never by position. The link runs in the
front end (`ipywidgets.jslink` on `BrowserWidget.token_hover`): no kernel round trip per hover.

>>> pair = nbfeat.widgets.pair.browse_pair(["hf:gpt2", "hf:bert-base-uncased"], texts)   # doctest: +SKIP
>>> pair.left.layer, pair.right.layer = "h.5", "encoder.layer.5"                     # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import ipywidgets

from nbfeat.errors import InputError
from nbfeat.widgets.browser import BrowserWidget


def link_browsers(left: BrowserWidget, right: BrowserWidget) -> Any:
    """Link two browsers: the sample (through the kernel) and the hovered token's characters
    (in the front end). Returns the `ipywidgets.Link` of `token_hover`."""

    def follow(change: Any) -> None:
        other = right if change["owner"] is left else left
        if other.sample != change["new"]:
            other.sample = change["new"]

    left.observe(follow, names=["sample"])
    right.observe(follow, names=["sample"])
    return ipywidgets.jslink((left, "token_hover"), (right, "token_hover"))


def _texts(source: Any) -> list[str] | None:
    inputs = getattr(source, "inputs", None)
    if inputs is not None:
        return list(inputs.texts) if inputs.texts else None
    texts = getattr(source, "_text", None)
    return [str(t) for t in texts] if texts is not None else None


class BrowserPair(ipywidgets.HBox):
    """Two browsers (`.left`, `.right`) over the same inputs, side by side, linked."""

    def __init__(self, left: BrowserWidget, right: BrowserWidget):
        ids = [[s["id"] for s in b.samples] for b in (left, right)]
        texts = [_texts(b.source) for b in (left, right)]
        if ids[0] != ids[1] or (None not in texts and texts[0] != texts[1]):
            raise InputError(
                "The two browsers must show the same inputs (same samples, same texts): extract both "
                "models from one list of inputs, e.g. nbfeat.extract([a, b], texts), and browse its two nodes."
            )
        self.left, self.right = left, right
        for b in (left, right):
            b.layout = ipywidgets.Layout(flex="1 1 0%", min_width="320px", overflow="auto")
        super().__init__([left, right], layout=ipywidgets.Layout(width="100%"))
        self.add_class("nbfeat-browser-pair")
        self.link = link_browsers(left, right)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        from nbfeat.widgets.snapshot import with_png

        return with_png(super()._repr_mimebundle_(**kwargs), self._png)

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the two browsers, and a picture of them that follows every change
        (the saved notebook shows the last state; see `nbfeat.widgets.snapshot`)."""
        from nbfeat.widgets.browser import SAVED_TRAITS
        from nbfeat.widgets.snapshot import saved_view

        watch = [(self.left, list(SAVED_TRAITS)), (self.right, list(SAVED_TRAITS))]
        saved_view(self, self._png, watch, "two browsers").show()

    def snapshot(self) -> Any:
        """A picture of both browsers now (`IPython.display.Image`)."""
        from IPython.display import Image

        return Image(data=self._png(), format="png")

    def _png(self) -> bytes:
        """Both browsers' pictures (`snapshot.browser_png`) side by side."""
        import io

        from PIL import Image

        from nbfeat.widgets.snapshot import browser_png

        left, right = (Image.open(io.BytesIO(browser_png(b))).convert("RGB") for b in (self.left, self.right))
        both = Image.new("RGB", (left.width + right.width, max(left.height, right.height)), "white")
        both.paste(left, (0, 0))
        both.paste(right, (left.width, 0))
        buf = io.BytesIO()
        both.save(buf, format="png")
        return buf.getvalue()


def browse_pair(items: Sequence[Any], inputs: Any = None, layer: Any = None, max_samples: int = 16, pool: Any = None, cache: Any = None) -> BrowserPair:
    """Two models (or two results) side by side on the same inputs, linked by sample and, for
    text, by the hovered token's characters.

    Args:
        items: two of what `nbfeat.browse` takes: Backbones or model ids (with `inputs`), or
            Datasets/DataTrees extracted from the same inputs.
        inputs: with backbones: the texts (or images) both run on.
        layer: None, or `(left_layer, right_layer)` to show first.
        max_samples: with backbones, how many inputs to offer (as in `nbfeat.browse`).
        pool: with backbones, one pooling spec for every layer shown (None: raw outputs).
        cache: with backbones, True (or a cache folder) keeps each layer in `nbfeat.cache`.

    Example:
        >>> pair = browse_pair([gpt2, bert], ["the cat sat", "naïve café"])    # doctest: +SKIP
        >>> dt = nbfeat.extract([gpt2, bert], texts, nodes=["block"])           # doctest: +SKIP
        >>> pair = browse_pair(list(dt.children.values()))                      # doctest: +SKIP
    """
    from nbfeat.widgets.browser import browse

    items = list(items)
    if len(items) != 2:
        raise InputError(f"Side by side takes two models or two results; got {len(items)}.")
    if layer is not None and (isinstance(layer, str) or len(layer) != 2):
        raise InputError("layer: a pair (left_layer, right_layer), one per model; the two models' layers differ.")
    layers = list(layer) if layer is not None else [None, None]
    browsers = []
    for item, name in zip(items, layers):
        model = isinstance(item, str) or hasattr(item, "dummy_inputs")
        kw = {"max_samples": max_samples, "pool": pool, "cache": cache} if model else {}
        browsers.append(browse(item, inputs if model else None, layer=name, **kw))
    return BrowserPair(*browsers)


__all__ = ["BrowserPair", "browse_pair", "link_browsers"]
