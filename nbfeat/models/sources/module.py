"""A user's own `torch.nn.Module`: `nbfeat.load(module, preprocess=..., name=...)`.

The module is used as it is (moved to the device, put in eval mode). Provenance records its
class (qualified name) and a SHA-256 of its state dict, which is also its weights tag (so a
store made with other weights never resumes). On Dask workers the module travels by value:
cloudpickle of the module (weights included) with its transform; a module that cannot be
pickled is refused with the reason.

>>> import torch
>>> bb = nbfeat.load(torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3)), name="tiny")  # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources import preprocess as presets
from nbfeat.models.sources.base import Request, Source

DEFAULT_PREPROCESS = "imagenet"


def qualname(obj: Any) -> str:
    cls = type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def state_digest(model: Any) -> str:
    """SHA-256 over the state dict's names, dtypes, shapes and bytes (in order)."""
    import torch

    h = hashlib.sha256()
    for key, value in model.state_dict().items():
        h.update(key.encode())
        if isinstance(value, torch.Tensor):
            t = value.detach().cpu().contiguous()
            h.update(f"{t.dtype}{tuple(t.shape)}".encode())
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        else:
            h.update(repr(value).encode())
    return h.hexdigest()


class ModuleByValue:
    """A module (with its transform and tokenizer) that pickles by value for Dask workers.

    `str()` is short (`module:<class>@sha256:<hex>`): it is what run specs and store attrs show.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, label: str, modality: str, digest: str):
        self.model, self.preprocess, self.tokenizer = model, preprocess, tokenizer
        self.label, self.modality, self.digest = label, modality, digest
        self._blob: bytes | None = None

    def __str__(self) -> str:
        return f"module:{qualname(self.model)}@sha256:{self.digest[:16]}"

    __repr__ = __str__

    def __reduce__(self) -> Any:
        return (_from_blob, (self.blob(), self.label, self.modality, self.digest))

    def blob(self) -> bytes:
        if self._blob is None:
            import copy

            import cloudpickle

            model = self.model
            if any(p.device.type != "cpu" for p in model.parameters()):
                model = copy.deepcopy(model).cpu()  # a worker may have no such device
            try:
                self._blob = cloudpickle.dumps((model, self.preprocess, self.tokenizer))
            except Exception as e:
                raise NbfeatError(
                    f"client= sends the module to every worker, but {qualname(self.model)} cannot be pickled "
                    f"({type(e).__name__}: {str(e).splitlines()[0][:160]}). Make it picklable (no open files, locks "
                    "or generators as attributes), or run without client=."
                ) from None
        return self._blob


def _from_blob(blob: bytes, label: str, modality: str, digest: str) -> ModuleByValue:
    import cloudpickle

    model, preprocess, tokenizer = cloudpickle.loads(blob)
    return ModuleByValue(model, preprocess, tokenizer, label, modality, digest)


def is_module(obj: Any) -> bool:
    if isinstance(obj, ModuleByValue):
        return True
    import torch

    return isinstance(obj, torch.nn.Module)


class ModuleSource(Source):
    """A user's `nn.Module`; preprocessing: the `preprocess=` given, else the "imagenet" preset."""

    name = "module"
    checks_names = False
    default_preprocess = "the 'imagenet' preset (resize 256, crop 224, ImageNet mean/std) unless preprocess= is given"

    def load(self, req: Request) -> Loaded:
        raise NbfeatError("A module loads with nbfeat.load(module): pass the torch.nn.Module itself.")

    def load_module(self, module: Any, preprocess: Any = None, name: str | None = None, modality: str | None = None, tokenizer: Any = None) -> tuple[str, Loaded]:
        """(model id, Loaded) for a user's module or a ModuleByValue from a Dask worker."""
        import torch

        if isinstance(module, ModuleByValue):
            ref = module
            module, preprocess, tokenizer = ref.model, ref.preprocess, ref.tokenizer
            name, modality = ref.label, ref.modality
        modality = modality or "image"
        if modality not in ("image", "text"):
            raise NbfeatError(f"modality must be 'image' or 'text', not {modality!r}.")
        if modality == "text" and tokenizer is None:
            raise NbfeatError("A text module needs tokenizer= (e.g. a transformers tokenizer); it is called as module(input_ids=..., attention_mask=...).")
        if not isinstance(module, torch.nn.Module):
            raise NbfeatError(f"Expected a torch.nn.Module, got {type(module).__name__}.")
        digest = state_digest(module)
        cls = qualname(module)
        label = name or f"module:{cls}"
        loaded = Loaded(
            model=module.eval(),
            modality=modality,
            weights=f"sha256:{digest}",
            versions={},
            attrs={"module_class": cls, "state_dict_sha256": digest},
        )
        if modality == "text":
            loaded.tokenizer = tokenizer
            loaded.input_name = "input_ids"
            loaded.max_length = getattr(tokenizer, "model_max_length", None) if isinstance(getattr(tokenizer, "model_max_length", None), int) and tokenizer.model_max_length < 10**6 else None
            loaded.preprocessing = {"tokenizer": type(tokenizer).__name__, "max_length": loaded.max_length}
        else:
            chosen = DEFAULT_PREPROCESS if preprocess is None else preprocess
            presets.apply(loaded, chosen)
            if preprocess is None:
                loaded.preprocessing["default"] = "nbfeat's default for a module: the 'imagenet' preset"
        loaded.load_kwargs = {"model": ModuleByValue(module, preprocess, tokenizer, label, modality, digest), "preprocess": None}
        return label, loaded
