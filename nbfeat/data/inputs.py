"""What a user can pass as inputs, turned into one list of samples with ids and labels.

Accepted: an image folder (recursive; the parent folder name is the label), a glob, a list
of paths, PIL images, uint8 arrays (HxWxC or NxHxWxC), model-ready float tensors or arrays
(NxCxHxW), a dict {id: image}, or, for text models, a string, a list of strings, a dict
{id: text}, or a `.txt` file path (one text per line; blank lines skipped, ids
`<file>:<line>`).

>>> inp = resolve_inputs("images/", modality="image")     # doctest: +SKIP
>>> inp.samples.head()                                    # doctest: +SKIP
"""

from __future__ import annotations

import glob as globlib
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbfeat.data.images import IMAGE_EXTENSIONS
from nbfeat.errors import InputError


@dataclass
class Inputs:
    """Samples in input order. `kind`: files | images | tensor | text."""

    kind: str
    ids: list[str]
    labels: list[str]
    paths: list[str]
    items: Any  # paths, PIL images / arrays, a float tensor, or texts
    texts: list[str] | None = None
    skipped: list[tuple[str, str, str]] = field(default_factory=list)  # (id, path, reason)

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def samples(self) -> Any:
        """A pandas DataFrame: one row per sample (sample, label, path[, text])."""
        import pandas as pd

        cols: dict[str, Any] = {"sample": self.ids, "label": self.labels, "path": self.paths}
        if self.texts is not None:
            cols["text"] = self.texts
        return pd.DataFrame(cols)

    def content_key(self, pos: int) -> str:
        """What sample `pos` holds, as a short digest: file bytes (plus a stat signature
        that lets a resume skip re-reading unchanged files), pixel or tensor bytes, or text.

        >>> resolve_inputs(["a b", "c"], modality="text").content_key(1)   # doctest: +ELLIPSIS
        'sha256:...'
        """
        item = self.items[pos]
        if self.kind == "files":
            return file_key(item)
        if self.kind == "text":
            return _digest(item.encode("utf-8"), b"text")
        return _digest(*_item_bytes(item))

    def subset(self, positions: Any) -> Inputs:
        """The samples at `positions` (ids kept), e.g. for a preview or a shard."""
        pos = [int(p) for p in positions]
        items = self.items[pos] if self.kind == "tensor" else [self.items[p] for p in pos]
        return Inputs(
            self.kind,
            [self.ids[p] for p in pos],
            [self.labels[p] for p in pos],
            [self.paths[p] for p in pos],
            items,
            None if self.texts is None else [self.texts[p] for p in pos],
        )


def resolve_inputs(
    inputs: Any,
    modality: str = "image",
    ids: list[str] | None = None,
    labels: list[str] | None = None,
) -> Inputs:
    """Normalise any accepted input to `Inputs` (see the module docstring)."""
    if isinstance(inputs, Inputs):
        out = inputs
    elif modality == "text":
        out = _texts(inputs)
    else:
        out = _images(inputs)
    if ids is not None:
        if len(ids) != len(out):
            raise InputError(f"ids has {len(ids)} entries for {len(out)} inputs.")
        out.ids = [str(i) for i in ids]
    if labels is not None:
        if len(labels) != len(out):
            raise InputError(f"labels has {len(labels)} entries for {len(out)} inputs.")
        out.labels = [str(x) for x in labels]
    dupes = _duplicates(out.ids)
    if dupes:
        raise InputError(f"Sample ids must be unique; repeated: {', '.join(dupes[:5])}.")
    if len(out) == 0:
        raise InputError("No inputs to extract from (an empty list).")
    return out


def _duplicates(ids: list[str]) -> list[str]:
    from collections import Counter

    return [i for i, n in Counter(ids).items() if n > 1]


TEXT_FILE_EXTENSIONS = (".txt",)


def _texts(inputs: Any) -> Inputs:
    if isinstance(inputs, os.PathLike) or (isinstance(inputs, str) and _is_text_file(inputs)):
        return _text_file(os.fspath(inputs))
    if isinstance(inputs, str):
        inputs = [inputs]
    if isinstance(inputs, dict):
        keys, texts = [str(k) for k in inputs], list(inputs.values())
    else:
        texts = list(inputs)
        keys = [str(i) for i in range(len(texts))]
    bad = [type(t).__name__ for t in texts if not isinstance(t, str)]
    if bad:
        raise InputError(f"A text model takes strings; got {bad[0]}.")
    return Inputs("text", keys, [""] * len(texts), [""] * len(texts), texts, texts=list(texts))


def _is_text_file(text: str) -> bool:
    """A one-line string naming an existing `.txt` file (anything else is a text itself)."""
    return "\n" not in text and text.lower().endswith(TEXT_FILE_EXTENSIONS) and os.path.isfile(text)


