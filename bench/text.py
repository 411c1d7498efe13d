"""Benchmark 3: text, nbfeat nodes attn/mlp/block at every depth vs HF `output_hidden_states`.

Two models with default sizes and random weights, saved to a temp dir and loaded back with
`nbfeat.load("hf:<dir>")` as a user's download would be: GPT-2 124M (12 layers, 768 wide,
byte-level BPE trained here) and BERT-base (12 layers, 768 wide, WordPiece). Texts have a
realistic, long-tailed mix of lengths: token counts drawn from a log-normal (median 40,
sigma 1) clipped to 5..510, in random order.

Each round runs, back to back in a rotated order, over all texts:
- Hugging Face as its docs show it: per batch of 32 texts in the user's order, the tokenizer
  with `padding=True` and `model(**enc, output_hidden_states=True)` (13 hidden states);
- nbfeat's engine (`run.iter_batches`, what `bb.extract` runs, batches dropped as a sink
  would) with its default length buckets, keeping 36 outputs per text (attn, mlp, block x 12),
  padded to the run's token length after capture;
- the same with `length_buckets=False` (batches in input order): what the buckets buy
  (first round only: it computes all the pads).
The figure is the median over rounds of HF time / nbfeat time on the same tokens.

>>> python -m bench.run --quick --only text      # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from bench.common import Paired, collect, r3, timed

WORDS = (
    "the a one every some this that network layer feature image model token sky cat dog river "
    "light sound reads writes sees finds makes keeps runs jumps sleeps over under through near "
    "quickly slowly green blue red small large old new bright quiet loud and or but with from"
).split()
NODES = ["attn", "mlp", "block"]
GOAL = 1.3


def sentences(n: int, seed: int = 0) -> list[str]:
    """Short generated sentences (the BPE tokenizer is trained on these)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 24))).capitalize() + "." for _ in range(n)]


def token_lengths(n: int, seed: int = 0, lo: int = 5, hi: int = 510, median: float = 40.0, sigma: float = 1.0) -> list[int]:
    """Long-tailed lengths: log-normal around `median`, clipped to lo..hi."""
    import numpy as np

    rng = np.random.default_rng(seed)
    return [int(x) for x in np.clip(np.round(median * np.exp(sigma * rng.standard_normal(n))), lo, hi)]


def texts_of(lengths: list[int], seed: int = 0) -> list[str]:
    """Texts of about `lengths` words (one token per word with these tokenizers)."""
    import random

    rng = random.Random(seed)
    return [" ".join(rng.choice(WORDS) for _ in range(k)) for k in lengths]


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


