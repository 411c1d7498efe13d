"""`BrainScores`: what RSA against targets and encoding models return.

One labelled score per representation (model x layer) and target, with where each
representation came from, confidence intervals and the noise ceiling when there are any.

>>> res = nbfeat.compare(dt, target_rdms, rsa_corr="spearman", bootstrap=500)   # doctest: +SKIP
>>> res.scores.sel(target="V4")          # DataArray over rep, coords model/layer/depth  # doctest: +SKIP
>>> res.table; res.best; res.plot()                                              # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.errors import NbfeatError


def relative_depth(models: list[str]) -> np.ndarray:
    """Each representation's position among its model's representations, scaled to [0, 1]:
    the fallback where the engine did not record the block's own depth (a `depth` attr).

    The representations come in extraction order (shallow to deep for `layers=[0.25, ..., 1.0]`
    or a list of blocks); a model with one representation sits at 1.0.
    """
    out = np.zeros(len(models))
    for m in dict.fromkeys(models):
        idx = [i for i, mm in enumerate(models) if mm == m]
        out[idx] = np.linspace(0.0, 1.0, len(idx)) if len(idx) > 1 else 1.0
    return out


def rep_coords(labels: list[str], models: list[str], layers: list[str], depths: Any = None) -> dict[str, Any]:
    """Coords along `rep`; `depths` (None where unknown) wins over the position among the compared layers."""
    fallback = relative_depth(models)
    if depths is not None:
        depths = [fallback[i] if d is None else d for i, d in enumerate(depths)]
    return {
        "rep": labels,
        "model": ("rep", models),
        "layer": ("rep", layers),
        "depth": ("rep", np.asarray(depths if depths is not None else fallback, dtype=float)),
    }


@dataclass(frozen=True)
class BrainScores:
    """Scores of every representation against every target.

    - `scores`: DataArray (`rep`, `target`). `rep` is the label "model/layer"; coords `model`,
      `layer` and `depth` (relative depth in the model, 0 to 1, see `relative_depth`). RSA: the
      correlation of the RDMs (mean over the target's individual RDMs); encoding: the median
      over the target's neuroids of the held-out Pearson r.
    - `ci`: DataArray (`bound`, `rep`, `target`), bound = "low"/"high", from bootstrapping
      samples (RSA with `bootstrap=`); None otherwise.
    - `ceiling`: Dataset over `target` with `lower` and `upper` (RSA: leave-one-out bounds;
      encoding: the 2.5 and 97.5 percentiles over split-half splits of the median r ceiling),
      None without repeats / individual RDMs.
    - `normalized`: scores divided by the ceiling (RSA: by `upper`; encoding: per neuroid by
      its r ceiling, then the median), None without a ceiling.
    - `details`: encoding only, a Dataset with per-neuroid `r`, `r2` (`rep`, `neuroid`),
      `alpha` (`rep`, `fold`, `neuroid`), `predictions` (`rep`, `sample`, `neuroid`) when
      asked for, `test_fold` (`sample`), and the ceiling per neuroid.
    - `sources`: one dict per `rep` (same order): `model`, `layer`, `node` (DataTree path),
      `key` (dict inputs), `variable` and `isel` (e.g. {"layer": 3}): where the representation
      came from in the features, so a heatmap cell (rep i, target j) leads back to the layer.
    - `method`: "rsa" or "encoding"; `attrs`: the settings (corr, metric, cv, ...).
    """

    scores: xr.DataArray
    method: str
    sources: tuple[dict[str, Any], ...]
    ci: xr.DataArray | None = None
    ceiling: xr.Dataset | None = None
    normalized: xr.DataArray | None = None
    details: xr.Dataset | None = None
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def table(self) -> Any:
        """Long form: one row per (model, layer, target) with score, CI, ceiling, normalized."""
        df = self.scores.to_dataframe(name="score").reset_index()
        cols = ["model", "layer", "depth", "target", "score"]
        if self.ci is not None:
            df["ci_low"] = self.ci.sel(bound="low").transpose("rep", "target").values.ravel()
            df["ci_high"] = self.ci.sel(bound="high").transpose("rep", "target").values.ravel()
            cols += ["ci_low", "ci_high"]
        if self.ceiling is not None:
            lo = dict(zip(self.ceiling["target"].values, self.ceiling["lower"].values))
            hi = dict(zip(self.ceiling["target"].values, self.ceiling["upper"].values))
            df["ceiling_lower"] = df["target"].map(lo)
            df["ceiling_upper"] = df["target"].map(hi)
            cols += ["ceiling_lower", "ceiling_upper"]
        if self.normalized is not None:
            df["normalized"] = self.normalized.transpose("rep", "target").values.ravel()
            cols.append("normalized")
        return df[cols]

    @property
    def best(self) -> Any:
        """The best layer of each model for each target: model, target, layer, depth, score."""
        df = self.table
        idx = df.groupby(["model", "target"], sort=False)["score"].idxmax()
        return df.loc[idx.dropna().astype(int), ["model", "target", "layer", "depth", "score"]].reset_index(drop=True)

    def source_of(self, rep: str) -> dict[str, Any]:
        """Where the representation labelled `rep` came from (see `sources`)."""
        labels = [str(v) for v in self.scores["rep"].values]
        if rep not in labels:
            from nbfeat.errors import did_you_mean

            raise NbfeatError(f"No representation {rep!r} here.{did_you_mean(rep, labels)}")
        return self.sources[labels.index(rep)]

    def plot(self, target: str | None = None, ax: Any = None, **kwargs: Any) -> Any:
        """Score against relative depth, one line per model (see `plot_profile`)."""
        from nbfeat.brain.profile import plot_profile

        return plot_profile(self, target=target, ax=ax, **kwargs)

    def plot_matrix(self, ax: Any = None, **kwargs: Any) -> Any:
        """Heatmap: targets x layers (see `plot_brain_matrix`)."""
        from nbfeat.brain.profile import plot_brain_matrix

        return plot_brain_matrix(self, ax=ax, **kwargs)

    def __repr__(self) -> str:
        return f"BrainScores(method={self.method!r}, {self.scores.sizes['rep']} representations x {self.scores.sizes['target']} targets)\n{self.scores.to_pandas().round(3).to_string()}"

    def _repr_html_(self) -> str:
        from nbfeat.analysis.html import result_html

        frame = self.scores.to_pandas()
        frame.index = [str(v) for v in self.scores["rep"].values]
        what = "RSA" if self.method == "rsa" else "Encoding (held-out r)"
        note = "; ".join(f"{k}={v}" for k, v in self.attrs.items())
        return result_html(f"{what}: {frame.shape[0]} representations x {frame.shape[1]} targets", frame, self.plot_matrix, note)