def _text_file(path: str) -> Inputs:
    """One text per line of a UTF-8 file. Blank (whitespace-only) lines are skipped; the
    sample id is `<file name>:<line number>` (1-based, blank lines counted), so an id points
    at its line in the file; line endings are dropped, other whitespace kept."""
    if not os.path.isfile(path):
        raise InputError(f"No such text file: {path!r}.")
    try:
        with open(path, encoding="utf-8-sig") as f:
            lines = f.read().splitlines()
    except UnicodeDecodeError as e:
        raise InputError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start}); save it as UTF-8.") from None
    except OSError as e:
        raise InputError(f"Cannot read {path}: {e.strerror}.") from None
    name, full = os.path.basename(path), os.path.abspath(path)
    rows = [(f"{name}:{i + 1}", line) for i, line in enumerate(lines) if line.strip()]
    if not rows:
        raise InputError(f"{path} holds no text (every line is blank).")
    ids, texts = [r[0] for r in rows], [r[1] for r in rows]
    return Inputs("text", ids, [""] * len(texts), [full] * len(texts), texts, texts=list(texts))


def _images(inputs: Any) -> Inputs:
    import numpy as np

    if isinstance(inputs, str | os.PathLike):
        return _from_path(os.fspath(inputs))
    if isinstance(inputs, dict):
        inner = _images(list(inputs.values()))
        inner.ids = [str(k) for k in inputs]
        return inner
    if _is_tensor(inputs) or isinstance(inputs, np.ndarray):
        return _from_array(inputs)
    if not isinstance(inputs, list | tuple):
        if _is_pil(inputs):
            inputs = [inputs]
        else:
            raise InputError(
                f"Cannot use {type(inputs).__name__} as image inputs: pass a folder, paths, "
                "PIL images, arrays or a NxCxHxW tensor."
            )
    items = list(inputs)
    if items and all(isinstance(i, str | os.PathLike) for i in items):
        paths = [os.path.abspath(os.fspath(p)) for p in items]
        # ids relative to the deepest common folder: "cats/1.png", not a long absolute path
        base = os.path.commonpath(paths) if len(paths) > 1 else os.path.dirname(paths[0])
        if base in paths:
            base = os.path.dirname(base)
        ids = _unique([Path(os.path.relpath(p, base)).as_posix() for p in paths])
        labels = [Path(p).parent.name for p in paths]
        return Inputs("files", ids, labels, paths, paths)
    for i, item in enumerate(items):
        if not (_is_pil(item) or isinstance(item, np.ndarray) or _is_tensor(item)):
            raise InputError(f"Input {i} is a {type(item).__name__}; expected a path, a PIL image or an array.")
    n = len(items)
    return Inputs("images", [str(i) for i in range(n)], [""] * n, [""] * n, items)


