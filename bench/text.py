"""Benchmark 3: GPT-2 (12 layers, 768 wide, random weights) nodes attn/mlp/block, tokens/s.

The model and a byte-level BPE tokenizer (about 5,000 tokens, trained on generated sentences)
are saved to a temp dir and loaded back with `nbfeat.load("hf:<dir>")`, as a user's download
would be. Per batch of 32 sentences, back to back (order rotated): Hugging Face's own
`model(..., output_hidden_states=True)` with per-batch tokenization, and nbfeat's engine on
the same sentences (`run.iter_batches`). The whole-call figure adds nbfeat's `prepare`
(tokenizing everything, the probe) and `to_xarray`.

>>> python -m bench.run --quick --only text      # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import Paired, collect, r3, timed

WORDS = (
    "the a one every some this that network layer feature image model token sky cat dog river "
    "light sound reads writes sees finds makes keeps runs jumps sleeps over under through near "
    "quickly slowly green blue red small large old new bright quiet loud and or but with from"
).split()


def sentences(n: int, seed: int = 0) -> list[str]:
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "." for _ in range(n)]


def save_gpt2(path: Path, vocab_size: int = 5000) -> Path:
    """Default-size GPT-2 (random weights) and a tokenizer trained here, saved like a download."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(sentences(20000, seed=1), vocab_size=vocab_size, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(0)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = GPT2Config(vocab_size=len(tok), bos_token_id=eos, eos_token_id=eos)  # default 12 layers, 768 wide
    GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def run(quick: bool = False, n: int | None = None, batch_size: int = 32) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer
    from transformers.utils import logging as hf_logging

    import nbfeat

    hf_logging.disable_progress_bar()

    n = n or (64 if quick else 1000)
    keep_batches = None if quick else 8  # all 1,000 x 36 layers x tokens x 768 floats would not fit here
    texts = sentences(n)
    with tempfile.TemporaryDirectory(prefix="nbfeat-bench-gpt2-") as tmp:
        path = save_gpt2(Path(tmp))
        bb = nbfeat.load("hf:" + str(path), device="cpu")
        hf_tok = AutoTokenizer.from_pretrained(path)
        hf_tok.pad_token = hf_tok.eos_token
    model = bb.model
    prepare_s, run_ = timed(lambda: bb.prepare(texts, nodes=["attn", "mlp", "block"], batch_size=batch_size))
    chunks = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]

    def hf_batch(chunk: list[int]) -> Any:
        def call() -> None:
            enc = hf_tok([texts[i] for i in chunk], padding=True, return_tensors="pt")
            with torch.inference_mode():
                model(**enc, output_hidden_states=True)

        return call

    hf_batch(chunks[0])()  # warm-up
    list(run_.iter_batches(chunks[0]))
    tokens = [int(sum(hf_tok(texts[i])["input_ids"].__len__() for i in chunk)) for chunk in chunks]
    pairs = Paired()
    for i, chunk in enumerate(chunks):
        keep = keep_batches is None or i < keep_batches
        pairs.time_round(i, {"hf": hf_batch(chunk), "nbfeat": lambda chunk=chunk: list(run_.iter_batches(chunk))}, keep=("nbfeat",) if keep else ())
    kept = [b for bl in pairs.results.pop("nbfeat", []) for b in bl]
    kept_n = len(kept)
    t0 = time.perf_counter()
    token_dim = int(run_.to_xarray(kept).sizes["token"])
    xr_s = time.perf_counter() - t0
    kept.clear()
    collect()
    total_tokens = sum(tokens)
    scale = len(chunks) / kept_n if kept_n else 1.0
    whole = prepare_s + pairs.total("nbfeat") + xr_s * scale
    row = {
        "model": "GPT-2 124M (random weights)",
        "sentences": n,
        "tokens": total_tokens,
        "padded_token_dim": token_dim,
        "nbfeat_tokens_per_s": r3(total_tokens / pairs.total("nbfeat")),
        "hf_tokens_per_s": r3(total_tokens / pairs.total("hf")),
        "ratio_vs_hf": r3(pairs.ratio("nbfeat", "hf")),
        "ratio_spread": pairs.spread("nbfeat", "hf"),
        "whole_call_ratio_vs_hf": r3(whole / pairs.total("hf")),
        "whole_call_tokens_per_s": r3(total_tokens / whole),
        "prepare_s": r3(prepare_s),
        "to_xarray_s": r3(xr_s),
        "to_xarray_batches": kept_n,
    }
    notes = ["nbfeat keeps 36 outputs per sentence (attn, mlp, block x 12); output_hidden_states gives 13 block outputs and keeps them as tensors."]
    if scale != 1.0:
        notes.append(f"to_xarray was timed on the first {kept_n} of {len(chunks)} batches (memory) and scaled by {scale:.1f} in the whole-call figure.")
    return {"params": {"sentences": n, "batch_size": batch_size, "vocab": 5000, "nodes": "attn/mlp/block x 12", "device": "cpu"}, "rows": [row], "notes": notes}
