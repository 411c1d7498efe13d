"""torchvision models: `torchvision:<name>`, with the weights enum's own transforms."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nbfeat.errors import UnknownModelError
from nbfeat.models import checkpoints
from nbfeat.models.hub import offline_error
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source


def load(name: str, pretrained: bool, weights: str | None, model_kwargs: dict[str, Any]) -> Loaded:
    import torchvision
    from torchvision.models import get_model, get_model_weights

    try:
        enum = get_model_weights(name).DEFAULT
    except (ValueError, KeyError, AttributeError):
        enum = None
    use_hub = pretrained and weights is None
    if use_hub and enum is None:
        raise offline_error(f"torchvision:{name}")  # no published weights at all
    try:
        model = get_model(name, weights=enum if use_hub else None, **model_kwargs)
    except OSError as e:  # URLError: no network and not in ~/.cache/torch
        raise offline_error(f"torchvision:{name}", e) from None
    if weights is not None:
        checkpoints.apply_state_dict(model, checkpoints.read_state_dict(weights), f"torchvision:{name}")
        tag = checkpoints.file_digest(weights)
    else:
        tag = f"torchvision:{enum}" if use_hub else "random"
    model.eval()
    if enum is not None:
        transform = enum.transforms()
    else:
        from torchvision.models import ResNet50_Weights

        transform = ResNet50_Weights.IMAGENET1K_V1.transforms()
    crop = getattr(transform, "crop_size", [224])
    size = int(crop[0] if isinstance(crop, list | tuple) else crop)
    return Loaded(
        model=model,
        modality="image",
        weights=tag,
        preprocess=transform,
        input_size=(3, size, size),
        preprocessing={"transforms": " ".join(repr(transform).split())},
        versions={"torchvision_version": torchvision.__version__},
    )


class TorchvisionSource(Source):
    """`torchvision:<name>`; preprocessing: the DEFAULT weights enum's own transforms."""

    name = "torchvision"
    bare = True
    default_preprocess = "the weights enum's own transforms (resnet50 V2: resize 232, crop 224)"

    def names(self) -> tuple[str, ...]:
        return _names()

    def resolve(self, name: str) -> str:
        if self.knows(name):
            return name
        from nbfeat.models.registry import unknown_message

        raise UnknownModelError(unknown_message(f"torchvision:{name}"))

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        from torchvision.models import get_model

        return get_model(name, weights=None, **model_kwargs)

    def load(self, req: Request) -> Loaded:
        return load(req.name, req.pretrained, req.weights, req.model_kwargs)


@lru_cache(maxsize=1)
def _names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models())
