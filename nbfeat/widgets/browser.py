"""The activation browser widget: one sample, one layer, on screen.

For image layers it shows the input as the model saw it (resized and cropped), a PCA-to-RGB
map of the spatial features and the most active channels as heatmaps, and for a clicked patch
its similarity maps across layers; for text, tokens coloured by PCA, a token-by-layer heatmap
(hover a token for its trajectory across layers) and the most active channels by token.
The view asks for each picture when it needs it; arrays travel as binary buffers.

>>> w = nbfeat.browse(ds)                                  # doctest: +SKIP
>>> w = nbfeat.browse(bb, "images/", layer="layer3")       # doctest: +SKIP
>>> w.sample, w.layer = 2, "layer4"                        # doctest: +SKIP
>>> w.patch = [0.25, 0.5]                                  # doctest: +SKIP

Displayed in a notebook, the widget comes with a picture of its view that follows every change
(`nbfeat.widgets.snapshot`): a saved notebook shows the last state without a kernel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import traitlets

from nbfeat.errors import InputError, UnknownLayerError, did_you_mean
from nbfeat.widgets._base import NbfeatWidget
from nbfeat.widgets.sources import DatasetSource
from nbfeat.widgets.views import layer_view, similarity_view, spatial_map, stack_values, strip_view

MAX_LINKED = 16  # layers in the similarity row and the layer strip
# what the saved picture shows: a change of any redraws it
SAVED_TRAITS = ("sample", "layer", "channel", "depth", "patch", "linked_layers")


class BrowserWidget(NbfeatWidget):
    """Activation browser over a source (`DatasetSource` or `BackboneSource`)."""

    _kind = traitlets.Unicode("browser").tag(sync=True)

    title = traitlets.Unicode("").tag(sync=True)
    """Heading: the model id, or "extracted features"."""

    modality = traitlets.Unicode("image").tag(sync=True)
    """"image" or "text": which views apply."""

    samples = traitlets.List(traitlets.Dict()).tag(sync=True)
    """[{"id", "label"}] of the samples that can be shown (labels, or texts cut short)."""

    layers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Layer names to pick from: module paths (a backbone) or variable names (a dataset)."""

    sample = traitlets.Int(0).tag(sync=True)
    """Position of the shown sample in `samples`. Default: 0."""

    layer = traitlets.Unicode("").tag(sync=True)
    """The shown layer ("" for none). Default: the last block, or the first variable."""

    channel = traitlets.Int(-1).tag(sync=True)
    """A channel to show alone, or -1 for the `n_top` most active channels. Default: -1."""

    depth = traitlets.Int(0).tag(sync=True)
    """For outputs stacked over depth (node roles) or over calls: which one. Default: 0."""

    n_top = traitlets.Int(12).tag(sync=True)
    """How many of the most active channels to show. Default: 12."""

    linked_layers = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Layers the linked views span: the similarity maps of a clicked patch and the layer
    strip (one small PCA map each). The explorer sets it to the tree's selection when two or
    more are selected; default: up to 8 repeated blocks spread over depth, or every variable
    of a dataset."""

    code = traitlets.Unicode("").tag(sync=True)
    """The equivalent Python call for what is shown (the Copy code button copies it)."""

    patch = traitlets.List(traitlets.Float(), default_value=[]).tag(sync=True)
    """The clicked patch `[fy, fx]`: fractions (0..1) of the height and width of the input as
    the model saw it (after its resize and crop), so the same place in every spatial layer;
    [] for none. A click on the input or the PCA map sets it; set it from Python to click.
    The view shows its cosine-similarity maps at the shown and linked layers; it is kept
    across layers and samples. Default: []."""

    token_hover = traitlets.List(traitlets.Int(), default_value=[]).tag(sync=True)
    """Text: the characters `[start, end)` of the shown text under the pointer, set by the view
    when a token is hovered ([] before; `[-1, 0]` / `[2**30, 2**30 + 1]` for a token the
    tokenizer added before / after the text, see `nbfeat.widgets.spans`). `nbfeat.browse([a, b], texts)`
    and `nbfeat.explore(cmp, data)` link it between their two browsers in the front end
    (`ipywidgets.jslink`): the other browser outlines every token whose span overlaps and
    draws their trajectories, with no kernel round trip per hover."""

    def __init__(self, source: Any, layer: str | None = None, **kwargs: Any) -> None:
        self.source = source
        self._code_layers: list[str] | None = None
        super().__init__(
            title=source.title + (f" ({source.note})" if source.note else ""),
            modality=source.modality,
            samples=source.samples(),
            layers=source.layers(),
            layer=layer if layer is not None else source.default_layer(),
            linked_layers=source.default_linked(),
            **kwargs,
        )
        self._update_code()

    @traitlets.validate("layer")
    def _valid_layer(self, proposal: Any) -> str:
        value = str(proposal["value"])
        if value and value not in self.layers:
            raise UnknownLayerError(f"No layer {value!r} to browse.{did_you_mean(value, self.layers)}")
        return value

    @traitlets.validate("sample")
    def _valid_sample(self, proposal: Any) -> int:
        value = int(proposal["value"])
        if not 0 <= value < max(1, len(self.samples)):
            raise InputError(f"sample must be between 0 and {len(self.samples) - 1}; got {value}.")
        return value

    @traitlets.validate("patch")
    def _valid_patch(self, proposal: Any) -> list[float]:
        value = [float(v) for v in proposal["value"]]
        if value and (len(value) != 2 or not all(0.0 <= v <= 1.0 for v in value)):
            raise InputError(f"patch is [fy, fx], fractions of the input's height and width in 0..1 (or [] for none); got {value}.")
        return value

    @traitlets.observe("layer", "sample", "depth")
    def _on_shown(self, change: Any) -> None:
        self._update_code()

    def _update_code(self, layers: list[str] | None = None, probe: bool = False) -> None:
        """`code` for `layers` (kept: the explorer passes the tree's selection), else the shown
        layer. Without `probe` only what was extracted is used: the view's own extraction
        writes the code again, complete."""
        if layers is not None:
            self._code_layers = list(layers)
        chosen = self._code_layers if self._code_layers is not None else ([self.layer] if self.layer else [])
        if isinstance(self.source, DatasetSource):
            self.code = self.source.code(chosen, self.sample, layer=self.layer, depth=self.depth)
        else:
            self.code = self.source.code(chosen, self.sample, layer=self.layer, depth=self.depth, probe=probe)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a PNG of the current view (for pages without a kernel)."""
        from nbfeat.widgets.snapshot import browser_png, with_png

        return with_png(super()._repr_mimebundle_(**kwargs), lambda: browser_png(self))

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the widget view, and a picture of it that follows every change (the
        saved notebook shows the last state; see `nbfeat.widgets.snapshot`)."""
        from nbfeat.widgets.snapshot import browser_png, saved_view

        saved_view(self, lambda: browser_png(self), [(self, list(SAVED_TRAITS))], "activation browser").show()

    def _linked(self, first: str) -> list[str]:
        names = [first] if first else []
        names += [n for n in self.linked_layers if n != first]
        return names[:MAX_LINKED]

    def _spatial(self, i: int, names: list[str], depth: int, first: str) -> tuple[dict[str, Any], list[str]]:
        prefetch = getattr(self.source, "prefetch", None)
        if prefetch is not None:
            prefetch(names)  # one forward pass for every layer not seen yet
        maps, skipped = {}, []
        for name in names:
            fmap = spatial_map(self.source.layer(i, name, depth=depth if name == first else 0), depth if name == first else 0)
            if fmap is None:
                skipped.append(name)
            else:
                maps[name] = fmap
        return maps, skipped

    def _request_similarity(self, content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Cosine-similarity maps of one image location (fractions fy, fx) at the shown layer
        and at every linked layer: the same patch, side by side."""
        i = int(content.get("sample", self.sample))
        first = str(content.get("layer", self.layer))
        fy, fx = (min(max(float(content.get(k, 0.5)), 0.0), 1.0) for k in ("fy", "fx"))
        maps, skipped = self._spatial(i, self._linked(first), int(content.get("depth", 0)), first)
        if first not in maps:
            raise InputError(f"{first} has no spatial map to click (pooled or text output).")
        meta, arrays = similarity_view(maps, fy, fx)
        return {**meta, "skipped": skipped, "sample": i}, arrays

    def _request_strip(self, content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """One small PCA map per linked layer (the change with depth at a glance)."""
        i = int(content.get("sample", self.sample))
        names = self._linked("") or ([self.layer] if self.layer else [])
        maps, skipped = self._spatial(i, names, 0, "")
        meta, arrays = strip_view(maps)
        return {**meta, "skipped": skipped, "sample": i}, arrays

    def snapshot(self) -> Any:
        """A picture of the current view (`IPython.display.Image`), to keep one state in a cell
        of its own (the displayed widget's picture follows the view)."""
        from IPython.display import Image

        from nbfeat.widgets.snapshot import browser_png

        return Image(data=browser_png(self), format="png")

    def _request_view(self, content: dict[str, Any]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
        """Everything the view shows for one (sample, layer): thumbnail, PCA, channels."""
        i = int(content.get("sample", self.sample))
        name = str(content.get("layer", self.layer))
        if not 0 <= i < len(self.samples):
            raise InputError(f"sample must be between 0 and {len(self.samples) - 1}; got {i}.")
        channel = int(content.get("channel", -1))
        depth = int(content.get("depth", 0))
        k = max(1, min(int(content.get("k", self.n_top)), 64))
        data = self.source.layer(i, name, depth=depth)
        meta, arrays = layer_view(data, k=k, channel=channel, depth=depth, image=self.modality == "image")
        if self.modality == "text":
            stack = self.source.stack(i)
            if stack is not None:
                c = channel if stack.values.shape[-1] == meta["n_channels"] else -1
                arrays["stack"], meta["stack_value"] = stack_values(stack.values, c)
                meta["stack_labels"] = stack.labels
                meta["stack_row"] = stack.row_of(name, depth)
                if not meta.get("tokens") or len(meta["tokens"]) != arrays["stack"].shape[1]:
                    meta["tokens"] = meta.get("tokens") or [str(t) for t in range(arrays["stack"].shape[1])]
            spans = self.source.spans(i, name) if meta.get("tokens") else None
            if spans is not None and len(spans) == len(meta["tokens"]):  # one per chip: linking by characters
                arrays["spans"] = spans.astype(np.int32)
        if content.get("thumb") and self.modality == "image":
            thumb = self.source.thumbnail(i)
            if thumb is not None:
                # seen: what the model saw (resized and cropped), so a click on it is a patch
                arrays["thumb"], meta["thumb_seen"] = thumb
        if name == self.layer and i == self.sample:
            self._update_code(probe=True)  # now with this layer's outputs known
        sample_id = self.samples[i]["id"]
        meta.update({"layer": name, "sample": i, "info": f"{name} · {meta.pop('shape_text')} · sample {sample_id}"})
        return meta, arrays


def browse(data: Any, inputs: Any = None, layer: str | None = None, max_samples: int = 16, pool: Any = None, cache: Any = None, **kwargs: Any) -> BrowserWidget:
    """Browse activations: of extracted results, or of a backbone run on a few inputs.

    Args:
        data: a Dataset/DataTree from `bb.extract` (or `nbfeat.open`), or a Backbone (or
            model id) together with `inputs`.
        inputs: with a backbone: images (folder, paths, PIL, arrays) or texts.
        layer: the layer (module path or variable name) to show first.
        max_samples: with a backbone, how many inputs to offer (each layer is extracted
            for these on first look, then cached).
        pool: with a backbone, one pooling spec for every layer shown (`"mean"`,
            `("avg2d", 4)`); None shows the raw outputs.
        cache: with a backbone, True (or a cache folder) keeps each layer looked at in
            `nbfeat.cache` and reads it back from there later.

    Example:
        >>> nbfeat.browse(bb.extract("images/", layers=["layer3", "layer4"]))   # doctest: +SKIP
    """
    from nbfeat.widgets.sources import BackboneSource, DatasetSource

    if isinstance(data, str) or hasattr(data, "dummy_inputs"):
        if inputs is None:
            raise InputError("nbfeat.browse(bb, inputs): pass the inputs to run the model on.")
        bb = _backbone(data)
        source: Any = BackboneSource(bb, inputs, max_samples=max_samples, pool=pool, cache=cache)
    else:
        source = DatasetSource(data)
    return BrowserWidget(source, layer=layer, **kwargs)


def _backbone(model: Any) -> Any:
    if isinstance(model, str):
        import nbfeat

        return nbfeat.load(model)
    return model
