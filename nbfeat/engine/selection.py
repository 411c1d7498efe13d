"""Which modules to capture: layer specs and node roles -> targets.

A layer is a module path (`layer3`, `blocks.5.attn`), a glob (`blocks.*.attn`, one target
per match), a block index (`-1` is the last repeated block), or a node role (`attn`, `mlp`,
`block`: one target stacked over depth along `layer`).

>>> targets = select(bb, layers=["layer3", -1], nodes=None, pool="mean")   # doctest: +SKIP
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass
from typing import Any

from nbfeat.engine.pooling import PoolSpec, parse_pool
from nbfeat.errors import UnknownLayerError, closest

ROLES = ("attn", "mlp", "block")
_INDEX = re.compile(r"^-?\d+$")


@dataclass(frozen=True)
class Target:
    """One output variable: a module, or a role stacked over `len(modules)` depths."""

    name: str
    modules: tuple[str, ...]
    stacked: bool
    pool: PoolSpec | None


def select(bb: Any, layers: Any = None, nodes: Any = None, pool: Any = None) -> list[Target]:
    """Resolve user layer/node specs against a Backbone; unknown names list close matches."""
    per_layer_pool: dict[str, Any] = {}
    if isinstance(layers, dict):  # {"layer3": {"pool": ...}} or {"layer3": "mean"}
        for key, value in layers.items():
            per_layer_pool[str(key)] = value.get("pool") if isinstance(value, dict) else value
        layers = list(layers)
    specs = _as_list(layers) + [_role(n, bb) for n in _as_list(nodes)]
    if not specs:
        specs = [-1] if bb.blocks else []
    if not specs:
        raise UnknownLayerError("This model has no repeated blocks to default to: pass layers=[...] (see bb.layers()).")
    targets: dict[str, Target] = {}
    for spec in specs:
        key = str(spec)
        for name, modules, stacked in _expand(bb, spec):
            if name not in targets:
                targets[name] = Target(name, modules, stacked, None)
            per_layer_pool.setdefault(name, per_layer_pool.get(key))
    pools = _pools(pool, per_layer_pool, list(targets))
    return [Target(t.name, t.modules, t.stacked, pools.get(t.name)) for t in targets.values()]


def _as_list(spec: Any) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, str | int):
        return [spec]
    return list(spec)


def _role(name: Any, bb: Any) -> str:
    if str(name) not in ROLES:
        raise UnknownLayerError(f"Unknown node role {name!r}: use one of {', '.join(ROLES)}.")
    return str(name)


def _expand(bb: Any, spec: Any) -> list[tuple[str, tuple[str, ...], bool]]:
    paths = bb.layers()
    if isinstance(spec, int) or (isinstance(spec, str) and _INDEX.match(spec)):
        i = int(spec)
        if not bb.blocks:
            raise UnknownLayerError(f"Block index {i}: {bb.id} has no repeated blocks; name a module (bb.layers()).")
        if not -len(bb.blocks) <= i < len(bb.blocks):
            raise UnknownLayerError(f"Block index {i} is out of range: {bb.id} has {len(bb.blocks)} blocks.")
        path = bb.blocks[i]
        return [(path, (path,), False)]
    spec = str(spec)
    if spec in ROLES and spec not in paths:
        modules = bb.nodes.get(spec)
        if not modules:
            have = ", ".join(bb.nodes) or "none"
            raise UnknownLayerError(f"{bb.id} has no '{spec}' node at every depth (roles found: {have}); pick modules with layers=.")
        return [(spec, tuple(modules), True)]
    if spec in paths:
        return [(spec, (spec,), False)]
    if any(ch in spec for ch in "*?["):
        hits = [p for p in paths if fnmatch.fnmatchcase(p, spec)]
        if hits:
            return [(p, (p,), False) for p in hits]
        raise UnknownLayerError(f"No layer of {bb.id} matches {spec!r}. Close: {', '.join(closest(spec.replace('*', ''), paths)) or 'none'}. See bb.layers().")
    hits = closest(spec, paths)
    hint = f" Did you mean: {', '.join(hits)}?" if hits else ""
    raise UnknownLayerError(f"Unknown layer {spec!r} for {bb.id}.{hint} See bb.layers() or bb.tree().")


def _pools(pool: Any, per_layer: dict[str, Any], names: list[str]) -> dict[str, PoolSpec | None]:
    if isinstance(pool, dict):
        unknown = [k for k in pool if k not in names and k not in per_layer]
        if unknown:
            raise UnknownLayerError(f"pool names {unknown[0]!r}, which is not an extracted layer ({', '.join(names)}).")
        return {n: parse_pool(pool.get(n, per_layer.get(n))) for n in names}
    default = parse_pool(pool)
    return {n: parse_pool(per_layer[n]) if per_layer.get(n) is not None else default for n in names}
