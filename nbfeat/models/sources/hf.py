"""Hugging Face models: `hf:<hub id or local directory>`, vision and text.

Gated models read `HF_TOKEN` (or `HF_ACCESS_TOKEN`); remote code runs only with
`trust_remote_code=True`.
"""

from __future__ import annotations

import os
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models import checkpoints
from nbfeat.models.hub import hf_token, offline_error, offline_unless_reachable
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source


def load(
    name: str, pretrained: bool, weights: str | None, trust_remote_code: bool = False, dtype: Any = None, modality: str | None = None
) -> Loaded:
    """`modality="text"` takes the text tower of a two-tower model (CLIP: `text_model`, with
    the repository's tokenizer); the image tower is the default."""
    import transformers
    from transformers import AutoConfig, AutoModel

    local = weights if weights is not None else name
    if weights is not None and not os.path.isdir(weights):
        raise NbfeatError(
            f"weights= for a Hugging Face model must be a local directory saved with "
            f"save_pretrained (got {weights!r})."
        )
    kw: dict[str, Any] = {"token": hf_token(), "trust_remote_code": trust_remote_code}
    try:
        with offline_unless_reachable():
            config = AutoConfig.from_pretrained(local, **kw)
            auto = _model_class(config) or AutoModel
            if pretrained or weights is not None:
                model = auto.from_pretrained(local, config=config, dtype=dtype, **kw)
            else:
                model = auto.from_config(config, trust_remote_code=trust_remote_code) if auto is AutoModel else auto(config)
            processor, tokenizer = _preprocessors(local, model, kw, text=modality == "text")
    except OSError as e:
        raise _hub_error(name, e) from None
    except ValueError as e:
        if os.path.isdir(local) and not os.path.isfile(os.path.join(local, "config.json")):
            raise NbfeatError(f"{local} is not a Hugging Face model folder (no config.json); save one with save_pretrained(path).") from None
        if "trust_remote_code" in str(e):
            raise NbfeatError(
                f"'hf:{name}' needs code from its repository. Only if you trust it: "
                "nbfeat.load(..., trust_remote_code=True)."
            ) from None
        raise
    if modality == "text" and _image_tower(model) is not None:
        tower = model.text_model  # the text tower of a two-tower model, asked for by name
    else:
        tower = _image_tower(model)
        modality = "text" if tokenizer is not None and tower is None else "image"
    model = (tower or model).eval()
    if os.path.isdir(local):
        tag = checkpoints.dir_digest(local) if (pretrained or weights) else "random"
    else:
        tag = f"hf:{name}@{getattr(config, '_commit_hash', None) or 'main'}" if pretrained else "random"
    out = Loaded(model=model, modality=modality, weights=tag, versions={"transformers_version": transformers.__version__})
    if modality == "text":
        out.tokenizer = tokenizer
        out.input_name = "input_ids"
        out.max_length = _context_length(getattr(model, "config", config), tokenizer)  # a tower's own config
        out.preprocessing = {"tokenizer": type(tokenizer).__name__, "max_length": out.max_length}
    else:
        out.input_name = "pixel_values"
        out.preprocess = _image_transform(processor)
        size = _image_size(model.config, processor)
        out.input_size = (3, size, size)
        out.prefix_tokens = _prefix_tokens(model.config)
        out.preprocessing = {k: v for k, v in (processor.to_dict() if processor else {}).items() if isinstance(v, int | float | str | bool | list)}
    return out


def _preprocessors(local: str, model: Any, kw: dict[str, Any], text: bool = False) -> tuple[Any, Any]:
    from transformers import AutoImageProcessor, AutoTokenizer

    main = getattr(model, "main_input_name", "")
    tower = _image_tower(model)
    if not text and (main == "pixel_values" or tower is not None):
        try:
            return AutoImageProcessor.from_pretrained(local, **kw), None
        except (OSError, ValueError):
            return None, None  # no processor saved: fall back to the config's image size
    tok = AutoTokenizer.from_pretrained(local, **kw)
    if tok.pad_token is None:  # GPT-2 and Llama ship none; padding is masked out anyway
        tok.pad_token = tok.eos_token
    tok.padding_side = "right"
    return None, tok


