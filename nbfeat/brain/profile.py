"""The figures every paper shows: score against relative depth, and a targets x layers heatmap.

Both take `ax=` and return the Figure (closed in pyplot, so a notebook shows it once).

>>> plot_profile(res, target="IT")          # one line per model, ceiling band, best marked  # doctest: +SKIP
>>> plot_brain_matrix(res)                  # targets x (model/layer)                       # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError


def _check(result: Any) -> None:
    from nbfeat.brain.result import BrainScores

    if not isinstance(result, BrainScores):
        raise NbfeatError("This plot takes what nbfeat.encode(...) or nbfeat.compare(features, targets) returns.")


def plot_profile(
    result: Any,
    target: str | None = None,
    ax: Any = None,
    normalized: bool = False,
    ceiling: bool = True,
    title: str | None = None,
) -> Any:
    """Score against relative depth (0 = first compared layer, 1 = last), one line per model.

    The noise ceiling (lower to upper) is a grey band, bootstrap CIs a shaded band per model,
    and each model's best layer a star with its name. `target`: which target to show (default
    the first); `normalized=True` plots the ceiling-normalised scores (no band).

    >>> plot_profile(nbfeat.encode(dt, resp), normalized=True)      # doctest: +SKIP
    """
    from nbfeat.analysis.plots import _axes

    _check(result)
    targets = [str(t) for t in result.scores["target"].values]
    tgt = target if target is not None else targets[0]
    if tgt not in targets:
        raise NbfeatError(f"No target {tgt!r}; this result has {', '.join(targets)}.")
    src = result.normalized if normalized else result.scores
    if src is None:
        raise NbfeatError("normalized=True needs a noise ceiling (responses with repeats, or several RDMs per target).")
    sc = src.sel(target=tgt)
    fig, ax = _axes(ax, (6.0, 4.0))
    models = list(dict.fromkeys(str(m) for m in sc["model"].values))
    if ceiling and not normalized and result.ceiling is not None:
        c = result.ceiling.sel(target=tgt)
        lo, hi = float(c["lower"]), float(c["upper"])
        if np.isfinite(lo) and np.isfinite(hi):
            ax.axhspan(min(lo, hi), max(lo, hi), color="0.85", zorder=0, label="noise ceiling")
    for m in models:
        sel = np.asarray(sc["model"].values).astype(str) == m
        depth = np.asarray(sc["depth"].values)[sel]
        vals = np.asarray(sc.values, dtype=float)[sel]
        names = np.asarray(sc["layer"].values).astype(str)[sel]
        order = np.argsort(depth, kind="stable")
        depth, vals, names = depth[order], vals[order], names[order]
        (line,) = ax.plot(depth, vals, marker="o", ms=4, label=m)
        if result.ci is not None and not normalized:
            ci = result.ci.sel(target=tgt)
            lo = np.asarray(ci.sel(bound="low").values)[sel][order]
            hi = np.asarray(ci.sel(bound="high").values)[sel][order]
            ax.fill_between(depth, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
        if np.isfinite(vals).any():
            b = int(np.nanargmax(vals))
            ax.plot(depth[b], vals[b], marker="*", ms=14, color=line.get_color(), mec="black", zorder=5)
            ax.annotate(names[b], (depth[b], vals[b]), textcoords="offset points", xytext=(4, 6), fontsize=8)
    ax.set_xlabel("relative depth")
    what = "RSA" if result.method == "rsa" else "held-out r (median over neuroids)"
    ax.set_ylabel(f"{what}{' / ceiling' if normalized else ''}")
    ax.set_xlim(-0.05, 1.05)
    ax.legend(fontsize=8, loc="best")
    ax.set_title(title if title is not None else f"{tgt}")
    return fig


def plot_brain_matrix(
    result: Any,
    ax: Any = None,
    normalized: bool = False,
    cmap: str = "viridis",
    annotate: bool | None = None,
    title: str | None = None,
) -> Any:
    """Heatmap with targets as rows and representations (model/layer) as columns.

    White lines separate models. Cell (i, j) is target i against `result.sources[j]`.

    >>> plot_brain_matrix(res, normalized=True)                      # doctest: +SKIP
    """
    from nbfeat.analysis.plots import _axes, _runs

    _check(result)
    src = result.normalized if normalized else result.scores
    if src is None:
        raise NbfeatError("normalized=True needs a noise ceiling.")
    mat = np.asarray(src.transpose("target", "rep").values, dtype=float)
    t, r = mat.shape
    fig, ax = _axes(ax, (max(4.0, 1.5 + 0.45 * r), max(2.2, 1.4 + 0.45 * t)))
    im = ax.imshow(mat, cmap=cmap, aspect="auto", interpolation="nearest")
    ax.set_xticks(range(r), [str(v) for v in src["layer"].values], rotation=90)
    ax.set_yticks(range(t), [str(v) for v in src["target"].values])
    runs = _runs(np.asarray(src["model"].values).astype(str))
    for _, stop, _ in runs[:-1]:
        ax.axvline(stop - 0.5, color="white", lw=2)
    if len(runs) > 1:
        sec = ax.secondary_xaxis("top")
        sec.set_xticks([(a + b - 1) / 2 for a, b, _ in runs], [m for _, _, m in runs], fontsize=8)
    if annotate is None:
        annotate = t * r <= 60
    if annotate:
        finite = mat[np.isfinite(mat)]
        mid = (finite.min() + finite.max()) / 2 if finite.size else 0
        for i in range(t):
            for j in range(r):
                if np.isfinite(mat[i, j]):
                    ax.text(j, i, f"{mat[i, j]:.2f}", ha="center", va="center", fontsize=7, color="white" if mat[i, j] < mid else "black")
    what = "RSA" if result.method == "rsa" else "held-out r"
    fig.colorbar(im, ax=ax, label=what + (" / ceiling" if normalized else ""))
    if title:
        ax.set_title(title)
    return fig