def save_bert(path: Path) -> Path:
    """BERT-base-shaped (12 layers, 768 wide, random weights) with a WordPiece vocabulary."""
    import torch
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path.mkdir(parents=True, exist_ok=True)
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(WORDS))]
    (path / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    BertModel(BertConfig(vocab_size=len(vocab))).eval().save_pretrained(path)
    return path


def run(quick: bool = False, n: int | None = None, batch_size: int = 32, rounds: int | None = None) -> dict[str, Any]:
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    n = n or 96  # three batches of 32 (quick mode only shortens the lengths)
    rounds = rounds or (1 if quick else 2)
    hi = 128 if quick else 510
    texts = texts_of(token_lengths(n, hi=hi))
    rows, goals = [], []
    with tempfile.TemporaryDirectory(prefix="nbfeat-bench-text-") as tmp:
        for label, save in (("GPT-2 124M (random weights)", save_gpt2), ("BERT-base (random weights)", save_bert)):
            path = save(Path(tmp) / label.split()[0].lower())
            row = measure(label, path, texts, batch_size, rounds)
            rows.append(row)
            goals.append({"goal": f"text tokens/s vs HF output_hidden_states, {label.split(' (')[0]}, nodes attn/mlp/block x 12, lengths 5-{hi} long-tailed", "target": f">= {GOAL}x", "measured": row["speedup_vs_hf"], "met": row["speedup_vs_hf"] >= GOAL})
            collect()
    return {
        "params": {"texts": n, "batch_size": batch_size, "rounds": rounds, "lengths": f"log-normal median 40, sigma 1, clipped 5-{hi} tokens, random order", "nodes": "attn/mlp/block x 12", "device": "cpu"},
        "rows": rows,
        "goals": goals,
        "notes": [
            "nbfeat keeps 36 outputs per text (attn, mlp, block x 12), each padded to the run's token length; output_hidden_states gives 13 block outputs, padded to each batch's longest.",
            "Both sides compute the same real tokens; HF's batches (user order) compute the pads of their longest text, nbfeat's length buckets few (the padded-token columns).",
            "The in-memory result is not part of the timing: 36 unpooled outputs at 510 tokens are ~56 MB per text, so a run like this one goes to a store (out=) or is pooled.",
        ],
    }


def measure(label: str, path: Path, texts: list[str], batch_size: int, rounds: int) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    import nbfeat

    bb = nbfeat.load("hf:" + str(path), device="cpu")
    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = bb.model
    prepare_s, bucketed = timed(lambda: bb.prepare(texts, nodes=NODES, batch_size=batch_size))
    plain = bb.prepare(texts, nodes=NODES, batch_size=batch_size, length_buckets=False)
    n = len(texts)
    chunks = [list(range(i, min(i + batch_size, n))) for i in range(0, n, batch_size)]
    lengths = [len(r) for r in bucketed._ids]

    def hf() -> None:
        for c in chunks:
            enc = tok([texts[i] for i in c], padding=True, truncation=True, return_tensors="pt")
            with torch.inference_mode():
                model(**enc, output_hidden_states=True)

    def engine(r: Any) -> Any:
        def call() -> None:
            for _ in r.iter_batches(window=n):  # the in-memory sink's window: the whole run
                pass

        return call

    # warm-up (first-call allocations, lazy init): one short batch each
    short = sorted(range(n), key=lambda i: lengths[i])[:batch_size]
    with torch.inference_mode():
        model(**tok([texts[i] for i in short], padding=True, return_tensors="pt"), output_hidden_states=True)
    for _ in bucketed.iter_batches(short):
        pass
    pairs = Paired()
    for r in range(rounds):  # the no-buckets control (slow: all the pads) runs in the first round only
        variants = {"hf": hf, "nbfeat": engine(bucketed)}
        if r == 0:
            variants["nbfeat, no buckets"] = engine(plain)
        pairs.time_round(r, variants)
        collect()
    real = sum(lengths)
    hf_padded = sum(max(lengths[i] for i in c) * len(c) for c in chunks)
    from nbfeat.engine.buckets import text_batches

    nb_padded = sum(max(lengths[p] for p in b) * len(b) for b in text_batches(bucketed, list(range(n)), n))
    hf_s, nb_s = (pairs.total(k) / rounds for k in ("hf", "nbfeat"))
    off_s = pairs.total("nbfeat, no buckets")
    return {
        "model": label,
        "texts": n,
        "tokens": real,
        "run_token_length": int(bucketed._tmax),
        "hf_padded_tokens": hf_padded,
        "nbfeat_padded_tokens": nb_padded,
        "hf_tokens_per_s": r3(real / hf_s),
        "nbfeat_tokens_per_s": r3(real / nb_s),
        "nbfeat_no_buckets_tokens_per_s": r3(real / off_s),
        "speedup_vs_hf": r3(1 / pairs.ratio("nbfeat", "hf")),
        "speedup_spread": [r3(1 / x) for x in reversed(pairs.spread("nbfeat", "hf"))],
        "no_buckets_speedup_vs_hf": r3(1 / pairs.ratio("nbfeat, no buckets", "hf")),
        "whole_call_speedup_vs_hf": r3(hf_s / (nb_s + prepare_s)),
        "prepare_s": r3(prepare_s),
    }
