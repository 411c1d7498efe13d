"""Which modules to capture: layer specs and node roles -> targets.

A layer is a module path (`layer3`, `blocks.5.attn`), a glob (`blocks.*.attn`, one target
per match), a block index (`-1` is the last repeated block), a stage (`stage2`, HF
`out_indices` numbering, `stage0` the stem: what `AutoBackbone` / timm `features_only` give),
or a node role (`attn`, `mlp`, `block`: stacked over depth along `layer`; on a hierarchical
model one variable per stage, `block.stage1`, `block.stage2`, ...).

>>> targets = select(bb, layers=["layer3", -1], nodes=None, pool="mean")   # doctest: +SKIP
>>> targets = select(bb, stages=[1, 2])                                    # doctest: +SKIP
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
_STAGE = re.compile(r"^stage(\d+)$")


@dataclass(frozen=True)
class Target:
    """One output variable: a module, or a role stacked over `len(modules)` depths."""

    name: str
    modules: tuple[str, ...]
    stacked: bool
    pool: PoolSpec | None
    view: str = ""  # "stage2": the adapter's stage post-processing (AutoBackbone semantics)
    blocks: tuple[str, ...] = ()  # stacked: the block path at each depth (the `module` coord)

    @property
    def key(self) -> tuple[PoolSpec | None, str]:
        """What the capture of one module computes for this target: (pooling, view)."""
        return (self.pool, self.view)


def select(bb: Any, layers: Any = None, nodes: Any = None, pool: Any = None, stages: Any = None) -> list[Target]:
    """Resolve user layer/node/stage specs against a Backbone; unknown names list close matches."""
    per_layer_pool: dict[str, Any] = {}
    if isinstance(layers, dict):  # {"layer3": {"pool": ...}} or {"layer3": "mean"}
        for key, value in layers.items():
            per_layer_pool[str(key)] = value.get("pool") if isinstance(value, dict) else value
        layers = list(layers)
    specs = _as_list(layers) + [_role(n, bb) for n in _as_list(nodes)] + [_stage_name(s) for s in _as_list(stages)]
    if not specs:
        specs = [-1] if bb.blocks else []
    if not specs:
        raise UnknownLayerError("This model has no repeated blocks to default to: pass layers=[...] (see bb.layers()).")
    targets: dict[str, Target] = {}
    for spec in specs:
        key = str(spec)
        for t in _expand(bb, spec):
            if t.name not in targets:
                targets[t.name] = t
            per_layer_pool.setdefault(t.name, per_layer_pool.get(key))
    pools = _pools(pool, per_layer_pool, list(targets))
    return [Target(t.name, t.modules, t.stacked, pools.get(t.name), t.view, t.blocks) for t in targets.values()]


def _as_list(spec: Any) -> list[Any]:
    if spec is None:
        return []
    if isinstance(spec, str | int | float):
        return [spec]
    return list(spec)


def _stage_name(spec: Any) -> str:
    if isinstance(spec, int) or (isinstance(spec, str) and _INDEX.match(spec)):
        return f"stage{int(spec)}"
    if isinstance(spec, str) and (_STAGE.match(spec) or spec == "stem"):
        return spec
    raise UnknownLayerError(f"stages={spec!r}: give stage numbers (HF out_indices numbering, 0 is the stem), e.g. stages=[1, 2].")


def _role(name: Any, bb: Any) -> str:
    if str(name) not in ROLES:
        raise UnknownLayerError(f"Unknown node role {name!r}: use one of {', '.join(ROLES)}.")
    return str(name)


def _expand(bb: Any, spec: Any) -> list[Target]:
    paths = bb.layers()
    if isinstance(spec, float):  # relative depth across the blocks: 0.0 first, 1.0 last
        from nbfeat.analysis.depth import blocks_at

        path = blocks_at(bb, [spec])[0]
        return [Target(path, (path,), False, None)]
    # "0" names a module of an nn.Sequential (a user's model); the int 0 is always a block index
    if isinstance(spec, int) or (isinstance(spec, str) and _INDEX.match(spec) and spec not in paths):
        i = int(spec)
        if not bb.blocks:
            raise UnknownLayerError(f"Block index {i}: {bb.id} has no repeated blocks; name a module (bb.layers()).")
        if not -len(bb.blocks) <= i < len(bb.blocks):
            raise UnknownLayerError(f"Block index {i} is out of range: {bb.id} has {len(bb.blocks)} blocks.")
        path = bb.blocks[i]
        return [Target(path, (path,), False, None)]
    spec = str(spec)
    if spec in ROLES and spec not in paths:
        return _role_targets(bb, spec)
    if spec in paths:
        return [Target(spec, (spec,), False, None)]
    if spec == "stem" or _STAGE.match(spec):
        return [_stage_target(bb, spec)]
    if any(ch in spec for ch in "*?["):
        hits = [p for p in paths if fnmatch.fnmatchcase(p, spec)]
        if hits:
            return [Target(p, (p,), False, None) for p in hits]
        raise UnknownLayerError(f"No layer of {bb.id} matches {spec!r}. Close: {', '.join(closest(spec.replace('*', ''), paths)) or 'none'}. See bb.layers().")
    hits = closest(spec, paths)
    hint = f" Did you mean: {', '.join(hits)}?" if hits else ""
    raise UnknownLayerError(f"Unknown layer {spec!r} for {bb.id}.{hint} See bb.layers() or bb.tree().")


def _role_targets(bb: Any, role: str) -> list[Target]:
    """One stacked target per node group: `block`, or `block.stage1`, `block.stage2`, ..."""
    groups = bb.adapter.groups()
    out = []
    for g in groups:
        per = [bb.adapter.roles(b) for b in g.blocks]
        if not per or not all(role in p for p in per):
            continue
        name = f"{role}.{g.name}" if g.name else role
        out.append(Target(name, tuple(p[role] for p in per), True, None, "", tuple(g.blocks)))
    if not out:
        have = ", ".join(bb.nodes) or "none"
        raise UnknownLayerError(f"{bb.id} has no '{role}' node at every depth (roles found: {have}); pick modules with layers=.")
    return out


def _stage_target(bb: Any, spec: str) -> Target:
    stages = bb.stages
    family = bb.adapter.family
    if not stages:
        raise UnknownLayerError(
            f"{bb.id} ({family}) has no stages nbfeat knows; stages are known for the families in docs/support.md. "
            f"Use block indices (layers=-1) or module paths instead."
        )
    index = 0 if spec == "stem" else int(spec[len("stage"):])
    by_index = {s.index: s for s in stages}
    if index not in by_index:
        raise UnknownLayerError(f"{bb.id} has stages {', '.join(s.name for s in stages)}; {spec!r} is not one of them.")
    stage = by_index[index]
    return Target(stage.name, (stage.module,), False, None, stage.name)


def _pools(pool: Any, per_layer: dict[str, Any], names: list[str]) -> dict[str, PoolSpec | None]:
    if isinstance(pool, dict):
        unknown = [k for k in pool if k not in names and k not in per_layer]
        if unknown:
            raise UnknownLayerError(f"pool names {unknown[0]!r}, which is not an extracted layer ({', '.join(names)}).")
        return {n: parse_pool(pool.get(n, per_layer.get(n))) for n in names}
    default = parse_pool(pool)
    return {n: parse_pool(per_layer[n]) if per_layer.get(n) is not None else default for n in names}
