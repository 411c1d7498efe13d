"""Export features to netCDF and to the flat files THINGSvision pipelines read (npy, mat, hdf5, pt).

netCDF, hdf5 and npy are written chunk by chunk (memory stays flat); mat and pt need each
variable whole in memory (scipy.io and torch.save write whole arrays). Only extracted
samples are exported; `sample`, `label` and `path` go along (npy: `file_names.txt`).

>>> export("feats.zarr", "feats.h5")                                     # doctest: +SKIP
>>> export("feats.zarr", "npy_dir/", format="npy", flatten=True)         # doctest: +SKIP
>>> export(ds, "feats.mat", variables=["layer4"])    # an in-memory result works too
"""

from __future__ import annotations

import contextlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError, require
from nbfeat.store import safety

FORMATS = {
    ".nc": "netcdf",
    ".nc4": "netcdf",
    ".h5": "hdf5",
    ".hdf5": "hdf5",
    ".mat": "mat",
    ".pt": "pt",
    ".pth": "pt",
    ".npy": "npy",
}
_MAT_LIMIT = 2**31 - 1  # MATLAB v5 files cannot hold a variable over 2 GiB
_BLOCK = 4096  # samples per block when the data is not chunked already


def export(
    source: Any,
    dest: str | os.PathLike[str],
    format: str | None = None,  # noqa: A002 - the word users know
    variables: list[str] | None = None,
    flatten: bool = False,
    overwrite: bool = False,
) -> Path:
    """Write the features of `source` (a store path, or an opened/in-memory result) to `dest`.

    Args:
        format: netcdf, hdf5, npy, mat or pt; by default from the suffix of `dest`
            (.nc, .h5/.hdf5, .npy, .mat, .pt). npy writes a folder: `<variable>.npy` each
            plus `file_names.txt` (one sample id per line).
        variables: which variables (default: all).
        flatten: reshape each variable to (sample, features), as THINGSvision saves them.
        overwrite: replace `dest` if it exists.

    Returns the path written.

    Example:
        >>> nbfeat.store.export("feats.zarr", "feats.mat", variables=["layer4"])  # doctest: +SKIP
    """
    from nbfeat.store.reader import open as open_store

    dest = Path(dest).expanduser()
    fmt = _format(dest, format)
    folder = fmt == "npy" and dest.suffix.lower() != ".npy"
    for src in _source_paths(source):
        if safety.overlaps(src, dest):
            raise NbfeatError(
                f"Cannot export {src} to {dest}: the destination is the source, or inside it, or holds it. Choose a path outside the store."
            )
    if dest.exists() or dest.is_symlink():
        if not overwrite:
            raise NbfeatError(
                f"{dest} already exists: pass overwrite=True to replace it, or choose another path."
            )
        if dest.is_dir() and not folder:
            raise NbfeatError(f"{dest} is a folder: nbfeat replaces only a file it can write there. Choose a file path.")
        if folder and not dest.is_dir():
            raise NbfeatError(f"{dest} is a file, not a folder for format='npy'. Choose another path.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    obj = open_store(source) if isinstance(source, str | os.PathLike) else source
    if fmt == "netcdf":
        if flatten:
            raise NbfeatError(
                "flatten=True is for the flat formats (npy, mat, hdf5, pt); netCDF keeps the dims."
            )
        with _replacing(dest) as tmp:
            _netcdf(obj, tmp, variables)
        return dest
    arrays = _arrays(obj, variables, flatten)
    coords = _sample_coords(obj)
    if fmt == "npy":
        _npy(arrays, coords, dest, _root(obj).attrs)
        return dest
    with _replacing(dest) as tmp:
        {"hdf5": _hdf5, "mat": _mat, "pt": _pt}[fmt](arrays, coords, tmp, _root(obj).attrs)
    return dest


@contextlib.contextmanager
def _replacing(dest: Path) -> Iterator[Path]:
    """A temporary name beside `dest`, renamed onto it once complete (removed on failure).

    Until the rename, `dest` (and the source it may have been read from) stays untouched.
    """
    tmp = dest.with_name(f".{dest.name}.nbfeat-tmp-{os.getpid()}{dest.suffix}")
    try:
        yield tmp
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def _source_paths(source: Any) -> list[str]:
    """Folders or files the features are read from (a store path, or what `open` returned)."""
    if isinstance(source, str | os.PathLike):
        return [os.fspath(Path(source).expanduser())]
    paths = []
    for enc in (getattr(_root(source), "encoding", {}), *(getattr(v, "encoding", {}) for v in _root(source).variables.values())):
        src = enc.get("source") if isinstance(enc, dict) else None
        if isinstance(src, str) and src and "://" not in src:
            paths.append(src)
    return sorted(set(paths))


def _format(dest: Path, format: str | None) -> str:
    if format is not None:
        fmt = str(format).lower().lstrip(".")
        fmt = {"nc": "netcdf", "h5": "hdf5", "torch": "pt"}.get(fmt, fmt)
        if fmt not in set(FORMATS.values()):
            raise NbfeatError(
                f"Unknown export format {format!r}: use netcdf, hdf5, npy, mat or pt."
            )
        return fmt
    fmt = FORMATS.get(dest.suffix.lower())
    if fmt is None:
        raise NbfeatError(
            f"Cannot tell the format from {dest.name!r}: end it with .nc, .h5, .npy, .mat or .pt, or pass format=."
        )
    return fmt


def _arrays(obj: Any, names: list[str] | None, flatten: bool) -> dict[str, Any]:
    from nbfeat.store.reader import layer

    available = _variable_names(obj)
    chosen = available if names is None else [str(n) for n in names]
    unknown = [n for n in chosen if n not in available]
    if unknown:
        raise NbfeatError(
            f"No variable {unknown[0]!r} to export; there is: {', '.join(available)}."
        )
    out = {}
    for name in chosen:
        da = layer(obj, name)
        if flatten and da.ndim > 2:
            import xarray as xr

            da = da.transpose("sample", ...)
            da = xr.DataArray(
                da.data.reshape(da.shape[0], -1),
                dims=("sample", "feature"),
                coords={"sample": da["sample"]},
                attrs=da.attrs,
                name=name,
            )
        out[name] = da
    return out


def _variable_names(obj: Any) -> list[str]:
    if hasattr(obj, "children"):
        return [
            name
            for node in obj.children.values()
            for name in node.to_dataset(inherit=False).data_vars
        ]
    return [str(n) for n in obj.data_vars]


def _root(obj: Any) -> Any:
    return obj.to_dataset(inherit=False) if hasattr(obj, "children") else obj


def _sample_coords(obj: Any) -> dict[str, np.ndarray]:
    root = _root(obj)
    return {
        k: np.asarray(root[k].values).astype(object)
        for k in ("sample", "label", "path")
        if k in root.coords
    }


def _blocks(da: Any) -> Iterator[tuple[int, int, np.ndarray]]:
    """(start, stop, values) along `sample`, one stored chunk at a time."""
    n = da.sizes["sample"]
    chunks = getattr(da.data, "chunks", None)
    sizes = list(chunks[da.dims.index("sample")]) if chunks else [_BLOCK] * -(-n // _BLOCK)
    start = 0
    for size in sizes:
        stop = min(n, start + size)
        if stop > start:
            yield start, stop, np.asarray(da.isel(sample=slice(start, stop)).values)
        start = stop


def _npy(arrays: dict[str, Any], coords: dict[str, np.ndarray], dest: Path, attrs: Any) -> None:
    """One `.npy` per variable and the sample ids; other files in the folder are left alone."""
    if dest.suffix.lower() == ".npy":
        if len(arrays) != 1:
            raise NbfeatError(
                f"{dest.name} can hold one variable, there are {len(arrays)}: pass variables=[...] or a folder with format='npy'."
            )
        targets = {next(iter(arrays)): dest}
        names_file = dest.with_name(dest.stem + "_file_names.txt")
    else:
        dest.mkdir(parents=True, exist_ok=True)
        targets = {name: dest / f"{_safe(name)}.npy" for name in arrays}
        names_file = dest / "file_names.txt"
    with contextlib.ExitStack() as stack:  # every file complete before any is renamed
        for name, da in arrays.items():
            tmp = stack.enter_context(_replacing(targets[name]))
            out = np.lib.format.open_memmap(tmp, mode="w+", dtype=da.dtype, shape=da.shape)
            for start, stop, block in _blocks(da):
                out[start:stop] = block
            out.flush()
            del out
        tmp = stack.enter_context(_replacing(names_file))
        tmp.write_text("".join(f"{s}\n" for s in coords.get("sample", [])))


def _hdf5(arrays: dict[str, Any], coords: dict[str, np.ndarray], dest: Path, attrs: Any) -> None:
    require("h5py", "h5py")
    import h5py

    with h5py.File(dest, "w") as f:
        for name, da in arrays.items():
            first = (
                da.data.chunks[0][0]
                if getattr(da.data, "chunks", None)
                else min(_BLOCK, da.shape[0])
            )
            ds = f.create_dataset(
                _safe(name),
                shape=da.shape,
                dtype=da.dtype,
                chunks=(max(1, min(first, da.shape[0])), *da.shape[1:]) if da.shape[0] else None,
            )
            for start, stop, block in _blocks(da):
                ds[start:stop] = block
            ds.attrs["dims"] = json.dumps(list(da.dims))
            for k, v in da.attrs.items():
                ds.attrs[k] = v
        for k, v in coords.items():
            f.create_dataset(k, data=v, dtype=h5py.string_dtype())
        for k, v in attrs.items():
            if isinstance(v, str) and len(v) > 16384:  # HDF5 attributes stop at 64 KiB
                f.create_dataset(f"attrs/{k}", data=v, dtype=h5py.string_dtype())
            else:
                f.attrs[k] = v


def _mat(arrays: dict[str, Any], coords: dict[str, np.ndarray], dest: Path, attrs: Any) -> None:
    import scipy.io

    big = [n for n, da in arrays.items() if da.nbytes > _MAT_LIMIT]
    if big:
        raise NbfeatError(
            f"{big[0]} is {arrays[big[0]].nbytes / 2**30:.1f} GiB, over the 2 GiB a .mat variable holds: export to .h5 (MATLAB reads it with h5read) or .npy."
        )
    data: dict[str, Any] = {_mat_name(n): np.asarray(da.values) for n, da in arrays.items()}
    data.update({k: v for k, v in coords.items()})
    scipy.io.savemat(dest, data, do_compression=False, oned_as="column")


def _pt(arrays: dict[str, Any], coords: dict[str, np.ndarray], dest: Path, attrs: Any) -> None:
    import torch

    data: dict[str, Any] = {
        name: torch.from_numpy(np.ascontiguousarray(da.values)) for name, da in arrays.items()
    }
    data.update({k: [str(x) for x in v] for k, v in coords.items()})
    torch.save(data, dest)


def _safe(name: str) -> str:
    return name.replace("/", "--")


def _mat_name(name: str) -> str:
    """A valid MATLAB variable name: letters, digits, underscores, starting with a letter."""
    safe = re.sub(r"\W", "_", name)
    return (safe if safe[:1].isalpha() else "v_" + safe)[:63]


def _netcdf(obj: Any, dest: Path, names: list[str] | None) -> None:
    import xarray as xr

    engine = next(
        (e for e, mod in (("netcdf4", "netCDF4"), ("h5netcdf", "h5netcdf")) if _has(mod)), None
    )
    if engine is None:
        require("h5netcdf", "h5netcdf")
    if names is not None:
        available = _variable_names(obj)
        unknown = [n for n in names if n not in available]
        if unknown:
            raise NbfeatError(
                f"No variable {unknown[0]!r} to export; there is: {', '.join(available)}."
            )
        if isinstance(obj, xr.DataTree):
            keep = {n.replace("/", "--") for n in names}
            obj = xr.DataTree.from_dict(
                {
                    "/": _root(obj),
                    **{
                        f"/{k}": v.to_dataset(inherit=False)
                        for k, v in obj.children.items()
                        if k in keep
                    },
                }
            )
        else:
            obj = obj[list(names)]
    obj = _load_object_arrays(obj)
    obj.to_netcdf(dest, engine=engine)


def _load_object_arrays(obj: Any) -> Any:
    """netCDF needs to see strings to size them; read lazy string arrays (token_text) first."""

    def load(ds: Any) -> Any:
        lazy = [k for k, v in ds.variables.items() if v.dtype == object and v.chunks is not None]
        return ds.assign_coords({k: ds[k].load() for k in lazy if k in ds.coords}) if lazy else ds

    if hasattr(obj, "children"):
        return obj.map_over_datasets(load)
    return load(obj)


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None
