"""The source contract: one small class per model library (timm, torchvision, Hugging Face,
open_clip, diffusers, CORnet, a user's own `nn.Module`).

A source resolves and lists its names, builds a model (on `meta` for a dry run), loads its
weights, hands back its preprocessing and tokenizer in a `Loaded`, and names the pip extra it
needs. `nbfeat.load` finds the source in one registry (`nbfeat.models.sources.SOURCES`) and never
branches on the source's name.

>>> from nbfeat.models.sources import get_source
>>> get_source("openclip").pip()
'pip install "nbfeat[openclip]"'
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from nbfeat.errors import MissingDependencyError, UnknownModelError, closest
from nbfeat.models.loaded import Loaded


@dataclass
class Request:
    """What `nbfeat.load` asks of a source (the source reads what applies to it)."""

    name: str
    pretrained: bool = True
    weights: str | None = None
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    trust_remote_code: bool = False
    dtype: Any = None  # a torch.dtype or None
    modality: str | None = None  # "image" / "text" where a source has both (two-tower models)


class Source:
    """Base class of every source. Subclasses set the class attributes and override `load`."""

    name: ClassVar[str] = ""
    extra: ClassVar[str] = ""  # the nbfeat extra that installs `requires` ("" = always installed)
    requires: ClassVar[tuple[str, ...]] = ()  # import names checked before anything is downloaded
    bare: ClassVar[bool] = False  # a name without "source:" is looked up here (in registry order)
    checks_names: ClassVar[bool] = True  # False: names are hub ids / paths, checked when loaded
    default_preprocess: ClassVar[str] = ""  # the default transform, in words (docs, list_models)

    def pip(self) -> str:
        """The pip command that installs what this source needs ('' when nothing is needed)."""
        return f'pip install "nbfeat[{self.extra}]"' if self.extra else ""

    def installed(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)

    def check_installed(self) -> None:
        """Fail with the pip command when the optional library is missing (before any download)."""
        missing = [m for m in self.requires if importlib.util.find_spec(m) is None]
        if missing:
            raise MissingDependencyError(
                f"'{self.name}:' models need the optional package '{missing[0]}': {self.pip()}"
            )

    def names(self) -> Iterable[str]:
        """Names this source knows without a download (what `list_models` shows)."""
        return ()

    def knows(self, name: str) -> bool:
        """Whether `name` is one of this source's names (used for bare names)."""
        return name in set(self.names())

    def resolve(self, name: str) -> str:
        """The canonical name, or UnknownModelError with the closest names."""
        if not self.checks_names or self.knows(name):
            return name
        hits = closest(name, list(self.names()), n=6)
        hint = f" Did you mean: {', '.join(f'{self.name}:{h}' for h in hits)}?" if hits else ""
        raise UnknownModelError(f"Unknown model '{self.name}:{name}'.{hint} List models with nbfeat.list_models('pattern').")

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        """`list_models` rows: (id, source, modality, family, extra, note)."""
        return [(f"{self.name}:{n}", self.name, "image", "", self.pip(), "") for n in self.names()]

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        """The architecture with random weights (no download)."""
        raise NotImplementedError(f"the {self.name} source cannot build '{name}' without loading it")

    def build_meta(self, name: str, model_kwargs: dict[str, Any] | None = None) -> Any:
        """The architecture on the `meta` device: structure and shapes, no memory, no weights."""
        import torch

        with torch.device("meta"):
            return self.build(name, dict(model_kwargs or {}))

    def load(self, req: Request) -> Loaded:
        """The model in eval mode plus its preprocessing, tokenizer and provenance."""
        raise NotImplementedError
