"""Decoding images robustly: any mode becomes RGB, huge images are reduced on decode.

>>> img = open_rgb("photo.png")        # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm", ".pgm", ".pnm", ".jfif"}
)
# Beyond PIL's default bomb limit (~179 Mpx) but bounded: a 20000x20000 scan is fine,
# a crafted 10-gigapixel header is not.
MAX_PIXELS = 1_000_000_000
# Decode no larger than this many times the model's input side (then the transform resizes).
REDUCE_ABOVE = 4


class ImageReadError(Exception):
    """A file that cannot be used as an image; the message is the recorded reason."""


@contextlib.contextmanager
def _pixel_limit(limit: int) -> Iterator[None]:
    from PIL import Image

    old = Image.MAX_IMAGE_PIXELS
    Image.MAX_IMAGE_PIXELS = limit
    try:
        yield
    finally:
        Image.MAX_IMAGE_PIXELS = old


def open_rgb(path: str | os.PathLike[str], target: int = 224) -> Any:
    """Open `path` as an 8-bit RGB PIL image, or raise ImageReadError with a short reason."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    try:
        if os.path.getsize(path) == 0:
            raise ImageReadError("empty file (0 bytes)")
    except OSError as e:
        raise ImageReadError(f"cannot read file: {e.strerror or e}") from None
    try:
        with _pixel_limit(MAX_PIXELS), warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.format == "JPEG":
                    im.draft("RGB", (target * REDUCE_ABOVE, target * REDUCE_ABOVE))
                im.load()
                return to_rgb(im, target)
    except ImageReadError:
        raise
    except UnidentifiedImageError:
        raise ImageReadError("not an image, or an unsupported format") from None
    except Image.DecompressionBombError:
        raise ImageReadError(f"image larger than {MAX_PIXELS:,} pixels") from None
    except (OSError, SyntaxError, ValueError) as e:
        reason = str(e) or type(e).__name__
        if "truncated" in reason:
            reason = "truncated or corrupt image data"
        raise ImageReadError(reason.splitlines()[0][:200]) from None


def to_rgb(im: Any, target: int = 224) -> Any:
    """Any PIL mode -> RGB: 16-bit and float scaled to 8 bits, transparency composited on white."""
    import numpy as np
    from PIL import Image, ImageOps

    im = ImageOps.exif_transpose(im) or im
    side = max(im.size)
    if side > target * REDUCE_ABOVE * 2:
        im = im.reduce(max(1, side // (target * REDUCE_ABOVE)))
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        if im.mode.startswith("I;16"):
            arr = arr / 257.0
        else:  # 32-bit int or float: stretch the actual range
            lo, hi = float(np.nanmin(arr)), float(np.nanmax(arr))
            arr = (arr - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(arr)
        im = Image.fromarray(np.clip(np.nan_to_num(arr), 0, 255).astype(np.uint8), mode="L")
    if im.mode == "P" and "transparency" in im.info:
        im = im.convert("RGBA")
    if im.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        im = im.convert("RGBA")
        background = Image.new("RGBA", im.size, (255, 255, 255, 255))
        im = Image.alpha_composite(background, im)
    return im.convert("RGB")


def array_to_pil(arr: Any) -> Any:
    """An HxW, HxWxC (C in 1,3,4) or CxHxW array/tensor of uint8 or float in [0, 1] -> RGB image."""
    import numpy as np
    from PIL import Image

    a = np.asarray(arr)
    if a.ndim == 3 and a.shape[0] in (1, 3, 4) and a.shape[-1] not in (1, 3, 4):
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3) or (a.ndim == 3 and a.shape[-1] not in (3, 4)):
        raise ValueError(f"an image array must be HxW, HxWx3/4 or 3xHxW, got shape {a.shape}")
    if a.dtype == np.uint8:
        pass
    elif a.dtype == np.uint16:
        a = (a / 257.0).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.floating):
        if not np.isfinite(a).all():
            raise ValueError("the image array holds NaN or inf")
        scale = 255.0 if a.max(initial=0) <= 1.0 else 1.0
        a = np.clip(a * scale, 0, 255).astype(np.uint8)
    elif np.issubdtype(a.dtype, np.integer) or a.dtype == bool:
        a = np.clip(a.astype(np.int64) * (255 if a.dtype == bool else 1), 0, 255).astype(np.uint8)
    else:
        raise ValueError(f"unsupported image dtype {a.dtype}")
    return to_rgb(Image.fromarray(a))
