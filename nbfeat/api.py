"""The public entry points: `load` one model, `extract` from one or several.

>>> bb = nbfeat.load("timm:vit_small_patch14_dinov2", pretrained=False)    # doctest: +SKIP
>>> dt = nbfeat.extract(["torchvision:alexnet", "timm:resnet18"], "images/",
...                     layers={"torchvision:alexnet": "features.10", "timm:resnet18": "layer4"},
...                     pretrained=False)                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from nbfeat.models.backbone import Backbone

RANDOM_INIT_SEED = 0


def load(
    model: str,
    pretrained: bool = True,
    weights: str | None = None,
    device: Any = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    channels_last: bool = False,
    amp: bool = False,
) -> Backbone:
    """Load a backbone by id (`timm:...`, `torchvision:...`, `hf:<hub id or dir>`, or an alias).

    Args:
        model: the model id; `nbfeat.list_models()` lists them.
        pretrained: download (or take from the local cache) the published weights;
            False gives random weights, seeded so every process builds the same model.
        weights: a local checkpoint file (timm/torchvision) or a local Hugging Face
            directory; loaded with `weights_only=True`.
        device: "cpu", "cuda", ... (default: cuda when available).
        dtype: e.g. "bfloat16" for the model and its inputs.
        trust_remote_code: allow a Hugging Face repo's own code to run (off by default).
        model_kwargs: passed to the model constructor (`timm.create_model`,
            `torchvision.models.get_model`), e.g. `{"img_size": 224}`.
        channels_last: run convolutions in NHWC memory format (faster for CNNs on recent
            GPUs and CPUs); outputs keep the usual channel-first dims.
        amp: run the forward pass under `torch.autocast` (bfloat16; float16 on GPUs
            without bfloat16) while the weights stay in their dtype.

    Example:
        >>> bb = nbfeat.load("resnet50", pretrained=False)      # doctest: +SKIP
    """
    from nbfeat.models.sources import hf as hf_source, timm as timm_source, torchvision as torchvision_source
    from nbfeat.models.backbone import _as_dtype
    from nbfeat.models.registry import resolve

    if isinstance(model, Backbone):
        return model
    import torch

    source, name = resolve(str(model))
    torch_dtype = _as_dtype(dtype)
    # Random weights are seeded (without touching the caller's RNG), so a resumed run, a
    # Dask worker and a rerun all build the same model.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(RANDOM_INIT_SEED)
        if source == "timm":
            loaded = timm_source.load(name, pretrained, weights, model_kwargs or {})
        elif source == "torchvision":
            loaded = torchvision_source.load(name, pretrained, weights, model_kwargs or {})
        else:
            loaded = hf_source.load(name, pretrained, weights, trust_remote_code=trust_remote_code, dtype=torch_dtype)
    if loaded.weights == "random":
        loaded.weights = f"random(seed={RANDOM_INIT_SEED})"
    return Backbone(f"{source}:{name}", source, name, loaded, pretrained=pretrained, weights=weights, device=device, dtype=torch_dtype, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs, channels_last=channels_last, amp=amp)


def extract(
    models: Any,
    inputs: Any,
    layers: Any = None,
    nodes: Any = None,
    pool: Any = None,
    flatten: bool = False,
    batch_size: int = 32,
    num_workers: int | None = None,
    device: Any = None,
    dtype: Any = None,
    channels_last: bool = False,
    amp: bool = False,
    pretrained: bool = True,
    weights: Any = None,
    ids: list[str] | None = None,
    labels: list[str] | None = None,
    out: str | None = None,
    client: Any = None,
    progress: bool = True,
    overwrite: bool = False,
) -> Any:
    """Extract from one model (returns what `Backbone.extract` returns) or several.

    With several models, `layers`, `nodes`, `pool` and `weights` may be dicts keyed by
    model id; the result is a `DataTree` with one child per model (`/` in ids becomes
    `--`). With `out=`, each model streams to `<out>/<model>` ... see `Backbone.extract`.
    `device`, `dtype`, `channels_last`, `amp`, `pretrained` and `weights` go to `nbfeat.load`.

    Example:
        >>> dt = nbfeat.extract(["resnet18", "alexnet"], "images/", layers=-1, pretrained=False)  # doctest: +SKIP
    """
    many = isinstance(models, list | tuple)
    items = list(models) if many else [models]
    ids_ = [str(m.id if isinstance(m, Backbone) else m) for m in items]

    def for_model(value: Any, mid: str) -> Any:
        # a dict keyed by model ids gives each model its own entry (None: the default)
        if isinstance(value, dict) and any(k in value for k in ids_):
            return value.get(mid)
        return value

    results = {}
    for mid, m in zip(ids_, items):
        bb = m if isinstance(m, Backbone) else load(mid, pretrained=pretrained, weights=for_model(weights, mid), device=device, dtype=dtype, channels_last=channels_last, amp=amp)
        target = None if out is None else (out if not many else os.path.join(os.fspath(out), mid.replace("/", "--").replace(":", "_") + ".zarr"))
        results[mid] = bb.extract(
            inputs, layers=for_model(layers, mid), nodes=for_model(nodes, mid), pool=for_model(pool, mid),
            flatten=flatten, batch_size=batch_size, num_workers=num_workers, ids=ids, labels=labels,
            out=target, client=client, progress=progress, overwrite=overwrite,
        )
    if not many:
        return results[ids_[0]]
    return _tree_of_models(results)


def _tree_of_models(results: dict[str, Any]) -> Any:
    import xarray as xr

    nodes: dict[str, Any] = {}
    for mid, res in results.items():
        key = mid.replace("/", "--")
        if isinstance(res, xr.DataTree):
            for path, node in res.subtree_with_keys:
                nodes[f"/{key}" + ("" if path == "." else f"/{path}")] = node.to_dataset(inherit=False)
        else:
            nodes[f"/{key}"] = res
    return xr.DataTree.from_dict(nodes)