def _image_tower(model: Any) -> Any:
    """The vision tower of a two-tower model (CLIP, SigLIP), else None."""
    if hasattr(model, "vision_model") and hasattr(model, "text_model"):
        return model.vision_model
    return None


def _image_transform(processor: Any) -> Any:
    if processor is None:
        return None

    def transform(img: Any) -> Any:
        return processor(images=img, return_tensors="pt")["pixel_values"][0]

    return transform


def _image_size(config: Any, processor: Any) -> int:
    crop = getattr(processor, "crop_size", None) or getattr(processor, "size", None)
    if isinstance(crop, dict):
        for key in ("height", "shortest_edge"):
            if key in crop:
                return int(crop[key])
    size = getattr(config, "image_size", 224)
    return int(size[0] if isinstance(size, list | tuple) else size)


def _prefix_tokens(config: Any) -> int:
    if getattr(config, "model_type", "") in {"vit", "dinov2", "dinov2_with_registers", "clip_vision_model", "deit", "vit_mae"}:
        return 1 + int(getattr(config, "num_register_tokens", 0) or 0)
    return 0


def _context_length(config: Any, tokenizer: Any) -> int | None:
    """Tokens per text, from the tokenizer and the position table as the model uses it."""
    from nbfeat.models.adapters.text import context_length

    return context_length(config, tokenizer)


# Encoder-decoder text models whose features come from the encoder alone: AutoModel would
# build the whole pair (and ask for decoder inputs).
_ENCODER_ONLY = {"t5": "T5EncoderModel", "mt5": "MT5EncoderModel", "umt5": "UMT5EncoderModel"}


def _model_class(config: Any) -> Any:
    name = _ENCODER_ONLY.get(getattr(config, "model_type", ""))
    if name is None:
        return None
    import transformers

    return getattr(transformers, name)


def _hub_error(name: str, e: OSError) -> Exception:
    text = str(e)
    if "gated" in text.lower() or "401" in text or "403" in text:
        return NbfeatError(
            f"'hf:{name}' is gated: accept its licence on the hub page, then set HF_TOKEN "
            "(or HF_ACCESS_TOKEN) in the environment."
        )
    if os.path.isdir(name):
        return NbfeatError(f"Could not load the Hugging Face model in {name}: {text.splitlines()[0][:200]}")
    return offline_error(f"hf:{name}", e)


class HFSource(Source):
    """`hf:<hub id or local directory>`; preprocessing: the repo's own image processor or tokenizer."""

    name = "hf"
    checks_names = False  # a hub id or a folder: checked when loaded
    default_preprocess = "the repository's own AutoImageProcessor (or tokenizer for text)"

    def names(self) -> list[str]:
        """Hub ids in the local Hugging Face cache (usable offline)."""
        try:
            from huggingface_hub import scan_cache_dir

            return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
        except Exception:  # no cache dir yet, or an unreadable one: nothing cached
            return []

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return [(f"hf:{n}", "hf", "", "", "", "in the local cache") for n in self.names()]

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        from transformers import AutoConfig, AutoModel

        config = AutoConfig.from_pretrained(name, token=hf_token())
        auto = _model_class(config)
        return auto(config) if auto is not None else AutoModel.from_config(config)

    def load(self, req: Request) -> Loaded:
        _refuse_diffusers_folder(req.weights if req.weights is not None else req.name)
        return load(req.name, req.pretrained, req.weights, trust_remote_code=req.trust_remote_code, dtype=req.dtype, modality=req.modality)


def _refuse_diffusers_folder(path: str) -> None:
    """A diffusers pipeline or UNet folder is not a transformers model: say where it goes."""
    import json

    if not os.path.isdir(path):
        return
    if os.path.isfile(os.path.join(path, "model_index.json")):
        raise NbfeatError(f"{path} is a diffusers pipeline: load it with nbfeat.load('diffusers:{path}').")
    cfg = os.path.join(path, "config.json")
    try:
        with open(cfg) as f:
            data = json.load(f)
    except (OSError, ValueError):
        return
    if isinstance(data, dict) and "_diffusers_version" in data:
        raise NbfeatError(
            f"{path} holds a diffusers {data.get('_class_name', 'model')}, not a transformers model: "
            f"load the pipeline folder around it with nbfeat.load('diffusers:<pipeline dir>') "
            "(the UNet needs its VAE and scheduler to make features from images)."
        )
