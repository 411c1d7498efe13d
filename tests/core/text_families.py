"""Tiny text models of every family nbfeat has a text adapter for, saved like a download.

Each builder writes a random-weight model (save_pretrained) and its own tokenizer, built
with the library's tokenizer class from a small vocabulary, to `path`, so a test loads it
through `nbfeat.load("hf:" + path)` exactly as a user loads a hub model. Vocabularies cover
non-ASCII text: byte-level BPE (GPT-2, RoBERTa, Llama 3, CLIP) by construction, WordPiece
(BERT) and Unigram (ALBERT, T5) map unknown characters to their unknown token.

>>> save_tiny("bert", "tiny-bert", context=16)      # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

WORDS = "i know this sky loves you the quick brown fox jumps over lazy dog a cat sat on mat and looked at features from every layer of network".split()
FAMILIES = ("gpt2", "llama", "bert", "roberta", "albert", "t5", "clip_text")
# the same adapters on more model types (ELECTRA, DeBERTa-v2 like BERT; XLM-R like RoBERTa; Mistral, Qwen2 like Llama)
MORE = ("distilbert", "electra", "deberta-v2", "xlm-roberta", "mpnet", "mistral", "qwen2")


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character table (what byte-level BPE vocabularies hold)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _byte_vocab(specials: list[str], suffix: str = "") -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Every byte, a few merged words (with GPT-2's leading-space marker), specials first."""
    vocab: dict[str, int] = {s: i for i, s in enumerate(specials)}
    for ch in _bytes_to_unicode().values():
        vocab.setdefault(ch, len(vocab))
        if suffix:
            vocab.setdefault(ch + suffix, len(vocab))
    merges = []
    for w in ["the", "sky", "cat"]:
        word = ("Ġ" + w) if not suffix else w
        pieces = list(word)
        if suffix:
            pieces[-1] += suffix
        acc = pieces[0]
        for p in pieces[1:]:
            merges.append((acc, p))
            acc = acc + p
            vocab.setdefault(acc, len(vocab))
    return vocab, merges


def _unigram_vocab(specials: list[str]) -> list[tuple[str, float]]:
    chars = sorted(set("".join(WORDS)) | set("éü日本語"))
    pieces = [(s, 0.0) for s in specials] + [("▁", -2.0)] + [("▁" + w, -3.0) for w in WORDS] + [(c, -5.0) for c in chars] + [("▁" + c, -6.0) for c in chars]
    return pieces


def save_tiny(family: str, path: str | Path, context: int = 64, layers: int = 2, seed: int = 0) -> Path:
    """A `family` model with `layers` blocks (ALBERT: `layers + 1` calls of its shared
    layer), hidden size 32, a context of `context` tokens, saved with its tokenizer."""
    path = Path(path)
    model, tok = build_tiny(family, context, layers, seed)
    model.save_pretrained(path)
    tok.save_pretrained(path)
    return path


