"""What the activation browser shows, computed from one sample's activations (numpy only).

Each builder returns `(meta, arrays)`: JSON-able facts for the view, and small arrays
(uint8 images and heatmaps, float16 values) sized for the screen, not for the model.

>>> meta, arrays = spatial_view(np.random.rand(64, 28, 28).astype("float32"), k=8)
>>> arrays["channels"].shape, arrays["channels"].dtype
((8, 28, 28), dtype('uint8'))
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError

MAX_SIDE = 64  # feature maps larger than this are area-averaged down for display
MAX_STRIP = 1024  # a long vector is shown as at most this many bins
THUMB_SIDE = 160


@dataclass
class LayerData:
    """One sample's output of one layer: values without the sample dim, and their dims."""

    values: np.ndarray
    dims: tuple[str, ...]
    attrs: dict[str, Any] = field(default_factory=dict)
    tokens: list[str] | None = None  # text: the sample's real tokens (padding cut)
    n_depth: int = 0  # calls of a module whose calls differ in shape (one array each)
    depth_label: str = ""


def to_uint8(x: np.ndarray, axis: tuple[int, ...] | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Scale to 0..255 over `axis` (None: the whole array); returns bytes, min and max."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    lo = x.min(axis=axis, keepdims=True)
    hi = x.max(axis=axis, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = np.clip(np.rint((x - lo) / span * 255.0), 0, 255).astype(np.uint8)
    return out, lo, hi


def area_downsample(fmap: np.ndarray, max_side: int = MAX_SIDE) -> np.ndarray:
    """Average (C, H, W) over square blocks so H and W are at most `max_side`."""
    c, h, w = fmap.shape
    f = int(np.ceil(max(h, w) / max_side))
    if f <= 1:
        return fmap
    nh, nw = -(-h // f), -(-w // f)
    padded = np.pad(fmap, ((0, 0), (0, nh * f - h), (0, nw * f - w)), mode="edge")
    return padded.reshape(c, nh, f, nw, f).mean(axis=(2, 4))


def _pca(features: np.ndarray) -> tuple[np.ndarray | None, str]:
    """(..., C) -> uint8 (..., 3) through nbfeat.analysis.pca, or None and why not."""
    try:
        from nbfeat.analysis.pca import pca_rgb
    except ImportError:
        return None, "PCA → RGB needs nbfeat.analysis.pca, which is not available in this install."
    features = np.asarray(features, dtype=np.float32)
    if features.reshape(-1, features.shape[-1]).shape[0] < 2:
        return None, "PCA → RGB needs at least 2 positions."
    rgb = np.asarray(pca_rgb(features))
    return rgb.astype(np.uint8, copy=False), ""


def _pick_channels(scores: np.ndarray, k: int, channel: int) -> np.ndarray:
    n = scores.shape[0]
    if channel >= 0:
        if channel >= n:
            raise NbfeatError(f"Channel {channel} is out of range: this layer has {n} channels (0..{n - 1}).")
        return np.asarray([channel])
    k = max(1, min(int(k), n))
    # stable order for ties (constant channels): lower index first
    return np.argsort(-scores, kind="stable")[:k]


def spatial_view(fmap: np.ndarray, k: int = 12, channel: int = -1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(C, H, W): a PCA-to-RGB map and the most active channels as heatmaps (uint8)."""
    fmap = area_downsample(np.asarray(fmap, dtype=np.float32))
    c = fmap.shape[0]
    scores = np.nanmean(np.abs(fmap.reshape(c, -1)), axis=1)
    picked = _pick_channels(np.nan_to_num(scores), k, channel)
    heat, _, hi = to_uint8(fmap[picked], axis=(1, 2))
    arrays: dict[str, np.ndarray] = {"channels": heat}
    rgb, note = _pca(np.moveaxis(fmap, 0, -1))
    if rgb is not None:
        arrays["pca"] = rgb
    meta = {
        "view": "spatial",
        "channels": [int(i) for i in picked],
        "channel_max": [float(v) for v in hi.reshape(-1)],
        "n_channels": int(c),
        "pca_note": note,
    }
    return meta, arrays


def token_view(seq: np.ndarray, k: int = 12, channel: int = -1, tokens: list[str] | None = None) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(T, C): a PCA colour per token and the most active channels by token (uint8 (k, T))."""
    seq = np.asarray(seq, dtype=np.float32)
    if tokens is not None:
        seq = seq[: len(tokens)]
    t, c = seq.shape
    scores = np.nanmean(np.abs(seq), axis=0)
    picked = _pick_channels(np.nan_to_num(scores), k, channel)
    heat, _, hi = to_uint8(seq[:, picked].T, axis=(1,))
    arrays: dict[str, np.ndarray] = {"channels": heat}
    rgb, note = _pca(seq)
    if rgb is not None:
        arrays["pca"] = rgb
    meta = {
        "view": "tokens",
        "channels": [int(i) for i in picked],
        "channel_max": [float(v) for v in hi.reshape(-1)],
        "n_channels": int(c),
        "pca_note": note,
        "tokens": list(tokens) if tokens is not None else [str(i) for i in range(t)],
    }
    return meta, arrays


def vector_view(vec: np.ndarray, k: int = 12, channel: int = -1) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """(C,): the largest values (float16) and the whole vector as a strip of at most 1024 bins."""
    vec = np.asarray(vec, dtype=np.float32).reshape(-1)
    n = vec.shape[0]
    picked = _pick_channels(np.nan_to_num(np.abs(vec)), k, channel)
    bins = min(n, MAX_STRIP)
    edges = np.linspace(0, n, bins + 1).astype(int)
    strip = np.add.reduceat(np.nan_to_num(vec), edges[:-1]) / np.diff(edges)
    strip_u8, _, _ = to_uint8(strip)
    meta = {"view": "vector", "channels": [int(i) for i in picked], "channel_max": [float(vec[i]) for i in picked], "n_channels": int(n), "pca_note": ""}
    return meta, {"values": vec[picked].astype(np.float16), "strip": strip_u8}


def stack_values(stack: np.ndarray, channel: int = -1, n_tokens: int | None = None) -> tuple[np.ndarray, str]:
    """(L, T, C) -> float16 (L, T): each token's L2 norm per layer, or one channel's value."""
    stack = np.asarray(stack, dtype=np.float32)
    if n_tokens is not None:
        stack = stack[:, :n_tokens]
    if 0 <= channel < stack.shape[-1]:
        return stack[..., channel].astype(np.float16), f"channel {channel}"
    return np.sqrt(np.nansum(stack**2, axis=-1)).astype(np.float16), "L2 norm"


def layer_view(data: LayerData, k: int = 12, channel: int = -1, depth: int = 0, image: bool = False) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Pick the view for one sample's layer output from its dims (and grid attrs for ViTs).

    `image`: token sequences of an image model with no `grid` attr are laid out on a square
    grid when the token count (or it less one class token) is a square.
    """
    values, dims = np.asarray(data.values), tuple(data.dims)
    n_depth, depth_label = data.n_depth, data.depth_label
    while dims and dims[0] in ("layer", "call") and values.ndim > 1:
        if not n_depth:
            n_depth, depth_label = values.shape[0], dims[0]
            if not 0 <= depth < n_depth:
                raise NbfeatError(f"{dims[0]} {depth} is out of range (0..{n_depth - 1}).")
            values = values[depth]
        else:  # a second leading dim (calls of a stacked node): the first call
            values = values[0]
        dims = dims[1:]
    grid = _grid(data.attrs)
    if grid is None and image and values.ndim == 2:
        grid = _square_grid(values.shape[0])
    if values.ndim == 3:
        meta, arrays = spatial_view(values, k, channel)
    elif values.ndim == 2 and grid is not None and values.shape[0] >= grid[0] * grid[1]:
        h, w = grid
        patches = values[values.shape[0] - h * w :]  # class/register tokens come first
        meta, arrays = spatial_view(patches.T.reshape(-1, h, w), k, channel)
    elif values.ndim == 2:
        meta, arrays = token_view(values, k, channel, data.tokens)
    else:
        meta, arrays = vector_view(values, k, channel)
    shape = " × ".join(f"{d} {s}" for d, s in zip(dims, data.values.shape[-len(dims) :] if dims else ()))
    meta.update({"n_depth": int(n_depth), "depth_label": depth_label, "shape_text": shape or str(tuple(values.shape))})
    return meta, arrays


def _grid(attrs: dict[str, Any]) -> tuple[int, int] | None:
    grid = attrs.get("grid")
    if not grid:
        return None
    try:
        h, w = (int(v) for v in str(grid).lower().split("x"))
    except ValueError:
        return None
    return h, w


def _square_grid(tokens: int) -> tuple[int, int] | None:
    for patches in (tokens, tokens - 1):
        side = int(round(patches**0.5))
        if patches > 1 and side * side == patches:
            return side, side
    return None


def thumbnail(image: Any, side: int = THUMB_SIDE) -> np.ndarray:
    """A PIL image (or HxWx3 uint8 array) -> uint8 (h, w, 3), longest side at most `side`."""
    from PIL import Image

    im = image if isinstance(image, Image.Image) else Image.fromarray(np.asarray(image))
    im = im.convert("RGB")
    im.thumbnail((side, side))
    return np.asarray(im, dtype=np.uint8)


LINK_SIDE = 48  # similarity maps and strip maps are sent at this size (nearest-neighbour)


def spatial_map(data: LayerData, depth: int = 0) -> np.ndarray | None:
    """(C, H, W) of one sample's layer output, from its labelled dims and layout attrs only.

    `channel, y, x` as is; `y, x, channel` (NHWC outputs) transposed; `token, channel` laid on
    the `grid` attr after the prefix tokens; a leading `layer`/`call` dim picks `depth`.
    Anything else (pooled vectors, text) has no spatial map: None.
    """
    values, dims = np.asarray(data.values), tuple(data.dims)
    if dims[:1] in (("layer",), ("call",)) and values.ndim > 1:
        values, dims = values[min(max(depth, 0), values.shape[0] - 1)], dims[1:]
    if dims == ("channel", "y", "x"):
        return values
    if dims == ("y", "x", "channel"):
        return np.moveaxis(values, -1, 0)
    grid = _grid(data.attrs)
    if dims == ("token", "channel") and grid is not None and values.shape[0] >= grid[0] * grid[1]:
        h, w = grid
        return values[values.shape[0] - h * w :].T.reshape(-1, h, w)
    return None


def _resize_nearest(img: np.ndarray, side: int = LINK_SIDE) -> np.ndarray:
    h, w = img.shape[:2]
    rows = np.minimum((np.arange(side) + 0.5) * h / side, h - 1).astype(int)
    cols = np.minimum((np.arange(side) + 0.5) * w / side, w - 1).astype(int)
    return img[rows][:, cols]


def similarity_map(fmap: np.ndarray, fy: float, fx: float) -> tuple[np.ndarray, tuple[int, int]]:
    """Cosine similarity of every position of (C, H, W) with the position at fractions (fy, fx)
    of the height and width: float32 (H, W) in [-1, 1], and the (row, col) picked."""
    c, h, w = fmap.shape
    row, col = min(int(fy * h), h - 1), min(int(fx * w), w - 1)
    x = np.nan_to_num(fmap.reshape(c, -1).astype(np.float64))
    x /= np.linalg.norm(x, axis=0, keepdims=True) + 1e-12
    sim = (x[:, row * w + col] @ x).reshape(h, w)
    return sim.astype(np.float32), (row, col)


def similarity_view(maps: dict[str, np.ndarray], fy: float, fx: float) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One similarity map per layer for the same image location, as uint8 (L, S, S): each from
    its own minimum (0, sent as `min`) to 1 (255, the clicked patch itself), and each grid."""
    sims, meta = [], []
    for name, fmap in maps.items():
        sim, (row, col) = similarity_map(fmap, fy, fx)
        lo = float(sim.min())
        scaled = (sim - lo) / max(1.0 - lo, 1e-6)
        sims.append(_resize_nearest(np.clip(np.rint(scaled * 255), 0, 255).astype(np.uint8)))
        meta.append({"layer": name, "grid": [int(fmap.shape[1]), int(fmap.shape[2])], "patch": [row, col], "min": float(sim.min())})
    return {"maps": meta, "fy": fy, "fx": fx}, {"similarity": np.stack(sims)}


def strip_view(maps: dict[str, np.ndarray]) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """One small PCA-to-RGB map per layer: uint8 (L, S, S, 3), in the order given."""
    tiles, meta = [], []
    for name, fmap in maps.items():
        rgb, _ = _pca(np.moveaxis(area_downsample(np.asarray(fmap, dtype=np.float32)), 0, -1))
        if rgb is None:
            continue
        tiles.append(_resize_nearest(rgb))
        meta.append({"layer": name, "grid": [int(fmap.shape[1]), int(fmap.shape[2])]})
    if not tiles:
        raise NbfeatError("No spatial layer to draw in the strip.")
    return {"strip": meta}, {"strip": np.stack(tiles)}
