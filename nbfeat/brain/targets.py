"""Brain and behavioural targets as labelled xarray, and two-way conversion with rsatoolbox.

- **Responses**: a DataArray with dims (`sample`, `neuroid`) and, where stimuli were shown
  more than once, a `repeat` dim: (`sample`, `neuroid`, `repeat`). `sample` holds the stimulus
  ids (the same ids the features carry), `neuroid` the recording sites (voxels, units,
  electrodes); extra coords on `neuroid` (`region`, `subject`) group them.
- **Target RDMs**: a DataArray with dims (`sample`, `sample_`), plus `target` (one RDM per ROI,
  behaviour, ...) and an individual dim `subject` or `repeat` (several measurements of the same
  target, which give the noise ceiling). The second axis repeats the sample coords with a
  trailing underscore, as `nbfeat.analysis.rdm.rdm` does.

>>> resp = responses(values, samples=ids, neuroids=[f"v{i}" for i in range(50)])  # doctest: +SKIP
>>> rdms = target_rdms(resp, metric="correlation", by="region")                    # doctest: +SKIP
>>> ds = to_rsatoolbox(resp); back = from_rsatoolbox(ds)                           # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from nbfeat.errors import NbfeatError

SAMPLE = "sample"
SECOND = "sample_"
NEUROID = "neuroid"
REPEAT = "repeat"
TARGET = "target"
SUBJECT = "subject"
INDIVIDUAL_DIMS = (SUBJECT, REPEAT)
# rsatoolbox descriptors that commonly name the stimulus, tried in this order
ID_DESCRIPTORS = ("sample", "stimulus", "stim", "conds", "condition", "image", "index")


def _rsatoolbox() -> Any:
    try:
        import rsatoolbox
        import rsatoolbox.data
        import rsatoolbox.rdm
    except ImportError as exc:
        from nbfeat.errors import MissingDependencyError

        raise MissingDependencyError("This needs the optional package 'rsatoolbox': pip install rsatoolbox  (or pip install 'nbfeat[brain]')") from exc
    return rsatoolbox


def responses(
    values: Any,
    samples: Sequence[Any],
    neuroids: Sequence[Any] | None = None,
    *,
    name: str = "responses",
    neuroid_coords: Mapping[str, Sequence[Any]] | None = None,
    sample_coords: Mapping[str, Sequence[Any]] | None = None,
    attrs: Mapping[str, Any] | None = None,
) -> xr.DataArray:
    """Labelled responses from an array (sample, neuroid) or (sample, neuroid, repeat).

    `samples`: the stimulus ids, matching the features' `sample` coord. `neuroid_coords`, e.g.
    {"region": [...]}, label the neuroids for grouping (`by="region"`).

    >>> r = responses(np.zeros((3, 2)), samples=["a.png", "b.png", "c.png"])
    >>> r.dims
    ('sample', 'neuroid')
    """
    arr = np.asarray(values)
    if arr.ndim not in (2, 3):
        raise NbfeatError(f"responses are (sample, neuroid) or (sample, neuroid, repeat); got an array of shape {arr.shape}.")
    dims = (SAMPLE, NEUROID, REPEAT)[: arr.ndim]
    ids = [str(s) for s in samples]
    if len(ids) != arr.shape[0]:
        raise NbfeatError(f"responses: {len(ids)} sample ids for {arr.shape[0]} rows.")
    coords: dict[str, Any] = {SAMPLE: ids}
    coords[NEUROID] = [str(v) for v in neuroids] if neuroids is not None else [f"n{i}" for i in range(arr.shape[1])]
    if arr.ndim == 3:
        coords[REPEAT] = np.arange(arr.shape[2])
    for k, v in (neuroid_coords or {}).items():
        coords[k] = (NEUROID, np.asarray(v))
    for k, v in (sample_coords or {}).items():
        coords[k] = (SAMPLE, np.asarray(v))
    out = xr.DataArray(arr, dims=dims, coords=coords, name=name, attrs=dict(attrs or {}))
    return as_responses(out)


def as_responses(obj: Any, sample: str | None = None) -> xr.DataArray:
    """A DataArray, a pandas DataFrame (index: sample ids, columns: neuroids) or an
    `rsatoolbox.data.Dataset` -> checked responses (sample, neuroid[, repeat])."""
    if type(obj).__module__.startswith("rsatoolbox"):
        obj = from_rsatoolbox(obj, sample=sample)
    if isinstance(obj, pd.DataFrame):
        obj = xr.DataArray(obj.to_numpy(), dims=(SAMPLE, NEUROID), coords={SAMPLE: obj.index.astype(str), NEUROID: obj.columns.astype(str)}, name="responses")
    if isinstance(obj, xr.Dataset) and len(obj.data_vars) == 1:
        obj = obj[next(iter(obj.data_vars))]
    if not isinstance(obj, xr.DataArray):
        raise NbfeatError(f"responses must be a DataArray (sample, neuroid[, repeat]), a DataFrame or an rsatoolbox Dataset, not {type(obj).__name__}.")
    if SAMPLE not in obj.dims or NEUROID not in obj.dims:
        raise NbfeatError(f"responses need dims 'sample' and 'neuroid' (and optionally 'repeat'); got {tuple(obj.dims)}. Build them with nbfeat.brain.responses(values, samples=...).")
    extra = [d for d in obj.dims if d not in (SAMPLE, NEUROID, REPEAT)]
    if extra:
        raise NbfeatError(f"responses have an unexpected dim {extra[0]!r}: keep (sample, neuroid[, repeat]); select or stack the rest.")
    if SAMPLE not in obj.coords:
        raise NbfeatError("responses need sample ids (a 'sample' coord) to pair with the features.")
    order = [d for d in (SAMPLE, NEUROID, REPEAT) if d in obj.dims]
    return obj.transpose(*order)


def _second_axis(coords: Mapping[Any, Any]) -> dict[str, Any]:
    return {f"{k}_": xr.Variable((SECOND,), np.asarray(v)) for k, v in coords.items()}


def rdms(
    values: Any,
    samples: Sequence[Any],
    targets: Sequence[Any] | None = None,
    *,
    metric: str = "",
    name: str = "target_rdm",
) -> xr.DataArray:
    """Labelled target RDM(s) from square matrices: (n, n), or (k, n, n) with `targets` names.

    >>> r = rdms(np.ones((3, 3)) - np.eye(3), samples=["a", "b", "c"])
    >>> r.dims
    ('sample', 'sample_')
    """
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim == 2:
        arr = arr[None]
        squeeze = targets is None
    else:
        squeeze = False
    if arr.ndim != 3 or arr.shape[1] != arr.shape[2]:
        raise NbfeatError(f"RDMs are square (n, n) or (k, n, n) matrices; got shape {np.asarray(values).shape}.")
    ids = [str(s) for s in samples]
    if len(ids) != arr.shape[1]:
        raise NbfeatError(f"rdms: {len(ids)} sample ids for {arr.shape[1]} x {arr.shape[1]} matrices.")
    names = [str(t) for t in targets] if targets is not None else [name] * arr.shape[0]
    coords = {SAMPLE: ids, SECOND: ids, TARGET: names}
    out = xr.DataArray(arr, dims=(TARGET, SAMPLE, SECOND), coords=coords, name=name, attrs={"rdm_metric": metric} if metric else {})
    return out.isel({TARGET: 0}, drop=True) if squeeze else out


def target_rdms(resp: Any, metric: str = "correlation", by: str | None = None, per_repeat: bool | None = None) -> xr.DataArray:
    """RDMs of responses over samples: one per `by` group of neuroids (e.g. "region"), else one.

    With a `repeat` dim, `per_repeat=True` (the default then) keeps one RDM per repeat along
    `repeat`, which gives the leave-one-out noise ceiling; `False` averages repeats first.
    Dims: (target, [repeat,] sample, sample_).

    >>> target_rdms(resp, "correlation", by="region").dims      # doctest: +SKIP
    ('target', 'repeat', 'sample', 'sample_')
    """
    from nbfeat.analysis.rdm import check_metric, rdm_array

    check_metric(metric)
    resp = as_responses(resp)
    has_rep = REPEAT in resp.dims
    if per_repeat is None:
        per_repeat = has_rep
    if has_rep and not per_repeat:
        resp = resp.mean(REPEAT)
    if per_repeat and not has_rep:
        raise NbfeatError("per_repeat=True needs responses with a 'repeat' dim.")
    if by is not None:
        if by not in resp.coords or resp[by].dims != (NEUROID,):
            have = [str(k) for k, v in resp.coords.items() if v.dims == (NEUROID,) and k != NEUROID]
            raise NbfeatError(f"by={by!r}: not a coord on 'neuroid' (have: {', '.join(have) or 'none'}).")
        groups = list(pd.unique(np.asarray(resp[by].values)))
        parts = [(str(g), resp.isel({NEUROID: np.flatnonzero(np.asarray(resp[by].values) == g)})) for g in groups]
    else:
        parts = [(str(resp.name or "responses"), resp)]
    mats = []
    for _, part in parts:
        x = np.asarray(part.values, dtype=np.float64)
        if np.isnan(x).any():
            raise NbfeatError("responses contain NaN; drop or impute those neuroids before making RDMs.")
        if per_repeat:
            mats.append(np.stack([rdm_array(x[:, :, k], metric) for k in range(x.shape[2])]))
        else:
            mats.append(rdm_array(x, metric))
    arr = np.stack(mats)
    scoords = {k: v.values for k, v in resp.coords.items() if v.dims == (SAMPLE,)}
    dims = (TARGET, REPEAT, SAMPLE, SECOND) if per_repeat else (TARGET, SAMPLE, SECOND)
    coords: dict[str, Any] = {TARGET: [p[0] for p in parts], **{k: (SAMPLE, v) for k, v in scoords.items()}, **_second_axis(scoords)}
    if per_repeat:
        coords[REPEAT] = resp[REPEAT].values
    return xr.DataArray(arr, dims=dims, coords=coords, name="target_rdm", attrs={"rdm_metric": metric})


def as_target_rdms(obj: Any, metric: str = "correlation") -> xr.DataArray:
    """Anything that names targets -> RDMs with dims (target, [subject|repeat,] sample, sample_).

    Accepts a labelled RDM DataArray, responses (their RDMs are made with `metric`), an
    `rsatoolbox.rdm.RDMs` or `rsatoolbox.data.Dataset`, or a dict name -> any of these.
    """
    if isinstance(obj, Mapping):
        parts = []
        for key, value in obj.items():
            r = as_target_rdms(value, metric)
            if r.sizes[TARGET] != 1:
                raise NbfeatError(f"targets[{key!r}] holds {r.sizes[TARGET]} targets; give one RDM (or set of individual RDMs) per key.")
            parts.append(r.assign_coords({TARGET: [str(key)]}))
        try:
            return xr.concat(parts, dim=TARGET, join="exact", coords="minimal", compat="override")
        except ValueError as exc:
            raise NbfeatError("targets in a dict must share their samples (same ids, same order) and individual dims.") from exc
    if type(obj).__module__.startswith("rsatoolbox"):
        obj = from_rsatoolbox(obj)
    if isinstance(obj, xr.Dataset) and len(obj.data_vars) == 1:
        obj = obj[next(iter(obj.data_vars))]
    if not isinstance(obj, xr.DataArray):
        raise NbfeatError(f"targets must be RDMs (a DataArray with dims sample, sample_), responses (sample, neuroid) or rsatoolbox objects, not {type(obj).__name__}.")
    if NEUROID in obj.dims:
        return target_rdms(obj, metric)
    if SAMPLE not in obj.dims or SECOND not in obj.dims:
        raise NbfeatError(f"target RDMs have dims (sample, sample_) (plus target/subject); got {tuple(obj.dims)}. Make them with nbfeat.brain.rdms(matrix, samples=...).")
    ind = [d for d in INDIVIDUAL_DIMS if d in obj.dims]
    if len(ind) > 1:
        raise NbfeatError("target RDMs have both 'subject' and 'repeat'; stack them into one (e.g. .stack(subject=('subject', 'repeat'))).")
    extra = [d for d in obj.dims if d not in (TARGET, SAMPLE, SECOND, *ind)]
    if extra:
        raise NbfeatError(f"target RDMs have an unexpected dim {extra[0]!r}: use 'target' for different targets and 'subject' or 'repeat' for measurements of one.")
    if TARGET not in obj.dims:
        obj = obj.expand_dims({TARGET: [str(obj.name or "target")]})
    if SAMPLE not in obj.coords:
        raise NbfeatError("target RDMs need sample ids (a 'sample' coord) to pair with the features.")
    if SECOND not in obj.coords:
        obj = obj.assign_coords({SECOND: (SECOND, np.asarray(obj[SAMPLE].values))})
    return obj.transpose(TARGET, *ind, SAMPLE, SECOND)


# --- rsatoolbox ------------------------------------------------------------------------------

def to_rsatoolbox(da: xr.DataArray) -> Any:
    """Responses -> `rsatoolbox.data.Dataset`; RDMs -> `rsatoolbox.rdm.RDMs`.

    Sample coords become obs/pattern descriptors (`sample` holds the ids), neuroid coords
    channel descriptors, `repeat` an obs descriptor, `target`/`subject` rdm descriptors.
    """
    rt = _rsatoolbox()
    if NEUROID in da.dims:
        resp = as_responses(da)
        reps = resp.sizes.get(REPEAT, 1)
        scoords = {str(k): np.asarray(v.values) for k, v in resp.coords.items() if v.dims == (SAMPLE,)}
        if REPEAT in resp.dims:
            x = np.asarray(resp.transpose(REPEAT, SAMPLE, NEUROID).values).reshape(reps * resp.sizes[SAMPLE], resp.sizes[NEUROID])
            obs = {k: np.tile(v, reps) for k, v in scoords.items()}
            obs[REPEAT] = np.repeat(np.asarray(resp[REPEAT].values), resp.sizes[SAMPLE])
        else:
            x = np.asarray(resp.values)
            obs = scoords
        chan = {str(k): np.asarray(v.values) for k, v in resp.coords.items() if v.dims == (NEUROID,)}
        return rt.data.Dataset(x, descriptors={"name": str(resp.name or "responses")}, obs_descriptors=obs, channel_descriptors=chan)
    r = as_target_rdms(da)
    lead = [d for d in r.dims if d not in (SAMPLE, SECOND)]
    stacked = r.stack(_rdm=lead).transpose("_rdm", SAMPLE, SECOND)
    mats = np.asarray(stacked.values, dtype=np.float64)
    rdm_desc = {d: list(np.asarray(stacked[d].values)) for d in lead}
    pat = {str(k): list(np.asarray(v.values)) for k, v in r.coords.items() if v.dims == (SAMPLE,)}
    return rt.rdm.RDMs(mats, dissimilarity_measure=str(r.attrs.get("rdm_metric", "")) or None, rdm_descriptors=rdm_desc, pattern_descriptors=pat)


def _id_descriptor(descs: Mapping[str, Any], sample: str | None, what: str) -> str:
    if sample is not None:
        if sample not in descs:
            raise NbfeatError(f"{what} has no descriptor {sample!r} (has: {', '.join(descs) or 'none'}).")
        return sample
    for name in ID_DESCRIPTORS:
        if name in descs:
            return name
    raise NbfeatError(f"{what}: no descriptor names the stimuli (looked for {', '.join(ID_DESCRIPTORS)}); pass sample='<descriptor>'.")


def from_rsatoolbox(obj: Any, sample: str | None = None) -> xr.DataArray:
    """`rsatoolbox.data.Dataset` -> responses; `rsatoolbox.rdm.RDMs` -> target RDMs.

    `sample`: the descriptor that holds the stimulus ids (default: the first of `sample`,
    `stimulus`, `stim`, `conds`, `condition`, `image`, `index` that exists). A Dataset whose
    ids repeat (each stimulus measured several times) gets a `repeat` dim, in the order of its
    `repeat` descriptor or of appearance.
    """
    rt = _rsatoolbox()
    if isinstance(obj, rt.rdm.RDMs):
        key = _id_descriptor(obj.pattern_descriptors, sample, "these RDMs' pattern_descriptors")
        ids = [str(v) for v in obj.pattern_descriptors[key]]
        mats = obj.get_matrices()
        pcoords = {("sample" if k == key else k): np.asarray(v) for k, v in obj.pattern_descriptors.items() if k != "index" or k == key}
        pcoords["sample"] = np.asarray(ids)
        descs = {k: list(v) for k, v in obj.rdm_descriptors.items() if k != "index"}
        coords: dict[str, Any] = {k: (SAMPLE, v) for k, v in pcoords.items()}
        coords.update(_second_axis(pcoords))
        tgt = [str(t) for t in descs[TARGET]] if TARGET in descs else None
        ind_name = next((d for d in INDIVIDUAL_DIMS if d in descs), None)
        ind = descs.get(ind_name) if ind_name else None
        if tgt is None and ind is None:
            # several RDMs without a target descriptor: measurements of one target (subjects)
            tgt = [str(obj.descriptors.get("name", "target"))] * len(mats)
            ind = [str(i) for i in range(len(mats))] if len(mats) > 1 else None
            ind_name = SUBJECT if ind is not None else None
        elif tgt is None:
            tgt = [str(obj.descriptors.get("name", "target"))] * len(mats)
        targets = list(pd.unique(np.asarray(tgt)))
        if ind is None:
            arr = np.stack([mats[tgt.index(t)] for t in targets])
            return xr.DataArray(arr, dims=(TARGET, SAMPLE, SECOND), coords={TARGET: targets, **coords}, name="target_rdm", attrs={"rdm_metric": str(obj.dissimilarity_measure or "")})
        inds = list(pd.unique(np.asarray(ind)))
        arr = np.full((len(targets), len(inds), len(ids), len(ids)), np.nan)
        for m, t, i in zip(mats, tgt, ind):
            arr[targets.index(t), inds.index(i)] = m
        if np.isnan(arr).all(axis=(2, 3)).any():
            raise NbfeatError(f"These RDMs do not have every {ind_name} for every target; give the full grid.")
        assert ind_name is not None
        return xr.DataArray(arr, dims=(TARGET, ind_name, SAMPLE, SECOND), coords={TARGET: targets, ind_name: inds, **coords}, name="target_rdm", attrs={"rdm_metric": str(obj.dissimilarity_measure or "")})
    if isinstance(obj, rt.data.dataset.DatasetBase):
        obs = obj.obs_descriptors
        key = _id_descriptor(obs, sample, "this Dataset's obs_descriptors")
        ids = pd.Index([str(v) for v in obs[key]])
        x = np.asarray(obj.measurements, dtype=np.float64)
        chan = {k: np.asarray(v) for k, v in obj.channel_descriptors.items()}
        neuroids = [str(v) for v in chan.pop(NEUROID, chan.get("index", np.arange(x.shape[1])))]
        chan.pop("index", None)
        others = {k: np.asarray(v) for k, v in obs.items() if k not in (key, REPEAT, "index")}
        name = str(obj.descriptors.get("name", "responses"))
        if ids.is_unique:
            coords = {SAMPLE: list(ids), NEUROID: neuroids, **{k: (NEUROID, v) for k, v in chan.items()}, **{k: (SAMPLE, v) for k, v in others.items()}}
            return xr.DataArray(x, dims=(SAMPLE, NEUROID), coords=coords, name=name)
        uniq = list(pd.unique(ids))
        counts = ids.value_counts()
        if counts.nunique() != 1:
            raise NbfeatError(f"The stimuli were measured different numbers of times ({counts.min()} to {counts.max()}); nbfeat needs the same number of repeats per sample: subset the Dataset first.")
        k = int(counts.iloc[0])
        order = np.asarray(obs[REPEAT]) if REPEAT in obs else pd.Series(ids).groupby(ids).cumcount().to_numpy()
        rep_values = list(pd.unique(order))
        out = np.full((len(uniq), x.shape[1], k), np.nan)
        pos = pd.Index(uniq).get_indexer(ids)
        rpos = pd.Index(rep_values).get_indexer(order)
        if len(rep_values) != k or (rpos < 0).any():
            raise NbfeatError("The Dataset's 'repeat' descriptor does not give each sample the same repeats.")
        out[pos, :, rpos] = x
        first = pd.Series(np.arange(len(ids))).groupby(pos).first().to_numpy()
        scoords = {kk: (SAMPLE, v[first]) for kk, v in others.items()}
        coords = {SAMPLE: uniq, NEUROID: neuroids, REPEAT: rep_values, **{kk: (NEUROID, v) for kk, v in chan.items()}, **scoords}
        return xr.DataArray(out, dims=(SAMPLE, NEUROID, REPEAT), coords=coords, name=name)
    raise NbfeatError(f"from_rsatoolbox takes an rsatoolbox.data.Dataset or rsatoolbox.rdm.RDMs, not {type(obj).__name__}.")
