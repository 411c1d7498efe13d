"""Noise ceilings: how well any model could do, given how noisy the data are.

- **Responses with repeats** (`split_half`): the repeats are split into two random halves
  `n_splits` times; per neuroid, the Pearson r between the two half-averages, corrected to the
  full number of repeats with Spearman-Brown (`2 r / (1 + r)`), averaged over splits, is the
  *reliability* of the repeat-averaged response. The best R^2 any prediction can reach is the
  reliability, the best Pearson r its square root (`r_ceiling`); encoding scores are divided
  by those.
- **RDMs with several measurements** (`rdm_ceiling`, individual dim `subject` or `repeat`):
  leave-one-out as rsatoolbox's `boot_noise_ceiling`: the *lower* bound is the mean
  correlation of each RDM with the pooled RDM of the others, the *upper* bound the mean
  correlation of each with the pooled RDM of all. Pooling as rsatoolbox's `pool_rdm` for the
  same comparison (z-scored for pearson, ranks for spearman and kendall).

>>> ceil = split_half(resp, n_splits=20, seed=0)        # reliability, r_ceiling per neuroid   # doctest: +SKIP
>>> rdm_ceiling(target_rdms(resp), corr="spearman")     # lower, upper per target              # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.brain.targets import (
    INDIVIDUAL_DIMS,
    NEUROID,
    REPEAT,
    SAMPLE,
    SECOND,
    TARGET,
    as_responses,
    as_target_rdms,
)
from nbfeat.errors import NbfeatError


def spearman_brown(r: Any, factor: float = 2.0) -> Any:
    """Reliability of a measurement `factor` times as long: `factor r / (1 + (factor - 1) r)`.

    >>> float(spearman_brown(0.5))
    0.6666666666666666
    """
    r = np.asarray(r, dtype=np.float64)
    return factor * r / (1.0 + (factor - 1.0) * r)


def _rowwise_r(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Pearson r per column of two (sample, neuroid) arrays."""
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a * a).sum(axis=0) * (b * b).sum(axis=0))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, (a * b).sum(axis=0) / den, np.nan)


