"""Finding the stack of repeated blocks and the node roles inside them.

Node roles follow ncut-pytorch: at each depth, `attn` is the attention output (before the
residual add), `mlp` the MLP output, `block` the block output.

>>> find_blocks(timm.create_model("vit_tiny_patch16_224"))[:2]   # doctest: +SKIP
['blocks.0', 'blocks.1']
"""

from __future__ import annotations

import re
from typing import Any

_ATTN = re.compile(r"^(attn|attention|self_attn|self_attention|attn_block|mixer|token_mixer)$")
_MLP = re.compile(r"^(mlp|ffn|feed_forward|feedforward|mlp_block|channel_mixer)$")


def _is_primitive(module: Any) -> bool:
    return type(module).__module__.startswith("torch.nn.")


def _param_count(module: Any) -> int:
    return sum(p.numel() for p in module.parameters())


def find_blocks(model: Any) -> list[str]:
    """Module paths of the repeated blocks, in order of depth.

    The block class is the non-primitive class whose instances, held in a ModuleList or
    Sequential, carry the most parameters (ties favour the finer, more numerous class).
    Without one (alexnet, vgg): the parameterised layers of the top-level Sequentials.
    """
    import torch.nn as nn

    containers = (nn.ModuleList, nn.Sequential)
    by_class: dict[type, list[str]] = {}
    for path, module in model.named_modules():
        if isinstance(module, containers):
            for name, child in module.named_children():
                if not _is_primitive(child) and not isinstance(child, containers):
                    by_class.setdefault(type(child), []).append(f"{path}.{name}" if path else name)
    modules = dict(model.named_modules())
    scored = []
    for paths in by_class.values():
        if len(paths) < 2:
            continue
        # drop instances nested inside another instance of the same class
        paths = [p for p in paths if not any(p.startswith(q + ".") for q in paths)]
        params = sum(_param_count(modules[p]) for p in paths)
        scored.append((params, len(paths), paths))
    if scored:
        best = max(s[0] for s in scored)
        close = [s for s in scored if s[0] >= 0.9 * best]
        return max(close, key=lambda s: s[1])[2]
    # No repeated block class (alexnet, vgg): the parameterised layers of the top-level
    # Sequentials, in order (conv1..conv5, fc6..fc8 for alexnet).
    return [
        f"{path}.{name}"
        for path, seq in model.named_children()
        if isinstance(seq, nn.Sequential)
        for name, child in seq.named_children()
        if _param_count(child) > 0
    ]


def find_roles(model: Any, blocks: list[str]) -> dict[str, list[str]]:
    """`{"block": [...], "attn": [...], "mlp": [...]}`; a role appears only if every block has it."""
    if not blocks:
        return {}
    modules = dict(model.named_modules())
    roles: dict[str, list[str]] = {"block": list(blocks)}
    attn, mlp = [], []
    for b in blocks:
        children = dict(modules[b].named_children())
        a = next((n for n in children if _ATTN.match(n)), None)
        m = next((n for n in children if _MLP.match(n)), None)
        if m is None and "intermediate" in children and "output" in children:
            # BERT/ViT layout: the MLP is intermediate -> output.dense (then dropout + residual)
            m = "output.dense" if "output.dense" in {f"output.{k}" for k in dict(children["output"].named_children())} else None
        if a is not None and m == "output.dense":
            # BERT layout: the attention child ends in its own residual add + LayerNorm
            # (attention.output); its projection, like the MLP's output.dense, comes before them
            inner = dict(children[a].named_children()).get("output")
            if inner is not None and "dense" in dict(inner.named_children()):
                a = f"{a}.output.dense"
        attn.append(f"{b}.{a}" if a else None)
        mlp.append(f"{b}.{m}" if m else None)
    if all(attn):
        roles["attn"] = attn  # type: ignore[assignment]
    if all(mlp):
        roles["mlp"] = mlp  # type: ignore[assignment]
    return roles
