"""Model sources: one module per library behind one contract (`base.Source`), and their registry.

Importing this package is light: a source module imports its library only when used.

>>> get_source("timm").name
'timm'
>>> [s.name for s in all_sources()][:3]
['timm', 'torchvision', 'hf']
"""

from __future__ import annotations

import importlib
from functools import cache

from nbfeat.errors import UnknownModelError
from nbfeat.models.sources.base import Request, Source

# prefix -> "module:Class"; the order is the order bare names are tried in (torchvision first:
# "resnet50" means the torchvision classic) and the order of `list_models`.
REGISTRY: dict[str, str] = {
    "timm": "nbfeat.models.sources.timm:TimmSource",
    "torchvision": "nbfeat.models.sources.torchvision:TorchvisionSource",
    "hf": "nbfeat.models.sources.hf:HFSource",
    "openclip": "nbfeat.models.sources.openclip:OpenCLIPSource",
    "diffusers": "nbfeat.models.sources.diffusers:DiffusersSource",
    "cornet": "nbfeat.models.sources.cornet:CORnetSource",
    "module": "nbfeat.models.sources.module:ModuleSource",
}
BARE_ORDER = ("torchvision", "timm", "cornet")


@cache
def get_source(prefix: str) -> Source:
    """The source for an id prefix (`timm`, `hf`, `openclip`, ...)."""
    target = REGISTRY.get(prefix)
    if target is None:
        raise UnknownModelError(
            f"Unknown model source '{prefix}': use one of " + ", ".join(f"'{s}:'" for s in REGISTRY) + "."
        )
    module, _, cls = target.partition(":")
    return getattr(importlib.import_module(module), cls)()


def all_sources() -> list[Source]:
    return [get_source(p) for p in REGISTRY]


__all__ = ["BARE_ORDER", "REGISTRY", "Request", "Source", "all_sources", "get_source"]
