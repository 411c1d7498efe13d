"""Length-bucketed text batches: batches of similar lengths, results in the user's order,
values as Hugging Face's own `output_hidden_states` gives them for each text alone."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.data import labelled
from nbfeat.engine.buckets import length_batches, window_for
from nbfeat.examples import save_tiny_gpt2

# ragged on purpose: lengths from 1 to ~40 tokens, long and short mixed in input order
TEXTS = [
    "a cat",
    "I know this sky loves you and the river and the light over the quiet green hills tonight",
    "dog",
    "the quick brown fox jumps over the lazy dog",
    "x",
    "every network layer reads the image and writes a feature that the next one sees",
    "blue",
    "some model keeps a token",
    "the red river runs slowly under the old bridge near the bright town and the loud sea",
]


@pytest.fixture(scope="module")
def gpt2(tmp_path_factory):
    path = save_tiny_gpt2(tmp_path_factory.mktemp("buckets") / "gpt2", n_layer=3, n_positions=128)
    return path, nbfeat.load(f"hf:{path}")


@pytest.fixture(scope="module")
def bert(tmp_path_factory):
    from transformers import BertConfig, BertModel, BertTokenizerFast

    path = tmp_path_factory.mktemp("buckets") / "bert"
    path.mkdir()
    words = sorted({w for t in TEXTS for w in t.lower().split()})
    (path / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *words]) + "\n")
    BertTokenizerFast(str(path / "vocab.txt")).save_pretrained(path)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=len(words) + 5, hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, max_position_embeddings=64)
    BertModel(cfg).eval().save_pretrained(path)
    return path, nbfeat.load(f"hf:{path}")


def _hidden_states_alone(path, text):
    """HF's own hidden states for one text, in a batch of one (no pads at all)."""
    from transformers import AutoModel, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    model = AutoModel.from_pretrained(path).eval()
    enc = tok(text, return_tensors="pt")
    with torch.no_grad():
        out = model(**enc, output_hidden_states=True)
    return [h[0].numpy() for h in out.hidden_states]


def _widths(bb):
    """Token lengths the model is called at, recorded by a forward pre-hook."""
    seen = []
    handle = bb.model.register_forward_pre_hook(lambda m, args, kw: seen.append(int(kw["input_ids"].shape[1])), with_kwargs=True)
    return seen, handle


def test_batches_group_similar_lengths_and_each_runs_at_its_own_longest(gpt2):
    path, lm = gpt2
    run = lm.prepare(TEXTS, nodes=["block"], batch_size=3)
    lengths = [len(r) for r in run._ids]
    seen, handle = _widths(lm)
    try:
        batches = list(run.iter_batches(window=len(TEXTS)))
    finally:
        handle.remove()
    order = np.concatenate([b.positions for b in batches])
    assert sorted(order.tolist()) == list(range(len(TEXTS)))
    assert [lengths[p] for p in order] == sorted(lengths, reverse=True)  # longest first
    assert seen == [max(lengths[p] for p in b.positions) for b in batches]  # no run-wide padding in the forward
    assert all(b.features["block"].shape[2] == run._tmax for b in batches)  # padded to the run width after capture


def test_gpt2_bucketed_values_equal_hf_hidden_states_for_each_text_alone(gpt2):
    path, lm = gpt2
    ds = lm.extract(TEXTS, nodes=["attn", "mlp", "block"], batch_size=3, progress=False)
    assert list(ds["text"].values) == TEXTS and list(ds["sample"].values) == [str(i) for i in range(len(TEXTS))]
    depth = ds.sizes["layer"]
    for i, text in enumerate(TEXTS):
        hs = _hidden_states_alone(path, text)
        n = hs[0].shape[0]
        assert int(ds["mask"].values[i].sum()) == n
        # hidden_states[d + 1] is block d's output (the last one has ln_f applied: skipped)
        for d in range(depth - 1):
            np.testing.assert_allclose(ds["block"].values[i, d, :n], hs[d + 1], rtol=1e-4, atol=1e-5)
        assert np.isnan(ds["block"].values[i, :, n:]).all()
    plain = lm.extract(TEXTS, nodes=["attn", "mlp", "block"], batch_size=3, progress=False, length_buckets=False)
    for role in ("attn", "mlp", "block"):
        np.testing.assert_allclose(ds[role].values, plain[role].values, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ds["token_text"].values, plain["token_text"].values)


