"""End to end in a real browser: two text models side by side, tokens linked by characters.

A notebook builds two tiny Hugging Face text models with different tokenizers (GPT-2 with a
byte-level BPE, BERT with WordPiece, both trained in the cell, random weights, saved and loaded
with `nbfeat.load("hf:" + dir)`) and shows `browse_pair([gpt, bert], texts)`. In JupyterLab 4
(light) and Notebook 7 (dark), with Chromium:

- hover a GPT-2 token in the left browser: the right browser outlines exactly the BERT tokens
  whose characters overlap it (expected from the tokenizers' own offset_mapping, read here) and
  draws one trajectory per linked token;
- hover BERT's [CLS] in the right browser: no GPT-2 token is linked (GPT-2 adds none);
- the other browser is outlined within the hover event itself (the jslink runs in the page; no
  kernel round trip), and the hover reached the kernel in both widgets too.

The screenshot is kept under $NBFEAT_ARTIFACTS (default tests/artifacts/).
"""

from __future__ import annotations

import json

import pytest
from labkit import ARTIFACTS, new_page, open_notebook, rerun_cell, run_all
from playwright.sync_api import expect

pytestmark = pytest.mark.e2e

TEXTS = ["the quick brown fox, naïve café", "I know this sky loves you"]
WORD = "quick"  # the hovered word, in TEXTS[0]

CELLS = [
    f"""import nbfeat
from nbfeat.examples import SENTENCES, save_tiny_gpt2
from nbfeat.widgets.pair import browse_pair
from tokenizers import BertWordPieceTokenizer
from transformers import BertConfig, BertModel, BertTokenizerFast

wp = BertWordPieceTokenizer(lowercase=True)
wp.train_from_iterator(SENTENCES * 3, vocab_size=150, min_frequency=1, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
tok = BertTokenizerFast(tokenizer_object=wp._tokenizer, model_max_length=48)
BertModel(BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=48)).save_pretrained("bert")
tok.save_pretrained("bert")
gpt = nbfeat.load("hf:" + str(save_tiny_gpt2("gpt2")), device="cpu")
bert = nbfeat.load("hf:bert", device="cpu")
texts = {TEXTS!r}""",
    "pair = browse_pair([gpt, bert], texts)\npair",
    'print("HOVER", pair.left.token_hover, pair.right.token_hover)',
]


# hover a left chip (after another, so the hover changes) and read the right browser at once
SYNC_HOVER = """i => {
  const [left, right] = document.querySelectorAll('.nbfeat-browser-pair .nbfeat-browser');
  const chips = left.querySelectorAll('.nbfeat-token');
  chips[i === 0 ? 1 : 0].dispatchEvent(new MouseEvent('mouseenter'));
  const t0 = performance.now();
  chips[i].dispatchEvent(new MouseEvent('mouseenter'));
  const ms = performance.now() - t0;
  const linked = [...right.querySelectorAll('.nbfeat-token.nbfeat-linked')].map(e => Number(e.dataset.token));
  return {ms, linked};
}"""


