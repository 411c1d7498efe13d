"""The model tree widget: module hierarchy with types, output shapes and parameter counts.

Click a row, shift-click a range, ctrl/cmd-click to add, or type a pattern such as
`blocks.*.attn` and press Enter. The selection is `widget.selected` (module paths), synced
both ways.

>>> w = nbfeat.tree("timm:vit_small_patch14_dinov2")   # doctest: +SKIP
>>> w.selected = ["blocks.3.attn"]                     # doctest: +SKIP
>>> w.observe(lambda ch: print(ch["new"]), names=["selected"])   # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
from typing import Any

import traitlets

from nbfeat.errors import NbfeatError, UnknownLayerError, did_you_mean
from nbfeat.widgets._base import NbfeatWidget


class TreeWidget(NbfeatWidget):
    """Module tree of a model; build it with `nbfeat.tree(...)` or `bb.tree()`."""

    _kind = traitlets.Unicode("tree").tag(sync=True)

    title = traitlets.Unicode("").tag(sync=True)
    """The model id (or class name). (Not `model_id`: ipywidgets uses that for the comm.)"""

    rows = traitlets.List(traitlets.Dict()).tag(sync=True)
    """One dict per module, from `nbfeat.models.tree.module_tree`: path, name, type, depth,
    parent, params, shape (batch 1; None if unknown), calls, role. Default: []."""

    selected = traitlets.List(traitlets.Unicode()).tag(sync=True)
    """Selected module paths, in tree order. Set it from Python to select; observe it to
    react to clicks. Unknown paths raise. Default: []."""

    focused = traitlets.Unicode("").tag(sync=True)
    """The module last clicked ("" before any click): the layer a linked browser shows."""

    height = traitlets.Int(360).tag(sync=True)
    """Height of the scrolling list in pixels. Default: 360."""

    note = traitlets.Unicode("").tag(sync=True)
    """A line under the list: the explorer says there what a full extraction of the
    selection would take in memory and on disk. Default: ""."""

    def __init__(self, rows: list[dict[str, Any]], title: str = "", **kwargs: Any) -> None:
        super().__init__(rows=rows, title=title, **kwargs)

    @traitlets.validate("selected")
    def _valid_selected(self, proposal: Any) -> list[str]:
        known = self.paths
        paths = list(dict.fromkeys(proposal["value"]))
        for p in paths:
            if p not in known:
                raise UnknownLayerError(f"{p!r} is not a module of {self.title or 'this model'}.{did_you_mean(p, known)}")
        order = {p: i for i, p in enumerate(self._path_list)}
        return sorted(paths, key=order.__getitem__)

    @property
    def _path_list(self) -> list[str]:
        return [r["path"] for r in self.rows if r["path"]]

    @property
    def paths(self) -> set[str]:
        """Every selectable module path (the root excluded)."""
        return set(self._path_list)

    def select(self, pattern: str) -> list[str]:
        """Select the modules matching a glob (fnmatch rules, as `bb.layers(pattern)`).

        Example:
            >>> w.select("layer*.0.conv1")     # doctest: +SKIP
            ['layer1.0.conv1', 'layer2.0.conv1', 'layer3.0.conv1', 'layer4.0.conv1']
        """
        hits = [p for p in self._path_list if fnmatch.fnmatchcase(p, pattern)]
        if not hits:
            raise UnknownLayerError(f"No module matches {pattern!r}.{did_you_mean(pattern.replace('*', ''), self._path_list)}")
        self.selected = hits
        self.focused = hits[-1]
        return hits

    def row(self, path: str) -> dict[str, Any]:
        """The row of one module (shape, params, ...)."""
        for r in self.rows:
            if r["path"] == path:
                return r
        raise UnknownLayerError(f"{path!r} is not a module of {self.title or 'this model'}.{did_you_mean(path, self._path_list)}")

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        """The widget view plus a PNG of the tree and its selection (for pages without a kernel)."""
        from nbfeat.widgets.snapshot import tree_png, with_png

        return with_png(super()._repr_mimebundle_(**kwargs), lambda: tree_png(self))

    def _ipython_display_(self, **kwargs: Any) -> None:
        """In a notebook: the tree, and a picture of it that follows the selection (the saved
        notebook shows the last state; see `nbfeat.widgets.snapshot`)."""
        from nbfeat.widgets.snapshot import saved_view, tree_png

        saved_view(self, lambda: tree_png(self), [(self, ["selected"])], "model tree").show()

    def snapshot(self) -> Any:
        """A picture of the tree and its selection now (`IPython.display.Image`)."""
        from IPython.display import Image

        from nbfeat.widgets.snapshot import tree_png

        return Image(data=tree_png(self), format="png")

    def __repr__(self) -> str:
        return f"<TreeWidget {self.title}: {len(self.rows)} modules, selected={self.selected}>"


def tree(model: Any, height: int = 360, **load_kwargs: Any) -> TreeWidget:
    """The module tree of a model, with shapes from a dry run that allocates nothing.

    Args:
        model: a Backbone, an `nn.Module`, or a model id. An id is built on the `meta`
            device: no weights are downloaded or allocated, so large models open fast.
        height: list height in pixels.
        load_kwargs: passed to `nbfeat.load` for an id (e.g. `model_kwargs`).

    Example:
        >>> w = nbfeat.tree("torchvision:resnet18")     # doctest: +SKIP
        >>> w.selected                                  # doctest: +SKIP
        ['layer3']
    """
    from nbfeat.models.tree import module_tree

    target = _meta_backbone(model, load_kwargs) if isinstance(model, str) else model
    model_id = getattr(target, "id", None) or type(target).__name__
    rows = with_bytes(module_tree(target), stored_itemsize(target))
    widget = TreeWidget(rows, title=str(model_id), height=height)
    if hasattr(target, "dummy_inputs") and not isinstance(model, str):
        # `bb.extract(..., layers=bb.tree_widget.selected)` reads the last tree shown
        target.tree_widget = widget
    return widget


def stored_itemsize(model: Any) -> int:
    """Bytes per value nbfeat stores for this model's outputs: float16 stays float16;
    float32 and bfloat16 (and autocast) are stored as float32."""
    dtype = str(getattr(model, "dtype", None) or "float32").replace("torch.", "")
    return 2 if dtype == "float16" and not getattr(model, "amp", False) else 4


def with_bytes(rows: list[dict[str, Any]], itemsize: int) -> list[dict[str, Any]]:
    """Each row with `bytes`: its output's size per sample (every call), None when unknown.

    From the dry run's shapes (batch 1; for text, the dry run's 8 tokens).
    """
    out = []
    for r in rows:
        shape = r.get("shape")
        n = None
        if shape:
            n = itemsize * max(int(r.get("calls") or 1), 1)
            for s in shape[1:]:
                n *= int(s)
        out.append({**r, "bytes": n})
    return out


def selection_bytes(rows: list[dict[str, Any]], selected: list[str]) -> int | None:
    """Bytes per sample of extracting `selected`, from the dry run's shapes, or None.

    (`bb.estimate` runs a real one-sample probe over the inputs: too slow for every click.)
    """
    by_path = {r["path"]: r.get("bytes") for r in rows}
    sizes = [by_path.get(p) for p in selected]
    return None if any(v is None for v in sizes) else int(sum(sizes))  # type: ignore[arg-type]


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KB' (powers of 1024, as memory is counted)."""
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TB"


def _meta_backbone(model_id: str, load_kwargs: dict[str, Any]) -> Any:
    """Build the model from its id with every tensor on `meta` (nothing downloaded or allocated)."""
    import torch

    import nbfeat

    kwargs = {**load_kwargs, "pretrained": False}
    try:
        with torch.device("meta"):
            return nbfeat.load(model_id, device="meta", **kwargs)
    except NbfeatError:  # unknown id, offline, ...: the user's to fix
        raise
    except Exception:  # a model whose constructor needs real tensors: random weights on CPU
        return nbfeat.load(model_id, device="cpu", **kwargs)