def _unique(ids: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for i in ids:
        k = seen.get(i, 0)
        out.append(i if k == 0 else f"{i}#{k}")
        seen[i] = k + 1
    return out


def _from_path(path: str) -> Inputs:
    if os.path.isdir(path):
        return _from_folder(path)
    if os.path.isfile(path) or os.path.islink(path):  # a broken link: say why it cannot be read
        p = os.path.abspath(path)
        return Inputs("files", [os.path.basename(p)], [Path(p).parent.name], [p], [p])
    if any(ch in path for ch in "*?["):
        files = _glob_files(path)
        if not files:
            raise InputError(f"No files match {path!r}.")
        return _images(files)
    raise InputError(f"No such file or folder: {path!r}.")


def _glob_files(pattern: str) -> list[str]:
    """Files matching `pattern`, sorted; hidden names skipped, as in a folder.

    `**` does not descend into symlinked folders (as the folder walk): `glob.glob` does,
    so one symlink loop repeats every file ~40 times and two make it hang.
    """
    parts = Path(pattern).parts
    first = next(i for i, part in enumerate(parts) if globlib.has_magic(part))
    base = Path(*parts[:first])
    rest = list(parts[first:])
    if rest[-1] == "**":  # glob.glob's "folder/**" means every file below
        rest.append("*")
    try:
        matches = base.glob("/".join(rest))
        # not is_file(): a broken link is kept, to be recorded as unreadable, as in a folder
        files = {str(m) for m in matches if not any(q.startswith(".") for q in m.relative_to(base).parts) and not m.is_dir()}
    except ValueError as e:  # e.g. "a**b": pathlib wants ** as a whole path part
        raise InputError(f"Cannot use the glob {pattern!r}: {e}.") from None
    return sorted(files)


def _from_folder(root: str) -> Inputs:
    root = os.path.abspath(root)
    ids, labels, paths, skipped = [], [], [], []
    # followlinks=False: a symlink loop cannot trap the walk
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            full = os.path.join(dirpath, name)
            rel = Path(os.path.relpath(full, root)).as_posix()
            label = Path(rel).parent.name if "/" in rel else ""
            if Path(name).suffix.lower() in IMAGE_EXTENSIONS:
                ids.append(rel)
                labels.append(label)
                paths.append(full)
            else:
                skipped.append((rel, full, f"not an image file (extension {Path(name).suffix or 'none'})"))
    if not ids:
        raise InputError(
            f"No images found in {root} (looked for {', '.join(sorted(IMAGE_EXTENSIONS))}, recursively)."
        )
    return Inputs("files", ids, labels, paths, paths, skipped=skipped)


def _from_array(arr: Any) -> Inputs:
    shape = tuple(arr.shape)
    is_uint8 = str(arr.dtype) in ("uint8", "torch.uint8")
    if len(shape) == 4 and not is_uint8:
        return _tensor_inputs(arr)
    if len(shape) == 4:  # a stack of uint8 images, NxHxWxC or NxCxHxW
        items = [arr[i] for i in range(shape[0])]
    elif len(shape) in (2, 3):
        if len(shape) == 3 and not is_uint8 and shape[0] in (1, 3) and shape[-1] not in (1, 3, 4):
            return _tensor_inputs(arr[None])  # a single model-ready CxHxW tensor
        items = [arr]
    else:
        raise InputError(f"Cannot use an array of shape {shape}: expected NxCxHxW, HxWxC or NxHxWxC.")
    n = len(items)
    return Inputs("images", [str(i) for i in range(n)], [""] * n, [""] * n, items)


def _tensor_inputs(arr: Any) -> Inputs:
    import numpy as np
    import torch

    t = torch.as_tensor(np.asarray(arr)) if not _is_tensor(arr) else arr
    if not t.is_floating_point():
        raise InputError(f"A model-ready tensor must be float; got {t.dtype}.")
    # NaN/inf rows are checked batch by batch (recorded as failed), not here: one pass over
    # a large tensor up front costs as much as a batch of forward passes
    n = int(t.shape[0])
    return Inputs("tensor", [str(i) for i in range(n)], [""] * n, [""] * n, t)


def _is_tensor(x: Any) -> bool:
    return type(x).__module__.startswith("torch") and hasattr(x, "shape") and hasattr(x, "dtype")


def _is_pil(x: Any) -> bool:
    return type(x).__module__.startswith("PIL.")


# ---- content keys: what a sample holds, so a resume or the cache never serves stale values


def file_signature(path: str) -> str:
    """size, mtime, ctime and inode: any edit, rename or swap of the file changes one of them.

    ctime cannot be set back by a program (os.utime sets it to now), so an edit that keeps
    the mtime still shows; a copy elsewhere shows too, and is then confirmed by content.
    """
    try:
        st = os.stat(path)
    except OSError as e:
        return f"unreadable:{e.errno}"
    return f"{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}:{st.st_ino}"


def file_digest(path: str) -> str:
    """`sha256:<hex>` of the file's bytes (`unreadable:<errno>` when it cannot be read)."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
    except OSError as e:
        return f"unreadable:{e.errno}"
    return "sha256:" + h.hexdigest()[:32]


def file_key(path: str) -> str:
    """`<content digest>|<stat signature>` (the signature taken first: a later edit shows)."""
    sig = file_signature(path)
    return f"{file_digest(path)}|{sig}"


def same_file(stored: str, path: str) -> bool:
    """Whether `path` still holds what `stored` (a `file_key`) describes.

    An unchanged stat signature is trusted without reading the file; otherwise the bytes
    are hashed and compared (a touched or copied file with the same bytes is unchanged).
    """
    digest, _, sig = stored.partition("|")
    if sig and not sig.startswith("unreadable") and file_signature(path) == sig:
        return True
    return file_digest(path) == digest


def _digest(*parts: Any) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(len(p).to_bytes(8, "little"))
        h.update(p)
    return "sha256:" + h.hexdigest()[:32]


def _item_bytes(item: Any) -> tuple[Any, ...]:
    """dtype/shape/mode header and raw bytes of an in-memory image, array or tensor row."""
    import numpy as np

    if _is_pil(item):
        return f"PIL:{item.mode}:{item.size}".encode(), item.tobytes()
    if _is_tensor(item):
        t = item.detach().cpu().contiguous()
        if str(t.dtype) == "torch.bfloat16":
            import torch

            t = t.view(torch.int16)
        item = t.numpy()
    a = np.ascontiguousarray(np.asarray(item))
    return f"array:{a.dtype.str}:{a.shape}".encode(), (memoryview(a).cast("B") if a.size else b"")
