"""User-facing errors: one short message that says what to do.

Magics and the CLI print these as one line; anything else is a bug and shows a traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class NbfeatError(Exception):
    """Base class for mistakes a user can fix (bad names, missing files, offline, ...)."""


class UnknownModelError(NbfeatError, KeyError):
    """A model id that no source knows."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class UnknownLayerError(NbfeatError, KeyError):
    """A layer, glob or node role that matches nothing in the model."""

    def __str__(self) -> str:
        return str(self.args[0])


class MissingDependencyError(NbfeatError, ImportError):
    """An optional package is needed; the message names the pip command."""


class OfflineError(NbfeatError, OSError):
    """Pretrained weights could not be fetched (no network) and are not cached."""


class InputError(NbfeatError, ValueError):
    """Inputs nbfeat cannot use (empty folder, wrong type or shape)."""


def closest(name: str, candidates: Iterable[str], n: int = 5) -> list[str]:
    """Closest names to `name`, best first: exact-substring hits, then fuzzy matches.

    >>> closest("resnt50", ["resnet50", "resnet18", "vgg16"])
    ['resnet50', 'resnet18']
    """
    pool = list(dict.fromkeys(candidates))
    low = name.lower()
    fuzzy = difflib.get_close_matches(low, [c.lower() for c in pool], n=n, cutoff=0.6)
    by_low = {c.lower(): c for c in pool}
    hits = [by_low[f] for f in fuzzy]
    if len(hits) < n and len(low) >= 3:
        hits += [c for c in pool if low in c.lower() and c not in hits][: n - len(hits)]
    return hits[:n]


def did_you_mean(name: str, candidates: Iterable[str], n: int = 5) -> str:
    """' Did you mean: a, b?' or '' when nothing is close."""
    hits = closest(name, candidates, n)
    return f" Did you mean: {', '.join(hits)}?" if hits else ""


def require(module: str, pip: str | None = None) -> None:
    """Import check for an optional dependency, with the pip command in the error.

    >>> require("json")
    """
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise MissingDependencyError(
            f"This needs the optional package '{module}': pip install {pip or module}"
        )
