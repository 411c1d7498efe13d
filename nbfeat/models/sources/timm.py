"""timm models: `timm:<name>[.<pretrained tag>]`."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from nbfeat.errors import UnknownModelError
from nbfeat.models import checkpoints
from nbfeat.models.hub import offline_error, offline_unless_reachable
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source


def load(name: str, pretrained: bool, weights: str | None, model_kwargs: dict[str, Any]) -> Loaded:
    import timm
    import timm.data

    use_hub = pretrained and weights is None
    try:
        with offline_unless_reachable():
            model = timm.create_model(name, pretrained=use_hub, **model_kwargs)
    except (OSError, RuntimeError) as e:
        if use_hub:
            raise offline_error(f"timm:{name}", e) from None
        raise
    if weights is not None:
        checkpoints.apply_state_dict(model, checkpoints.read_state_dict(weights), f"timm:{name}")
        tag = checkpoints.file_digest(weights)
    else:
        tag = _hub_tag(model, name) if use_hub else "random"
    model.eval()
    size = model_kwargs.get("img_size")
    # the pretrained config still names the published input size; img_size= overrides it
    args = {"input_size": (3, *((size, size) if isinstance(size, int) else size))} if size else {}
    cfg = timm.data.resolve_data_config(args, model=model)
    transform = timm.data.create_transform(**cfg, is_training=False)
    return Loaded(
        model=model,
        modality="image",
        weights=tag,
        preprocess=transform,
        input_size=tuple(cfg["input_size"]),
        prefix_tokens=int(getattr(model, "num_prefix_tokens", 0) or 0),
        preprocessing=_jsonable(cfg),
        versions={"timm_version": timm.__version__},
    )


def _hub_tag(model: Any, name: str) -> str:
    cfg = model.pretrained_cfg
    arch, tag = cfg.get("architecture") or name.partition(".")[0], cfg.get("tag")
    return f"timm:{arch}.{tag}" if tag else f"timm:{arch}"


def _jsonable(cfg: dict[str, Any]) -> dict[str, Any]:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in cfg.items()}


class TimmSource(Source):
    """`timm:<name>[.<pretrained tag>]`; preprocessing: the model's pretrained_cfg (timm's own)."""

    name = "timm"
    bare = True
    default_preprocess = "timm's resolve_data_config for the weights (e.g. resize 248 / crop 224 for ImageNet ViTs)"

    def names(self) -> tuple[str, ...]:
        return _names(pretrained_tags=True)

    def knows(self, name: str) -> bool:
        return name.partition(".")[0] in _names(False)

    def resolve(self, name: str) -> str:
        if self.knows(name):
            return name
        from nbfeat.models.registry import unknown_message

        raise UnknownModelError(unknown_message(f"timm:{name}"))

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        import timm

        return timm.create_model(name, pretrained=False, **model_kwargs)

    def load(self, req: Request) -> Loaded:
        return load(req.name, req.pretrained, req.weights, req.model_kwargs)


@lru_cache(maxsize=2)
def _names(pretrained_tags: bool = False) -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models(pretrained=pretrained_tags))
