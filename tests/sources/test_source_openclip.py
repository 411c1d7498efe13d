"""open_clip: a tiny config with random weights saved to a file, loaded through nbfeat.load;
values vs open_clip's own encode_image / encode_text, with hooks written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nbfeat

open_clip = pytest.importorskip("open_clip")

TINY = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 64, "patch_size": 8, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("openclip")
    (root / "nbfeat-tiny-clip.json").write_text(json.dumps(TINY))
    open_clip.add_model_config(root / "nbfeat-tiny-clip.json")
    torch.manual_seed(3)
    model = open_clip.create_model("nbfeat-tiny-clip").eval()
    ckpt = root / "tiny.pt"
    torch.save(model.state_dict(), ckpt)
    return model, str(ckpt)


def hooked(modules, run):
    got = {}
    handles = [m.register_forward_hook(lambda mod, a, out, k=k: got.__setitem__(k, out.detach().clone())) for k, m in modules.items()]
    try:
        with torch.no_grad():
            final = run()
    finally:
        for h in handles:
            h.remove()
    return got, final


def test_image_tower_vs_encode_image(tiny, image_dir):
    model, ckpt = tiny
    bb = nbfeat.load("openclip:nbfeat-tiny-clip", weights=ckpt)
    assert bb.modality == "image" and bb.input_size == (3, 32, 32)
    paths = sorted(image_dir.rglob("*.png"))[:3]
    ds = bb.extract(paths, layers=["transformer.resblocks.1"], progress=False)
    # by hand, with open_clip's own transform and encode_image
    _, _, tf = open_clip.create_model_and_transforms("nbfeat-tiny-clip")
    from PIL import Image

    x = torch.stack([tf(Image.open(p).convert("RGB")) for p in ds["path"].values])
    got, emb = hooked({"b1": model.visual.transformer.resblocks[1]}, lambda: model.encode_image(x))
    np.testing.assert_allclose(ds["transformer.resblocks.1"].values, got["b1"].numpy(), rtol=1e-4, atol=1e-5)
    assert ds.attrs["weights"].startswith("sha256:") and ds.attrs["tower"] == "image"
    assert "Normalize" in json.loads(ds.attrs["preprocessing"])["transforms"]
    assert emb.shape == (3, 32)


def test_text_tower_vs_encode_text(tiny):
    model, ckpt = tiny
    texts = ["a photo of a cat", "I know this sky loves you, and the long road home"]
    for tb in (nbfeat.load("openclip:nbfeat-tiny-clip/text", weights=ckpt), nbfeat.load("openclip:nbfeat-tiny-clip", weights=ckpt, modality="text")):
        assert tb.modality == "text"
        ds = tb.extract(texts, layers=["transformer.resblocks.0", "ln_final"], progress=False)
        tok = open_clip.get_tokenizer("nbfeat-tiny-clip")
        ids = tok(texts)  # open_clip's own 77-token padded ids
        got, pooled = hooked({"b0": model.transformer.resblocks[0], "ln": model.ln_final}, lambda ids=ids: model.encode_text(ids))
        mask = ds["mask"].values
        n = mask.shape[1]
        for name, key in (("transformer.resblocks.0", "b0"), ("ln_final", "ln")):
            arr = ds[name][name].values if hasattr(ds[name], "children") else ds[name].values
            ref = got[key].numpy()[:, :n]
            np.testing.assert_allclose(arr[mask], ref[mask], rtol=1e-4, atol=1e-5)
        assert list(ds["token_text"].values[0][: mask[0].sum()])[0].startswith("<start_of_text>")
    # the tower's own output is encode_text's embedding
    ids_real = [[tok.sot_token_id, *tok.encode(t), tok.eot_token_id] for t in texts[:1]]
    with torch.no_grad():
        mine = tb.model(torch.tensor(ids_real))
    np.testing.assert_allclose(mine.numpy(), pooled[:1].numpy(), rtol=1e-4, atol=1e-5)


def test_long_text_keeps_the_end_token_as_open_clip_does(tiny):
    model, ckpt = tiny
    tb = nbfeat.load("openclip:nbfeat-tiny-clip/text", weights=ckpt)
    text = " ".join(["cat"] * 100)
    with pytest.warns(UserWarning, match="truncated"):
        ds = tb.extract([text], layers=["ln_final"], progress=False)
    assert ds.sizes["token"] == 77 and ds["token_text"].values[0, -1] == "<end_of_text>"
    ids = open_clip.get_tokenizer("nbfeat-tiny-clip")([text])
    got, _ = hooked({"ln": model.ln_final}, lambda: model.encode_text(ids))
    np.testing.assert_allclose(ds["ln_final"].values[0], got["ln"].numpy()[0], rtol=1e-4, atol=1e-5)


def test_names_and_errors():
    from nbfeat.errors import NbfeatError, UnknownModelError

    r = nbfeat.models.registry.lookup("CLIP(ViT-B-16/openai)")
    assert r.id == "openclip:ViT-B-16/openai" and r.shown == "CLIP(ViT-B-16/openai) -> openclip:ViT-B-16/openai"
    with pytest.raises(UnknownModelError, match="ViT-B-16"):
        nbfeat.models.registry.lookup("openclip:ViT-B-61/openai")
    with pytest.raises(UnknownModelError, match="openai"):
        nbfeat.models.registry.lookup("openclip:ViT-B-16/openaii")
    with pytest.raises(NbfeatError, match="needs a weights tag"):
        nbfeat.load("openclip:nbfeat-tiny-clip")
