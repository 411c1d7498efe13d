"""The module tree of a model, with output shapes from a dry run that allocates nothing.

The shape pass runs the forward with every parameter and buffer swapped for a `meta` tensor
(`torch.func.functional_call`), so a Llama-8B-sized tree gets its shapes in a fraction of a
second without touching (or even having) the weights. If the model cannot run on `meta`
(data-dependent control flow, `.item()`), shapes stay None: the tree still opens.

>>> rows = module_tree(torchvision.models.resnet18())              # doctest: +SKIP
>>> [(r["path"], r["shape"]) for r in rows][:2]                    # doctest: +SKIP
[('', [1, 1000]), ('conv1', [1, 64, 112, 112])]
"""

from __future__ import annotations

from typing import Any

# A real (not meta) forward is tried for models up to this many parameters when the meta
# pass fails: cheap at batch 1, and it fills in shapes for models with data-dependent code.
REAL_PASS_MAX_PARAMS = 50_000_000


def module_tree(model_or_backbone: Any, dummy: Any = None) -> list[dict[str, Any]]:
    """One dict per module, in definition order (root first).

    Keys: `path` ("" for the root), `name` (last path part; the model id or class for the
    root), `type` (class name), `depth`, `parent` (path, None for the root), `params`
    (total, children included), `shape` (output shape at batch 1 as a list, None when
    unknown), `calls` (times called in one forward; None when unknown), `role`
    ("block"/"attn"/"mlp" from a Backbone's node roles, else None). For a Backbone, `shape`
    is the output as nbfeat delivers it (the family adapter's layout: windows merged back onto
    the image grid, NHWC moved channel-first); where that differs from what the module returns,
    `captured_shape` is the latter and `layout` says what was done. The root row's `family` names the adapter
    (`generic` when nbfeat has none for this model).

    Args:
        model_or_backbone: an `nn.Module` or an nbfeat Backbone.
        dummy: inputs for the shape pass: a tensor, or `(args, kwargs)`. Default: the
            Backbone's `dummy_inputs`, an HF model's `main_input_name`, else a 224px image.

    Example:
        >>> rows = module_tree(nbfeat.load("torchvision:resnet18", pretrained=False))  # doctest: +SKIP
    """
    bb = model_or_backbone if _is_backbone(model_or_backbone) else None
    model = bb.model if bb is not None else model_or_backbone
    roles: dict[str, str] = {}
    if bb is not None:
        for role, paths in bb.nodes.items():
            for p in paths:
                if p is not None:
                    roles.setdefault(p, role)
    shapes, calls, inputs = _shape_pass(model, bb, dummy)
    delivered = _delivered(bb, shapes, inputs) if bb is not None else {}
    rows = []
    for path, module in model.named_modules(remove_duplicate=True):
        depth = 0 if path == "" else path.count(".") + 1
        rows.append(
            {
                "path": path,
                "name": path.rpartition(".")[2] if path else (bb.id if bb is not None else type(model).__name__),
                "type": type(module).__name__,
                "depth": depth,
                "parent": None if path == "" else path.rpartition(".")[0],
                "params": sum(p.numel() for p in module.parameters()),
                "shape": shapes.get(path),
                "calls": calls.get(path, 0) if calls is not None else None,
                "role": roles.get(path),
            }
        )
        if path in delivered:  # only where the adapter changes the layout
            shape, note = delivered[path]
            rows[-1].update(shape=shape, captured_shape=shapes.get(path), layout=note)
        if bb is not None and path == "":
            rows[-1]["family"] = bb.adapter.family
    return rows


def _delivered(bb: Any, shapes: dict[str, list[int]], inputs: dict[str, Any]) -> dict[str, tuple[list[int], str]]:
    """path -> (shape as extracted, layout note), from the adapter's layout of each output."""
    import torch

    from nbfeat.models.adapters.base import Context

    image = inputs.get("")
    hw = None
    if image is not None:
        first = next((a for a in image[0] if isinstance(a, tuple)), None) or next((v for v in image[1].values() if isinstance(v, tuple)), None)
        if first is not None and len(first) == 4:
            hw = (int(first[2]), int(first[3]))
    ctx = Context(input_hw=hw, calls=inputs)
    out = {}
    for path, shape in shapes.items():
        try:
            layout = bb.adapter.layout(path, len(shape), ctx)
            if layout.restore is None:
                continue
            restored = layout.restore(torch.empty(shape, device="meta"))
            out[path] = (list(restored.shape), layout.note)
        except Exception:  # a layout that does not fit this dry run: the raw shape stays
            continue
    return out


def _is_backbone(obj: Any) -> bool:
    return hasattr(obj, "dummy_inputs") and hasattr(obj, "model") and hasattr(obj, "nodes")


def _shape_pass(model: Any, bb: Any, dummy: Any) -> tuple[dict[str, list[int]], dict[str, int] | None, dict[str, Any]]:
    """Shapes (first call), call counts and input summaries per module path; ({}, None, {})
    when nothing ran."""
    best: tuple[dict[str, list[int]], dict[str, int] | None, dict[str, Any]] = ({}, None, {})
    for device in ("meta", "real"):
        if device == "real" and not _real_pass_ok(model):
            break
        for args, kwargs in _attempts(model, bb, dummy, device):
            shapes, calls, ok, inputs = _run_hooked(model, args, kwargs, meta=device == "meta")
            if ok:
                return shapes, calls, inputs
            if len(shapes) > len(best[0]):
                best = (shapes, None, inputs)  # a partial pass: shapes are right, counts may not be
    return best


