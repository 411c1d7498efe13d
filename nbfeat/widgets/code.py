"""The Python code behind a view: run it in a fresh kernel and get the shown array, bit for bit.

A view of `BackboneSource` is one forward pass over the shown inputs in one batch, so the
code rebuilds exactly that: every `nbfeat.load` argument of the backbone
(`Backbone.load_kwargs()` and its device), how `inputs` was built, the same layers, pooling
and batch size, then the shown sample and depth.

>>> print(view_code(bb, "images/", shown=3, layers=["layer2"], layer="layer2", sample=1))  # doctest: +SKIP
import nbfeat
<BLANKLINE>
bb = nbfeat.load('torchvision:resnet18', pretrained=False, device='cpu')
inputs = 'images/'  # a folder (3 inputs)
ds = bb.extract(inputs, layers=['layer2'], batch_size=3)
x = ds['layer2'].isel(sample=1)  # sample 'circles/1.png'
"""

from __future__ import annotations

import os
from typing import Any

# nbfeat.load's defaults: arguments equal to them are left out of the code
LOAD_DEFAULTS: dict[str, Any] = {
    "weights": None,
    "dtype": None,
    "trust_remote_code": False,
    "model_kwargs": None,
    "channels_last": False,
    "amp": False,
}


def load_code(bb: Any) -> str:
    """`bb = nbfeat.load(...)` with every argument that rebuilds `bb` (its device included).

    Example:
        >>> load_code(nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu"))  # doctest: +SKIP
        "bb = nbfeat.load('torchvision:resnet18', pretrained=False, device='cpu')"
    """
    kw = dict(bb.load_kwargs())
    args = [repr(kw.pop("model")), f"pretrained={bool(kw.pop('pretrained'))!r}"]
    args += [f"{k}={v!r}" for k, v in kw.items() if k not in LOAD_DEFAULTS or v != LOAD_DEFAULTS[k]]
    args.append(f"device={str(bb.device)!r}")
    return f"bb = nbfeat.load({', '.join(args)})"


def inputs_code(raw: Any, resolved: Any, shown: int) -> tuple[list[str], bool]:
    """Lines that define `inputs` as the view got them, and whether they are complete code.

    `raw` is what the user passed, `resolved` the `Inputs` the view shows (the first `shown`).
    A folder or glob is written as its path; paths and texts as a literal list of the shown
    ones; in-memory images (PIL, arrays, tensors) cannot be written, and a comment says so.
    """
    kind = resolved.kind
    if isinstance(raw, str | os.PathLike) and kind != "text":
        total = len(_resolve(raw, "image"))
        what = "a folder" if os.path.isdir(raw) else "a file" if os.path.isfile(raw) else "a glob"
        more = f"; the view shows the first {shown}" if total > shown else ""
        return [f"inputs = {os.fspath(raw)!r}  # {what} ({total} inputs{more})"], True
    if kind == "text":
        if isinstance(raw, dict):
            return [f"inputs = {dict(zip(resolved.ids, resolved.texts))!r}"], True
        return [f"inputs = {list(resolved.texts)!r}"], True
    if kind == "files":
        if isinstance(raw, dict):
            return [f"inputs = {dict(list(raw.items())[:shown])!r}"], True
        return [f"inputs = {[os.fspath(p) for p in list(raw)[:shown]]!r}"], True
    what = {"tensor": "a tensor", "images": "in-memory images (PIL images or arrays)"}.get(kind, kind)
    return [
        f"# inputs: {what}, {shown} shown; they cannot be written as code.",
        "# Define `inputs` as the same objects (in the same order) before running this cell.",
    ], False


def view_code(
    bb: Any,
    raw_inputs: Any,
    resolved: Any,
    layers: list[str],
    layer: str = "",
    sample: int = 0,
    depth: int = 0,
    pool: Any = None,
    variables: dict[str, Any] | None = None,
) -> str:
    """The code that extracts `layers` as the view did and picks the shown array as `x`.

    Args:
        bb: the Backbone shown.
        raw_inputs: the inputs as the user passed them; `resolved`: the shown `Inputs`.
        layers: the layers to extract (the tree's selection); `layer` the one on screen.
        sample, depth: the shown sample position and depth (call) of `layer`.
        pool: the pooling the view used (None: the raw output).
        variables: `run.variables` of the view's extraction, when known: it tells a module
            called several times (a `call` dim, or one variable per call) and whether the
            result is a Dataset or a DataTree.
    """
    if not layers:
        return ""
    shown = len(resolved)
    lines, complete = inputs_code(raw_inputs, resolved, shown)
    pool_arg = f", pool={pool!r}" if pool is not None else ""
    head = ["import nbfeat", "", load_code(bb), *lines]
    # the view ran one batch of every shown input: the same batch gives the same bits
    head.append(f"ds = bb.extract(inputs, layers={list(layers)!r}{pool_arg}, batch_size={shown})")
    if layer and layer in layers and variables is not None:
        head.append(f"x = {_pick(layer, sample, depth, variables, many=len(layers) > 1)}  # sample {resolved.ids[sample]!r}")
    elif layer and layer in layers:
        head.append(f"# x: {layer} of sample {resolved.ids[sample]!r} is written here once the view has loaded it")
    if not complete:
        head.append("# (define `inputs` first: see above)")
    return "\n".join(head)


def _pick(layer: str, sample: int, depth: int, variables: dict[str, Any] | None, many: bool) -> str:
    variables = variables or {}
    name, call = layer, ""
    if layer not in variables:
        split = sorted((k for k in variables if k.startswith(layer + "#")), key=lambda k: int(k.rpartition("#")[2]))
        if split:
            name = split[min(max(depth, 0), len(split) - 1)]
    elif "call" in variables[layer].dims:
        call = f", call={depth}"
    tree = many and _is_tree(variables)
    # a DataTree holds each variable in a node of the same name
    ref = f"ds[{name!r}][{name!r}]" if tree else f"ds[{name!r}]"
    return f"{ref}.isel(sample={sample}{call})"


def _is_tree(variables: dict[str, Any]) -> bool:
    from nbfeat.data.labelled import dims_agree

    return bool(variables) and not dims_agree(variables)


def _resolve(raw: Any, modality: str) -> Any:
    from nbfeat.data.inputs import resolve_inputs

    return resolve_inputs(raw, modality)


__all__ = ["inputs_code", "load_code", "view_code"]
