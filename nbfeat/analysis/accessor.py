"""The `.nbfeat` accessor on DataArray, Dataset and DataTree.

Thin and stateless (xarray builds a new accessor for every object): each method forwards to
a function in `nbfeat.analysis` and returns a new object; meaning lives in attrs and coords.
On a Dataset or DataTree, methods apply to every variable with a `sample` dim; the results
come back as a Dataset when their dims fit together, otherwise as a DataTree (one node per
variable), like extraction output.

>>> ds["layer4"].nbfeat.pool("mean").nbfeat.rdm("correlation")   # doctest: +SKIP
>>> ds.nbfeat.pool("mean").nbfeat.center()                       # doctest: +SKIP
>>> dt.nbfeat.compare(method="cka")                              # doctest: +SKIP

Registered by `import nbfeat` as soon as xarray is imported (see `register`).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

NAME = "nbfeat"


class _Accessor:
    def __init__(self, obj: Any) -> None:
        self._obj = obj

    def _map(self, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Any = None, **kwargs: Any) -> Any:
        raise NotImplementedError

    # --- shape-keeping / shape-changing transforms ------------------------------------
    def center(self, dim: str = "sample") -> Any:
        """Subtract the mean over samples (per feature). See `nbfeat.analysis.transform.center`."""
        from nbfeat.analysis.transform import center

        return self._map(center, dim, what="center()")

    def normalize(self, method: str = "l2", keep: Iterable[Hashable] = ("layer", "call"), eps: float = 1e-12) -> Any:
        """`"l2"`: unit norm per sample; `"zscore"`: standardise each feature over samples."""
        from nbfeat.analysis.transform import normalize

        return self._map(normalize, method, tuple(keep), eps, what="normalize()")

    def flatten(self, keep: Iterable[Hashable] | str | None = None) -> Any:
        """All dims but `sample` (and `keep`, e.g. "layer") -> `feature`."""
        from nbfeat.analysis.transform import flatten

        return self._map(flatten, keep, what="flatten()")

    def pool(self, spec: Any) -> Any:
        """Pool over y/x or tokens: "mean", "max", "cls", "last", ("avg2d", k), ("max2d", k)."""
        from nbfeat.analysis._common import Scope
        from nbfeat.analysis.transform import pool, poolable

        # on a Dataset/DataTree, variables pooled already stay as they are
        return self._map(pool, spec, what="pool()", scope=Scope(poolable, keep_others=True))

    # --- analysis ------------------------------------------------------------------------
    def pca(self, k: int = 3) -> Any:
        """Centred PCA over samples: a Dataset with scores, loadings, mean, explained variance."""
        from nbfeat.analysis.pca import fit_pca

        return self._map(fit_pca, k, what="pca()")

    def rdm(self, metric: str = "correlation") -> Any:
        """Sample x sample dissimilarities, dims (sample, sample_); "correlation", "euclidean", "cosine"."""
        from nbfeat.analysis.rdm import rdm

        return self._map(rdm, metric, what="rdm()")

    def topk(self, k: int = 5, softmax: bool = True, dim: Hashable | None = None, names: Sequence[str] | None = None) -> Any:
        """Top-k classes with probabilities (softmax of logits), ImageNet names for 1000 classes."""
        from nbfeat.analysis._common import Scope
        from nbfeat.analysis.topk import topk

        # on a Dataset/DataTree: only (sample, class) variables, e.g. a classifier head
        return self._map(topk, k, softmax, dim, names, what="topk()", scope=Scope(lambda da: da.ndim == 2))

    def sample(self, n: int, seed: int | None = 0) -> Any:
        """`n` random samples (without replacement), labels kept: `nbfeat.store.sample`."""
        from nbfeat.store import sample

        return sample(self._obj, n, seed=seed)

    def export(self, path: Any, format: str | None = None, **kwargs: Any) -> Any:
        """Write to netCDF or THINGSvision's flat formats (npy, mat, hdf5, pt): `nbfeat.store.export`."""
        from nbfeat.store import export

        return export(self._obj, path, format=format, **kwargs)

    def compare(self, targets: Any = None, method: str = "rsa", **kwargs: Any) -> Any:
        """`nbfeat.compare` on this object: every variable (and layer) against every other,
        or against brain `targets` (RDMs or responses; see docs/brain.md)."""
        from nbfeat.analysis.compare import compare

        return compare(self._obj, targets, method=method, **kwargs)

    def encode(self, responses: Any, **kwargs: Any) -> Any:
        """`nbfeat.encode` on this object: a cross-validated ridge per variable (and layer)."""
        from nbfeat.brain.encode import encode

        return encode(self._obj, responses, **kwargs)


