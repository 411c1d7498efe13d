"""nbfeat: features from pretrained backbones, as labelled xarray, in a notebook.

Example:
    >>> import nbfeat
    >>> bb = nbfeat.load("timm:resnet18", pretrained=False)      # doctest: +SKIP
    >>> ds = bb.extract("images/", layers=["layer3", "layer4"])  # doctest: +SKIP

Nothing heavy is imported here: torch, xarray and friends load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from nbfeat._version import __version__

if TYPE_CHECKING:  # pragma: no cover
    from nbfeat.analysis.compare import compare
    from nbfeat.api import extract, load
    from nbfeat.brain.encode import encode
    from nbfeat.models.backbone import Backbone
    from nbfeat.models.registry import list_models
    from nbfeat.store import open
    from nbfeat.widgets import browse, explore, tree

__all__ = [
    "Backbone",
    "__version__",
    "browse",
    "compare",
    "encode",
    "explore",
    "extract",
    "list_models",
    "load",
    "open",
    "tree",
]

# public name -> module that defines it; imported on first attribute access
_LAZY = {
    "load": "nbfeat.api",
    "extract": "nbfeat.api",
    "list_models": "nbfeat.models.registry",
    "Backbone": "nbfeat.models.backbone",
    "compare": "nbfeat.analysis.compare",
    "encode": "nbfeat.brain.encode",
    "open": "nbfeat.store",
    "tree": "nbfeat.widgets",
    "browse": "nbfeat.widgets",
    "explore": "nbfeat.widgets",
}


# subpackages reachable as attributes without an explicit import (nbfeat.store.sample(...))
_SUBMODULES = ("analysis", "brain", "cache", "data", "engine", "errors", "examples", "models", "store", "widgets")


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"nbfeat.{name}")
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbfeat' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def load_ipython_extension(ipython: Any) -> None:
    """`%load_ext nbfeat`: register the `%nbfeat` magics (torch is not imported here)."""
    from nbfeat import magics

    magics.load_ipython_extension(ipython)


def unload_ipython_extension(ipython: Any) -> None:
    """`%unload_ext nbfeat`: remove the magics and the completer."""
    from nbfeat import magics

    magics.unload_ipython_extension(ipython)


def _register_accessors_when_xarray_loads() -> None:
    # The `.nbfeat` accessor must exist on any xarray object, including ones a user opens
    # without going through nbfeat, yet importing xarray here would cost ~0.3 s. Register now
    # if xarray is loaded, otherwise right after its first import finishes.
    import sys

    if "xarray" in sys.modules:
        _register()
        return

    class _AfterXarrayImport:
        def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
            if fullname != "xarray":
                return None
            # Stay installed until xarray really executes: libraries often only probe
            # find_spec("xarray") to see whether it is installed.
            import importlib.machinery

            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is not None and spec.loader is not None:
                exec_module = spec.loader.exec_module

                def exec_then_register(module: Any) -> None:
                    if self in sys.meta_path:
                        sys.meta_path.remove(self)
                    exec_module(module)
                    _register()

                spec.loader.exec_module = exec_then_register  # type: ignore[method-assign]
            return spec

    sys.meta_path.insert(0, _AfterXarrayImport())


def _register() -> None:
    try:
        from nbfeat.analysis.accessor import register
    except ImportError:  # the analysis package is missing in a partial checkout
        return
    register()


_register_accessors_when_xarray_loads()
