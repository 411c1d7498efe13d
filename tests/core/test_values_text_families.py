"""Text families beyond the node values the conformance matrix checks (tests/conformance/text_rows.py):
token_text round trips, truncation that keeps special tokens, the context as the library
counts it, a text file as inputs, ALBERT's calls as depths."""

from __future__ import annotations

import numpy as np
import pytest

import nbfeat
from tests.core.text_families import FAMILIES, save_tiny

TEXTS = ["the cat é 日本語 🙂 sky", "a cat", "  spaces  before and after  "]
LONG = "the quick brown fox jumps over the lazy dog, " * 4
CONTEXT = 32


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("text")
    return {f: nbfeat.load(f"hf:{save_tiny(f, root / f, context=CONTEXT, layers=1)}") for f in FAMILIES}


def _own_tokens(tok, text, **kw):
    """Positions of the text's own tokens (not added by the tokenizer), by the tokenizer's word."""
    enc = tok(text, return_offsets_mapping=True, return_special_tokens_mask=True, **kw)
    return [i for i, (sp, (a, b)) in enumerate(zip(enc["special_tokens_mask"], enc["offset_mapping"])) if not (sp and a == b)], enc


@pytest.mark.parametrize("family", FAMILIES)
def test_token_text_round_trips_and_keeps_special_tokens(models, family):
    bb = models[family]
    tok = bb.tokenizer
    with pytest.warns(UserWarning, match=r"^1 text\(s\) longer than the model's context \(32 tokens\) were truncated\.$"):
        ds = bb.extract([*TEXTS, LONG], layers=[-1], progress=False)
    assert ds.sizes["token"] == CONTEXT  # never past the context, never a crash
    for i, text in enumerate([*TEXTS, LONG]):
        own, enc = _own_tokens(tok, text, truncation=True, max_length=CONTEXT)
        ids = enc["input_ids"]
        n = int(ds["mask"].values[i].sum())
        assert n == len(ids)
        pieces = ds["token_text"].values[i]
        joined = "".join(pieces[j] for j in own)
        if text is LONG:
            assert LONG.startswith(joined) and len(joined) < len(LONG)
        else:
            assert joined == text  # é, 日本語 and the emoji come back whole, spaces included
        names = tok.convert_ids_to_tokens(ids)
        for j in set(range(n)) - set(own):  # tokens the tokenizer added are labelled with their own string
            assert pieces[j] == names[j]
        if tok.sep_token is not None or family in ("t5", "clip_text"):
            # the closing special token survives truncation (BERT's [SEP], </s>, end of text)
            assert pieces[n - 1] == names[-1] == (tok.sep_token or tok.eos_token)


def test_roberta_context_is_512_of_514_positions_and_long_texts_work(tmp_path):
    """RoBERTa counts positions from pad_token_id + 1: 514 positions hold 512 tokens."""
    import transformers as T

    from tests.core.text_families import build_tiny

    model, tok = build_tiny("roberta", context=512, layers=1)
    assert model.config.max_position_embeddings == 514
    tok.model_max_length = int(1e30)  # a tokenizer without a limit: the config alone must say 512
    model.save_pretrained(tmp_path / "r")
    tok.save_pretrained(tmp_path / "r")
    bb = nbfeat.load(f"hf:{tmp_path / 'r'}")
    assert bb.max_length == 512
    with pytest.warns(UserWarning, match="truncated"):
        ds = bb.extract(["the cat " * 400, "a cat"], layers=[-1], progress=False)
    assert ds.sizes["token"] == 512 and ds["token_text"].values[0, 511] == "</s>"
    ref = T.RobertaModel.from_pretrained(tmp_path / "r").eval()
    import torch

    ids = torch.tensor([tok("the cat " * 400, truncation=True, max_length=512)["input_ids"]])
    with torch.no_grad():
        want = ref(input_ids=ids, output_hidden_states=True).hidden_states[1]
    np.testing.assert_allclose(ds[bb.blocks[-1]].values[0], want[0].numpy(), rtol=1e-4, atol=1e-4)