def test_bert_bucketed_values_equal_hf_hidden_states_for_each_text_alone(bert):
    path, bb = bert
    ds = bb.extract(TEXTS, layers=[f"encoder.layer.{d}" for d in range(2)], batch_size=4, progress=False)
    assert list(ds["text"].values) == TEXTS
    for i, text in enumerate(TEXTS):
        hs = _hidden_states_alone(path, text)
        n = hs[0].shape[0]
        for d in range(2):
            np.testing.assert_allclose(ds[f"encoder.layer.{d}"].values[i, :n], hs[d + 1], rtol=1e-4, atol=1e-5)
            assert np.isnan(ds[f"encoder.layer.{d}"].values[i, n:]).all()


def test_store_gets_rows_in_input_order_with_an_empty_text_in_the_middle(gpt2, tmp_path):
    _, lm = gpt2
    texts = TEXTS[:4] + [""] + TEXTS[4:]
    mem = lm.extract(texts, nodes=["block"], batch_size=2, progress=False)
    assert "4" not in list(mem["sample"].values) and list(mem["text"].values) == TEXTS
    got = lm.extract(texts, nodes=["block"], batch_size=2, progress=False, out=tmp_path / "t.zarr")  # failed rows left out
    assert list(got["text"].values) == TEXTS and list(got["sample"].values) == list(mem["sample"].values)
    np.testing.assert_array_equal(got["block"].values, mem["block"].values)
    plain = lm.extract(texts, nodes=["block"], batch_size=2, progress=False, length_buckets=False)
    np.testing.assert_allclose(mem["block"].values, plain["block"].values, rtol=1e-5, atol=1e-6)


def test_in_memory_result_holds_the_arrays_it_filled(gpt2, monkeypatch):
    """No copy at the end: the returned variables are views of the arrays filled batch by batch."""
    _, lm = gpt2
    made = []
    real = labelled.empty

    def spy(shape, dtype):
        made.append(real(shape, dtype))
        return made[-1]

    monkeypatch.setattr(labelled, "empty", spy)
    texts = ["", *TEXTS]  # a failed first input: rows squeezed up in place
    ds = lm.extract(texts, nodes=["block", "mlp"], batch_size=2, progress=False)  # a Dataset
    assert list(ds["text"].values) == TEXTS
    for k in ("block", "mlp"):
        assert any(np.shares_memory(ds[k].values, m) for m in made)
    made.clear()
    dt = lm.extract(texts, nodes=["block"], layers=["h.0.mlp.c_fc"], batch_size=2, progress=False)  # channels clash: a DataTree
    for k in ("block", "h.0.mlp.c_fc"):
        assert any(np.shares_memory(dt[k][k].values, m) for m in made)


def test_length_batches_windows_and_window_size():
    lengths = np.array([5, 50, 6, 48, 7, 49, 8, 47])
    got = length_batches(np.arange(8), lengths, batch_size=2, window=4)
    assert [b.tolist() for b in got] == [[1, 3], [2, 0], [5, 7], [6, 4]]  # never across a window
    assert [b.tolist() for b in length_batches(np.array([7, 0, 3]), lengths, batch_size=5)] == [[3, 7, 0]]
    assert window_for(32, 4, 10) == 10 and window_for(32, 4, 10**6) == 64 * 32
    assert window_for(32, 10**9, 10**6) == 32  # huge rows: one batch, memory as unbucketed


def test_length_buckets_off_from_yaml_runs_in_input_order_with_hf_values(gpt2):
    from nbfeat.config import load_config

    path, _ = gpt2
    cfg = load_config({"model": f"hf:{path}", "inputs": TEXTS, "nodes": "block", "batch_size": 3, "length_buckets": False, "progress": False})
    assert cfg.to_kwargs()["length_buckets"] is False
    lm = nbfeat.load(f"hf:{path}")
    seen, handle = _widths(lm)
    try:
        ds = nbfeat.extract(lm, **{k: v for k, v in cfg.to_kwargs().items() if k != "models"})
    finally:
        handle.remove()
    tok_lengths = [len(t) for t in _tokenized(path)]
    want = [max(tok_lengths[i : i + 3]) for i in range(0, len(TEXTS), 3)]
    assert seen[-len(want):] == want  # input order, one batch per three texts
    hs = _hidden_states_alone(path, TEXTS[1])
    np.testing.assert_allclose(ds["block"].values[1, 0, : hs[0].shape[0]], hs[1], rtol=1e-4, atol=1e-5)


def _tokenized(path):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    return [tok(t)["input_ids"] for t in TEXTS]
