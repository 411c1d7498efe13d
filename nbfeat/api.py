"""The public entry points: `load` one model, `extract` from one or several.

>>> bb = nbfeat.load("timm:vit_small_patch14_dinov2", pretrained=False)    # doctest: +SKIP
>>> dt = nbfeat.extract(["torchvision:alexnet", "timm:resnet18"], "images/",
...                     layers={"torchvision:alexnet": "features.10", "timm:resnet18": "layer4"},
...                     pretrained=False)                                  # doctest: +SKIP
"""

from __future__ import annotations

import os
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models.backbone import Backbone

RANDOM_INIT_SEED = 0


def load(
    model: Any,
    pretrained: bool = True,
    weights: str | None = None,
    device: Any = None,
    dtype: Any = None,
    trust_remote_code: bool = False,
    model_kwargs: dict[str, Any] | None = None,
    channels_last: bool = False,
    amp: bool = False,
    preprocess: Any = None,
    name: str | None = None,
    modality: str | None = None,
    tokenizer: Any = None,
) -> Backbone:
    """Load a backbone by id (`timm:...`, `torchvision:...`, `hf:<hub id or dir>`,
    `openclip:<arch>/<tag>`, `diffusers:<hub id or dir>`, `cornet:cornet_s`, an alias) or
    from your own `torch.nn.Module`.

    Args:
        model: the model id (`nbfeat.list_models()` lists them), or a `torch.nn.Module`.
        pretrained: download (or take from the local cache) the published weights;
            False gives random weights, seeded so every process builds the same model.
        weights: a local checkpoint file (timm/torchvision/CORnet/open_clip) or a local
            Hugging Face directory; loaded with `weights_only=True`.
        device: "cpu", "cuda", ... (default: cuda when available).
        dtype: e.g. "bfloat16" for the model and its inputs.
        trust_remote_code: allow a Hugging Face repo's own code to run (off by default).
        model_kwargs: passed to the source: the model constructor (`timm.create_model`,
            `torchvision.models.get_model`), e.g. `{"img_size": 448}`; for `diffusers:`
            `{"timestep": 100, "prompt": "", "seed": 0}`; for CORnet `{"times": 5}`.
        channels_last: run convolutions in NHWC memory format (faster for CNNs on recent
            GPUs and CPUs); outputs keep the usual channel-first dims.
        amp: run the forward pass under `torch.autocast` (bfloat16; float16 on GPUs
            without bfloat16) while the weights stay in their dtype.
        preprocess: the image transform: a preset name ("imagenet": resize 256, crop 224,
            ImageNet mean/std; "clip"; "default": the source's own), a torchvision
            transform, or any callable PIL image -> CHW tensor. Recorded in provenance.
        name: the model id shown for a module (default `module:<class>`).
        modality: "image" or "text": which tower of a two-tower model (open_clip), or what
            a module takes (text modules also need `tokenizer=`).
        tokenizer: the tokenizer of a text module.

    Example:
        >>> bb = nbfeat.load("resnet50", pretrained=False, preprocess="imagenet")  # doctest: +SKIP
        >>> bb = nbfeat.load(my_module, preprocess=my_transform, name="my-net")    # doctest: +SKIP
    """
    from nbfeat.models.backbone import _as_dtype
    from nbfeat.models.registry import Resolved, lookup
    from nbfeat.models.sources import Request, get_source
    from nbfeat.models.sources import preprocess as presets
    from nbfeat.models.sources.module import is_module

    if isinstance(model, Backbone):
        return model
    import torch

    torch_dtype = _as_dtype(dtype)
    if is_module(model):
        label, loaded = get_source("module").load_module(model, preprocess=preprocess, name=name, modality=modality, tokenizer=tokenizer)
        r = Resolved("module", label)
        model_id = label
    else:
        r = lookup(str(model))
        source = get_source(r.source)
        source.check_installed()  # the pip command, before anything is downloaded
        kwargs = {**r.model_kwargs, **(model_kwargs or {})}
        # Random weights are seeded (without touching the caller's RNG), so a resumed run, a
        # Dask worker and a rerun all build the same model.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(RANDOM_INIT_SEED)
            loaded = source.load(Request(r.name, pretrained, weights, kwargs, trust_remote_code, torch_dtype, modality))
        if modality is not None and loaded.modality != modality:
            raise NbfeatError(f"'{r.id}' is a{'n' if loaded.modality == 'image' else ''} {loaded.modality} model; modality={modality!r} does not apply to it.")
        presets.apply(loaded, preprocess)
        if preprocess is not None:
            loaded.load_kwargs.setdefault("preprocess", preprocess)
        if loaded.weights == "random":
            loaded.weights = f"random(seed={RANDOM_INIT_SEED})"
        if r.shown:
            loaded.attrs.setdefault("resolved", r.shown)
        model_kwargs = kwargs or None
        model_id = r.id
    bb = Backbone(model_id, r.source, r.name, loaded, pretrained=pretrained, weights=weights, device=device, dtype=torch_dtype, trust_remote_code=trust_remote_code, model_kwargs=model_kwargs, channels_last=channels_last, amp=amp)
    bb.resolved = r.shown  # e.g. "SAM(sam_vit_b) -> timm:samvit_base_patch16.sa1b"; "" when typed as is
    return bb


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
    model_kwargs: dict[str, Any] | None = None,
    ids: list[str] | None = None,
    labels: list[str] | None = None,
    out: str | None = None,
    client: Any = None,
    progress: bool = True,
    overwrite: bool = False,
    cache: Any = None,
    preprocess: Any = None,
    stages: Any = None,
    length_buckets: bool = True,
) -> Any:
    """Extract from one model (returns what `Backbone.extract` returns) or several.

    With several models, `layers`, `nodes`, `pool` and `weights` may be dicts keyed by
    model id; the result is a `DataTree` with one child per model (`/` in ids becomes
    `--`). With `out=`, each model streams to `<out>/<model>` ... see `Backbone.extract`.
    `cache=True` keeps each model's features in the notebook cache (nbfeat.cache).
    `device`, `dtype`, `channels_last`, `amp`, `pretrained`, `weights`, `model_kwargs` and
    `preprocess` go to `nbfeat.load` (`weights`, `model_kwargs` and `preprocess` may be keyed
    by model id too). `stages` (HF out_indices numbering) as in `Backbone.extract`. A `torch.nn.Module` in `models` is loaded with `nbfeat.load(module)`.

    Example:
        >>> dt = nbfeat.extract(["resnet18", "alexnet"], "images/", layers=-1, pretrained=False)  # doctest: +SKIP
    """
    many = isinstance(models, list | tuple)
    items = list(models) if many else [models]
    items = [load(m) if _is_module(m) else m for m in items]  # a module's id is its name
    ids_ = [str(m.id if isinstance(m, Backbone) else m) for m in items]

    def for_model(value: Any, mid: str) -> Any:
        # a dict keyed by model ids gives each model its own entry (None: the default)
        if isinstance(value, dict) and any(k in value for k in ids_):
            return value.get(mid)
        return value

    results = {}
    for mid, m in zip(ids_, items):
        bb = m if isinstance(m, Backbone) else load(mid, pretrained=pretrained, weights=for_model(weights, mid), model_kwargs=for_model(model_kwargs, mid), preprocess=for_model(preprocess, mid), device=device, dtype=dtype, channels_last=channels_last, amp=amp)
        target = None if out is None else (out if not many else os.path.join(os.fspath(out), mid.replace("/", "--").replace(":", "_") + ".zarr"))
        results[mid] = bb.extract(
            inputs, layers=for_model(layers, mid), nodes=for_model(nodes, mid), pool=for_model(pool, mid),
            flatten=flatten, batch_size=batch_size, num_workers=num_workers, ids=ids, labels=labels,
            out=target, client=client, progress=progress, overwrite=overwrite, cache=cache,
            **({"stages": for_model(stages, mid)} if stages is not None else {}),
            length_buckets=length_buckets,
        )
    if not many:
        return results[ids_[0]]
    return _tree_of_models(results)


def _is_module(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] != "builtins" and hasattr(obj, "state_dict") and hasattr(obj, "named_modules")


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
