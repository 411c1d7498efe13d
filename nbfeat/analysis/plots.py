"""Matplotlib figures for labelled features: RDMs, comparisons, PCA colour maps, token x layer.

Every function takes `ax=` (draw into your own axes) and returns the Figure. Without `ax`,
the new figure is closed in pyplot right away, so a notebook shows it once (as the returned
value) rather than twice.

>>> plot_rdm(ds["layer4"].nbfeat.rdm())          # doctest: +SKIP
>>> plot_pca(ds["layer3"])                        # doctest: +SKIP
>>> plot_token_layers(tok["block"], sample=0)     # doctest: +SKIP
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import SAMPLE
from nbfeat.analysis.rdm import SECOND
from nbfeat.errors import NbfeatError


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is not None:
        return ax.figure, ax
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=figsize, layout="constrained")
    plt.close(fig)
    return fig, ax


def _runs(values: np.ndarray) -> list[tuple[int, int, str]]:
    """Consecutive runs of equal labels: (start, stop, label)."""
    runs: list[tuple[int, int, str]] = []
    start = 0
    for i in range(1, len(values) + 1):
        if i == len(values) or values[i] != values[start]:
            runs.append((start, i, str(values[start])))
            start = i
    return runs


def _label_blocks(ax: Any, values: np.ndarray, axis: str = "both", max_ticks: int = 40) -> None:
    """Ticks at the centre of each run of equal labels and separator lines between runs."""
    runs = _runs(values)
    if len(runs) > max_ticks:
        return
    centres = [(a + b - 1) / 2 for a, b, _ in runs]
    names = [lab for _, _, lab in runs]
    if axis in ("both", "x"):
        ax.set_xticks(centres, names, rotation=90)
    if axis in ("both", "y"):
        ax.set_yticks(centres, names)
    for _, stop, _ in runs[:-1]:
        if axis in ("both", "x"):
            ax.axvline(stop - 0.5, color="white", lw=1)
        if axis in ("both", "y"):
            ax.axhline(stop - 0.5, color="white", lw=1)


def plot_rdm(
    rdm: xr.DataArray,
    ax: Any = None,
    label: str = "label",
    sort: bool = False,
    cmap: str = "viridis",
    colorbar: bool = True,
    title: str | None = None,
) -> Any:
    """Heatmap of an RDM (dims sample, sample_) with label blocks on both axes.

    `label`: the sample coord that names blocks (ticks at block centres, white lines at
    boundaries); `sort=True` groups equal labels first.

    >>> plot_rdm(da.nbfeat.rdm("correlation"), sort=True)          # doctest: +SKIP
    """
    if set(rdm.dims) != {SAMPLE, SECOND}:
        raise NbfeatError(f"plot_rdm takes an RDM with dims (sample, sample_); got {tuple(rdm.dims)}. Use da.nbfeat.rdm() first.")
    rdm = rdm.transpose(SAMPLE, SECOND)
    labels = np.asarray(rdm[label].values).astype(str) if label in rdm.coords else None
    if sort and labels is not None:
        order = np.argsort(labels, kind="stable")
        rdm = rdm.isel({SAMPLE: order, SECOND: order})
        labels = labels[order]
    fig, ax = _axes(ax, (5.5, 4.5))
    im = ax.imshow(np.asarray(rdm.values, dtype=float), cmap=cmap, interpolation="nearest")
    if labels is not None and len(set(labels.tolist())) > 1:
        _label_blocks(ax, labels)
    elif rdm.sizes[SAMPLE] <= 30 and SAMPLE in rdm.coords:
        ids = [str(v) for v in rdm[SAMPLE].values]
        ax.set_xticks(range(len(ids)), ids, rotation=90)
        ax.set_yticks(range(len(ids)), ids)
    else:
        ax.set_xticks([])
        ax.set_yticks([])
    if colorbar:
        fig.colorbar(im, ax=ax, label=f"dissimilarity ({rdm.attrs.get('rdm_metric', '')})".replace(" ()", ""))
    ax.set_title(title if title is not None else str(rdm.name or "RDM"))
    return fig


def plot_comparison(
    result: Any,
    ax: Any = None,
    cmap: str = "viridis",
    annotate: bool | None = None,
    colorbar: bool = True,
    title: str | None = None,
) -> Any:
    """Heatmap of a `compare` result (or its `.matrix`), separators between models.

    >>> plot_comparison(nbfeat.compare(dt, method="cka"))          # doctest: +SKIP
    """
    mat = getattr(result, "matrix", result)
    if not isinstance(mat, xr.DataArray) or set(mat.dims) != {"rep", "rep_"}:
        raise NbfeatError("plot_comparison takes the result of nbfeat.compare(...) (or its .matrix).")
    mat = mat.transpose("rep", "rep_")
    values = np.asarray(mat.values, dtype=float)
    n = values.shape[0]
    fig, ax = _axes(ax, (1.6 + 0.45 * n, 1.2 + 0.4 * n) if n > 8 else (5.5, 4.5))
    im = ax.imshow(values, cmap=cmap, interpolation="nearest", vmin=min(0.0, float(np.nanmin(values))), vmax=1.0)
    labels = [str(v) for v in mat["rep"].values]
    ax.set_xticks(range(n), labels, rotation=90)
    ax.set_yticks(range(n), labels)
    if "model" in mat.coords:
        for _, stop, _ in _runs(np.asarray(mat["model"].values).astype(str))[:-1]:
            ax.axvline(stop - 0.5, color="white", lw=1.5)
            ax.axhline(stop - 0.5, color="white", lw=1.5)
    if annotate is None:
        annotate = n <= 10
    if annotate:
        for i in range(n):
            for j in range(n):
                v = values[i, j]
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=8, color="white" if v < 0.6 else "black")
    if colorbar:
        fig.colorbar(im, ax=ax, label=str(mat.attrs.get("method", mat.name or "score")).upper())
    ax.set_title(title if title is not None else f"{str(mat.attrs.get('method', '')).upper()} between representations".strip())
    return fig


def _as_grid(da: xr.DataArray) -> xr.DataArray:
    from nbfeat.analysis.transform import tokens_to_grid

    if "token" in da.dims:
        da = tokens_to_grid(da)
    extra = [d for d in da.dims if d not in (SAMPLE, "channel", "y", "x")]
    if extra or not {"channel", "y", "x"} <= set(da.dims):
        raise NbfeatError(
            f"plot_pca needs (sample, channel, y, x) or ViT tokens (sample, token, channel); got {tuple(da.dims)}."
            + (f" Select one entry of {extra} first, e.g. da.isel({extra[0]}=-1)." if extra else "")
        )
    return da if SAMPLE in da.dims else da.expand_dims(SAMPLE)


def plot_pca(
    da: xr.DataArray,
    ax: Any = None,
    max_samples: int = 16,
    ncols: int | None = None,
    label: str = "label",
) -> Any:
    """PCA colour maps: the top-3 components of the channels, as RGB, one tile per sample.

    One PCA over all shown samples and positions, so equal colours mean similar features
    across images. Feature maps (sample, channel, y, x), or ViT tokens (sample, token,
    channel) laid out on their patch grid with the `grid` and `prefix_tokens` attrs.

    >>> plot_pca(ds["layer3"], max_samples=8)                       # doctest: +SKIP
    """
    from nbfeat.analysis.pca import pca_rgb

    grid = _as_grid(da).isel({SAMPLE: slice(0, max_samples)})
    # bounded by max_samples: the only data this pulls into memory
    feats = np.asarray(grid.transpose(SAMPLE, "y", "x", "channel").values)
    rgb = pca_rgb(feats)
    s, h, w = rgb.shape[:3]
    ncols = ncols or math.ceil(math.sqrt(s))
    nrows = math.ceil(s / ncols)
    gap = max(1, h // 6)
    fig, ax = _axes(ax, (min(2.0 * ncols, 12), min(2.2 * nrows, 12)))
    names = grid[label].values if label in grid.coords else grid[SAMPLE].values if SAMPLE in grid.coords else range(s)
    for i in range(s):
        r, c = divmod(i, ncols)
        x0, y0 = c * (w + gap), r * (h + 2 * gap)
        ax.imshow(rgb[i], extent=(x0, x0 + w, y0 + h, y0), interpolation="nearest")
        ax.text(x0 + w / 2, y0 + h + 0.2, str(list(names)[i]), ha="center", va="top", fontsize=7)
    ax.set_xlim(-gap / 2, ncols * (w + gap) - gap / 2)
    ax.set_ylim(nrows * (h + 2 * gap), -gap / 2)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title(f"PCA colours of {da.name}" if da.name is not None else "PCA colours")
    return fig


def plot_token_layers(
    da: xr.DataArray,
    sample: int | str = 0,
    ax: Any = None,
    reduce: str | int = "norm",
    cmap: str = "magma",
) -> Any:
    """Heatmap over (layer, token) for one sample, with `token_text` as tick labels.

    `reduce` turns the channel dim into one number per cell: "norm" (L2), "mean", or a
    channel index. Padded tokens (mask False) are left out.

    >>> plot_token_layers(tok["block"], sample=0)                   # doctest: +SKIP
    """
    if SAMPLE in da.dims:
        da = da.isel({SAMPLE: sample}) if isinstance(sample, int | np.integer) else da.sel({SAMPLE: sample})
    if "layer" not in da.dims or "token" not in da.dims:
        raise NbfeatError(f"plot_token_layers needs dims layer and token (node roles like 'block'); got {tuple(da.dims)}.")
    if "channel" in da.dims:
        if reduce == "norm":
            da = np.sqrt((da * da).sum("channel"))
        elif reduce == "mean":
            da = da.mean("channel")
        elif isinstance(reduce, int | np.integer):
            da = da.isel(channel=int(reduce))
        else:
            raise NbfeatError(f"reduce={reduce!r}: use 'norm', 'mean' or a channel index.")
    extra = [d for d in da.dims if d not in ("layer", "token")]
    if extra:
        raise NbfeatError(f"plot_token_layers: select one entry of {extra} first.")
    if "mask" in da.coords:
        da = da.isel(token=np.flatnonzero(np.asarray(da["mask"].values, dtype=bool)))
    da = da.transpose("layer", "token")
    values = np.asarray(da.values, dtype=float)
    fig, ax = _axes(ax, (max(4.0, 0.35 * values.shape[1] + 1.5), max(3.0, 0.3 * values.shape[0] + 1.2)))
    im = ax.imshow(values, cmap=cmap, aspect="auto", interpolation="nearest")
    if "token_text" in da.coords:
        ax.set_xticks(range(values.shape[1]), [str(t) for t in da["token_text"].values], rotation=90)
    ax.set_xlabel("token")
    layers = da["layer"].values if "layer" in da.coords else np.arange(values.shape[0])
    step = max(1, len(layers) // 24)
    ax.set_yticks(range(0, len(layers), step), [str(v) for v in layers[::step]])
    ax.set_ylabel("layer")
    fig.colorbar(im, ax=ax, label=f"{reduce} over channels" if isinstance(reduce, str) else f"channel {reduce}")
    title = str(da.name) if da.name is not None else "activations"
    ax.set_title(f"{title}: sample {sample}")
    return fig