class DataArrayAccessor(_Accessor):
    """`da.nbfeat`: analysis of one labelled variable."""

    def _map(self, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Any = None, **kwargs: Any) -> Any:
        return fn(self._obj, *args, **kwargs)

    def to_numpy(self) -> Any:
        """The values as a numpy array (computes dask-backed data)."""
        import numpy as np

        return np.asarray(self._obj.values)

    def to_grid(self) -> Any:
        """ViT patch tokens -> (…, channel, y, x) using the `grid` and `prefix_tokens` attrs."""
        from nbfeat.analysis.transform import tokens_to_grid

        return tokens_to_grid(self._obj)

    def rsa(self, other: Any, corr: str = "pearson", metric: str = "correlation") -> float:
        """RSA between this and `other` (features or RDMs), samples paired by their `sample` ids.

        `corr`: "pearson", "spearman" or "kendall" (tau-a); `metric`: the RDM metric for
        inputs that are features. Samples missing on one side are left out (with a warning).
        """
        from nbfeat.analysis.align import join_samples
        from nbfeat.analysis.rdm import SECOND, correlate, rdm, upper

        a, b = join_samples([self._obj, other], ["this array", "other"], ".nbfeat.rsa()")

        def as_rdm(da: Any) -> Any:
            return da if SECOND in da.dims else rdm(da, metric)

        return correlate(upper(as_rdm(a)), upper(as_rdm(b)), corr)

    def cka(self, other: Any, method: str = "auto") -> float:
        """Linear CKA between this and `other` (any features), samples paired by `sample` id."""
        from nbfeat.analysis.cka import linear_cka

        return linear_cka(self._obj, other, method)

    def project(self, fit: Any) -> Any:
        """Scores of these samples on the components of a PCA fit (from `.nbfeat.pca`)."""
        from nbfeat.analysis.pca import project

        return project(fit, self._obj)

    def plot_rdm(self, metric: str = "correlation", **kwargs: Any) -> Any:
        """RDM heatmap; computes the RDM first unless this already is one."""
        from nbfeat.analysis.plots import plot_rdm
        from nbfeat.analysis.rdm import SECOND, rdm

        r = self._obj if SECOND in self._obj.dims else rdm(self._obj, metric)
        return plot_rdm(r, **kwargs)

    def plot_pca(self, **kwargs: Any) -> Any:
        """PCA colour maps over the image grid (feature maps or ViT tokens)."""
        from nbfeat.analysis.plots import plot_pca

        return plot_pca(self._obj, **kwargs)

    def plot_tokens(self, sample: int | str = 0, **kwargs: Any) -> Any:
        """Token x layer heatmap for one sample, token_text on the x axis."""
        from nbfeat.analysis.plots import plot_token_layers

        return plot_token_layers(self._obj, sample=sample, **kwargs)


class _ManyAccessor(_Accessor):
    def _single(self) -> Any:
        raise NotImplementedError

    def __getattr__(self, name: str) -> Any:
        # A one-layer node (what extraction makes per layer when widths differ) also answers
        # the one-array methods, so dt["layer4"].nbfeat.plot_rdm() works like the DataArray.
        if name.startswith("_") or not hasattr(DataArrayAccessor, name):
            raise AttributeError(name)
        da = self._single()
        if da is None:
            raise AttributeError(f"'.nbfeat.{name}()' works on one layer; pick it first, e.g. ds['<layer>'].nbfeat.{name}()")
        return getattr(DataArrayAccessor(da), name)


class DatasetAccessor(_ManyAccessor):
    """`ds.nbfeat`: the DataArray methods, applied to every variable with a `sample` dim."""

    def _single(self) -> Any:
        from nbfeat.analysis._common import sample_vars

        names = sample_vars(self._obj)
        return self._obj[names[0]] if len(names) == 1 else None

    def _map(self, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Any = None, **kwargs: Any) -> Any:
        from nbfeat.analysis._common import Scope, map_dataset

        return map_dataset(self._obj, fn, *args, what=what, scope=scope or Scope(), **kwargs)

    def to_numpy(self) -> dict[str, Any]:
        """{variable name: numpy array} for the variables with a `sample` dim."""
        import numpy as np

        from nbfeat.analysis._common import sample_vars

        return {str(n): np.asarray(self._obj[n].values) for n in sample_vars(self._obj)}


class DataTreeAccessor(_ManyAccessor):
    """`dt.nbfeat`: the DataArray methods, applied to every variable of every node."""

    def _single(self) -> Any:
        from nbfeat.analysis._common import node_dataset

        arrays = [(n, d) for n in self._obj.subtree for d in [node_dataset(n)] for v in n.to_dataset(inherit=False).data_vars if "sample" in d[v].dims]
        if len(arrays) != 1:
            return None
        node, ds = arrays[0]
        (name,) = [v for v in node.to_dataset(inherit=False).data_vars if "sample" in ds[v].dims]
        return ds[name]

    def _map(self, fn: Callable[..., Any], *args: Any, what: str = "This", scope: Any = None, **kwargs: Any) -> Any:
        from nbfeat.analysis._common import Scope, map_tree

        return map_tree(self._obj, fn, *args, what=what, scope=scope or Scope(), **kwargs)

    def to_numpy(self) -> dict[str, Any]:
        """{"node/path/variable": numpy array} for every variable with a `sample` dim."""
        import numpy as np

        from nbfeat.analysis._common import node_dataset

        out = {}
        for node in self._obj.subtree:
            full = node_dataset(node)
            for name in node.to_dataset(inherit=False).data_vars:
                if "sample" in full[name].dims:
                    rel = node.relative_to(self._obj)
                    key = str(name) if rel == "." else f"{rel}/{name}"
                    out[key] = np.asarray(full[name].values)
        return out


def _ours(cls: type, accessor: type) -> bool:
    # the class attribute reads back as the accessor class; compare by name so a reloaded
    # module (new class objects) still counts as ours and does not warn about overriding
    found = getattr(cls, NAME, None)
    return getattr(found, "__module__", None) == accessor.__module__ and getattr(found, "__qualname__", None) == accessor.__qualname__


def register() -> None:
    """Register `.nbfeat` on DataArray, Dataset and DataTree; safe to call any number of times.

    >>> register(); register()
    """
    import xarray as xr

    pairs: list[tuple[type, Callable[[str], Any], type]] = [
        (xr.DataArray, xr.register_dataarray_accessor, DataArrayAccessor),
        (xr.Dataset, xr.register_dataset_accessor, DatasetAccessor),
    ]
    if hasattr(xr, "DataTree") and hasattr(xr, "register_datatree_accessor"):
        pairs.append((xr.DataTree, xr.register_datatree_accessor, DataTreeAccessor))
    for cls, reg, accessor in pairs:
        if not _ours(cls, accessor):
            reg(NAME)(accessor)
