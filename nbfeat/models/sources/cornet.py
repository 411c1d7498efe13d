"""CORnet: `cornet:cornet_z`, `cornet:cornet_s`, `cornet:cornet_r`, `cornet:cornet_rt`.

The architectures live in `cornet_arch.py`; `pretrained=True` fetches the published
checkpoints (`torch.hub.load_state_dict_from_url(..., weights_only=True)`, `module.` prefix
stripped). V1, V2, V4 and IT are the layers; a recurrent area's steps come out along a `time`
dim. CORnet-R/-RT take `model_kwargs={"times": 5}`. Preprocessing: the "imagenet" preset.

>>> bb = nbfeat.load("cornet:cornet_s", pretrained=False)                 # doctest: +SKIP
>>> bb.extract("images/", layers="V4")["V4"].dims                          # doctest: +SKIP
('sample', 'time', 'channel', 'y', 'x')
"""

from __future__ import annotations

from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models import checkpoints
from nbfeat.models.hub import offline_error
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source

NAMES = ("cornet_z", "cornet_s", "cornet_r", "cornet_rt")


class CORnetSource(Source):
    name = "cornet"
    bare = True
    default_preprocess = "the 'imagenet' preset (resize 256, crop 224, ImageNet mean/std)"

    def names(self) -> tuple[str, ...]:
        return NAMES

    def knows(self, name: str) -> bool:
        return name.lower().replace("-", "_") in NAMES

    def resolve(self, name: str) -> str:
        return super().resolve(name.lower().replace("-", "_"))

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        notes = {"cornet_z": "feedforward", "cornet_s": "V2/V4/IT recurrent (2/4/2 steps): a `time` dim", "cornet_r": "all areas recurrent: a `time` dim", "cornet_rt": "all areas recurrent, one area per step: a `time` dim"}
        return [(f"cornet:{n}", "cornet", "image", "CORnet", "", notes[n]) for n in NAMES]

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        from nbfeat.models.sources import cornet_arch

        kwargs = dict(model_kwargs)
        if name in ("cornet_z", "cornet_s") and kwargs:
            raise NbfeatError(f"cornet:{name} takes no model_kwargs (its steps per area are fixed by the checkpoint); got {sorted(kwargs)}.")
        unknown = set(kwargs) - {"times"}
        if unknown:
            raise NbfeatError(f"cornet:{name} takes model_kwargs 'times' only; got {sorted(unknown)}.")
        return cornet_arch.BUILDERS[name](**kwargs)

    def load(self, req: Request) -> Loaded:
        import torch

        from nbfeat.models.sources import cornet_arch
        from nbfeat.models.sources.preprocess import describe, preset

        model = self.build(req.name, req.model_kwargs)
        if req.weights is not None:
            checkpoints.apply_state_dict(model, checkpoints.read_state_dict(req.weights), f"cornet:{req.name}")
            tag = checkpoints.file_digest(req.weights)
        elif req.pretrained:
            url = cornet_arch.URLS[req.name]
            try:
                ckpt = torch.hub.load_state_dict_from_url(url, map_location="cpu", weights_only=True, progress=False)
            except OSError as e:  # no network and not in ~/.cache/torch/hub
                raise offline_error(f"cornet:{req.name}", e) from None
            sd = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
            sd = {k.removeprefix("module."): v for k, v in sd.items()}
            model.load_state_dict(sd)
            tag = f"cornet:{url.rpartition('/')[2]}"
        else:
            tag = "random"
        model.eval()
        recurrent = {}
        for area in getattr(model, "recurrent", ()):
            for path, _ in getattr(model, area).named_modules():
                recurrent[f"{area}.{path}" if path else area] = "time"
        transform = preset("imagenet")
        return Loaded(
            model=model,
            modality="image",
            weights=tag,
            preprocess=transform,
            input_size=(3, 224, 224),
            preprocessing=describe(transform, "imagenet"),
            versions={},
            attrs={"time_steps": str(req.model_kwargs.get("times", 5)) if req.name in ("cornet_r", "cornet_rt") else ("V2:2 V4:4 IT:2" if req.name == "cornet_s" else "")},
            call_dims=recurrent,
        )
