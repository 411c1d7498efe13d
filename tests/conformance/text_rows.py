"""Text rows of the conformance matrix: GPT-2, Llama, BERT, RoBERTa, ALBERT, T5 encoder, CLIP text.

Each row builds a tiny random-weight model and its own tokenizer (tests/core/text_families.py),
saves both with save_pretrained and loads them back through `hf:<dir>`. Inputs are ragged in one
batch, hold non-ASCII text (é, 日本語, an emoji) and one text longer than the context (cut by the
tokenizer's own truncation, special tokens kept; nbfeat warns). The reference runs the HF model
on each text alone (no padding) with `output_hidden_states=True` for the blocks and forward
hooks written here for attn/mlp; the model paths below are written out by hand, not taken from
nbfeat. Padded positions are NaN in nbfeat's output, and in the reference.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from tests.conformance.rows import Row
from tests.core.text_families import build_tiny

CONTEXT = 24
TEXTS = ["the cat é 日本語 🙂 sky", "a cat", "the quick brown fox jumps over the lazy dog, " * 3]

# family -> (block path, attn path, mlp path) at depth {i}; the norm HF applies to the last
# block's output in hidden_states[-1] (None when hidden_states[-1] is the block output itself)
PATHS = {
    "gpt2": ("h.{i}", "h.{i}.attn", "h.{i}.mlp", "ln_f"),
    "llama": ("layers.{i}", "layers.{i}.self_attn", "layers.{i}.mlp", "norm"),
    "bert": ("encoder.layer.{i}", "encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense", None),
    "electra": ("encoder.layer.{i}", "encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense", None),
    "deberta-v2": ("encoder.layer.{i}", "encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense", None),
    "xlm-roberta": ("encoder.layer.{i}", "encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense", None),
    "mpnet": ("encoder.layer.{i}", "encoder.layer.{i}.attention.attn", "encoder.layer.{i}.output.dense", None),
    "distilbert": ("transformer.layer.{i}", "transformer.layer.{i}.attention", "transformer.layer.{i}.ffn", None),
    "mistral": ("layers.{i}", "layers.{i}.self_attn", "layers.{i}.mlp", "norm"),
    "qwen2": ("layers.{i}", "layers.{i}.self_attn", "layers.{i}.mlp", "norm"),
    "roberta": ("encoder.layer.{i}", "encoder.layer.{i}.attention.output.dense", "encoder.layer.{i}.output.dense", None),
    # one shared layer, called once per depth
    "albert": ("encoder.albert_layer_groups.0.albert_layers.0", "encoder.albert_layer_groups.0.albert_layers.0.attention.dense", "encoder.albert_layer_groups.0.albert_layers.0.ffn_output", None),
    "t5": ("encoder.block.{i}", "encoder.block.{i}.layer.0.SelfAttention", "encoder.block.{i}.layer.1.DenseReluDense", "encoder.final_layer_norm"),
    "clip_text": ("encoder.layers.{i}", "encoder.layers.{i}.self_attn", "encoder.layers.{i}.mlp", None),
}
CLASS_TOKEN = {"bert", "roberta", "albert", "electra", "deberta-v2", "xlm-roberta", "distilbert", "mpnet"}
TEXT_POOLS = ("mean", "mean_all", "max", "last", "flatten")


def _build(family: str) -> Any:
    def build() -> Any:
        model, tok = build_tiny(family, context=CONTEXT)
        model._nbfeat_tokenizer = tok
        model._nbfeat_family = family
        return model

    return build


def _save(model: Any, tmp: Path) -> tuple[str, dict[str, Any]]:
    model.save_pretrained(tmp / "hf")
    model._nbfeat_tokenizer.save_pretrained(tmp / "hf")
    return f"hf:{tmp / 'hf'}", {}


def _calls(model: Any, paths: list[str], run: Any) -> dict[str, list[Any]]:
    """{path: every output of that module during run() (first tensor of a tuple)}."""
    modules = dict(model.named_modules())
    out: dict[str, list[Any]] = {p: [] for p in paths}

    def hook(path: str) -> Any:
        def fn(module: Any, args: Any, output: Any) -> None:
            value = output[0] if isinstance(output, tuple | list) else output
            out[path].append(value.detach().clone())

        return fn

    handles = [modules[p].register_forward_hook(hook(p)) for p in dict.fromkeys(paths)]
    try:
        with torch.no_grad():
            result = run()
    finally:
        for h in handles:
            h.remove()
    return out, result


def _pad(rows: list[Any], width: int) -> Any:
    """(T_i, ...) per text -> (N, width, ...) with NaN after each text's tokens."""
    out = torch.full((len(rows), width, *rows[0].shape[1:]), float("nan"))
    for i, r in enumerate(rows):
        out[i, : r.shape[0]] = r
    return out