def _notebook(cells: list[str]) -> dict:
    return {
        "cells": [{"cell_type": "code", "execution_count": None, "id": f"c{i}", "metadata": {}, "outputs": [], "source": src} for i, src in enumerate(cells)],
        "metadata": {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"}},
        "nbformat": 4,
        "nbformat_minor": 5,
    }


def _offsets(path, text: str) -> list[list[int]]:
    """Each token's characters from the tokenizer's own offset_mapping (whitespace trimmed;
    added tokens before the text at [-1, 0), after it at [2**30, 2**30 + 1))."""
    from transformers import AutoTokenizer

    enc = AutoTokenizer.from_pretrained(path)(text, return_offsets_mapping=True, return_special_tokens_mask=True)
    out, seen = [], False
    for (a, b), special in zip(enc["offset_mapping"], enc["special_tokens_mask"]):
        if special and a == b:
            out.append([2**30, 2**30 + 1] if seen else [-1, 0])
            continue
        seen = True
        piece = text[a:b]
        if piece.strip():
            a, b = a + len(piece) - len(piece.lstrip()), b - (len(piece) - len(piece.rstrip()))
        out.append([a, b])
    return out


def _overlap(spans, span) -> list[int]:
    return [i for i, (a, b) in enumerate(spans) if a < b and a < span[1] and span[0] < b]


@pytest.mark.parametrize(("frontend", "theme"), [("lab", "light"), ("nb7", "dark")], ids=["lab-light", "nb7-dark"])
def test_hover_links_tokens_of_two_tokenizers(lab, chromium, frontend, theme):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    tag = f"text_link_{frontend}_{theme}"
    work = lab["root"] / tag
    work.mkdir()
    (work / "text_link.ipynb").write_text(json.dumps(_notebook(CELLS)))
    page = new_page(chromium, lab["url"])
    try:
        open_notebook(page, lab, frontend, f"{tag}/text_link.ipynb", theme)
        run_all(page, 3)
        browsers = page.locator(".nbfeat-browser-pair .nbfeat-browser")
        expect(browsers).to_have_count(2)
        left, right = browsers.nth(0), browsers.nth(1)
        for b in (left, right):
            expect(b.locator(".nbfeat-stack")).to_have_count(1, timeout=120_000)
        gpt = _offsets(work / "gpt2", TEXTS[0])
        bert = _offsets(work / "bert", TEXTS[0])
        start = TEXTS[0].index(WORD)
        word = [start, start + len(WORD)]
        # the GPT-2 token of the word that shares characters with the most BERT tokens
        hovered = max(_overlap(gpt, word), key=lambda i: (len(_overlap(bert, gpt[i])), -i))
        span = gpt[hovered]
        want = _overlap(bert, span)
        assert len(want) >= 2, (gpt, bert)  # tokenized differently: one token links to several
        lchips, rchips = left.locator(".nbfeat-token"), right.locator(".nbfeat-token")
        expect(lchips).to_have_count(len(gpt))
        expect(rchips).to_have_count(len(bert))

        lchips.nth(hovered).hover()
        linked = right.locator(".nbfeat-token.nbfeat-linked")
        expect(linked).to_have_count(len(want))
        got = [int(i) for i in right.locator(".nbfeat-token.nbfeat-linked").evaluate_all("els => els.map(e => e.dataset.token)")]
        assert got == want, (got, want, span)
        traj = right.locator(".nbfeat-trajectory")
        expect(traj).to_have_attribute("data-linked", ",".join(map(str, want)))
        lines = traj.locator("polyline")
        expect(lines).to_have_count(len(want))
        points = [p.split(",") for p in lines.first.get_attribute("points").split()]
        assert len(points) == 2  # one point per block of the tiny BERT
        assert right.locator(".nbfeat-token.nbfeat-linked").first.evaluate("e => getComputedStyle(e).outlineStyle") == "dashed"
        expect(left.locator(".nbfeat-trajectory")).to_have_attribute("data-token", str(hovered))
        expect(left.locator(".nbfeat-token.nbfeat-linked")).to_have_count(0)
        page.locator(".nbfeat-browser-pair").screenshot(path=str(ARTIFACTS / f"{tag}_hover.png"))
        rerun_cell(page, 2, f"HOVER {span} {span}")  # the kernel has it too, in both widgets

        # in the page, in the same task: the other browser is outlined before the hover event
        # returns (no message to the kernel is waited for)
        sync = page.evaluate(SYNC_HOVER, hovered)
        assert sync["linked"] == want, sync
        print(f"hover to linked outline, in the page: {sync['ms']:.2f} ms")

        # the other way: BERT's [CLS] has no partner in GPT-2, which adds no token
        rchips.nth(0).hover()
        expect(left.locator(".nbfeat-trajectory")).to_contain_text("no token of this model overlaps the token added before the text")
        expect(left.locator(".nbfeat-token.nbfeat-linked")).to_have_count(0)
        expect(right.locator(".nbfeat-token.nbfeat-linked")).to_have_count(0)
    except Exception:
        page.screenshot(path=str(ARTIFACTS / f"{tag}_failure.png"), full_page=True)
        raise
    finally:
        page.context.close()
