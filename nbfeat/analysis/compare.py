"""Compare representations across models and layers with RSA or linear CKA.

>>> res = nbfeat.compare(dt, method="rsa", rsa_corr="spearman")     # doctest: +SKIP
>>> res.matrix            # DataArray (rep, rep_) with model/layer coords on both axes
>>> res.table             # DataFrame: model1, layer1, model2, layer2, score (one row per pair)
>>> res.plot()            # heatmap
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.analysis._common import SAMPLE, STACK_DIMS, is_dask, matrix, node_dataset
from nbfeat.errors import NbfeatError

METHODS = ("rsa", "cka")
# up to this many samples, CKA caches each representation's normalised centred Gram matrix
# (N x N float64) and scores every pair with one dot product
GRAM_CACHE_MAX_SAMPLES = 2048


@dataclass(frozen=True)
class Representation:
    """One thing to compare: a (sample, ...) DataArray and where it came from.

    `source`: how to get the array back from the input: `node` (DataTree path, "" for a
    Dataset/dict/DataArray input), `key` (the dict key, when the input was a dict),
    `variable` (its name) and `isel` (e.g. {"layer": 3} for one depth of a stacked node).
    """

    model: str
    layer: str
    data: xr.DataArray
    source: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def label(self) -> str:
        return "/".join(p for p in (self.model, self.layer) if p) or "?"


@dataclass(frozen=True)
class Comparison:
    """What `compare` returns.

    - `matrix`: DataArray with dims (`rep`, `rep_`); coords `rep` (label "model/layer"),
      `model`, `layer` on the first axis and `rep_`, `model_`, `layer_` on the second.
    - `table`: long-form DataFrame, one row per unordered pair (THINGSvision's layout):
      model1, layer1, model2, layer2, score.
    - `method`: "rsa" or "cka".
    - `sources`: one dict per row/column of the matrix (same order as `rep`), saying where
      that representation came from in the input: `model`, `layer`, `node` (DataTree path,
      "" otherwise), `key` (dict inputs), `variable` and `isel` (e.g. {"layer": 3}). A cell
      (i, j) of the heatmap compares `sources[i]` with `sources[j]`; `source_of("rep label")`
      looks one up by label.

    In a notebook it shows as an HTML table with the heatmap inline (`_repr_html_`).
    """

    matrix: xr.DataArray
    table: Any
    method: str
    sources: tuple[dict[str, Any], ...] = ()

    def plot(self, ax: Any = None, **kwargs: Any) -> Any:
        """Heatmap of the matrix, with separators between models; returns the Figure."""
        from nbfeat.analysis.plots import plot_comparison

        return plot_comparison(self, ax=ax, **kwargs)

    def source_of(self, rep: str) -> dict[str, Any]:
        """Where the representation labelled `rep` (e.g. "timm:resnet18/layer4") came from."""
        labels = [str(v) for v in self.matrix["rep"].values]
        if rep not in labels:
            from nbfeat.errors import did_you_mean

            raise NbfeatError(f"No representation {rep!r} in this comparison.{did_you_mean(rep, labels)}")
        return self.sources[labels.index(rep)]

    def _frame(self) -> Any:
        import pandas as pd

        labels = [str(v) for v in self.matrix["rep"].values]
        return pd.DataFrame(np.asarray(self.matrix.values), index=labels, columns=labels)

    def __repr__(self) -> str:
        return f"Comparison(method={self.method!r}, {self.matrix.sizes['rep']} representations)\n{self._frame().round(3).to_string()}"

    def _repr_html_(self) -> str:
        from nbfeat.analysis.html import result_html

        title = f"Comparison: {self.method.upper()} between {self.matrix.sizes['rep']} representations ({self.matrix.attrs.get('n_samples', '?')} samples)"
        return result_html(title, self._frame(), self.plot)


def _split(da: xr.DataArray, model: str, layer: str, source: dict[str, Any] | None = None) -> list[Representation]:
    """A variable stacked over `layer` (or `call`) -> one representation per entry."""
    source = dict(source or {})
    source.setdefault("variable", str(da.name) if da.name is not None else layer)
    source.setdefault("isel", {})
    if isinstance(da.attrs.get("depth"), float | int):  # the block's relative depth, from the engine
        source.setdefault("depth", float(da.attrs["depth"]))
    for dim in STACK_DIMS:
        if dim in da.dims:
            values = da[dim].values if dim in da.coords else np.arange(da.sizes[dim])
            depths = _stacked_depths(da) if dim == "layer" else None
            out = []
            for i, v in enumerate(values):
                tag = f"[{v}]" if dim == "layer" else f"[{dim}={v}]"
                sub = {**source, "isel": {**source["isel"], dim: i}}
                if depths is not None:
                    sub["depth"] = depths[i]
                out += _split(da.isel({dim: i}, drop=True), model, f"{layer}{tag}", sub)
            return out
    return [Representation(model, layer, da, source)]


def _stacked_depths(da: xr.DataArray) -> list[float] | None:
    import json

    try:
        depths = json.loads(da.attrs.get("depths", ""))
    except ValueError:
        return None
    return [float(d) for d in depths] if isinstance(depths, list) and len(depths) == da.sizes["layer"] else None


def _from_dataset(ds: xr.Dataset, model: str, names: list[Hashable] | None = None, node: str = "") -> list[Representation]:
    out = []
    for name in names if names is not None else list(ds.data_vars):
        if SAMPLE in ds[name].dims:
            out += _split(ds[name], model, str(name), {"node": node, "variable": str(name)})
    return out


def _model_of(node: xr.DataTree, root: xr.DataTree) -> str:
    """The nearest `model` attr up the tree, else the first path part under the root."""
    cur: xr.DataTree | None = node
    while cur is not None:
        if "model" in cur.attrs:
            return str(cur.attrs["model"])
        if cur is root:
            break
        cur = cur.parent
    rel = node.relative_to(root)
    return "" if rel == "." else rel.split("/")[0].replace("--", "/")


def _from_tree(dt: xr.DataTree) -> list[Representation]:
    out = []
    for node in dt.subtree:
        names = list(node.to_dataset(inherit=False).data_vars)
        if names:
            rel = node.relative_to(dt)
            path = "/" if rel == "." else "/" + rel
            out += _from_dataset(node_dataset(node), _model_of(node, dt), names, path)
    return out


def collect(data: Any) -> list[Representation]:
    """Everything `compare` accepts -> representations, in order.

    - Dataset: its variables (model = the `model` attr).
    - DataTree: every variable of every node (model = nearest `model` attr, else the child
      node name, `--` read back as `/`).
    - dict: name -> DataArray (model = name, layer = the array's name), or name -> Dataset /
      DataTree (model = name for all its variables).
    - DataArray: one representation (split over `layer`).
    Variables stacked over `layer`/`call` become one representation each: `block[3]`.
    """
    if isinstance(data, xr.DataTree):
        return _from_tree(data)
    if isinstance(data, xr.Dataset):
        return _from_dataset(data, str(data.attrs.get("model", "")))
    if isinstance(data, xr.DataArray):
        return _split(data, str(data.attrs.get("model", "")), str(data.name) if data.name is not None else "", {"node": ""})
    if isinstance(data, Mapping):
        out = []
        for key, value in data.items():
            if isinstance(value, xr.DataArray):
                out += _split(value, str(key), str(value.name) if value.name is not None else "", {"key": key, "node": ""})
            elif isinstance(value, xr.Dataset | xr.DataTree):
                out += [Representation(str(key), r.layer, r.data, {**r.source, "key": key}) for r in collect(value)]
            else:
                raise NbfeatError(f"compare: the value for {key!r} is a {type(value).__name__}; use a DataArray or Dataset.")
        return out
    raise NbfeatError(
        f"compare() takes a Dataset, a DataTree or a dict of DataArrays, not {type(data).__name__}."
    )


def _align(reps: list[Representation]) -> list[Representation]:
    """Put every representation on the shared samples (by `sample` id), in the same order.

    Only `sample` is aligned: feature dims differ between layers and models, and must.
    """
    from nbfeat.analysis.align import join_samples

    for r in reps:
        if SAMPLE not in r.data.dims:
            raise NbfeatError(f"compare: '{r.label}' has no 'sample' dim (dims {tuple(r.data.dims)}).")
    joined = join_samples([r.data for r in reps], _unique_labels(reps), "compare()")
    reps = [Representation(r.model, r.layer, a, r.source) for r, a in zip(reps, joined)]
    n = reps[0].data.sizes[SAMPLE]
    if n < 3:
        raise NbfeatError(f"compare needs at least 3 shared samples; found {n}.")
    return reps


def _unique_labels(reps: list[Representation]) -> list[str]:
    seen: dict[str, int] = {}
    labels = []
    for r in reps:
        lab = r.label
        seen[lab] = seen.get(lab, 0) + 1
        labels.append(lab if seen[lab] == 1 else f"{lab}#{seen[lab]}")
    return labels


def _rsa_matrix(xs: list[Any], corr: str, metric: str) -> np.ndarray:
    from nbfeat.analysis.rdm import correlate, rdm_array, standardize, upper

    if corr == "kendall":
        ups = [upper(rdm_array(x, metric)) for x in xs]
        out = np.eye(len(ups))
        for i in range(len(ups)):
            for j in range(i + 1, len(ups)):
                out[i, j] = out[j, i] = correlate(ups[i], ups[j], "kendall")
        return out
    vecs = np.stack([standardize(upper(rdm_array(x, metric)), corr) for x in xs])
    return vecs @ vecs.T


def _centred_gram(x: Any) -> np.ndarray:
    from nbfeat.analysis._common import check_finite

    xc = x - x.mean(axis=0)
    k = xc @ xc.T
    k = np.asarray(k.compute() if is_dask(k) else k)
    check_finite(k)
    norm = np.linalg.norm(k)
    return k / norm if norm > 0 else k


def _cka_matrix(xs: list[Any], cka_method: str, chunk: int) -> np.ndarray:
    from nbfeat.analysis.cka import cross_term, self_term

    r = len(xs)
    n = xs[0].shape[0]
    if cka_method == "auto" and n <= GRAM_CACHE_MAX_SAMPLES:
        grams = [_centred_gram(x).ravel() for x in xs]
        return np.clip(np.array([[a @ b for b in grams] for a in grams]), -1.0, 1.0)
    norms = [self_term(x, cka_method, chunk) for x in xs]
    out = np.eye(r)
    for i in range(r):
        for j in range(i + 1, r):
            den = norms[i] * norms[j]
            out[i, j] = out[j, i] = cross_term(xs[i], xs[j], cka_method, chunk) / den if den > 0 else np.nan
    return out


def compare(
    data: Any,
    targets: Any = None,
    method: str = "rsa",
    rsa_corr: str = "pearson",
    rdm_metric: str = "correlation",
    *,
    pool: Any = None,
    cka_method: str = "auto",
    chunk: int = 2048,
    bootstrap: int = 0,
    ci: float = 0.95,
    seed: int | None = 0,
    target_metric: str | None = None,
) -> Any:
    """Compare every pair of representations (models x layers), or each one with brain targets.

    `data`: a Dataset (its variables), a DataTree (one child per model, each a Dataset or a
    subtree of variables) or a dict name -> DataArray. Variables stacked over `layer` are
    split (`block[3]`); all non-sample dims are flattened into features. `pool` (e.g. "mean")
    pools each representation first, which text token outputs need. Samples are paired by
    their `sample` ids (an inner join; a warning says how many were left out).

    - RSA: RDMs with `rdm_metric` ("correlation", "euclidean", "cosine"), correlated over
      their upper triangles with `rsa_corr` ("pearson", "spearman" or "kendall" = tau-a).
    - CKA: linear CKA, streamed over sample chunks (see nbfeat.analysis.cka); `cka_method`
      "auto", "features" or "gram".

    With `targets` (target RDMs with dims `sample, sample_` and optionally `target` and
    `subject` or `repeat`; or responses, dims `sample, neuroid` and optionally `repeat`, whose
    RDMs are made with `target_metric`, default
    `rdm_metric`): every representation against every target, with `bootstrap` resamples of
    the samples for `ci` confidence intervals and a leave-one-out noise ceiling where the
    targets have several RDMs (subjects or repeats). Returns `nbfeat.brain.BrainScores`;
    see docs/brain.md.

    >>> res = compare({"a": da1, "b": da2}, method="cka")            # doctest: +SKIP
    >>> float(res.matrix.sel(rep="a", rep_="b"))                     # doctest: +SKIP
    >>> compare(dt, target_rdms, rsa_corr="spearman", bootstrap=1000)   # doctest: +SKIP
    """
    import pandas as pd

    from nbfeat.analysis.rdm import check_corr, check_metric

    if isinstance(targets, str):  # compare(data, "cka"): the method, positionally, as before
        method, targets = targets, None
    if method not in METHODS:
        raise NbfeatError(f"Unknown comparison method {method!r}: use 'rsa' or 'cka'.")
    if method == "rsa":
        check_metric(rdm_metric)
        check_corr(rsa_corr)
    reps = collect(data)
    if targets is not None:
        if method != "rsa":
            raise NbfeatError("Against brain targets compare() does RSA; for responses use nbfeat.encode(features, responses).")
        if not reps:
            raise NbfeatError("compare found no variable with a 'sample' dim in the features.")
        reps = _pooled(reps, pool)
        from nbfeat.brain.rsa import rsa_to_targets

        return rsa_to_targets(
            reps, targets, corr=rsa_corr, metric=rdm_metric, target_metric=target_metric,
            bootstrap=bootstrap, ci=ci, seed=seed,
        )
    if len(reps) < 2:
        raise NbfeatError(f"compare needs at least 2 representations; found {len(reps)}.")
    reps = _pooled(reps, pool)
    reps = _align(reps)
    xs = [matrix(r.data, "compare()") for r in reps]
    scores = _rsa_matrix(xs, rsa_corr, rdm_metric) if method == "rsa" else _cka_matrix(xs, cka_method, chunk)

    labels = _unique_labels(reps)
    models = [r.model for r in reps]
    layers = [r.layer for r in reps]
    attrs: dict[str, Any] = {"method": method, "n_samples": int(reps[0].data.sizes[SAMPLE])}
    if method == "rsa":
        attrs.update(rsa_corr=rsa_corr, rdm_metric=rdm_metric)
    mat = xr.DataArray(
        scores,
        dims=("rep", "rep_"),
        coords={
            "rep": labels, "model": ("rep", models), "layer": ("rep", layers),
            "rep_": labels, "model_": ("rep_", models), "layer_": ("rep_", layers),
        },
        name=method,
        attrs=attrs,
    )
    iu = np.triu_indices(len(reps), k=1)
    table = pd.DataFrame(
        {
            "model1": [models[i] for i in iu[0]],
            "layer1": [layers[i] for i in iu[0]],
            "model2": [models[j] for j in iu[1]],
            "layer2": [layers[j] for j in iu[1]],
            "score": scores[iu],
        }
    )
    return Comparison(matrix=mat, table=table, method=method, sources=sources_of(reps))


def sources_of(reps: list[Representation]) -> tuple[dict[str, Any], ...]:
    return tuple({"model": r.model, "layer": r.layer, "node": "", "variable": r.layer, "isel": {}, **r.source} for r in reps)


def _pooled(reps: list[Representation], pool: Any) -> list[Representation]:
    if pool is None:
        return reps
    from nbfeat.analysis.transform import pool as do_pool
    from nbfeat.analysis.transform import poolable

    # representations pooled already (at extraction) are compared as they are
    return [Representation(r.model, r.layer, do_pool(r.data, pool) if poolable(r.data) else r.data, r.source) for r in reps]
