"""From layers to brains: targets as labelled data, RSA against them, encoding models,
noise ceilings and layer profiles. See docs/brain.md.

>>> resp = nbfeat.brain.responses(values, samples=ids)          # (sample, neuroid[, repeat])  # doctest: +SKIP
>>> res = nbfeat.encode(dt, resp, cv=5)                          # ridge per layer, nested alphas # doctest: +SKIP
>>> rsa = nbfeat.compare(dt, nbfeat.brain.target_rdms(resp))     # RSA per layer and target      # doctest: +SKIP
>>> res.plot(); res.plot_matrix()                                                               # doctest: +SKIP

Submodules load on use: `targets` (responses, RDMs, rsatoolbox conversion), `rsa`, `encode`,
`ceiling`, `result` (`BrainScores`), `profile` (figures).
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "responses": "nbfeat.brain.targets",
    "as_responses": "nbfeat.brain.targets",
    "rdms": "nbfeat.brain.targets",
    "target_rdms": "nbfeat.brain.targets",
    "as_target_rdms": "nbfeat.brain.targets",
    "to_rsatoolbox": "nbfeat.brain.targets",
    "from_rsatoolbox": "nbfeat.brain.targets",
    "encode": "nbfeat.brain.encode",
    "split_half": "nbfeat.brain.ceiling",
    "rdm_ceiling": "nbfeat.brain.ceiling",
    "noise_ceiling": "nbfeat.brain.ceiling",
    "BrainScores": "nbfeat.brain.result",
    "plot_profile": "nbfeat.brain.profile",
    "plot_brain_matrix": "nbfeat.brain.profile",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'nbfeat.brain' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
