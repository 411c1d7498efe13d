"""The key of an extraction: everything that changes a value, run-level and per sample.

Run level (`run_key`): the model id and every load argument, a digest of the weights
actually loaded (the parameter and buffer bytes, so a swapped checkpoint at the same path, a
random init or a model edited in memory all count), the Hugging Face config, preprocessing,
dtype/autocast/memory format, targets, pools, and library versions. Per sample: the content
of each input (`nbfeat.data.inputs.Inputs.content_key`).

>>> run_key(run)["parameters"]            # doctest: +SKIP
'sha256:3f0c...'
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def model_digest(model: Any) -> str:
    """`sha256:<hex>` of every parameter and buffer (names, dtypes, shapes, bytes).

    Cached on the module and recomputed when any tensor changes: torch bumps a tensor's
    version counter on every in-place write (load_state_dict, `p.mul_()`), and a new tensor
    has a new address. Writes through `p.data` bypass the counter, so the cache is also
    checked against a strided sample of every tensor (up to 256 values each): an edit of a
    few values through `.data` outside the sample is the one change it can miss.
    """
    import torch

    tensors = list(model.state_dict(keep_vars=True).items())
    sig = (
        tuple((n, t.data_ptr(), t._version, tuple(t.shape), str(t.dtype)) for n, t in tensors),
        _sample(tensors),
    )
    cached = getattr(model, "_nbfeat_digest", None)
    if cached is not None and cached[0] == sig:
        return cached[1]
    h = hashlib.sha256()
    for name, t in tensors:
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)};".encode())
        if t.device.type == "meta":
            continue
        data = t.detach()
        if data.dtype in (torch.bfloat16, torch.float8_e4m3fn, torch.float8_e5m2):
            data = data.view(torch.uint8 if data.element_size() == 1 else torch.int16)
        data = data.cpu().contiguous().reshape(-1)
        if data.numel():
            h.update(memoryview(data.numpy()).cast("B"))
    digest = "sha256:" + h.hexdigest()[:32]
    try:
        object.__setattr__(model, "_nbfeat_digest", (sig, digest))
    except Exception:
        pass
    return digest


def _sample(tensors: list[tuple[str, Any]]) -> str:
    import torch

    h = hashlib.sha256()
    with torch.no_grad():
        for _, t in tensors:
            if t.device.type == "meta" or not t.numel():
                continue
            flat = t.detach().reshape(-1)
            step = max(1, flat.numel() // 256)
            part = flat[::step][:256].float() if t.is_floating_point() else flat[::step][:256].double()
            h.update(part.cpu().numpy().tobytes())
    return h.hexdigest()


def config_digest(model: Any) -> str:
    """A digest of the model's Hugging Face config (a local folder's config.json), "" for none."""
    config = getattr(model, "config", None)
    to_json = getattr(config, "to_json_string", None)
    if to_json is None:
        return ""
    try:
        text = to_json(use_diff=False)
    except TypeError:
        text = to_json()
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()[:32]


def run_key(run: Any) -> dict[str, Any]:
    """What the values of `run` depend on, besides its inputs: one entry per thing to name."""
    bb = run.bb
    prov = run.attrs
    load = {k: v for k, v in bb.load_kwargs().items() if k != "model"}
    versions = {k: v for k, v in prov.items() if k.endswith("_version")}
    return {
        "model": prov["model"],
        "load arguments": json.loads(json.dumps(load, sort_keys=True, default=str)),
        "weights": prov["weights"],
        "parameters": model_digest(bb.model),
        "config": config_digest(bb.model),
        "preprocessing": prov["preprocessing"],
        "dtype": prov["dtype"],
        "memory_format": prov.get("memory_format", ""),
        "targets": [[t.name, list(t.modules), str(t.pool)] for t in run.targets],
        "flatten": run.flatten,
        "variables": {n: [list(v.dims), [int(s) for s in v.shape]] for n, v in run.variables.items()},
        "versions": versions,
    }


def digest(key: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()[:16]


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """'what: stored -> now' for each entry that differs, named as in `run_key`."""
    out = []
    for k in sorted(set(old) | set(new)):
        a, b = old.get(k), new.get(k)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            sub = [f"{k}.{s}: {_short(a.get(s))} in the store, {_short(b.get(s))} now" for s in sorted(set(a) | set(b)) if a.get(s) != b.get(s)]
            out += sub
        else:
            out.append(f"{k}: {_short(a)} in the store, {_short(b)} now")
    return out


def _short(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