def test_context_from_config_and_tokenizer():
    from types import SimpleNamespace as NS

    from nbfeat.models.adapters.text import context_length

    assert context_length(NS(model_type="xlm-roberta", max_position_embeddings=514, pad_token_id=1), NS(model_max_length=512)) == 512
    assert context_length(NS(model_type="bert", max_position_embeddings=512), NS(model_max_length=int(1e30))) == 512
    assert context_length(NS(model_type="gpt2", n_positions=1024), NS(model_max_length=1024)) == 1024
    assert context_length(NS(model_type="t5", n_positions=512), NS(model_max_length=int(1e30))) is None  # relative positions
    assert context_length(NS(model_type="t5"), NS(model_max_length=512)) == 512
    assert context_length(NS(model_type="clip_text_model", max_position_embeddings=77), NS(model_max_length=77)) == 77


def test_text_file_is_one_text_per_line(models, tmp_path):
    path = tmp_path / "sentences.txt"
    path.write_text("\ufeffthe cat é\n\n   \na cat\r\nthe sky 🙂\n", encoding="utf-8")
    ds = models["bert"].extract(str(path), layers=[-1], pool="mean", progress=False)
    assert list(ds["sample"].values) == ["sentences.txt:1", "sentences.txt:4", "sentences.txt:5"]
    assert list(ds["text"].values) == ["the cat é", "a cat", "the sky 🙂"]
    assert set(ds["path"].values) == {str(path)}
    same = models["bert"].extract(["the cat é", "a cat", "the sky 🙂"], layers=[-1], pool="mean", progress=False)
    np.testing.assert_array_equal(ds[models["bert"].blocks[-1]].values, same[models["bert"].blocks[-1]].values)
    from nbfeat.errors import InputError

    (tmp_path / "blank.txt").write_text("\n \n", encoding="utf-8")
    with pytest.raises(InputError, match="every line is blank"):
        models["bert"].extract(str(tmp_path / "blank.txt"), progress=False)
    # a string that is not a .txt file is a text
    assert list(models["bert"].extract("notes.txt", layers=[-1], progress=False)["text"].values) == ["notes.txt"]


def test_albert_calls_of_the_shared_layer_are_depths(models):
    bb = models["albert"]
    assert bb.adapter.family == "hf.albert" and len(set(bb.nodes["block"])) == 1
    ds = bb.extract(TEXTS, nodes=["attn", "block"], progress=False)
    calls = bb.model.config.num_hidden_layers
    assert ds["block"].dims == ("sample", "layer", "token", "channel") and ds.sizes["layer"] == calls
    assert list(ds["layer"].values) == list(range(calls))
    one = bb.extract(TEXTS, layers=[-1], progress=False)[bb.blocks[-1]]
    assert one.dims == ("sample", "call", "token", "channel")
    np.testing.assert_array_equal(one.values, ds["block"].values)


@pytest.mark.parametrize("family, cls", [("gpt2", False), ("llama", False), ("t5", False), ("clip_text", False), ("bert", True), ("roberta", True), ("albert", True)])
def test_cls_only_with_a_class_token(models, family, cls):
    from nbfeat.errors import NbfeatError

    bb = models[family]
    if cls:
        ds = bb.extract(TEXTS, layers=[-1], pool="cls", progress=False)
        full = bb.extract(TEXTS, layers=[-1], progress=False)
        (v,) = ds.data_vars.values()
        (f,) = full.data_vars.values()
        np.testing.assert_array_equal(v.values, f.values[..., 0, :])
        return
    with pytest.raises(NbfeatError, match="mean") as err:
        bb.extract(TEXTS, layers=[-1], pool="cls", progress=False)
    assert "last" in str(err.value) and len(str(err.value)) < 200


