"""Family adapters: one per model family, picked from the library's metadata.

`adapter_for(model, loaded)` returns the first adapter whose `matches()` is true, in the order
of `REGISTRY`; the generic fallback comes last. A module of adapters lists its classes in a
module-level `ADAPTERS` list; add the module's name to `_MODULES` (order matters: specific
families before broader ones).

>>> adapter_for(model, loaded).family          # doctest: +SKIP
'timm.vit'
"""

from __future__ import annotations

import importlib
from typing import Any

from nbfeat.models.adapters.base import Adapter, Context, Group, Layout, Stage
from nbfeat.models.adapters.generic import GenericAdapter

# adapter modules in match order; each holds `ADAPTERS = [...]` (imported on first use)
_MODULES = (
    "nbfeat.models.adapters.timm_vision",
    "nbfeat.models.adapters.torchvision_vision",
    "nbfeat.models.adapters.hf_vision",
    "nbfeat.models.adapters.openclip_vision",
    "nbfeat.models.adapters.text",
    "nbfeat.models.adapters.nested",
)

__all__ = ["Adapter", "Context", "GenericAdapter", "Group", "Layout", "Stage", "adapter_for", "registry"]


def registry() -> list[type[Adapter]]:
    """Every adapter class in match order, the generic fallback last."""
    out: list[type[Adapter]] = []
    for name in _MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name != name:  # a missing dependency inside the module is a real error
                raise
            continue
        out.extend(getattr(module, "ADAPTERS", []))
    out.append(GenericAdapter)
    return out


def adapter_for(model: Any, loaded: Any = None) -> Adapter:
    """The adapter of `model`'s family (GenericAdapter when none matches)."""
    for cls in registry():
        if cls.matches(model, loaded):
            return cls(model, loaded)
    return GenericAdapter(model, loaded)  # unreachable: the generic one matches everything