def split_half(resp: Any, n_splits: int = 20, seed: int | None = 0) -> xr.Dataset:
    """Split-half reliability per neuroid, Spearman-Brown corrected to all repeats.

    Returns a Dataset over `neuroid`: `reliability` (the mean over splits, the R^2 ceiling),
    `r_ceiling` (its square root, 0 where the reliability is negative), and `split`
    (`split, neuroid`: each split's corrected value, for a band).

    >>> split_half(resp, n_splits=10).r_ceiling.median()      # doctest: +SKIP
    """
    resp = as_responses(resp)
    if REPEAT not in resp.dims or resp.sizes[REPEAT] < 2:
        raise NbfeatError("A noise ceiling needs at least 2 repeats per sample: responses with a 'repeat' dim.")
    x = np.asarray(resp.transpose(SAMPLE, NEUROID, REPEAT).values, dtype=np.float64)
    k = x.shape[2]
    rng = np.random.default_rng(seed)
    per_split = np.empty((n_splits, x.shape[1]))
    for s in range(n_splits):
        order = rng.permutation(k)
        h1, h2 = order[: k // 2], order[k // 2 : 2 * (k // 2)]
        r = _rowwise_r(np.nanmean(x[:, :, h1], axis=2), np.nanmean(x[:, :, h2], axis=2))
        # each half holds k//2 repeats; the full average holds k
        per_split[s] = spearman_brown(r, k / (k // 2))
    rel = per_split.mean(axis=0)
    ncoords = {k_: v for k_, v in resp.coords.items() if v.dims == (NEUROID,)}
    return xr.Dataset(
        {
            "reliability": ((NEUROID,), rel),
            "r_ceiling": ((NEUROID,), np.sqrt(np.clip(rel, 0.0, None))),
            "split": (("split", NEUROID), per_split),
        },
        coords=ncoords,
        attrs={"method": "split-half, Spearman-Brown", "n_splits": n_splits, "n_repeats": k},
    )


def pool(vectors: np.ndarray, corr: str) -> np.ndarray:
    """The pooled RDM (upper-triangle vectors, one per row) that rsatoolbox's `pool_rdm` makes."""
    from scipy.stats import rankdata

    if corr == "pearson":
        z = vectors - vectors.mean(axis=1, keepdims=True)
        z = z / z.std(axis=1, keepdims=True)
        m = z.mean(axis=0)
        return m - m.min()
    if corr in ("spearman", "kendall"):
        return np.stack([rankdata(v) for v in vectors]).mean(axis=0)
    raise NbfeatError(f"Unknown RSA correlation {corr!r}.")


def individual_dim(r: xr.DataArray) -> str | None:
    return next((d for d in INDIVIDUAL_DIMS if d in r.dims), None)


def upper_vectors(r: xr.DataArray) -> np.ndarray:
    """(target, [individual,] sample, sample_) -> (target, individual, pairs) upper triangles."""
    ind = individual_dim(r)
    arr = np.asarray(r.transpose(TARGET, *([ind] if ind else []), SAMPLE, SECOND).values, dtype=np.float64)
    if ind is None:
        arr = arr[:, None]
    iu = np.triu_indices(arr.shape[-1], k=1)
    return arr[..., iu[0], iu[1]]


def loo_bounds(vectors: np.ndarray, corr: str) -> tuple[float, float]:
    """Leave-one-out lower and upper bounds for one target's (individual, pairs) vectors."""
    from nbfeat.analysis.rdm import correlate

    m = vectors.shape[0]
    if m < 2:
        return float("nan"), float("nan")
    everyone = pool(vectors, corr)
    lower = [correlate(pool(np.delete(vectors, i, axis=0), corr), vectors[i], corr) for i in range(m)]
    upper = [correlate(everyone, vectors[i], corr) for i in range(m)]
    return float(np.mean(lower)), float(np.mean(upper))


def rdm_ceiling(targets: Any, corr: str = "pearson", metric: str = "correlation") -> xr.Dataset:
    """Leave-one-out noise ceiling per target: Dataset with `lower` and `upper` over `target`.

    `targets`: RDMs with an individual dim (`subject` or `repeat`), or responses with repeats
    (their per-repeat RDMs with `metric`). Equals rsatoolbox's `boot_noise_ceiling` with
    method "corr", "spearman" or "tau-a" for corr "pearson", "spearman", "kendall".
    """
    from nbfeat.analysis.rdm import check_corr

    check_corr(corr)
    r = as_target_rdms(targets, metric)
    ind = individual_dim(r)
    if ind is None or r.sizes[ind] < 2:
        raise NbfeatError("An RSA noise ceiling needs several RDMs of each target: an individual dim 'subject' or 'repeat' with at least 2 entries.")
    vecs = upper_vectors(r)
    bounds = np.array([loo_bounds(v, corr) for v in vecs])
    return xr.Dataset(
        {"lower": ((TARGET,), bounds[:, 0]), "upper": ((TARGET,), bounds[:, 1])},
        coords={TARGET: r[TARGET].values},
        attrs={"method": f"leave-one-{ind}-out", "corr": corr, "n_individual": int(r.sizes[ind])},
    )


def noise_ceiling(data: Any, corr: str = "pearson", metric: str = "correlation", n_splits: int = 20, seed: int | None = 0, kind: str | None = None) -> xr.Dataset:
    """The ceiling that fits `data`: responses with repeats -> `split_half` (for encoding;
    `kind="rsa"` gives the RDM ceiling from their per-repeat RDMs instead); RDMs with an
    individual dim -> `rdm_ceiling`.

    >>> noise_ceiling(resp).r_ceiling          # doctest: +SKIP
    """
    if kind not in (None, "encoding", "rsa"):
        raise NbfeatError(f"kind={kind!r}: use 'encoding', 'rsa' or None.")
    is_resp = isinstance(data, xr.DataArray) and NEUROID in data.dims or type(data).__name__ in ("Dataset", "DataFrame") and not isinstance(data, xr.Dataset)
    if is_resp and kind != "rsa":
        return split_half(data, n_splits=n_splits, seed=seed)
    return rdm_ceiling(data, corr=corr, metric=metric)
