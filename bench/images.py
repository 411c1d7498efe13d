"""A folder of photo-sized JPEGs (500x375, four class sub-folders) for end-to-end benchmarks.

Smooth random colour fields plus grain: JPEG decode costs what a photo's does (a flat image
would decode unrealistically fast). Made once per size under bench/out/ and reused.

>>> folder = jpeg_folder(128)                     # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from bench.common import OUT

CLASSES = ("a", "b", "c", "d")


def jpeg_folder(n: int, size: tuple[int, int] = (500, 375), seed: int = 0) -> Path:
    """`n` JPEGs spread over four sub-folders of bench/out/images_<n>/ (made if missing)."""
    import numpy as np
    from PIL import Image

    root = OUT / f"images_{n}"
    done = root / ".complete"
    if done.exists():
        return root
    rng = np.random.default_rng(seed)
    w, h = size
    for i in range(n):
        cls = CLASSES[i % len(CLASSES)]
        (root / cls).mkdir(parents=True, exist_ok=True)
        coarse = Image.fromarray(rng.integers(0, 256, (h // 25, w // 25, 3), dtype=np.uint8)).resize((w, h), Image.BICUBIC)
        arr = np.asarray(coarse, dtype=np.int16) + rng.integers(-24, 25, (h, w, 3), dtype=np.int16)
        Image.fromarray(arr.clip(0, 255).astype(np.uint8)).save(root / cls / f"img_{i:05d}.jpg", quality=90)
    done.touch()
    return root
