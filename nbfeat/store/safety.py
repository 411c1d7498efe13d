"""What nbfeat may delete: only a store it made (its marker file), and only the files it wrote.

A store folder may hold a user's own files (notes, a README, results beside the arrays):
replacing the store removes `zarr.json` files, the chunk files under each array's `c/` and
the marker, never anything else.

>>> state("feats.zarr")            # doctest: +SKIP
'nbfeat'
>>> remove_store("feats.zarr")     # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import json
import os
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Written first into every store nbfeat creates. Inside the `status` array's folder, where
# zarr never lists members (at the root, every open would warn about an unknown object).
MARKER = "status/.nbfeat-store"


def write_marker(root: str | os.PathLike[str]) -> None:
    """Mark `root` (a folder) as a store nbfeat made, before anything else is written into it."""
    from nbfeat._version import __version__

    os.makedirs(os.path.join(root, os.path.dirname(MARKER)), exist_ok=True)
    info = {"nbfeat_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    with open(os.path.join(root, MARKER), "w") as f:
        json.dump(info, f)


def state(root: str | os.PathLike[str]) -> str:
    """missing | empty | file | nbfeat | damaged | unfinished | foreign.

    `damaged`: nbfeat's marker is there but the root zarr.json does not parse (a crash while
    it was written); `unfinished`: nbfeat's store interrupted while being allocated;
    `foreign`: a folder nbfeat did not make (another zarr store, or anything else).
    """
    root = os.fspath(root)
    if not os.path.lexists(root):
        return "missing"
    if not os.path.isdir(root):
        return "file"
    entries = os.listdir(root)
    if not entries:
        return "empty"
    ours = os.path.isfile(os.path.join(root, MARKER))
    meta = os.path.join(root, "zarr.json")
    if not os.path.exists(meta):
        return "unfinished" if ours else "foreign"
    try:
        with open(meta) as f:
            attrs = json.load(f).get("attributes", {})
    except (OSError, ValueError, AttributeError):
        return "damaged" if ours else "foreign"
    if not isinstance(attrs, dict) or not (ours or "nbfeat_store" in attrs):
        return "foreign"
    return "nbfeat" if "nbfeat_fingerprint" in attrs else "unfinished"


def foreign_files(root: str | os.PathLike[str]) -> list[Path]:
    """Files under the store at `root` that nbfeat did not write (what `remove_store` keeps)."""
    root = Path(root)
    nodes = {m.parent for m in root.rglob("zarr.json")}
    out = []
    for f in root.rglob("*"):
        if f.is_dir() and not f.is_symlink():
            continue
        if f == root / MARKER or (f.name == "zarr.json"):
            continue
        rel = f.relative_to(root).parts
        ours = any(
            node in f.parents and len(f.relative_to(node).parts) > 1 and f.relative_to(node).parts[0] == "c"
            and all(_is_chunk_part(p) for p in f.relative_to(node).parts[1:])
            for node in nodes
        )
        if not ours and rel:
            out.append(f)
    return out


def remove_store(root: str | os.PathLike[str]) -> None:
    """Delete the files nbfeat wrote in the store at `root`; anything else stays where it is."""
    root = Path(root)
    marker = root / MARKER
    if marker.exists():
        marker.unlink()
    for meta in sorted(root.rglob("zarr.json"), key=lambda p: -len(p.parts)):
        node = meta.parent
        chunks = node / "c"
        if chunks.is_dir():
            _remove_chunk_tree(chunks)
        meta.unlink()
        _rmdir_if_empty(node, stop=root)
    _rmdir_if_empty(marker.parent, stop=root)
    _rmdir_if_empty(root, stop=root.parent)


def _remove_chunk_tree(chunks: Path) -> None:
    for dirpath, _dirnames, filenames in os.walk(chunks, topdown=False):
        for name in filenames:
            rel = Path(dirpath, name).relative_to(chunks).parts
            if all(_is_chunk_part(p) for p in rel):
                os.unlink(os.path.join(dirpath, name))
        if Path(dirpath) == chunks or all(_is_chunk_part(p) for p in Path(dirpath).relative_to(chunks).parts):
            try:
                os.rmdir(dirpath)
            except OSError:  # still holds something that is not a chunk
                pass


def _is_chunk_part(part: str) -> bool:
    # "0", "12"; zarr's LocalStore may leave "<n>.<uuid>.partial" after a crash
    return part.isdigit() or (part.endswith(".partial") and part.split(".")[0].isdigit())


def _rmdir_if_empty(path: Path, stop: Path) -> None:
    while path != stop and path.is_dir():
        try:
            path.rmdir()
        except OSError:
            return
        path = path.parent


def overlaps(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """True when `a` and `b` are the same path, or one is inside the other."""
    pa, pb = Path(os.path.realpath(a)), Path(os.path.realpath(b))
    return pa == pb or pa in pb.parents or pb in pa.parents


@contextmanager
def users_files_quiet() -> Iterator[None]:
    """Reading a store, without zarr's warning for each file in it that zarr did not write: a
    user's own files kept in a store are theirs (nbfeat never removes them), not a fault.

    >>> with users_files_quiet():                       # doctest: +SKIP
    ...     ds = xr.open_zarr("feats.zarr", consolidated=False)
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Object at .* is not recognized as a component of a Zarr hierarchy")
        yield
