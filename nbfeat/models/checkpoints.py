"""Local weights, loaded safely: never a pickle that can run code.

>>> sd = read_state_dict("resnet18.pth")      # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from nbfeat.errors import NbfeatError

_NESTED_KEYS = ("state_dict", "model", "model_state", "module", "net", "weights")


def read_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Tensors from a `.pt/.pth/.bin/.ckpt` (with `weights_only=True`) or `.safetensors` file.

    Common wrappers (`{"state_dict": ...}`, `{"model": ...}`) and DataParallel's `module.`
    prefix are unwrapped.
    """
    import torch

    path = Path(path)
    if not path.is_file():
        raise NbfeatError(f"Checkpoint not found: {path}")
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        sd: Any = load_file(str(path))
    else:
        try:
            sd = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:  # UnpicklingError, or a pickle asking for a global
            raise NbfeatError(
                f"Refused to load {path.name}: it is not a plain tensor checkpoint "
                f"(weights_only=True failed: {str(e).splitlines()[0][:200]}). "
                "nbfeat never unpickles code; re-save the weights with "
                "torch.save(model.state_dict(), path) or as .safetensors."
            ) from None
    for key in _NESTED_KEYS:
        if isinstance(sd, dict) and isinstance(sd.get(key), dict):
            sd = sd[key]
            break
    if not isinstance(sd, dict):
        raise NbfeatError(f"{path.name} does not hold a state dict (found {type(sd).__name__}).")
    if sd and all(k.startswith("module.") for k in sd):
        sd = {k[len("module.") :]: v for k, v in sd.items()}
    return sd


def apply_state_dict(model: Any, sd: dict[str, Any], source: str) -> None:
    """Load `sd` into `model` strictly, with a short message naming what does not fit."""
    own = model.state_dict()
    wrong = [k for k, v in sd.items() if k in own and tuple(getattr(v, "shape", ())) != tuple(own[k].shape)]
    missing = [k for k in own if k not in sd]
    unexpected = [k for k in sd if k not in own]
    if missing or unexpected or wrong:
        parts = []
        if wrong:
            k = wrong[0]
            parts.append(f"{len(wrong)} of another shape (e.g. {k}: {tuple(sd[k].shape)} vs {tuple(own[k].shape)})")
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {', '.join(missing[:3])})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {', '.join(unexpected[:3])})")
        raise NbfeatError(
            f"The checkpoint does not fit {source}: keys {'; '.join(parts)}. "
            "Check that the model id matches the architecture the weights were trained with."
        )
    model.load_state_dict(sd, strict=True)


def file_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` of a file (provenance for local checkpoints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def dir_digest(path: str | os.PathLike[str]) -> str:
    """`sha256:<hex>` over the weight files of a model directory (name + content)."""
    h = hashlib.sha256()
    root = Path(path)
    for f in sorted(root.rglob("*")):
        if f.is_file() and f.suffix in {".safetensors", ".bin", ".pt", ".pth", ".json"}:
            h.update(str(f.relative_to(root)).encode())
            h.update(file_digest(f).encode())
    return "sha256:" + h.hexdigest()
