"""Encoding models: cross-validated ridge from each layer's features to each neuroid.

For every representation (model x layer) and every outer fold of `cv`:

1. the reduction (`reduce`: PCA or a sparse random projection, for layers wider than
   `max_features`) is fitted on the training samples only;
2. ridge regression is fitted on the training samples with the regularisation chosen *inside
   them*: scikit-learn's `RidgeCV(alphas, alpha_per_target=True)` picks one alpha per neuroid by
   efficient leave-one-out on the training fold (with `backend="himalaya"`, or `"auto"` when
   himalaya is installed: himalaya's `RidgeCV`, or `KernelRidgeCV` with a linear kernel for
   layers wider than the training set, by an inner `inner_cv`-fold split of the training
   samples; himalaya runs on GPU when its backend is set to torch_cuda/cupy);
3. the held-out samples are predicted.

Every sample is predicted once, by the fold that held it out; per neuroid the Pearson r and
R^2 of those predictions against the (repeat-averaged) responses are the scores. The held-out
samples never reach the reduction, the alpha choice or the fit.

Memory: one layer at a time is loaded whole (N x F float64, after `pool`); features opened
lazily from a store are read layer by layer, never all at once.

>>> res = nbfeat.encode(dt, resp, cv=5, alphas=np.logspace(-2, 6, 9))      # doctest: +SKIP
>>> res.scores; res.details.r; res.best; res.plot()                         # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.brain.result import BrainScores, rep_coords
from nbfeat.brain.targets import NEUROID, REPEAT, SAMPLE, TARGET, as_responses
from nbfeat.errors import MissingDependencyError, NbfeatError

DEFAULT_ALPHAS = tuple(10.0 ** np.arange(-2, 9))
REDUCTIONS = ("auto", "pca", "srp", None)
BACKENDS = ("auto", "sklearn", "himalaya")


def _sklearn() -> Any:
    try:
        import sklearn  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("Encoding models need scikit-learn: pip install scikit-learn  (or pip install 'nbfeat[brain]')") from exc


def _has_himalaya() -> bool:
    import importlib.util

    return importlib.util.find_spec("himalaya") is not None


def _folds(cv: Any, n: int, seed: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import KFold

    if isinstance(cv, int):
        if not 2 <= cv <= n:
            raise NbfeatError(f"cv={cv}: use between 2 and the number of samples ({n}) folds.")
        splitter: Any = KFold(n_splits=cv, shuffle=True, random_state=seed)
    elif hasattr(cv, "split"):
        splitter = cv
    else:
        folds = [(np.asarray(a), np.asarray(b)) for a, b in cv]
        return folds
    return [(np.asarray(a), np.asarray(b)) for a, b in splitter.split(np.zeros((n, 1)))]


def _reducer(reduce: str | None, n_features: int, n_train: int, n_components: int, max_features: int, seed: int | None) -> Any:
    if reduce == "auto":
        reduce = "pca" if n_features > max_features else None
    if reduce is None:
        return None
    k = min(n_components, n_features)
    if reduce == "pca":
        from sklearn.decomposition import PCA

        return PCA(n_components=min(k, n_train), random_state=seed)
    if reduce == "srp":
        from sklearn.random_projection import SparseRandomProjection

        return SparseRandomProjection(n_components=k, random_state=seed)
    raise NbfeatError(f"reduce={reduce!r}: use 'auto', 'pca', 'srp' or None.")


def _ridge(backend: str, alphas: np.ndarray, inner_cv: int, n_train: int, n_features: int) -> Any:
    if backend == "himalaya":
        if n_train < n_features:  # wide layer: the kernel (sample-space) form is the cheaper one
            from himalaya.kernel_ridge import KernelRidgeCV

            return KernelRidgeCV(alphas=alphas, kernel="linear", cv=inner_cv)
        from himalaya.ridge import RidgeCV as HimalayaRidgeCV

        return HimalayaRidgeCV(alphas=alphas, cv=inner_cv)
    from sklearn.linear_model import RidgeCV

    return RidgeCV(alphas=alphas, alpha_per_target=True)


def _chosen_alpha(model: Any, n_targets: int, backend: str) -> np.ndarray:
    a = getattr(model, "best_alphas_", None) if backend == "himalaya" else model.alpha_
    a = _to_numpy(a) if backend == "himalaya" else np.asarray(a, dtype=np.float64)
    return np.broadcast_to(a, (n_targets,)).copy()


def _to_numpy(a: Any) -> np.ndarray:
    """A himalaya result (numpy, or a torch/cupy array on GPU backends) as float64 numpy."""
    from himalaya.backend import get_backend

    return np.asarray(get_backend().to_numpy(a), dtype=np.float64)


def fit_predict(
    x: np.ndarray,
    y: np.ndarray,
    folds: list[tuple[np.ndarray, np.ndarray]],
    alphas: np.ndarray,
    reduce: str | None = "auto",
    n_components: int = 256,
    max_features: int = 4096,
    backend: str = "sklearn",
    inner_cv: int = 5,
    seed: int | None = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Out-of-fold predictions (N, V) and the alpha chosen in each fold (fold, V) for one layer."""
    pred = np.full(y.shape, np.nan)
    chosen = np.empty((len(folds), y.shape[1]))
    for f, (train, test) in enumerate(folds):
        red = _reducer(reduce, x.shape[1], len(train), n_components, max_features, seed)
        xtr, xte = x[train], x[test]
        if red is not None:
            xtr = red.fit_transform(xtr)
            xte = red.transform(xte)
        model = _ridge(backend, alphas, inner_cv, xtr.shape[0], xtr.shape[1])
        model.fit(xtr, y[train])
        out = model.predict(xte)
        pred[test] = (_to_numpy(out) if backend == "himalaya" else np.asarray(out)).reshape(len(test), -1)
        chosen[f] = _chosen_alpha(model, y.shape[1], backend)
    return pred, chosen


