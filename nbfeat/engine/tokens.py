"""Texts -> token ids and `token_text`, with the tokenizer's own special tokens and truncation.

- Special tokens are the tokenizer's (`add_special_tokens=True`): BERT's `[CLS] ... [SEP]`,
  RoBERTa's `<s> ... </s>`, T5's `</s>`, CLIP's start/end of text, Llama's begin-of-text.
- A text longer than the context is cut by the tokenizer itself (`truncation=True,
  max_length=context`), so the closing special token stays (BERT keeps its `[SEP]`); the run
  warns once with the number of texts cut.
- `token_text` is the piece of the input text each token starts, read from the tokenizer's
  offsets (fast tokenizers): the spaces before a word go with it, and a character that
  byte-level BPE splits over several tokens (é, 日, an emoji) is given whole to the first of
  them, the others getting "". Joining the pieces of the text's own tokens gives the text back
  exactly (the part kept, when truncated). Tokens the tokenizer added (`[CLS]`, `</s>`) are
  labelled with their own string. Tokenizers without offsets (slow or non-HF ones) label
  each token with `decode([id])`.

>>> enc = tokenize(tokenizer, ["I know this sky loves you"], context=512)   # doctest: +SKIP
>>> "".join(enc.pieces[0][1:-1])                                           # doctest: +SKIP
'I know this sky loves you'
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class Tokens:
    ids: list[list[int]]  # token ids per text, special tokens included
    pieces: list[list[str]]  # token_text per token
    added: list[list[bool]]  # True for tokens the tokenizer added (not in the text)
    truncated: int  # how many texts were longer than the context


def tokenize(tok: Any, texts: list[str], context: int | None, pieces: bool = True) -> Tokens:
    """Tokenize `texts` for a model with `context` tokens at most (None: no limit).

    `pieces=False` skips `token_text` (`Tokens.pieces` is empty): a run tokenizes every text
    up front for the ids, and makes the pieces batch by batch, so a million texts never hold
    a hundred million strings at once.
    """
    if getattr(tok, "is_fast", False) and callable(tok):
        return _with_offsets(tok, texts, context, pieces)
    return _without_offsets(tok, texts, context, pieces)


def _with_offsets(tok: Any, texts: list[str], context: int | None, want_pieces: bool = True) -> Tokens:
    kw = {"add_special_tokens": True, "return_offsets_mapping": True, "return_special_tokens_mask": True, "return_attention_mask": False, "return_token_type_ids": False, "verbose": False}
    enc = tok(list(texts), truncation=False, **kw)
    ids, offsets, special = list(enc["input_ids"]), list(enc["offset_mapping"]), list(enc["special_tokens_mask"])
    long = [i for i, row in enumerate(ids) if context is not None and len(row) > context]
    if long:  # only these again, cut by the tokenizer so the closing special token stays
        cut = tok([texts[i] for i in long], truncation=True, max_length=context, **kw)
        for j, i in enumerate(long):
            ids[i], offsets[i], special[i] = cut["input_ids"][j], cut["offset_mapping"][j], cut["special_tokens_mask"][j]
    pieces, added = [], []
    long_set = set(long)
    for i, text in enumerate(texts):
        if not want_pieces:
            added.append([bool(sp) and a == b for sp, (a, b) in zip(special[i], offsets[i])])
            continue
        p, a = _pieces(tok, text, ids[i], offsets[i], special[i], complete=i not in long_set)
        pieces.append(p)
        added.append(a)
    return Tokens([list(r) for r in ids], pieces, added, len(long))


def _pieces(tok: Any, text: str, ids: list[int], offsets: list[tuple[int, int]], special: list[int], complete: bool) -> tuple[list[str], list[bool]]:
    out: list[str] = []
    added: list[bool] = []
    end, last = 0, None
    names = None
    for i, ((a, b), sp) in enumerate(zip(offsets, special)):
        if sp and a == b:  # added by the tokenizer: its own string
            if names is None:
                names = tok.convert_ids_to_tokens(list(ids))
            out.append(str(names[i]))
            added.append(True)
            continue
        if b > end:
            out.append(text[end:b])  # the spaces before the token go with it
            end = b
        else:
            out.append("")  # a later byte of a character the previous token began
        added.append(False)
        last = i
    if complete and last is not None and end < len(text):
        out[last] += text[end:]  # trailing spaces the offsets leave out
    return out, added


def _without_offsets(tok: Any, texts: list[str], context: int | None, want_pieces: bool = True) -> Tokens:
    ids = [list(r) for r in tok(list(texts), add_special_tokens=True, truncation=False)["input_ids"]]
    ends = _special_ids(tok)
    truncated = 0
    for i, row in enumerate(ids):
        if context is not None and len(row) > context:
            truncated += 1
            # keep a closing special token (end of text), as the tokenizer's own truncation does
            ids[i] = row[: context - 1] + row[-1:] if row[-1] in ends and context > 1 else row[:context]
    pieces = [[tok.decode([t]) for t in row] for row in ids] if want_pieces else []
    return Tokens(ids, pieces, [[t in ends for t in row] for row in ids], truncated)


def _special_ids(tok: Any) -> set[int]:
    out: set[int] = set()
    for obj in (tok, getattr(tok, "tok", None), getattr(tok, "hf", None)):  # wrappers of other tokenizers
        if obj is None:
            continue
        out.update(int(i) for i in (getattr(obj, "all_special_ids", None) or []))
        for name in ("eos_token_id", "sep_token_id", "eot_token_id"):
            value = getattr(obj, name, None)
            if isinstance(value, int):
                out.add(value)
    return out
