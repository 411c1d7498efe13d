"""Shared helpers: sample coords, (sample x feature) matrices, lazy-or-not arrays, per-variable maps.

Everything here works on numpy and on dask arrays alike; nothing calls `.values` on data.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

import numpy as np
import xarray as xr

from nbfeat.errors import NbfeatError

SAMPLE = "sample"
# dims that name *which* representation, not its features: split or kept, never flattened away
# unless asked
STACK_DIMS = ("layer", "call")
NAN_HINT = "The features contain NaN (padded text tokens?): pool them first, e.g. .nbfeat.pool('mean')."


def is_dask(data: Any) -> bool:
    return type(data).__module__.split(".")[0] == "dask"


def require_sample(da: xr.DataArray, what: str) -> None:
    if SAMPLE not in da.dims:
        name = f" '{da.name}'" if da.name is not None else ""
        raise NbfeatError(f"{what} needs a 'sample' dim; the array{name} has dims {tuple(da.dims)}.")


def sample_coords(da: xr.DataArray) -> dict[Hashable, xr.DataArray]:
    """The coords that hang on `sample` alone (sample, label, path, text...)."""
    return {k: v.variable for k, v in da.coords.items() if v.dims == (SAMPLE,)}


def coords_within(da: xr.DataArray, dims: tuple[Hashable, ...]) -> dict[Hashable, Any]:
    """The coords of `da` whose dims all lie in `dims` (they survive a reshape of the others)."""
    keep = set(dims)
    return {k: v.variable for k, v in da.coords.items() if set(v.dims) <= keep}


def matrix(da: xr.DataArray, what: str = "This") -> Any:
    """`da` as a float64 (sample, feature) array: numpy in, numpy out; dask in, lazy dask out."""
    require_sample(da, what)
    rest = [d for d in da.dims if d != SAMPLE]
    data = da.transpose(SAMPLE, *rest).data
    n = da.sizes[SAMPLE]
    f = int(np.prod([da.sizes[d] for d in rest])) if rest else 1
    data = data.reshape(n, f)
    if is_dask(data):
        return data.astype(np.float64)  # cast per chunk, when computed
    return np.asarray(data, dtype=np.float64)


def with_attrs(out: xr.DataArray, src: xr.DataArray, **extra: Any) -> xr.DataArray:
    out = out.copy(deep=False)
    out.attrs = {**src.attrs, **extra}
    out.name = src.name
    return out


def sample_vars(ds: xr.Dataset) -> list[Hashable]:
    return [n for n, v in ds.data_vars.items() if SAMPLE in v.dims]


def combine(results: dict[Hashable, Any], attrs: dict[str, Any], root_coords: dict[Hashable, Any] | None = None) -> Any:
    """Per-variable results -> a Dataset when they fit together, else a DataTree (one child each).

    Mirrors the extraction output: variables whose dim sizes clash (or results that are
    Datasets themselves, like a PCA fit) live in child nodes, sample coords on the root.
    """
    if all(isinstance(v, xr.DataArray) for v in results.values()):
        try:
            return xr.Dataset(dict(results), attrs=attrs)
        except ValueError:  # a dim has different sizes across variables
            pass
    root = xr.Dataset(coords=root_coords or {}, attrs=attrs)
    nodes: dict[str, Any] = {"/": root}
    for name, res in results.items():
        path = "/" + str(name).replace("/", "--")
        if isinstance(res, xr.DataTree):
            for node in res.subtree:
                sub = node.relative_to(res)
                nodes[path if sub == "." else f"{path}/{sub}"] = node.to_dataset(inherit=False)
        elif isinstance(res, xr.DataArray):
            nodes[path] = res.to_dataset(name=name)
        else:
            nodes[path] = res
    return xr.DataTree.from_dict(nodes)


@dataclass(frozen=True)
class Scope:
    """Which variables a Dataset/DataTree method applies to, and what happens to the rest.

    `applies(da)` picks the variables (default: those with a `sample` dim); the others are
    kept unchanged (`keep_others=True`, e.g. already pooled variables under `pool`) or left out.
    """

    applies: Callable[[xr.DataArray], bool] | None = None
    keep_others: bool = False

    def results(self, ds: xr.Dataset, names: list[Hashable], fn: Callable[..., Any], args: Any, kwargs: Any) -> dict[Hashable, Any]:
        out: dict[Hashable, Any] = {}
        for n in names:
            if self.applies is None or self.applies(ds[n]):
                out[n] = fn(ds[n], *args, **kwargs)
            elif self.keep_others:
                out[n] = ds[n]
        return out


def map_dataset(ds: xr.Dataset, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Scope = Scope(), **kwargs: Any) -> Any:
    """Apply `fn(DataArray, ...)` to each variable with a sample dim; see `combine`."""
    results = scope.results(ds, sample_vars(ds), fn, args, kwargs)
    if not results:
        raise NbfeatError(f"{what} found no variable it applies to in this Dataset.")
    root = {k: v for k, v in ds.coords.items() if v.dims == (SAMPLE,)}
    return combine(results, dict(ds.attrs), root)


def node_dataset(node: xr.DataTree) -> xr.Dataset:
    """A node's data with everything it inherits, including the root's `label`/`path` coords.

    DataTree inherits only indexed coords (`sample`); the per-sample labels that extraction
    puts on the root would otherwise be lost on the way to a child's variables.
    """
    ds = node.to_dataset(inherit=True)
    extra = {}
    for anc in node.parents:
        for k, v in anc.to_dataset(inherit=False).coords.items():
            if k not in ds.coords and k not in extra and v.dims and all(ds.sizes.get(d) == n for d, n in v.sizes.items()):
                extra[k] = v.variable
    return ds.assign_coords(extra) if extra else ds


def map_tree(dt: xr.DataTree, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Scope = Scope(), **kwargs: Any) -> xr.DataTree:
    """Apply `fn(DataArray, ...)` to each variable of each node; same tree shape out."""
    nodes: dict[str, Any] = {}
    found = False
    for node in dt.subtree:
        path = "/" if node is dt else "/" + node.relative_to(dt)
        local = node.to_dataset(inherit=False)
        full = node_dataset(node)
        names = [n for n in local.data_vars if SAMPLE in full[n].dims]
        results = scope.results(full, names, fn, args, kwargs) if names else {}
        if not results:
            nodes[path] = local.drop_vars(names)
            continue
        found = True
        only = next(iter(results.values()))
        if len(results) == 1 and isinstance(only, xr.Dataset):
            # a node holding one variable (a clashing-dims child) takes its result in place
            nodes[path] = only.assign_attrs({**local.attrs, **only.attrs})
            continue
        res = combine(results, dict(local.attrs))
        if isinstance(res, xr.Dataset):
            nodes[path] = res
        else:
            for sub in res.subtree:
                rel = sub.relative_to(res)
                nodes[path if rel == "." else f"{path.rstrip('/')}/{rel}"] = sub.to_dataset(inherit=False)
    if not found:
        raise NbfeatError(f"{what} found no variable it applies to in this DataTree.")
    return xr.DataTree.from_dict(nodes)


def check_finite(values: np.ndarray) -> None:
    if not np.all(np.isfinite(values)):
        raise NbfeatError(NAN_HINT)