def _real_pass_ok(model: Any) -> bool:
    params = list(model.parameters())
    return bool(params) and not any(p.is_meta for p in params) and sum(p.numel() for p in params) <= REAL_PASS_MAX_PARAMS


def _attempts(model: Any, bb: Any, dummy: Any, device: str) -> list[tuple[tuple[Any, ...], dict[str, Any]]]:
    """Input variants to try in order (an attention mask can need `.item()`: retry without)."""
    import torch

    target = "meta" if device == "meta" else _model_device(model)
    try:
        if dummy is not None:
            args, kwargs = ((dummy,), {}) if isinstance(dummy, torch.Tensor) else dummy
            args = tuple(_to(a, target) for a in args)
            kwargs = {k: _to(v, target) for k, v in kwargs.items()}
        elif bb is not None:
            args, kwargs = bb.dummy_inputs(batch_size=1, device=target)
        else:
            args, kwargs = _default_inputs(model, target)
    except Exception:  # an input we cannot build: the tree opens without shapes
        return []
    out = [(tuple(args), dict(kwargs))]
    if "attention_mask" in kwargs:
        out.append((tuple(args), {k: v for k, v in kwargs.items() if k != "attention_mask"}))
    return out


def _model_device(model: Any) -> Any:
    import torch

    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")


def _float_dtype(model: Any) -> Any:
    import torch

    return next((p.dtype for p in model.parameters() if p.is_floating_point()), torch.float32)


def _to(x: Any, device: Any) -> Any:
    import torch

    return x.to(device) if isinstance(x, torch.Tensor) else x


def _default_inputs(model: Any, device: Any) -> tuple[tuple[Any, ...], dict[str, Any]]:
    import torch

    name = getattr(model, "main_input_name", None)
    config = getattr(model, "config", None)
    if name == "input_ids":
        return (), {"input_ids": torch.zeros((1, 8), dtype=torch.long, device=device)}
    if name == "pixel_values" and config is not None:
        cfg = getattr(config, "vision_config", None) or config
        size = getattr(cfg, "image_size", 224)
        h, w = (size, size) if isinstance(size, int) else tuple(size)[-2:]
        c = getattr(cfg, "num_channels", 3)
        return (), {"pixel_values": torch.zeros((1, c, h, w), dtype=_float_dtype(model), device=device)}
    # timm models carry their input size (a dinov2 ViT asserts 518 px)
    timm_cfg = getattr(model, "pretrained_cfg", None) or getattr(model, "default_cfg", None) or {}
    size = tuple(timm_cfg.get("input_size", (3, 224, 224)))
    return (torch.zeros((1, *size), dtype=_float_dtype(model), device=device),), {}


def _run_hooked(model: Any, args: tuple[Any, ...], kwargs: dict[str, Any], meta: bool) -> tuple[dict[str, list[int]], dict[str, int], bool, dict[str, Any]]:
    import torch

    from nbfeat.engine.hooks import hidden_state

    shapes: dict[str, list[int]] = {}
    calls: dict[str, int] = {}
    inputs: dict[str, Any] = {}

    def summary(value: Any) -> Any:
        if isinstance(value, torch.Tensor):
            return tuple(int(i) for i in value.shape)
        if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
            return tuple(value)
        return value if isinstance(value, int | float | str | bool | type(None)) else type(value).__name__

    def make_pre_hook(path: str) -> Any:
        def hook(module: Any, args: Any, kwargs: Any) -> None:
            if path not in inputs:  # the layout context: what each module was called with
                inputs[path] = (tuple(summary(a) for a in args), {k: summary(v) for k, v in kwargs.items()})

        return hook

    def make_hook(path: str) -> Any:
        def hook(module: Any, inputs: Any, output: Any) -> None:
            calls[path] = calls.get(path, 0) + 1
            if path not in shapes:
                try:
                    shapes[path] = list(hidden_state(output)[0].shape)
                except TypeError:  # an output without a tensor (None, a cache object)
                    pass

        return hook

    handles = [m.register_forward_hook(make_hook(p)) for p, m in model.named_modules()]
    handles += [m.register_forward_pre_hook(make_pre_hook(p), with_kwargs=True) for p, m in model.named_modules()]
    # eval mode for the pass (batch-norm statistics must not move), the user's mode after
    training = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            if meta:
                state = {n: torch.empty_like(t, device="meta") for n, t in [*model.named_parameters(remove_duplicate=False), *model.named_buffers(remove_duplicate=False)]}
                torch.func.functional_call(model, state, args, kwargs, tie_weights=True, strict=False)
            else:
                model(*args, **kwargs)
        ok = True
    except Exception:  # model code that cannot run here: keep what was recorded
        ok = False
    finally:
        for h in handles:
            h.remove()
        for m, mode in training.items():
            m.training = mode
    return shapes, calls, ok, inputs