def reference(model: Any, texts: list[str]) -> dict[str, Any]:
    family, tok = model._nbfeat_family, model._nbfeat_tokenizer
    block, attn, mlp, final = PATHS[family]
    depths = {"t5": "num_layers", "distilbert": "n_layers"}.get(family, "num_hidden_layers")
    depths = getattr(model.config, depths)
    per_text: dict[str, list[Any]] = {"attn": [], "mlp": [], "block": []}
    for text in texts:
        enc = tok(text, truncation=True, max_length=CONTEXT, return_tensors="pt")
        ids = enc["input_ids"]
        paths = [p.format(i=i) for p in (attn, mlp) for i in range(depths)] + [block.format(i=depths - 1)]
        got, out = _calls(model, paths, lambda ids=ids: model(input_ids=ids, attention_mask=torch.ones_like(ids), output_hidden_states=True))
        hidden = out.hidden_states
        assert len(hidden) == depths + 1
        blocks = [hidden[i + 1][0] for i in range(depths)]
        if final is not None:  # HF's last hidden state went through the final norm: the block itself is hooked
            last = got[block.format(i=depths - 1)][-1]
            norm = dict(model.named_modules())[final]
            torch.testing.assert_close(norm(last), hidden[-1])
            blocks[-1] = last[0]
        if family == "clip_text":  # CLIP pools its end-of-text token after final_layer_norm: nbfeat's `last`
            torch.testing.assert_close(model.final_layer_norm(blocks[-1][-1]), out.pooler_output[0])
        if family == "albert":  # one module, one call per depth
            a, m = got[attn.format(i=0)], got[mlp.format(i=0)]
        else:
            a = [got[attn.format(i=i)][0] for i in range(depths)]
            m = [got[mlp.format(i=i)][0] for i in range(depths)]
        for role, values in (("attn", [x[0] if x.dim() == 3 else x for x in a]), ("mlp", [x[0] if x.dim() == 3 else x for x in m]), ("block", blocks)):
            per_text[role].append(torch.stack(values, dim=0).transpose(0, 1))  # (T, layer, C)
    width = max(r.shape[0] for r in per_text["block"])
    want = {role: _pad(rows, width).transpose(1, 2) for role, rows in per_text.items()}  # (N, layer, T, C)
    # layers=[-1] is the last block (ALBERT: the shared layer, its calls along `call`)
    lengths = [r.shape[0] for r in per_text["block"]]
    last_block = want["block"] if family == "albert" else want["block"][:, -1]
    tokens_axis = last_block.dim() - 2
    pools: dict[str, list[Any]] = {"mean": [], "mean_all": [], "max": [], "last": [], "cls": []}
    for i, n in enumerate(lengths):
        real = last_block[i].narrow(tokens_axis - 1, 0, n)  # this text's tokens only
        pools["mean"].append(real.mean(dim=tokens_axis - 1))
        pools["mean_all"].append(real.mean(dim=tokens_axis - 1))  # no prefix tokens in text: the same
        pools["max"].append(real.amax(dim=tokens_axis - 1))
        pools["last"].append(real.select(tokens_axis - 1, n - 1))
        pools["cls"].append(real.select(tokens_axis - 1, 0))
    for kind, rows in pools.items():
        if kind != "cls" or family in CLASS_TOKEN:
            want[f"pool:{kind}"] = torch.stack(rows)
    want["pool:flatten"] = last_block.flatten(start_dim=-2)  # every position, NaN after each text
    return want


_CHECKED = "HF output_hidden_states (blocks; the last block hooked where HF applies its final norm, checked against it) and forward hooks on {attn} / {mlp}; texts alone vs nbfeat's padded batch"


def _row(rid: str, family: str, adapter: str, extra: str = "") -> Row:
    _, attn, mlp, _ = PATHS[family]
    cls = family in CLASS_TOKEN
    checked = _CHECKED.format(attn=attn.replace("{i}", "i"), mlp=mlp.replace("{i}", "i")) + extra
    return Row(
        rid, "hf", adapter, _build(family), _save, lambda: list(TEXTS), reference, checked,
        nodes=("attn", "mlp", "block"), pools=(*TEXT_POOLS, "cls") if cls else TEXT_POOLS,
        refused_pools=() if cls else ("cls",), warns="truncated",
    )


TEXT_ROWS = [
    _row("hf-gpt2", "gpt2", "hf.gpt2"),
    _row("hf-llama", "llama", "hf.llama"),
    _row("hf-bert", "bert", "hf.bert"),
    _row("hf-roberta", "roberta", "hf.roberta", "; context = max_position_embeddings - pad_token_id - 1"),
    _row("hf-albert", "albert", "hf.albert", "; every call of the shared layer is a depth"),
    _row("hf-t5-encoder", "t5", "hf.t5-encoder"),
    _row("hf-clip-text", "clip_text", "hf.clip-text", "; last = the EOS token CLIPTextModel.pooler_output takes"),
    _row("hf-distilbert", "distilbert", "hf.distilbert"),
    _row("hf-electra", "electra", "hf.bert"),
    _row("hf-deberta-v2", "deberta-v2", "hf.bert"),
    _row("hf-xlm-roberta", "xlm-roberta", "hf.roberta", "; context = max_position_embeddings - pad_token_id - 1"),
    _row("hf-mpnet", "mpnet", "hf.mpnet", "; context = max_position_embeddings - pad_token_id - 1"),
    _row("hf-mistral", "mistral", "hf.llama"),
    _row("hf-qwen2", "qwen2", "hf.llama"),
]
