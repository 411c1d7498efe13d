"""Hugging Face text families, chosen by `config.model_type`: where each node is taken, as data.

Node roles follow ncut-pytorch: at every depth `attn` is the attention output and `mlp` the
feed-forward output, both *before* the residual add (and before the LayerNorm that post-norm
models apply after it), and `block` is the block (layer) output.

| family | blocks | attn | mlp | block |
|---|---|---|---|---|
| GPT-2 (`gpt2`) | `h.<i>` | `attn` (after `c_proj`) | `mlp` (after `c_proj`) | `h.<i>` (the last is before `ln_f`) |
| Llama, Mistral, Qwen2 | `layers.<i>` | `self_attn` (after `o_proj`) | `mlp` (after `down_proj`) | decoder layer (the last before `norm`) |
| BERT, ELECTRA, DeBERTa-v2, RoBERTa, XLM-R | `encoder.layer.<i>` | `attention.output.dense` | `output.dense` | layer output (after residual + LayerNorm) |
| MPNet (`mpnet`) | `encoder.layer.<i>` | `attention.attn` (after `o`) | `output.dense` | layer output (after residual + LayerNorm) |
| DistilBERT | `transformer.layer.<i>` | `attention` (after `out_lin`) | `ffn` (after `lin2`) | block output (after residual + LayerNorm) |
| ALBERT | the shared `AlbertLayer`, once per call | `attention.dense` | `ffn_output` | the layer's output at that call |
| T5 encoder | `encoder.block.<i>` | `layer.0.SelfAttention` (after `o`) | `layer.1.DenseReluDense` (after `wo`) | block (the last before `final_layer_norm`) |
| CLIP text | `encoder.layers.<i>` | `self_attn` (after `out_proj`) | `mlp` (after `fc2`) | encoder layer (the last before `final_layer_norm`) |

ALBERT runs its one shared layer `num_hidden_layers` times: every call is a depth, so its
nodes stack the calls along `layer` like any other model's blocks (the `module` coord repeats
the shared path).

Pooling: `cls` only where token 0 is a class token (`[CLS]` of BERT, ELECTRA, DeBERTa,
DistilBERT and ALBERT, RoBERTa's `<s>`); GPT-2, Llama, T5 and CLIP text refuse it and name `mean`/`last`. `last` is
the last real token: GPT-2/Llama's last word, BERT's `[SEP]`, T5's `</s>`, CLIP's end-of-text
token (the one `CLIPTextModel.pooler_output` takes, before `final_layer_norm`).

The context (`context_length`) comes from the tokenizer's `model_max_length` and the config's
position table, as the library uses it: RoBERTa-like models count position ids from
`pad_token_id + 1`, so `max_position_embeddings` 514 leaves 512 tokens.

>>> from nbfeat.models.adapters.text import TEXT_FAMILIES
>>> TEXT_FAMILIES["hf.bert"].roles["attn"]
'attention.output.dense'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from nbfeat.models.adapters.base import TOKENS, VECTOR, Adapter, Group, Layout, rank_layout


@dataclass(frozen=True)
class TextFamily:
    """What nbfeat knows about one text family (see the module docstring)."""

    name: str  # the adapter's family id
    model_types: tuple[str, ...]  # HF config.model_type values it covers
    stack: str  # path (or path suffix) of the ModuleList of blocks
    roles: dict[str, str]  # role -> path inside a block ("" is the block itself)
    where: dict[str, str]  # role -> where it is taken, in words (docs, tree, attrs)
    class_token: bool = False  # token 0 is a class token: pool="cls" is valid
    final_norm: str = ""  # the norm the model applies after the last block (last_hidden_state)


_BEFORE = "before the residual add"
_POST = "before dropout, the residual add and LayerNorm"

FAMILIES: list[TextFamily] = [
    TextFamily(
        "hf.gpt2", ("gpt2",), "h",
        {"attn": "attn", "mlp": "mlp", "block": ""},
        {"attn": f"attention output (after c_proj), {_BEFORE}", "mlp": f"MLP output (after c_proj), {_BEFORE}", "block": "block output (after both residual adds; the last block is before ln_f)"},
        final_norm="ln_f",
    ),
    TextFamily(
        "hf.llama", ("llama", "mistral", "qwen2"), "layers",
        {"attn": "self_attn", "mlp": "mlp", "block": ""},
        {"attn": f"self_attn output (after o_proj), {_BEFORE}", "mlp": f"mlp output (after down_proj), {_BEFORE}", "block": "decoder layer output (the last is before the final norm)"},
        final_norm="norm",
    ),
    TextFamily(
        "hf.bert", ("bert", "electra", "deberta-v2"), "encoder.layer",
        {"attn": "attention.output.dense", "mlp": "output.dense", "block": ""},
        {"attn": f"attention projection (attention.output.dense), {_POST}", "mlp": f"feed-forward projection (output.dense), {_POST}", "block": "layer output (after the second residual add and LayerNorm)"},
        class_token=True,
    ),
    TextFamily(
        "hf.roberta", ("roberta", "xlm-roberta", "camembert"), "encoder.layer",
        {"attn": "attention.output.dense", "mlp": "output.dense", "block": ""},
        {"attn": f"attention projection (attention.output.dense), {_POST}", "mlp": f"feed-forward projection (output.dense), {_POST}", "block": "layer output (after the second residual add and LayerNorm)"},
        class_token=True,
    ),
    TextFamily(
        "hf.mpnet", ("mpnet",), "encoder.layer",
        {"attn": "attention.attn", "mlp": "output.dense", "block": ""},
        {"attn": f"self-attention output (attention.attn, after o), {_POST}", "mlp": f"feed-forward projection (output.dense), {_POST}", "block": "layer output (after the second residual add and LayerNorm)"},
        class_token=True,
    ),
    TextFamily(
        "hf.distilbert", ("distilbert",), "transformer.layer",
        {"attn": "attention", "mlp": "ffn", "block": ""},
        {"attn": f"self-attention output (after out_lin), {_POST}", "mlp": "FFN output (after lin2 and dropout), before the residual add and LayerNorm", "block": "block output (after the second residual add and LayerNorm)"},
        class_token=True,
    ),
    TextFamily(
        "hf.albert", ("albert",), "encoder.albert_layer_groups",
        {"attn": "attention.dense", "mlp": "ffn_output", "block": ""},
        {"attn": f"attention projection (attention.dense) at each call of the shared layer, {_POST}", "mlp": "feed-forward projection (ffn_output), before the residual add and full_layer_layer_norm", "block": "the shared layer's output at each call (one depth per call)"},
        class_token=True,
    ),
    TextFamily(
        "hf.t5-encoder", ("t5", "mt5"), "encoder.block",
        {"attn": "layer.0.SelfAttention", "mlp": "layer.1.DenseReluDense", "block": ""},
        {"attn": "self-attention output (after o), before dropout and the residual add", "mlp": "feed-forward output (after wo), before dropout and the residual add", "block": "block output (the last is before final_layer_norm)"},
        final_norm="encoder.final_layer_norm",
    ),
    TextFamily(
        "hf.clip-text", ("clip_text_model",), "encoder.layers",
        {"attn": "self_attn", "mlp": "mlp", "block": ""},
        {"attn": f"self_attn output (after out_proj), {_BEFORE}", "mlp": f"mlp output (after fc2), {_BEFORE}", "block": "encoder layer output (the last is before final_layer_norm)"},
        final_norm="final_layer_norm",
    ),
]

TEXT_FAMILIES = {f.name: f for f in FAMILIES}

# Position ids counted from pad_token_id + 1 (RobertaEmbeddings and its copies): the first
# pad_token_id + 1 rows of the position table are never used by real tokens.
POSITION_OFFSET_TYPES = frozenset({"roberta", "xlm-roberta", "xlm-roberta-xl", "camembert", "roberta-prelayernorm", "data2vec-text", "xmod", "mpnet", "ibert", "longformer"})
# position tables read as the context (absolute positions); others (T5: relative) use the tokenizer's
_POSITION_KEYS = ("n_positions", "max_position_embeddings")
_NO_ABSOLUTE_POSITIONS = frozenset({"t5", "mt5", "umt5"})


def context_length(config: Any, tokenizer: Any) -> int | None:
    """The most tokens one text may have: the tokenizer's `model_max_length` and the config's
    position table as the model uses it (RoBERTa: `max_position_embeddings - pad_token_id - 1`).

    >>> from types import SimpleNamespace as NS
    >>> context_length(NS(model_type="roberta", max_position_embeddings=514, pad_token_id=1), NS(model_max_length=512))
    512
    >>> context_length(NS(model_type="roberta", max_position_embeddings=514, pad_token_id=1), NS(model_max_length=10**30))
    512
    """
    limits = []
    model_type = str(getattr(config, "model_type", "") or "")
    if model_type not in _NO_ABSOLUTE_POSITIONS:
        for key in _POSITION_KEYS:
            value = getattr(config, key, None)
            if isinstance(value, int) and value > 0:
                if model_type in POSITION_OFFSET_TYPES:
                    value -= int(getattr(config, "pad_token_id", 1) or 0) + 1
                limits.append(value)
                break
    limit = getattr(tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit < 10**6:  # transformers' "no limit" is ~1e30
        limits.append(limit)
    return min(limits) if limits else None


def _model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", "") or "")


def _find(modules: dict[str, Any], suffix: str) -> str | None:
    """The shortest module path that is `suffix` or ends with `.suffix` (a base model inside a
    task head: `bert.encoder.layer`)."""
    hits = [p for p in modules if p == suffix or p.endswith("." + suffix)]
    return min(hits, key=len) if hits else None


class TextAdapter(Adapter):
    """A text family given by a `TextFamily` (subclasses set `spec`)."""

    library = "hf"
    spec: ClassVar[TextFamily]

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        return _model_type(model) in cls.spec.model_types and _find(dict(model.named_modules()), cls.spec.stack) is not None

    @property
    def is_text(self) -> bool:
        return True

    def groups(self) -> list[Group]:
        base = _find(self.modules, self.spec.stack)
        if base is None:
            return []
        return [Group("", tuple(f"{base}.{i}" for i in range(len(self.modules[base]))))]

    def roles(self, block: str) -> dict[str, str]:
        return {role: f"{block}.{rel}" if rel else block for role, rel in self.spec.roles.items()}

    def layout(self, path: str, ndim: int, ctx: Any) -> Layout:
        if ndim == 3:
            return Layout(TOKENS, class_token=self.spec.class_token, text=True)
        if ndim == 2:
            return Layout(VECTOR)  # a pooler's output
        return rank_layout(ndim, text=True)

    def describe(self) -> dict[str, str]:
        return {**super().describe(), "class_token": "yes" if self.spec.class_token else "no"}


class AlbertAdapter(TextAdapter):
    """ALBERT: one shared layer (per group) run `num_hidden_layers` times; each call is a depth."""

    spec = TEXT_FAMILIES["hf.albert"]
    family = spec.name
    where = dict(spec.where)
    early_exit = False  # the shared layer's first call is not its last: run the whole encoder

    def groups(self) -> list[Group]:
        cfg = self.model.config
        base = _find(self.modules, self.spec.stack)
        if base is None:
            return []
        n, groups, inner = int(cfg.num_hidden_layers), int(cfg.num_hidden_groups), int(cfg.inner_group_num)
        depths = []
        for i in range(n):  # AlbertTransformer.forward's own group index
            g = int(i / (n / groups))
            depths += [f"{base}.{g}.albert_layers.{j}" for j in range(inner)]
        return [Group("", tuple(depths))]

    def blocks(self) -> list[str]:
        # distinct modules for layers=-1 (its calls come back along `call`)
        return list(dict.fromkeys(super().blocks()))

    def nodes(self) -> dict[str, list[str]]:
        depths = [b for g in self.groups() for b in g.blocks]
        per = [self.roles(b) for b in depths]
        return {r: [p[r] for p in per] for r in ("attn", "mlp", "block")} if per else {}


def _adapter(spec: TextFamily) -> type[TextAdapter]:
    name = "HF" + "".join(part.title() for part in spec.name.split(".", 1)[1].replace("-", "_").split("_")) + "Adapter"
    return type(name, (TextAdapter,), {"spec": spec, "family": spec.name, "where": dict(spec.where), "__doc__": f"{spec.name}: {', '.join(spec.model_types)}"})


ADAPTERS: list[type[Adapter]] = [AlbertAdapter if f.name == "hf.albert" else _adapter(f) for f in FAMILIES]
