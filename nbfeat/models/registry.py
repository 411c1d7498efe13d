"""Model ids (`source:name`), the alias table, and the model listing.

Every source sits behind one contract (`nbfeat.models.sources.base.Source`); this module only
turns what a user typed into a source and a name, through the alias table.

>>> resolve("resnet50")
('torchvision', 'resnet50')
>>> lookup("SAM(sam_vit_b)").shown
'SAM(sam_vit_b) -> timm:samvit_base_patch16.sa1b'
"""

from __future__ import annotations

import fnmatch
import os
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nbfeat.errors import NbfeatError, UnknownModelError, closest
from nbfeat.models.aliases import ALIASES, UNSHIPPED
from nbfeat.models.sources import BARE_ORDER, REGISTRY, all_sources, get_source

if TYPE_CHECKING:
    import pandas as pd

SOURCES = tuple(REGISTRY)
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")


@dataclass
class Resolved:
    """What a typed name stands for: source, name, the alias used and its model_kwargs."""

    source: str
    name: str
    typed: str = ""
    alias: str = ""  # the alias-table key (or "hub id") when one was used
    model_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return f"{self.source}:{self.name}"

    @property
    def shown(self) -> str:
        """`typed -> source:name` when the typed name was an alias, else ''."""
        return f"{self.typed} -> {self.id}" if self.typed and self.typed != self.id else ""


def resolve(model_id: str) -> tuple[str, str]:
    """Turn an alias or `source:name` into `(source, name)`; a bare name is looked up.

    A bare name is tried as an alias, then torchvision, then timm, then CORnet; a bare
    `org/name` is a Hugging Face hub id. `hf:` names are not checked here (a hub id or a
    local directory is checked when loaded).
    """
    r = lookup(model_id)
    return r.source, r.name


def lookup(model_id: str) -> Resolved:
    """Like `resolve`, with the alias used and its model_kwargs (`Resolved.shown`)."""
    typed = model_id.strip()
    alias = _alias_key(typed)
    if alias is not None:
        entry = ALIASES[alias]
        source, _, name = entry.id.partition(":")
        return Resolved(source, get_source(source).resolve(name), typed, alias, dict(entry.model_kwargs))
    unshipped = _unshipped_key(typed)
    if unshipped is not None:
        raise NbfeatError(UNSHIPPED[unshipped])
    source, sep, name = typed.partition(":")
    if sep and source in REGISTRY:
        return Resolved(source, get_source(source).resolve(name), typed)
    if os.path.isdir(typed):
        kind = "diffusers" if os.path.isfile(os.path.join(typed, "model_index.json")) else "hf"
        return Resolved(kind, typed, typed if kind != "hf" else "")
    if sep and not os.path.exists(typed):
        raise UnknownModelError(
            f"Unknown model source '{source}' in '{typed}': use one of " + ", ".join(f"'{s}:'" for s in SOURCES) + "."
        )
    for prefix in BARE_ORDER:
        src = get_source(prefix)
        if src.knows(typed):
            return Resolved(prefix, typed)
    if _HUB_ID.match(typed):
        return Resolved("hf", typed, typed, "hub id")
    raise UnknownModelError(unknown_message(typed))


def _alias_key(typed: str) -> str | None:
    if typed in ALIASES:
        return typed
    key = _norm(typed)
    return next((a for a in ALIASES if _norm(a) == key), None)


def _unshipped_key(typed: str) -> str | None:
    key = _norm(typed)
    return next((a for a in UNSHIPPED if _norm(a) == key or _norm(a.partition("(")[0]) == key), None)


def _norm(name: str) -> str:
    return re.sub(r"\s+", "", name).lower()


def unknown_message(model_id: str) -> str:
    """'Unknown model ...' with the closest ids (same source first) and where to list them."""
    name = model_id.partition(":")[2] or model_id
    candidates = [*ALIASES]
    for prefix in ("torchvision", "timm", "cornet"):
        candidates += [f"{prefix}:{n}" for n in get_source(prefix).names()]
    candidates += [f"timm:{n}" for n in _timm_base_names()]
    # match on the bare name so "timm:resnt50" finds "timm:resnet50"; same source first
    source = model_id.partition(":")[0] if ":" in model_id else ""
    candidates.sort(key=lambda c: not c.startswith(source + ":") if source else 0)
    by_name: dict[str, str] = {}
    for c in candidates:
        by_name.setdefault(c.partition(":")[2] or c, c)
    hits = [by_name[h] for h in closest(name, by_name, n=6)]
    hint = f" Did you mean: {', '.join(hits)}?" if hits else ""
    return (
        f"Unknown model '{model_id}'.{hint} "
        "List models with nbfeat.list_models('pattern'); Hugging Face models take 'hf:<hub id or dir>'; "
        "your own torch.nn.Module loads with nbfeat.load(module)."
    )


def _timm_base_names() -> tuple[str, ...]:
    from nbfeat.models.sources.timm import _names

    return _names(False)


def list_models(pattern: str | None = None) -> pd.DataFrame:
    """A table of model ids from every source plus the named families.

    `pattern` is a case-insensitive substring or a glob (`*dinov2*`). Columns: id, source,
    modality, family, extra (the pip command a row needs, '' when none), note.

    >>> nbfeat.list_models("dinov2").head()   # doctest: +SKIP
    """
    import pandas as pd

    rows = []
    for alias, entry in ALIASES.items():
        source = entry.id.partition(":")[0]
        note = f"alias of {entry.id}" + (f" with model_kwargs={entry.model_kwargs}" if entry.model_kwargs else "")
        rows.append((alias, source, entry.modality, entry.family, get_source(source).pip(), note + (f"; {entry.note}" if entry.note else "")))
    for src in all_sources():
        rows += src.rows()
    df = pd.DataFrame(rows, columns=["id", "source", "modality", "family", "extra", "note"])
    if pattern:
        pat = pattern.lower()
        if any(ch in pat for ch in "*?["):
            keep = df["id"].str.lower().map(lambda s: fnmatch.fnmatch(s, pat))
        else:
            keep = df["id"].str.lower().str.contains(pat, regex=False) | df["family"].str.lower().str.contains(pat, regex=False)
        df = df[keep]
    return df.reset_index(drop=True)


__all__ = ["Resolved", "list_models", "lookup", "resolve"]
