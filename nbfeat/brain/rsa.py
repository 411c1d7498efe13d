"""RSA of every model and layer against target RDMs, with bootstrap CIs and a noise ceiling.

Reached through `nbfeat.compare(features, targets, method="rsa", ...)`. For each
representation its RDM (with `metric`) is correlated with each target's RDM (`corr`:
pearson, spearman or kendall tau-a); a target with several individual RDMs (`subject` or
`repeat`) scores the mean over them, which is what its leave-one-out noise ceiling bounds.

Bootstrap over samples (as rsatoolbox's `bootstrap_sample_pattern`): samples are drawn with
replacement, every pair of drawn samples is a cell of both RDMs, and pairs of a sample with
its own copy are left out. The CI is the percentile interval of the resampled scores.

>>> res = nbfeat.compare(dt, rdms, rsa_corr="spearman", bootstrap=1000)     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis.compare import Representation, _unique_labels, sources_of
from nbfeat.brain.result import BrainScores, rep_coords
from nbfeat.brain.targets import SAMPLE, SECOND, TARGET, as_target_rdms
from nbfeat.errors import NbfeatError


def _score(model: np.ndarray, targets: np.ndarray, corr: str) -> np.ndarray:
    """model: (pairs,), targets: (target, individual, pairs) -> (target,) mean correlation."""
    from nbfeat.analysis.rdm import correlate, standardize

    if corr == "kendall":
        return np.array([[correlate(model, v, corr) for v in t] for t in targets]).mean(axis=1)
    m = standardize(model, corr)
    flat = targets.reshape(-1, targets.shape[-1])
    z = np.stack([standardize(v, corr) for v in flat])
    return (z @ m).reshape(targets.shape[:2]).mean(axis=1)


def rsa_to_targets(
    reps: list[Representation],
    targets: Any,
    corr: str = "pearson",
    metric: str = "correlation",
    target_metric: str | None = None,
    bootstrap: int = 0,
    ci: float = 0.95,
    seed: int | None = 0,
) -> BrainScores:
    """Representations x targets RSA; see the module docstring and `BrainScores`."""
    from nbfeat.analysis._common import matrix
    from nbfeat.analysis.align import join_samples
    from nbfeat.analysis.rdm import rdm_array
    from nbfeat.brain.ceiling import individual_dim, loo_bounds, upper_vectors

    if not 0 < ci < 1:
        raise NbfeatError(f"ci={ci}: a confidence level between 0 and 1, e.g. 0.95.")
    trdm = as_target_rdms(targets, target_metric or metric)
    labels = _unique_labels(reps)
    joined = join_samples([r.data for r in reps] + [trdm], labels + ["targets"], "compare() against targets")
    reps = [Representation(r.model, r.layer, a, r.source) for r, a in zip(reps, joined[:-1])]
    trdm = joined[-1]
    n = trdm.sizes[SAMPLE]
    if n < 3:
        raise NbfeatError(f"RSA needs at least 3 shared samples; found {n}.")
    ind = individual_dim(trdm)
    tarr = np.asarray(trdm.transpose(TARGET, *([ind] if ind else []), SAMPLE, SECOND).values, dtype=np.float64)
    if ind is None:
        tarr = tarr[:, None]
    if not np.all(np.isfinite(tarr)):
        raise NbfeatError("The target RDMs contain NaN or inf; nbfeat needs complete RDMs.")
    iu = np.triu_indices(n, k=1)
    tvec = tarr[..., iu[0], iu[1]]
    # model RDMs, computed one representation at a time (N x N each; lazy inputs stream X X^T)
    mats = []
    for r in reps:
        d = rdm_array(matrix(r.data, "compare()"), metric)
        mats.append(np.asarray(d.compute() if hasattr(d, "compute") else d, dtype=np.float64))
    scores = np.stack([_score(m[iu], tvec, corr) for m in mats])

    ci_arr = None
    if bootstrap:
        rng = np.random.default_rng(seed)
        boots = np.full((bootstrap, len(reps), tarr.shape[0]), np.nan)
        for b in range(bootstrap):
            idx = rng.integers(0, n, n)
            i, j = np.triu_indices(n, k=1)
            keep = idx[i] != idx[j]
            a, c = idx[i][keep], idx[j][keep]
            tb = tarr[..., a, c]
            for k, m in enumerate(mats):
                boots[b, k] = _score(m[a, c], tb, corr)
        alpha = (1.0 - ci) / 2.0
        lo, hi = np.nanquantile(boots, [alpha, 1.0 - alpha], axis=0)
        ci_arr = np.stack([lo, hi])

    coords = rep_coords(labels, [r.model for r in reps], [r.layer for r in reps], [r.source.get("depth") for r in reps])
    tnames = [str(t) for t in trdm[TARGET].values]
    attrs = {"corr": corr, "rdm_metric": metric, "target_metric": target_metric or metric, "n_samples": n, "bootstrap": bootstrap}
    sc = xr.DataArray(scores, dims=("rep", TARGET), coords={**coords, TARGET: tnames}, name="rsa", attrs=attrs)
    ceiling = normalized = None
    if ind is not None and trdm.sizes[ind] >= 2:
        vecs = upper_vectors(trdm)
        bounds = np.array([loo_bounds(v, corr) for v in vecs])
        ceiling = xr.Dataset({"lower": ((TARGET,), bounds[:, 0]), "upper": ((TARGET,), bounds[:, 1])}, coords={TARGET: tnames}, attrs={"method": f"leave-one-{ind}-out"})
        normalized = (sc / ceiling["upper"]).rename("rsa_normalized")
    ci_da = None
    if ci_arr is not None:
        ci_da = xr.DataArray(ci_arr, dims=("bound", "rep", TARGET), coords={"bound": ["low", "high"], **coords, TARGET: tnames}, name="ci", attrs={"level": ci})
    return BrainScores(sc, "rsa", sources_of(reps), ci=ci_da, ceiling=ceiling, normalized=normalized, attrs=attrs)
