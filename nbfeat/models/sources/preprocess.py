"""`preprocess=` for every `nbfeat.load`: a named preset, a torchvision transform or a callable.

Presets:
- `"imagenet"`: Resize(256) + CenterCrop(224) + ToTensor + ImageNet mean/std, the transform
  THINGSvision and most papers use (torchvision's current weights use other resizes, e.g.
  232 for resnet50 V2).
- `"clip"`: Resize(224, bicubic) + CenterCrop(224) + CLIP mean/std (OpenAI CLIP's own).
- `"default"` (or None): the source's own transform (see docs/install.md).

Whatever is used is recorded in provenance (`preprocessing`), so it is part of the store key.

>>> describe(lambda img: img)["transforms"]
'callable <lambda>'
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models.loaded import Loaded

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def _imagenet() -> Any:
    from torchvision import transforms as T

    return T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize(IMAGENET_MEAN, IMAGENET_STD)])


def _clip() -> Any:
    from torchvision import transforms as T

    return T.Compose(
        [T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), T.ToTensor(), T.Normalize(CLIP_MEAN, CLIP_STD)]
    )


PRESETS: dict[str, Callable[[], Any]] = {"imagenet": _imagenet, "clip": _clip}
DEFAULT_NAMES = ("default", "source")


def preset(name: str) -> Any:
    """The transform of a named preset, or a clear error listing them."""
    make = PRESETS.get(name.lower())
    if make is None:
        raise NbfeatError(
            f"Unknown preprocess preset {name!r}: use one of {', '.join(map(repr, [*PRESETS, 'default']))}, "
            "a torchvision transform or any callable PIL image -> CHW tensor."
        )
    return make()


def describe(transform: Any, preset_name: str = "") -> dict[str, Any]:
    """A stable, JSON-able description (no memory addresses: equal across processes)."""
    if type(transform).__module__.startswith("torchvision"):
        text = " ".join(repr(transform).split())
    elif callable(transform) and hasattr(transform, "__qualname__"):
        text = f"callable {getattr(transform, '__module__', '') + '.' if transform.__module__ not in (None, '__main__') else ''}{transform.__qualname__}"
    else:
        text = " ".join(repr(transform).split())
    text = re.sub(r" at 0x[0-9a-fA-F]+", "", text)
    out: dict[str, Any] = {"transforms": text}
    if preset_name:
        out["preset"] = preset_name
    return out


def apply(loaded: Loaded, preprocess: Any) -> None:
    """Replace `loaded`'s transform by `preprocess` (None / "default": keep the source's)."""
    if preprocess is None or (isinstance(preprocess, str) and preprocess.lower() in DEFAULT_NAMES):
        return
    if loaded.modality != "image":
        raise NbfeatError("preprocess= applies to image models; a text model uses its tokenizer.")
    if isinstance(preprocess, str):
        transform, name = preset(preprocess), preprocess.lower()
    elif callable(preprocess):
        transform, name = preprocess, ""
    else:
        raise NbfeatError(f"preprocess= takes a preset name, a torchvision transform or a callable, not {type(preprocess).__name__}.")
    loaded.preprocess = transform
    loaded.input_size = output_size(transform, loaded.input_size)
    loaded.preprocessing = describe(transform, name)


def output_size(transform: Any, fallback: tuple[int, int, int]) -> tuple[int, int, int]:
    """The CHW size the transform makes of an image (read from its output, not guessed)."""
    from PIL import Image

    try:
        out = transform(Image.new("RGB", (320, 256), (127, 127, 127)))
    except Exception as e:
        raise NbfeatError(f"preprocess= failed on a test image: {type(e).__name__}: {str(e).splitlines()[0][:200]}") from None
    shape = tuple(getattr(out, "shape", ()))
    if len(shape) != 3:
        raise NbfeatError(f"preprocess= must turn a PIL image into a C x H x W tensor; it gave {type(out).__name__} of shape {shape}.")
    return (int(shape[0]), int(shape[1]), int(shape[2]))
