"""Model ids (`source:name`), the alias table, and the model listing.

>>> resolve("resnet50")
('torchvision', 'resnet50')
"""

from __future__ import annotations

import fnmatch
import os
from functools import lru_cache
from typing import TYPE_CHECKING

from nbfeat.errors import UnknownModelError, closest
from nbfeat.models.aliases import ALIASES

if TYPE_CHECKING:
    import pandas as pd

SOURCES = ("timm", "torchvision", "hf")


def resolve(model_id: str) -> tuple[str, str]:
    """Turn an alias or `source:name` into `(source, name)`; a bare name is looked up.

    A bare name is tried as an alias, then torchvision, then timm. `hf:` names are not
    checked here (a hub id or a local directory is checked when loaded).
    """
    model_id = model_id.strip()
    if model_id in ALIASES:
        model_id = ALIASES[model_id][0]
    source, sep, name = model_id.partition(":")
    if sep and source in SOURCES:
        if source != "hf":
            _check_known(source, name)
        return source, name
    if sep and source not in SOURCES and not os.path.exists(model_id):
        raise UnknownModelError(
            f"Unknown model source '{source}' in '{model_id}': use one of "
            + ", ".join(f"'{s}:'" for s in SOURCES)
            + "."
        )
    if os.path.isdir(model_id):
        return "hf", model_id
    if model_id in _torchvision_names():
        return "torchvision", model_id
    if _timm_base(model_id) in _timm_names():
        return "timm", model_id
    raise UnknownModelError(_unknown_message(model_id))


def _check_known(source: str, name: str) -> None:
    known = _torchvision_names() if source == "torchvision" else _timm_names()
    base = name if source == "torchvision" else _timm_base(name)
    if base not in known:
        raise UnknownModelError(_unknown_message(f"{source}:{name}"))


def _unknown_message(model_id: str) -> str:
    name = model_id.partition(":")[2] or model_id
    candidates = [*ALIASES, *(f"torchvision:{n}" for n in _torchvision_names())]
    candidates += [f"timm:{n}" for n in (*_timm_names(), *_timm_names(pretrained_tags=True))]
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
        "List models with nbfeat.list_models('pattern'); Hugging Face models take 'hf:<hub id or dir>'."
    )


def _timm_base(name: str) -> str:
    return name.partition(".")[0]


@lru_cache(maxsize=2)
def _timm_names(pretrained_tags: bool = False) -> tuple[str, ...]:
    import timm

    return tuple(timm.list_models(pretrained=pretrained_tags))


@lru_cache(maxsize=1)
def _torchvision_names() -> tuple[str, ...]:
    import torchvision

    return tuple(torchvision.models.list_models())


def _hf_cached() -> list[str]:
    """Hub ids found in the local Hugging Face cache (usable offline)."""
    try:
        from huggingface_hub import scan_cache_dir

        return sorted(r.repo_id for r in scan_cache_dir().repos if r.repo_type == "model")
    except Exception:  # no cache dir yet, or an unreadable one: nothing cached
        return []


def list_models(pattern: str | None = None) -> pd.DataFrame:
    """A table of model ids from every source plus the named families.

    `pattern` is a case-insensitive substring or a glob (`*dinov2*`). Columns: id, source,
    modality, family, extra (pip command needed, if any), note.

    >>> nbfeat.list_models("dinov2").head()   # doctest: +SKIP
    """
    import pandas as pd

    rows = []
    for alias, (mid, family, modality, extra, note) in ALIASES.items():
        rows.append((alias, mid.partition(":")[0], modality, family, extra, f"alias of {mid}" + (f"; {note}" if note else "")))
    rows += [(f"torchvision:{n}", "torchvision", "image", "", "", "") for n in _torchvision_names()]
    rows += [(f"timm:{n}", "timm", "image", "", "", "") for n in _timm_names(pretrained_tags=True)]
    rows += [(f"hf:{r}", "hf", "", "", "", "in the local cache") for r in _hf_cached()]
    df = pd.DataFrame(rows, columns=["id", "source", "modality", "family", "extra", "note"])
    if pattern:
        pat = pattern.lower()
        if any(ch in pat for ch in "*?["):
            keep = df["id"].str.lower().map(lambda s: fnmatch.fnmatch(s, pat))
        else:
            keep = df["id"].str.lower().str.contains(pat, regex=False) | df["family"].str.lower().str.contains(pat, regex=False)
        df = df[keep]
    return df.reset_index(drop=True)


__all__ = ["list_models", "resolve"]