def build_tiny(family: str, context: int = 64, layers: int = 2, seed: int = 0) -> tuple[Any, Any]:
    """(model in eval mode, tokenizer) of `family`, random weights seeded with `seed`."""
    import torch
    import transformers as T

    torch.manual_seed(seed)
    small = {"num_hidden_layers": layers, "num_attention_heads": 2, "intermediate_size": 64, "hidden_size": 32}
    if family == "gpt2":
        from tokenizers import ByteLevelBPETokenizer

        from nbfeat.examples import SENTENCES

        bpe = ByteLevelBPETokenizer()
        bpe.train_from_iterator(SENTENCES * 5, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
        tok = T.GPT2TokenizerFast(tokenizer_object=bpe._tokenizer, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
        torch.manual_seed(seed)
        eos = tok.convert_tokens_to_ids("<|endoftext|>")
        cfg = T.GPT2Config(n_layer=layers, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=context, bos_token_id=eos, eos_token_id=eos)
        model = T.GPT2Model(cfg)
    elif family in ("llama", "mistral", "qwen2"):
        # Qwen2's tokenizer class (what AutoTokenizer picks for it) pads with <|endoftext|>
        specials = ["<|begin_of_text|>", "<|end_of_text|>"] if family != "qwen2" else ["<|begin_of_text|>", "<|endoftext|>"]
        vocab, merges = _byte_vocab(specials)
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors

        bpe = Tokenizer(models.BPE(vocab=vocab, merges=merges))
        bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
        bpe.decoder = decoders.ByteLevel()
        bpe.post_processor = processors.Sequence([processors.ByteLevel(trim_offsets=False), processors.TemplateProcessing(single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", 0)])])
        tok = T.PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|begin_of_text|>", eos_token=specials[1], model_max_length=context)
        name = {"llama": "Llama", "mistral": "Mistral", "qwen2": "Qwen2"}[family]
        cfg = getattr(T, f"{name}Config")(**small, num_key_value_heads=1, vocab_size=len(tok), max_position_embeddings=context, bos_token_id=0, eos_token_id=1)
        model = getattr(T, f"{name}Model")(cfg)
    elif family in ("bert", "electra", "deberta-v2", "distilbert"):
        specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        chars = sorted(set("".join(WORDS)) | set("é日本語"))
        vocab = {w: i for i, w in enumerate(specials + WORDS + chars + ["##" + c for c in chars])}
        tok = T.BertTokenizer(vocab=vocab, model_max_length=context)
        if family == "distilbert":
            cfg = T.DistilBertConfig(dim=32, n_layers=layers, n_heads=2, hidden_dim=64, vocab_size=len(vocab), max_position_embeddings=context)
            model = T.DistilBertModel(cfg)
        elif family == "electra":
            model = T.ElectraModel(T.ElectraConfig(**small, embedding_size=16, vocab_size=len(vocab), max_position_embeddings=context))
        elif family == "deberta-v2":
            model = T.DebertaV2Model(T.DebertaV2Config(**small, vocab_size=len(vocab), max_position_embeddings=context))
        else:
            model = T.BertModel(T.BertConfig(**small, vocab_size=len(vocab), max_position_embeddings=context))
    elif family in ("roberta", "xlm-roberta", "mpnet"):
        vocab, merges = _byte_vocab(["<s>", "<pad>", "</s>", "<unk>", "<mask>"])
        tok = T.RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=context)
        # RoBERTa counts its position ids from pad_token_id + 1: the table holds 2 more
        name = {"xlm-roberta": "XLMRoberta", "mpnet": "MPNet"}.get(family, "Roberta")
        cfg = getattr(T, f"{name}Config")(**small, vocab_size=len(vocab), max_position_embeddings=context + 2, pad_token_id=1, bos_token_id=0, eos_token_id=2)
        model = getattr(T, f"{name}Model")(cfg)
    elif family == "albert":
        tok = T.AlbertTokenizer(vocab=_unigram_vocab(["<pad>", "<unk>", "[CLS]", "[SEP]", "[MASK]"]), model_max_length=context)
        cfg = T.AlbertConfig(**{**small, "num_hidden_layers": layers + 1}, embedding_size=16, vocab_size=len(tok), max_position_embeddings=context, pad_token_id=0, bos_token_id=2, eos_token_id=3)
        model = T.AlbertModel(cfg)
    elif family == "t5":
        tok = T.T5Tokenizer(vocab=_unigram_vocab(["<pad>", "</s>", "<unk>"]), extra_ids=0, model_max_length=context)
        cfg = T.T5Config(d_model=32, d_kv=16, d_ff=64, num_layers=layers, num_heads=2, vocab_size=len(tok), pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
        model = T.T5EncoderModel(cfg)
    elif family == "clip_text":
        vocab, merges = _byte_vocab(["<|startoftext|>", "<|endoftext|>"], suffix="</w>")
        tok = T.CLIPTokenizer(vocab=vocab, merges=merges, model_max_length=context)
        cfg = T.CLIPTextConfig(**small, vocab_size=len(vocab), max_position_embeddings=context, bos_token_id=0, eos_token_id=1, pad_token_id=1)
        model = T.CLIPTextModel(cfg)
    else:
        raise ValueError(f"unknown family {family!r}; one of {FAMILIES}")
    return model.eval(), tok
