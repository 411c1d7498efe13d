"""Pair samples across inputs by their `sample` id, and nothing else.

Every comparison in nbfeat (RSA, CKA, `compare`, encoding models) goes through `join_samples`:
an inner join on the `sample` coordinate, in the order of the first input. Samples missing
from some input are dropped with a warning that says how many; no shared sample is an error;
a repeated id is refused (which of the two rows would be "the" sample?). No other dim is ever
aligned, so representations with different channel sizes (layer3 vs layer4, two models) pair
up without complaint.

>>> a, b = join_samples([da1, da2], ["layer3", "layer4"])     # doctest: +SKIP
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from nbfeat.errors import NbfeatError

SAMPLE = "sample"
SECOND = "sample_"


class SampleMismatchWarning(UserWarning):
    """Some samples were in one input and not in another, and were left out."""


def sample_ids(da: xr.DataArray, what: str = "input", dim: str = SAMPLE) -> pd.Index | None:
    """The ids on `dim` as a pandas Index, None when the array has no such coordinate.

    Refuses duplicated ids with the ids it found twice.
    """
    if dim not in da.dims:
        raise NbfeatError(f"{what} needs a '{dim}' dim; it has dims {tuple(da.dims)}.")
    if dim not in da.coords:
        return None
    ids = pd.Index(np.asarray(da[dim].values))
    if not ids.is_unique:
        dup = ids[ids.duplicated()].unique()
        shown = ", ".join(repr(str(v)) for v in dup[:3]) + (", ..." if len(dup) > 3 else "")
        raise NbfeatError(
            f"{what} has repeated sample ids ({len(dup)} repeated: {shown}). Sample ids must be unique: "
            f"drop the copies (da.drop_duplicates('sample')) or give each row its own id."
        )
    return ids


def _stacklevel() -> int:
    # point the warning at the first frame outside nbfeat, so it reads as the user's line
    import sys

    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("nbfeat"):
        frame = frame.f_back
        level += 1
    return level


def shared_ids(indexes: Sequence[pd.Index], labels: Sequence[str], what: str) -> pd.Index:
    """The inner join of several id sets, in the order of the first; warns about the dropped."""
    common = indexes[0]
    for ix in indexes[1:]:
        common = common[common.isin(ix)]
    if len(common) == 0:
        examples = "; ".join(f"{lab}: {', '.join(repr(str(v)) for v in ix[:2])}" for lab, ix in zip(labels, indexes))
        raise NbfeatError(f"{what}: no sample id is shared by all inputs ({examples}). Are the ids from the same stimulus set?")
    dropped = {lab: len(ix) - len(common) for lab, ix in zip(labels, indexes) if len(ix) != len(common)}
    if dropped:
        parts = ", ".join(f"{n} of {lab}" for lab, n in dropped.items())
        warnings.warn(
            f"{what}: {len(common)} samples are shared; left out the ones not in every input ({parts}).",
            SampleMismatchWarning,
            stacklevel=_stacklevel(),
        )
    return common


def join_samples(arrays: Sequence[xr.DataArray], labels: Sequence[str] | None = None, what: str = "This comparison") -> list[xr.DataArray]:
    """The arrays on their shared samples (inner join on `sample` ids), in the first one's order.

    RDMs (dims `sample`, `sample_`) are subset on both axes. Arrays without `sample` ids pair
    by position, which needs equal sizes (and all of them without ids).

    >>> a, b = join_samples([feats, responses], ["features", "responses"])   # doctest: +SKIP
    """
    labels = list(labels) if labels is not None else [str(a.name) if a.name is not None else f"input {i}" for i, a in enumerate(arrays)]
    arrays = [as_sample_rdm(a, lab) if SECOND in a.dims else a for a, lab in zip(arrays, labels)]
    ids = [sample_ids(a, f"{what} ('{lab}')") for a, lab in zip(arrays, labels)]
    if all(ix is None for ix in ids):
        sizes = {a.sizes[SAMPLE] for a in arrays}
        if len(sizes) > 1:
            raise NbfeatError(f"{what}: inputs have {sorted(sizes)} samples and no 'sample' ids to pair them by; give them sample coords.")
        return list(arrays)
    if any(ix is None for ix in ids):
        missing = [lab for lab, ix in zip(labels, ids) if ix is None]
        raise NbfeatError(f"{what}: {', '.join(missing)} has no 'sample' ids while the others do; assign them (da.assign_coords(sample=ids)).")
    common = shared_ids([ix for ix in ids if ix is not None], labels, what)
    out = []
    for a, ix in zip(arrays, ids):
        assert ix is not None
        if ix.equals(common):
            out.append(a)
            continue
        pos = ix.get_indexer(common)
        sel = {SAMPLE: pos, SECOND: pos} if SECOND in a.dims else {SAMPLE: pos}
        out.append(a.isel(sel))
    return out


def as_sample_rdm(r: xr.DataArray, what: str = "RDM") -> xr.DataArray:
    """An RDM whose second axis is in the same sample order as the first (reordered if needed)."""
    if SECOND not in r.dims or SAMPLE not in r.dims:
        raise NbfeatError(f"{what}: an RDM has dims ('sample', 'sample_'); got {tuple(r.dims)}.")
    if r.sizes[SAMPLE] != r.sizes[SECOND]:
        raise NbfeatError(f"{what}: an RDM is square; got {r.sizes[SAMPLE]} x {r.sizes[SECOND]} samples.")
    first = sample_ids(r, what)
    second = sample_ids(r, what, SECOND)
    if first is None or second is None:
        return r
    if first.equals(second):
        return r
    if not second.isin(first).all() or len(second) != len(first):
        raise NbfeatError(f"{what}: the ids on 'sample_' are not the ids on 'sample'; an RDM lists the same samples on both axes.")
    return r.isel({SECOND: second.get_indexer(first)})

