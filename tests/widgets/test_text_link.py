"""Two text models side by side, their tokens linked by characters of the shared text.

Two real tiny Hugging Face models with different tokenizers, built offline and loaded through
`nbfeat.load("hf:" + dir)`: a GPT-2 with a byte-level BPE tokenizer and a BERT with a WordPiece
vocabulary, both trained here with the `tokenizers` library. The spans each browser sends
(int32 (T, 2), one per token chip) are checked against each tokenizer's own `offset_mapping`,
read here with transformers; the linking itself runs in the page (js/tests/token_view.test.ts,
tests/e2e/test_text_link_e2e.py).
"""

from __future__ import annotations

import numpy as np
import pytest
from ipywidgets.widgets.widget_link import Link

import nbfeat
from nbfeat.examples import SENTENCES, save_tiny_gpt2
from nbfeat.widgets.pair import BrowserPair, browse_pair

# spaces doubled, leading and trailing; accents BERT strips; characters byte-level BPE splits
# over several tokens and WordPiece does not know ([UNK])
TEXTS = ["I know this sky loves you", "the  quick brown fox, naïve café 日本!", "  a cat sat on the mat ", "features from every layer"]


def save_tiny_bert(path):
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel, BertTokenizerFast

    wp = BertWordPieceTokenizer(lowercase=True)
    wp.train_from_iterator(SENTENCES * 3, vocab_size=150, min_frequency=1, special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"])
    tok = BertTokenizerFast(tokenizer_object=wp._tokenizer, model_max_length=48)
    cfg = BertConfig(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=48)
    BertModel(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("text-link")
    gpt = nbfeat.load("hf:" + str(save_tiny_gpt2(root / "gpt2")), device="cpu")
    bert = nbfeat.load("hf:" + str(save_tiny_bert(root / "bert")), device="cpu")
    return gpt, bert, root


def hf_spans(path, text, **kw):
    """Each token's characters from the tokenizer's own offset_mapping: whitespace around a
    token trimmed (a whitespace-only token keeps it), tokens it added at [-1, 0) before the
    text and [2**30, 2**30 + 1) after it."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True, **kw)
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


def view(browser, sample):
    reply, buffers = browser.handle_request({"id": 1, "kind": "view", "sample": sample, "layer": browser.layer, "k": 2})
    assert reply["ok"], reply.get("error")
    got = {}
    for spec, buf in zip(reply["arrays"], buffers, strict=True):
        got[spec["name"]] = np.frombuffer(bytes(buf), dtype=np.dtype(spec["dtype"]).newbyteorder("<")).reshape(spec["shape"])
    return reply, got


def check_spans(pair, dirs, texts):
    for browser, path in zip((pair.left, pair.right), dirs):
        for i, text in enumerate(texts):
            reply, got = view(browser, i)
            assert got["spans"].dtype == np.int32 and got["spans"].shape == (len(reply["tokens"]), 2)
            assert got["spans"].tolist() == hf_spans(path, text), (browser.title, text)


def test_results_of_two_tokenizers_carry_spans_of_their_own_tokens(models):
    gpt, bert, root = models
    dt = nbfeat.extract([gpt, bert], TEXTS, nodes=["block"], progress=False)
    pair = browse_pair(list(dt.children.values()))
    assert isinstance(pair, BrowserPair) and pair.left.modality == pair.right.modality == "text"
    check_spans(pair, [root / "gpt2", root / "bert"], TEXTS)
    # each model's own tokens (a tree of two text models: not the first model's for both)
    for browser, node in zip((pair.left, pair.right), dt.children.values()):
        reply, got = view(browser, 1)
        n = int(node["mask"].values[1].sum())
        assert reply["tokens"] == [str(t) for t in node["token_text"].values[1][:n]]
        assert got["stack"].shape[1] == n
    left, _ = view(pair.left, 1)
    right, _ = view(pair.right, 1)
    assert right["tokens"][0] == "[CLS]" and left["tokens"][0] == "the"


def test_backbones_on_texts_carry_spans_from_the_tokenizers_offsets(models):
    gpt, bert, root = models
    pair = nbfeat.browse([gpt, bert], TEXTS, layer=("h.1", "encoder.layer.1"))  # the public path: a list of two
    assert isinstance(pair, BrowserPair)
    assert (pair.left.layer, pair.right.layer) == ("h.1", "encoder.layer.1")
    check_spans(pair, [root / "gpt2", root / "bert"], TEXTS)


def test_a_text_cut_at_the_context_links_the_part_kept(models):
    gpt, bert, root = models
    long = " ".join(SENTENCES * 2)  # over the tiny BERT's 48 positions and GPT-2's 64
    texts = [long, *TEXTS[:2]]
    with pytest.warns(UserWarning, match="truncated"):
        dt = nbfeat.extract([gpt, bert], texts, nodes=["block"], progress=False)
    pair = browse_pair(list(dt.children.values()))
    for browser, path, context in ((pair.left, root / "gpt2", 64), (pair.right, root / "bert", 48)):
        reply, got = view(browser, 0)
        assert len(reply["tokens"]) == context
        assert got["spans"].tolist() == hf_spans(path, long, truncation=True, max_length=context)
    assert got["spans"][-1].tolist() == [2**30, 2**30 + 1]  # BERT keeps [SEP]: after the text


def test_the_pair_is_linked_in_the_front_end_and_by_sample(models):
    gpt, bert, _ = models
    pair = browse_pair([gpt, bert], TEXTS[:3])
    link = pair.link
    assert isinstance(link, Link)  # ipywidgets.jslink: runs in the page
    assert link.source == (pair.left, "token_hover") and link.target == (pair.right, "token_hover")
    assert pair.left.token_hover == [] and pair.left.trait_metadata("token_hover", "sync")
    pair.left.sample = 2
    assert pair.right.sample == 2
    pair.right.sample = 1
    assert pair.left.sample == 1
    pair.left.sample = 0  # (matplotlib warns of CJK glyphs it lacks: sample 1 has 日本)
    bundle = pair._repr_mimebundle_()
    assert "image/png" in (bundle[0] if isinstance(bundle, tuple) else bundle)  # both views, for pages without a kernel
    with pytest.raises(nbfeat.errors.InputError, match="two models or two results; got 3"):
        browse_pair([gpt, bert, gpt], TEXTS)
    with pytest.raises(nbfeat.errors.InputError, match="one per model"):
        browse_pair([gpt, bert], TEXTS, layer="h.1")
    a = gpt.extract(TEXTS[:3], nodes=["block"], progress=False)
    b = bert.extract([*TEXTS[:2], "another text"], nodes=["block"], progress=False)
    with pytest.raises(nbfeat.errors.InputError, match="same inputs"):
        browse_pair([a, b])


def test_comparison_of_two_text_models_links_its_two_browsers(models):
    gpt, bert, root = models
    dt = nbfeat.extract([gpt, bert], TEXTS, nodes=["block"], progress=False)
    cmp = nbfeat.compare(dt.nbfeat.pool("mean"), method="rsa")  # compared pooled, browsed by token
    ex = nbfeat.explore(cmp, dt)
    assert ex.link.source == (ex.left, "token_hover") and ex.link.target == (ex.right, "token_hover")
    i = next(k for k, s in enumerate(cmp.sources) if s["model"] == gpt.id)
    j = next(k for k, s in enumerate(cmp.sources) if s["model"] == bert.id)
    ex.heatmap.set_state({"picked": [i, j]})
    ex.left.sample = 1
    assert ex.right.sample == 1
    reply, got = view(ex.left, 1)
    assert got["spans"].tolist() == hf_spans(root / "gpt2", TEXTS[1])
    reply, got = view(ex.right, 1)
    assert reply["tokens"][0] == "[CLS]" and got["spans"].tolist() == hf_spans(root / "bert", TEXTS[1])


def test_spans_from_pieces_by_hand():
    from nbfeat.widgets.spans import piece_spans

    AFTER = 2**30  # where tokens added after the text are
    # BERT: added tokens at both ends; spaces before a word go with it and are left out
    assert piece_spans("a  b ", ["[CLS]", "a", "  b ", "[SEP]"]).tolist() == [[-1, 0], [0, 1], [3, 4], [AFTER, AFTER + 1]]
    # byte-level BPE: "é" split over two tokens, the second "" -> both the whole character
    assert piece_spans("xé y", ["x", "é", "", " y"]).tolist() == [[0, 1], [1, 2], [1, 2], [3, 4]]
    # a whitespace-only token keeps its whitespace
    assert piece_spans("a\n\nb", ["a", "\n", "\n", "b"]).tolist() == [[0, 1], [1, 2], [2, 3], [3, 4]]
    # the text itself starting with an added token's string: the longest reading of the text wins
    assert piece_spans("[CLS] x", ["[CLS]", "[CLS]", " x", "[SEP]"]).tolist() == [[-1, 0], [0, 5], [6, 7], [AFTER, AFTER + 1]]
    # pieces that do not join back to the text (decode([id]) of a tokenizer without offsets)
    assert piece_spans("running", ["[CLS]", "run", "##ning", "[SEP]"]) is None
    # a prefix only where the text was cut
    assert piece_spans("a b c", ["a", " b"]) is None
    assert piece_spans("a b c", ["a", " b"], truncated=True).tolist() == [[0, 1], [2, 3]]


def test_one_models_results_with_several_variables_carry_spans(models):
    gpt, _, root = models
    dt = gpt.extract(TEXTS[:3], layers=["h.0.mlp", "h.1"], nodes=["block"], progress=False)
    w = nbfeat.browse(dt, layer="h.0.mlp")
    for i, text in enumerate(TEXTS[:3]):
        reply, got = view(w, i)
        assert got["spans"].tolist() == hf_spans(root / "gpt2", text)


def test_the_pair_shows_a_picture_that_follows_it(models):
    import base64
    import io

    from IPython.core.interactiveshell import InteractiveShell
    from IPython.display import display
    from IPython.utils.capture import capture_output
    from PIL import Image

    InteractiveShell.instance()
    gpt, bert, _ = models
    pair = browse_pair([gpt, bert], [TEXTS[0], TEXTS[3]])
    with capture_output() as cap:
        display(pair)
        pair.left.sample = 1  # both move; the picture is drawn again
    view = "application/vnd.jupyter.widget-view+json"
    assert cap.outputs[0].data[view]["model_id"] == pair.model_id
    pictures = [base64.b64decode(o.data["image/png"]) for o in cap.outputs[1:]]
    assert len(pictures) == 2 and cap.outputs[-1].update and pictures[-1] == pair.snapshot().data
    left, both = (np.asarray(Image.open(io.BytesIO(p))) for p in (pair.left.snapshot().data, pictures[-1]))
    assert both.shape[1] > 1.5 * left.shape[1]  # the two browsers side by side
