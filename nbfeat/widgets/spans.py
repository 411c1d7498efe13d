"""Each token's characters in its sample's text: how two text models' tokens are linked.

Two tokenizers split the same text differently (GPT-2's byte-level BPE `" sky"`, BERT's
WordPiece `"sk" "##y"`), so the browser links a hovered token to the other model's tokens by
character span in the shared text, never by token index. A span is `[start, end)` in
characters (Python string positions) of the sample's `text`:

- a token of the text: the characters it stands for, without the whitespace around it (GPT-2's
  `" sky"` is `sky`); a token that is whitespace only keeps its whitespace (a newline token);
- a later byte of a character byte-level BPE splits over several tokens (`token_text` "",
  see `nbfeat.engine.tokens`): that whole character, like the token that began it;
- a token the tokenizer added: `BEFORE` = `[-1, 0)` before the text (`[CLS]`, `<s>`,
  `<|begin_of_text|>`) or `AFTER` = `[2**30, 2**30 + 1)` after it (`[SEP]`, `</s>`, also
  when the text was cut at the context): places outside any text, one for each end. Overlap
  then links an added token to the other model's added token at the same end, or to nothing.

Two spans are linked when they overlap: `a0 < b1 and b0 < a1`.

>>> piece_spans("I know", ["[CLS]", "I", " know", "[SEP]"]).tolist()
[[-1, 0], [0, 1], [2, 6], [1073741824, 1073741825]]
>>> offset_spans("I know", [(0, 0), (0, 1), (2, 6), (0, 0)], [1, 0, 0, 1]).tolist()
[[-1, 0], [0, 1], [2, 6], [1073741824, 1073741825]]
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

MAX_ADDED = 4  # tokens a tokenizer adds at one end of a text (BERT 1, Llama 1, pairs 2)
BEFORE = (-1, 0)  # the span of a token added before the text
AFTER = (2**30, 2**30 + 1)  # ... and after it: past any text, within int32 (js/src/token_view.ts)


def _trim(text: str, a: int, b: int) -> tuple[int, int]:
    """`[a, b)` without the whitespace around it, unless it is whitespace only."""
    s, e = a, b
    while s < e and text[s].isspace():
        s += 1
    while e > s and text[e - 1].isspace():
        e -= 1
    return (s, e) if s < e else (a, b)


def piece_spans(text: str, pieces: Sequence[str], truncated: bool = False) -> np.ndarray | None:
    """Spans (int32 (T, 2)) of a sample's tokens from its `token_text` and its `text`.

    The pieces of the text's own tokens join back to the text exactly (to a prefix of it when
    the tokenizer cut the text: `truncated`); the tokens before and after them are the ones
    the tokenizer added. None where the pieces do not join to the text (a tokenizer without
    offsets labels tokens with `decode([id])`, which need not): such tokens cannot be linked.
    """
    pieces = [str(p) for p in pieces]
    n = len(pieces)
    best: tuple[int, int, int] | None = None  # (chars matched, -leading added, first unmatched)
    for lead in range(min(MAX_ADDED, n) + 1):
        pos, j = 0, lead
        while j < n and text.startswith(pieces[j], pos) and (pieces[j] or pos > 0):
            pos += len(pieces[j])
            j += 1
        key = (pos, -lead, j)
        if best is None or key[:2] > best[:2]:
            best = key
    if best is None:
        return np.zeros((0, 2), dtype=np.int32)
    matched, lead, stop = best[0], -best[1], best[2]
    trail = n - stop
    if trail > MAX_ADDED or any(not p for p in pieces[stop:]) or (matched < len(text) and not truncated):
        return None
    out = np.zeros((n, 2), dtype=np.int32)
    out[:lead] = BEFORE
    pos = 0
    for j in range(lead, stop):
        p = pieces[j]
        out[j] = _trim(text, pos, pos + len(p)) if p else (pos - 1, pos)
        pos += len(p)
    out[stop:] = AFTER
    return out


def offset_spans(text: str, offsets: Sequence[tuple[int, int]], special: Sequence[int]) -> np.ndarray:
    """Spans (int32 (T, 2)) from a fast tokenizer's own `offset_mapping` and
    `special_tokens_mask` for `text` (the rule of `nbfeat.engine.tokens`: a special token with
    an empty offset was added by the tokenizer)."""
    out = np.zeros((len(offsets), 2), dtype=np.int32)
    seen_text = False
    for j, ((a, b), sp) in enumerate(zip(offsets, special)):
        a, b = int(a), int(b)
        if sp and a == b:
            out[j] = AFTER if seen_text else BEFORE
            continue
        seen_text = True
        out[j] = _trim(text, a, b)
    return out