def test_clip_text_tower_of_a_two_tower_checkpoint(tmp_path):
    """`modality="text"` on a CLIPModel folder: its text tower, pooled as CLIP pools (EOS)."""
    import torch
    import transformers as T

    from tests.core.text_families import build_tiny

    text, tok = build_tiny("clip_text", context=16, layers=1)
    torch.manual_seed(0)
    cfg = T.CLIPConfig(text_config=text.config.to_dict(), vision_config={"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 8})
    clip = T.CLIPModel(cfg).eval()
    clip.save_pretrained(tmp_path / "clip")
    tok.save_pretrained(tmp_path / "clip")
    bb = nbfeat.load(f"hf:{tmp_path / 'clip'}", modality="text")
    assert bb.modality == "text" and bb.adapter.family == "hf.clip-text" and bb.max_length == 16
    texts = ["a cat", "the sky é"]
    ds = bb.extract(texts, layers=["final_layer_norm"], pool="last", progress=False)
    enc = tok(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        want = clip.text_model(**enc).pooler_output  # CLIP's own pooling: the end-of-text token
    np.testing.assert_allclose(ds["final_layer_norm"].values, want.numpy(), rtol=1e-4, atol=1e-5)
    assert nbfeat.load(f"hf:{tmp_path / 'clip'}").modality == "image"  # the image tower by default


def test_tokenizer_without_offsets_keeps_its_end_token():
    """open_clip's own tokenizer (no offsets): a cut text still ends with end-of-text."""
    open_clip = pytest.importorskip("open_clip")
    from nbfeat.engine.tokens import tokenize
    from nbfeat.models.sources.openclip import TokenizerAdapter

    raw = open_clip.get_tokenizer("ViT-B-32")
    enc = tokenize(TokenizerAdapter(raw), ["a photo of a cat " * 30, "a cat"], context=77)
    assert enc.truncated == 1 and len(enc.ids[0]) == 77 and enc.ids[0][-1] == raw.eot_token_id
    assert enc.ids[1][0] == raw.sot_token_id and enc.ids[1][-1] == raw.eot_token_id and len(enc.ids[1]) == 4
    assert "".join(enc.pieces[1][1:-1]).replace(" ", "") == "acat"


@pytest.mark.parametrize("family", ["bert", "t5", "gpt2"])
def test_an_empty_text_is_recorded_as_failed_on_every_family(models, family):
    """BERT makes [CLS] [SEP] of "", T5 </s>: still no token of the text's own."""
    ds = models[family].extract(["a cat", "", "the sky"], layers=[-1], pool="mean", progress=False)
    assert list(ds["sample"].values) == ["0", "2"] and "empty text" in ds.attrs["failed"]


def test_flatten_text_is_the_same_width_in_every_batch(models):
    """Length-bucketed batches each have their own length; flattened features do not."""
    bb = models["bert"]
    full = bb.extract(TEXTS, layers=[-1], progress=False)[bb.blocks[-1]].values
    for kw in ({"pool": "flatten"}, {"flatten": True}):
        got = bb.extract(TEXTS, layers=[-1], batch_size=1, progress=False, **kw)[bb.blocks[-1]].values
        np.testing.assert_allclose(got, full.reshape(len(TEXTS), -1), rtol=1e-5, atol=1e-6)  # NaN where each text is padded


def test_generic_bert_like_attn_is_taken_before_the_residual_like_mlp(tmp_path):
    """A BERT-layout model nbfeat has no adapter for (ERNIE): the generic roles still take
    attn at attention.output.dense, as mlp at output.dense (before residual + LayerNorm)."""
    import torch
    import transformers as T

    from tests.core.text_families import build_tiny

    _, tok = build_tiny("bert", context=32, layers=1)
    torch.manual_seed(0)
    model = T.ErnieModel(T.ErnieConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, vocab_size=len(tok), max_position_embeddings=32)).eval()
    model.save_pretrained(tmp_path / "e")
    tok.save_pretrained(tmp_path / "e")
    bb = nbfeat.load(f"hf:{tmp_path / 'e'}")
    assert bb.adapter.family == "generic"
    assert bb.nodes["attn"] == ["encoder.layer.0.attention.output.dense", "encoder.layer.1.attention.output.dense"]
    ds = bb.extract(["a cat"], nodes="attn", progress=False)
    got = {}
    handle = model.encoder.layer[1].attention.output.dense.register_forward_hook(lambda m, a, o: got.setdefault("x", o))
    with torch.no_grad():
        model(**tok(["a cat"], return_tensors="pt"))
    handle.remove()
    np.testing.assert_allclose(ds["attn"].values[0, 1], got["x"][0].numpy(), rtol=1e-4, atol=1e-5)
