"""Resume when the inputs changed: a folder that gained or lost images extracts only what is new.

The store is rebuilt beside itself (`.<name>.nbfeat-rebuild`) in the new run's sample order:
every sample whose id is in the old store, whose input is unchanged (content key) and which
was finished is copied, the rest is extracted. When the new store is complete, the user's
own files inside the old one move into it, nbfeat's files of the old one are removed and
the new one takes its name. The old store stays whole until then: a crash at any point
loses nothing (a later call finds the old store and starts the rebuild again).

>>> group, layout = open_for_run(run, "feats.zarr")   # a Rebuild when the samples differ  # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from nbfeat.errors import NbfeatError
from nbfeat.store import safety
from nbfeat.store.layout import PENDING, Layout


def rebuild_path(target: str) -> str:
    head, name = os.path.split(os.path.normpath(target))
    return os.path.join(head, f".{name}.nbfeat-rebuild")


@dataclass
class Rebuild:
    run: Any
    old: Any  # the old zarr group
    old_layout: Layout
    group: Any  # the new store (at `tmp`)
    layout: Layout
    target: str
    tmp: str
    source: np.ndarray  # per new position: the old row to copy, or -1 to extract

    @classmethod
    def start(cls, run: Any, old: Any, old_layout: Layout, target: str, path: Any) -> Rebuild:
        from nbfeat.store.resume import _create, input_unchanged

        tmp = rebuild_path(target)
        kind = safety.state(tmp)
        if kind in ("file", "foreign"):
            raise NbfeatError(f"{tmp} is in the way of rebuilding {path} and nbfeat did not make it: move it away.")
        if kind not in ("missing", "empty"):
            safety.remove_store(tmp)  # an earlier rebuild that did not finish
        old_ids = np.asarray(old["sample"][:], dtype=object)
        row_of = {str(i): r for r, i in enumerate(old_ids)}
        status = old["status"][:]
        keys = np.asarray(old["input_key"][:], dtype=object)
        source = np.full(len(run.inputs), -1, dtype=np.int64)
        for p, sid in enumerate(run.inputs.ids):
            r = row_of.get(sid)
            if r is not None and status[r] != PENDING and input_unchanged(run, p, str(keys[r])):
                source[p] = r
        group, layout = _create(run, tmp, old_layout.chunk)
        return cls(run, old, old_layout, group, layout, target, tmp, source)

    # ---- what write_chunks asks ------------------------------------------------------

    def whole(self, c: int) -> bool:
        start, stop = self.layout.chunk_range(c)
        return bool((self.source[start:stop] >= 0).all())

    def to_compute(self, c: int) -> np.ndarray:
        start, stop = self.layout.chunk_range(c)
        return start + np.flatnonzero(self.source[start:stop] < 0)

    def fill(self, buf: Any) -> None:
        """Copy the reusable rows of chunk `buf` from the old store."""
        src = self.source[buf.start : buf.stop]
        local = np.flatnonzero(src >= 0)
        if not len(local):
            return
        rows = src[local]
        order = np.argsort(rows)  # zarr reads increasing indices
        rows, local = rows[order], local[order]
        for v in self.layout.variables:
            values = self.old[v.array].get_orthogonal_selection((rows,) + (slice(None),) * len(v.shape))
            buf._array(v.name)[local] = values
        for name in buf.tokens:
            path = next(p for p in self.old_layout.token_arrays() if p.rsplit("/", 1)[-1] == name)
            buf.tokens[name][local] = self.old[path].get_orthogonal_selection((rows, slice(None)))
        buf.status[local] = self.old["status"].get_coordinate_selection(rows)
        buf.reason[local] = np.asarray(self.old["reason"].get_coordinate_selection(rows), dtype=object)
        buf.keys[local] = np.asarray(self.old["input_key"].get_coordinate_selection(rows), dtype=object)

    # ---- the end: the new store takes the old one's place ------------------------------

    def swap(self) -> None:
        old, new = Path(self.target), Path(self.tmp)
        for f in safety.foreign_files(old):
            dest = new / f.relative_to(old)
            if dest.exists():
                continue  # left in the old folder, which then stays (said below)
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.rename(f, dest)
        safety.remove_store(old)
        if old.exists():
            raise NbfeatError(
                f"The rebuilt store is complete at {new}, but {old} still holds files that are in the way "
                f"({', '.join(str(p.relative_to(old)) for p in list(old.rglob('*'))[:3])}): move them, then rename {new.name} to {old.name}."
            )
        os.rename(new, old)


def recover(target: str) -> None:
    """A crash between removing the old store and renaming the new one: finish the rename."""
    tmp = rebuild_path(target)
    if not os.path.lexists(target) and safety.state(tmp) == "nbfeat":
        import zarr

        status = zarr.open_group(tmp, mode="r")["status"][:]
        layout = Layout.from_json(zarr.open_group(tmp, mode="r").attrs["nbfeat_layout"])
        if layout.done_chunks(status).all():
            os.rename(tmp, target)