def _pearson(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / den, np.nan)


def _r2(y: np.ndarray, p: np.ndarray) -> np.ndarray:
    ss_res = ((y - p) ** 2).sum(axis=0)
    ss_tot = ((y - y.mean(axis=0)) ** 2).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ss_tot > 0, 1.0 - ss_res / ss_tot, np.nan)


def _groups(resp: xr.DataArray, by: str | None) -> list[tuple[str, np.ndarray]]:
    if by is None:
        return [(str(resp.name or "responses"), np.arange(resp.sizes[NEUROID]))]
    if by not in resp.coords or resp[by].dims != (NEUROID,):
        have = [str(k) for k, v in resp.coords.items() if v.dims == (NEUROID,) and k != NEUROID]
        raise NbfeatError(f"by={by!r}: not a coord on 'neuroid' (have: {', '.join(have) or 'none'}).")
    import pandas as pd

    values = np.asarray(resp[by].values)
    return [(str(g), np.flatnonzero(values == g)) for g in pd.unique(values)]


def encode(
    features: Any,
    responses: Any,
    cv: Any = 5,
    alphas: Any = DEFAULT_ALPHAS,
    *,
    by: str | None = None,
    reduce: str | None = "auto",
    n_components: int = 256,
    max_features: int = 4096,
    backend: str = "auto",
    inner_cv: int = 5,
    predictions: bool = False,
    pool: Any = None,
    n_splits: int = 20,
    seed: int | None = 0,
) -> BrainScores:
    """Cross-validated ridge encoding model per layer; held-out r and R^2 per neuroid.

    `features`: what `nbfeat.compare` takes (a Dataset, a DataTree of models, a dict; stacked
    `layer` variables split per depth). `responses`: (sample, neuroid[, repeat]) DataArray,
    DataFrame or rsatoolbox Dataset; samples pair with the features by `sample` id and
    repeats are averaged (and give the split-half noise ceiling). `cv`: number of outer folds
    (shuffled KFold with `seed`), a scikit-learn splitter, or a list of (train, test) indices.
    `alphas`: the ridge grid, chosen per neuroid inside each training fold. `by`: a neuroid
    coord (e.g. "region") whose groups become the targets of the summary. `reduce`: "auto"
    (PCA to `n_components` for layers wider than `max_features`), "pca", "srp" (sparse random
    projection) or None; fitted on each training fold. `backend`: "sklearn", "himalaya" or
    "auto" (himalaya when installed). `predictions=True` keeps the held-out predictions.

    >>> res = encode(ds, resp, cv=5)                           # doctest: +SKIP
    >>> res.details.r.sel(rep="timm:resnet18/layer4")          # doctest: +SKIP
    """
    from nbfeat.analysis._common import matrix
    from nbfeat.analysis.align import join_samples
    from nbfeat.analysis.compare import Representation, _pooled, _unique_labels, collect, sources_of
    from nbfeat.brain.ceiling import split_half

    _sklearn()
    if backend not in BACKENDS:
        raise NbfeatError(f"backend={backend!r}: use one of {', '.join(BACKENDS)}.")
    if backend == "auto":
        backend = "himalaya" if _has_himalaya() else "sklearn"
    elif backend == "himalaya" and not _has_himalaya():
        raise MissingDependencyError("backend='himalaya' needs himalaya: pip install himalaya")
    if reduce not in REDUCTIONS:
        raise NbfeatError(f"reduce={reduce!r}: use 'auto', 'pca', 'srp' or None.")
    alphas = np.asarray(alphas, dtype=np.float64).ravel()
    if alphas.size == 0 or np.any(alphas <= 0):
        raise NbfeatError("alphas: give one or more positive regularisation strengths, e.g. np.logspace(-2, 6, 9).")
    resp = as_responses(responses)
    reps = _pooled(collect(features), pool)
    if not reps:
        raise NbfeatError("encode found no variable with a 'sample' dim in the features.")
    labels = _unique_labels(reps)
    joined = join_samples([r.data for r in reps] + [resp], labels + ["responses"], "encode()")
    reps = [Representation(r.model, r.layer, a, r.source) for r, a in zip(reps, joined[:-1])]
    resp = joined[-1]
    n = resp.sizes[SAMPLE]
    y = np.asarray((resp.mean(REPEAT) if REPEAT in resp.dims else resp).transpose(SAMPLE, NEUROID).values, dtype=np.float64)
    if not np.all(np.isfinite(y)):
        raise NbfeatError("responses contain NaN or inf (after averaging repeats); drop those neuroids or samples first.")
    folds = _folds(cv, n, seed)

    r_all, r2_all, alpha_all, pred_all = [], [], [], []
    for r in reps:
        x = matrix(r.data, "encode()")
        x = np.asarray(x.compute() if hasattr(x, "compute") else x, dtype=np.float64)  # one layer in memory
        if not np.all(np.isfinite(x)):
            from nbfeat.analysis._common import NAN_HINT

            raise NbfeatError(f"encode(): '{r.model}/{r.layer}': {NAN_HINT}")
        pred, chosen = fit_predict(x, y, folds, alphas, reduce, n_components, max_features, backend, inner_cv, seed)
        r_all.append(_pearson(pred, y))
        r2_all.append(_r2(y, pred))
        alpha_all.append(chosen)
        if predictions:
            pred_all.append(pred)

    coords = rep_coords(labels, [r.model for r in reps], [r.layer for r in reps], [r.source.get("depth") for r in reps])
    ncoords = {k: v.variable for k, v in resp.coords.items() if v.dims == (NEUROID,)}
    details = xr.Dataset(
        {
            "r": (("rep", NEUROID), np.stack(r_all)),
            "r2": (("rep", NEUROID), np.stack(r2_all)),
            "alpha": (("rep", "fold", NEUROID), np.stack(alpha_all)),
        },
        coords={**coords, **ncoords, "fold": np.arange(len(folds))},
    )
    scoords = {k: v.variable for k, v in resp.coords.items() if v.dims == (SAMPLE,)}
    held_out = np.full(n, -1)
    for f, (_, test) in enumerate(folds):
        held_out[test] = f
    details["test_fold"] = xr.DataArray(held_out, dims=(SAMPLE,), coords=scoords)
    details.attrs["alphas"] = ", ".join(f"{a:g}" for a in alphas)
    if predictions:
        details["predictions"] = xr.DataArray(np.stack(pred_all), dims=("rep", SAMPLE, NEUROID), coords={**scoords})
    groups = _groups(resp, by)
    tnames = [g for g, _ in groups]
    summary = np.stack([np.nanmedian(details["r"].values[:, idx], axis=1) for _, idx in groups], axis=1)
    attrs = {"cv": len(folds), "backend": backend, "reduce": str(reduce), "n_samples": n, "score": "median held-out pearson r"}
    scores = xr.DataArray(summary, dims=("rep", TARGET), coords={**coords, TARGET: tnames}, name="encoding", attrs=attrs)

    ceiling = normalized = None
    if REPEAT in resp.dims and resp.sizes[REPEAT] >= 2:
        ceil = split_half(resp, n_splits=n_splits, seed=seed)
        rc = ceil["r_ceiling"].values
        details["reliability"] = ((NEUROID,), ceil["reliability"].values)
        details["r_ceiling"] = ((NEUROID,), rc)
        with np.errstate(invalid="ignore", divide="ignore"):
            rn = np.where(rc > 0, details["r"].values / rc, np.nan)
            details["r_normalized"] = (("rep", NEUROID), rn)
            details["r2_normalized"] = (("rep", NEUROID), np.where(ceil["reliability"].values > 0, details["r2"].values / ceil["reliability"].values, np.nan))
        splits = np.sqrt(np.clip(ceil["split"].values, 0.0, None))
        band = np.array([np.nanpercentile(np.nanmedian(splits[:, idx], axis=1), [2.5, 97.5]) for _, idx in groups])
        ceiling = xr.Dataset(
            {"lower": ((TARGET,), band[:, 0]), "upper": ((TARGET,), band[:, 1]),
             "median": ((TARGET,), np.array([np.nanmedian(rc[idx]) for _, idx in groups]))},
            coords={TARGET: tnames},
            attrs=dict(ceil.attrs),
        )
        normalized = xr.DataArray(
            np.stack([np.nanmedian(rn[:, idx], axis=1) for _, idx in groups], axis=1),
            dims=("rep", TARGET), coords={**coords, TARGET: tnames}, name="encoding_normalized",
        )
    return BrainScores(scores, "encoding", sources_of(reps), ceiling=ceiling, normalized=normalized, details=details, attrs=attrs)
