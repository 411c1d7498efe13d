"""One messy image folder, as users' folders are: every kind of unusable file next to odd good ones.

`build_messy(root)` writes it; `GOOD` lists the sample ids that must come out, `BAD` the ones
that must be recorded in `attrs["failed"]`, each with (part of) the recorded reason.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image

# a name with spaces and non-ASCII letters, as a folder a user drags in
MESSY = "messy ünï 猫 folder"
UNICODE_DIR = "dossier ünï 猫"

GOOD = sorted(
    [
        f"{UNICODE_DIR}/photo 1 ✓.png",
        "good/UPPER.PNG",
        "good/bw.png",
        "good/cmyk.jpg",
        "good/float32.tif",
        "good/gray.png",
        "good/gray_alpha.png",
        "good/huge.jpg",
        "good/palette.png",
        "good/palette_transparent.png",
        "good/rgb.jpg",
        "good/rgb.png",
        "good/rgba.png",
        "good/sixteen_bit.png",
    ]
)
BAD = {
    "bad/bomb.png": "image larger than 1,000,000,000 pixels",
    "bad/corrupt.jpg": "not an image",
    "bad/corrupt.png": "broken data stream",
    "bad/dangling.png": "cannot read file: No such file or directory",
    "bad/self_loop.png": "cannot read file: Too many levels of symbolic links",
    "bad/text.jpg": "not an image",
    "bad/text.png": "not an image",
    "bad/truncated.jpg": "truncated or corrupt image data",
    "bad/truncated.png": "truncated or corrupt image data",
    "bad/zero.jpg": "empty file (0 bytes)",
    "bad/zero.png": "empty file (0 bytes)",
    "notes.txt": "not an image file (extension .txt)",
}


def build_messy(root: str | os.PathLike[str]) -> Path:
    """Write the messy folder at `root` (which must not exist) and return its path."""
    root = Path(root)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (36, 44, 3), dtype=np.uint8)
    good, bad, uni = root / "good", root / "bad", root / UNICODE_DIR
    for d in (good, bad, uni, root / "empty sub-folder"):
        d.mkdir(parents=True)

    Image.fromarray(rgb).save(good / "rgb.png")
    Image.fromarray(rgb).save(good / "rgb.jpg", quality=90)
    Image.fromarray(rgb[::-1]).save(good / "UPPER.PNG")
    Image.fromarray(rgb[..., 0]).save(good / "gray.png")
    Image.fromarray(rgb[..., 0]).convert("1").save(good / "bw.png")
    Image.fromarray(rgb).convert("CMYK").save(good / "cmyk.jpg")
    Image.fromarray(np.dstack([rgb, np.full(rgb.shape[:2], 100, np.uint8)])).save(good / "rgba.png")
    Image.merge("LA", [Image.fromarray(rgb[..., 1]), Image.fromarray(rgb[..., 2])]).save(good / "gray_alpha.png")
    Image.fromarray(rng.integers(0, 65535, rgb.shape[:2]).astype(np.uint16)).save(good / "sixteen_bit.png")
    Image.fromarray(rng.normal(size=rgb.shape[:2]).astype(np.float32)).save(good / "float32.tif")
    Image.fromarray(rgb).convert("P").save(good / "palette.png")
    Image.fromarray(rgb).convert("P").save(good / "palette_transparent.png", transparency=3)
    Image.new("L", (6000, 4000), 90).save(good / "huge.jpg", quality=20)  # 24 Mpx, reduced on decode
    Image.fromarray(rgb[:, ::-1]).save(uni / "photo 1 ✓.png")
    os.symlink(root.resolve(), uni / "loop")  # a folder symlink back to the root
    (good / ".DS_Store").write_bytes(b"\0\0\0\1Bud1")  # hidden: skipped, not recorded

    png, jpg = (good / "rgb.png").read_bytes(), (good / "rgb.jpg").read_bytes()
    (bad / "zero.png").write_bytes(b"")
    (bad / "zero.jpg").write_bytes(b"")
    (bad / "text.png").write_text("not a png at all")
    (bad / "text.jpg").write_text("not a jpeg at all")
    (bad / "truncated.png").write_bytes(png[: len(png) // 2])
    (bad / "truncated.jpg").write_bytes(jpg[: len(jpg) // 2])
    (bad / "corrupt.png").write_bytes(png[:60] + bytes(140) + png[200:])
    (bad / "corrupt.jpg").write_bytes(jpg[:20] + b"\xff" * 100 + jpg[120:])
    (bad / "bomb.png").write_bytes(_png_header_only(100_000, 100_000))  # 10 Gpx claimed
    os.symlink("self_loop.png", bad / "self_loop.png")  # a file symlink to itself
    os.symlink("nowhere.png", bad / "dangling.png")
    (root / "notes.txt").write_text("a file without an image extension")
    return root


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")
