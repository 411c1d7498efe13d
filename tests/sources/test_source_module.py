"""A user's own nn.Module: values vs a hand-written forward, nodes, provenance, store, Dask."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
import torch
from torch import nn

import nbfeat
from nbfeat.errors import NbfeatError


def make_net(seed: int = 0) -> nn.Module:
    """A small ViT-like net with repeated blocks (attn / mlp / residual), defined locally so
    cloudpickle sends it by value to Dask workers, as a notebook's class would be."""

    class Block(nn.Module):
        def __init__(self, d):
            super().__init__()
            self.norm1 = nn.LayerNorm(d)
            self.attn = nn.MultiheadAttention(d, 2, batch_first=True)
            self.norm2 = nn.LayerNorm(d)
            self.mlp = nn.Sequential(nn.Linear(d, 2 * d), nn.GELU(), nn.Linear(2 * d, d))

        def forward(self, x):
            h = self.norm1(x)
            x = x + self.attn(h, h, h, need_weights=False)[0]
            return x + self.mlp(self.norm2(x))

    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = nn.Conv2d(3, 16, 8, stride=8)
            self.blocks = nn.ModuleList([Block(16) for _ in range(3)])
            self.head = nn.Linear(16, 5)

        def forward(self, x):
            x = self.stem(x).flatten(2).transpose(1, 2)
            for b in self.blocks:
                x = b(x)
            return self.head(x.mean(1))

    torch.manual_seed(seed)
    return Net().eval()


def by_hand(net, x):
    """The same forward written out, keeping what each depth makes."""
    out = {"stem": None, "attn": [], "mlp": [], "block": []}
    with torch.no_grad():
        s = net.stem(x)
        out["stem"] = s
        h = s.flatten(2).transpose(1, 2)
        for b in net.blocks:
            n1 = b.norm1(h)
            a = b.attn(n1, n1, n1, need_weights=False)[0]
            h = h + a
            m = b.mlp(b.norm2(h))
            h = h + m
            out["attn"].append(a)
            out["mlp"].append(m)
            out["block"].append(h)
    return out


@pytest.fixture(scope="module")
def net():
    return make_net()


def test_module_values_nodes_and_provenance(net):
    x = torch.randn(3, 3, 32, 40)  # non-square
    bb = nbfeat.load(net, name="my-net")
    ref = by_hand(net, x)
    ds = bb.extract(x, layers=["stem"], progress=False)
    np.testing.assert_allclose(ds["stem"].values, ref["stem"].numpy(), rtol=1e-5, atol=1e-6)
    assert ds["stem"].dims == ("sample", "channel", "y", "x")
    blocks = bb.extract(x, nodes=["block"], progress=False)["block"]
    assert blocks.dims[:2] == ("sample", "layer") and blocks.sizes["layer"] == 3
    np.testing.assert_allclose(blocks.values, torch.stack(ref["block"], 1).numpy(), rtol=1e-5, atol=1e-5)
    assert ds.attrs["model"] == "my-net" and ds.attrs["source"] == "module"
    assert ds.attrs["module_class"].endswith("make_net.<locals>.Net")
    assert ds.attrs["weights"] == "sha256:" + ds.attrs["state_dict_sha256"]
    assert json.loads(ds.attrs["preprocessing"])["preset"] == "imagenet"  # the stated default
    other = nbfeat.load(make_net(seed=1))
    assert other.provenance()["weights"] != bb.provenance()["weights"]  # other weights, other key


def test_module_with_its_own_transform_from_files(net, image_dir):
    from torchvision import transforms as T

    tf = T.Compose([T.Resize((32, 40)), T.ToTensor()])
    bb = nbfeat.load(net, preprocess=tf)
    assert bb.input_size == (3, 32, 40)  # read from what the transform makes
    ds = bb.extract(image_dir, layers="stem", batch_size=4, progress=False)
    from PIL import Image

    first = ds["path"].values[0]
    x = tf(Image.open(first).convert("RGB"))[None]
    np.testing.assert_allclose(ds["stem"].values[0], by_hand(net, x)["stem"][0].numpy(), rtol=1e-5, atol=1e-6)
    assert "Resize(size=(32, 40)" in json.loads(ds.attrs["preprocessing"])["transforms"]


def test_module_store_resume_and_dask(net, tmp_path):
    from dask.distributed import Client, LocalCluster
    from torchvision import transforms as T

    x = torch.randn(10, 3, 32, 32)
    bb = nbfeat.load(net, preprocess=T.Compose([T.Resize((32, 32)), T.ToTensor()]))
    local = bb.extract(x, layers="blocks.1", out=tmp_path / "a.zarr", batch_size=4, progress=False)
    again = bb.extract(x, layers="blocks.1", out=tmp_path / "a.zarr", batch_size=4, progress=False)  # resumes: done
    np.testing.assert_array_equal(local["blocks.1"].values, again["blocks.1"].values)
    stuck = make_net()
    stuck.lock = threading.Lock()  # cannot be pickled
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster, Client(cluster) as client:
        # the worker process rebuilds nothing: the module travels by value (cloudpickle)
        far = bb.extract(x, layers="blocks.1", out=tmp_path / "b.zarr", batch_size=4, client=client, progress=False)
        np.testing.assert_allclose(far["blocks.1"].values, local["blocks.1"].values, rtol=1e-6, atol=1e-6)
        with pytest.raises(NbfeatError, match="cannot be pickled"):
            nbfeat.load(stuck).extract(x, layers="stem", out=tmp_path / "c.zarr", client=client, progress=False)
    assert far.attrs["weights"] == local.attrs["weights"]


def test_tree_and_explorer_take_a_module(net):
    bb = nbfeat.load(net, name="my-net")
    tw = bb.tree()
    rows = {r["path"]: r for r in tw.rows}
    assert tw.title == "my-net" or "my-net" in rows[""]["name"]
    assert rows["blocks.2.attn"]["shape"] is not None and rows["blocks.1"]["role"] == "block"
    ex = nbfeat.explore(bb, torch.randn(2, 3, 32, 32), layer="blocks.0")
    assert ex.tree.selected == ["blocks.0"]


def test_module_in_extract_and_bad_preprocess(net):
    ds = nbfeat.extract(net, torch.randn(2, 3, 32, 32), layers="stem", progress=False)
    assert ds.attrs["source"] == "module"
    with pytest.raises(NbfeatError, match="preset"):
        nbfeat.load(net, preprocess="imagenett")
    with pytest.raises(NbfeatError, match="C x H x W"):
        nbfeat.load(net, preprocess=lambda im: 3)


def test_a_text_module_with_its_tokenizer(tmp_path):
    from transformers import AutoModel, AutoTokenizer

    from nbfeat.examples import save_tiny_gpt2

    path = save_tiny_gpt2(tmp_path / "gpt2")
    lm, tok = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    texts = ["I know this sky loves you", "a b"]
    with pytest.raises(NbfeatError, match="tokenizer="):
        nbfeat.load(lm, modality="text")
    bb = nbfeat.load(lm, modality="text", tokenizer=tok, name="my-lm")
    ds = bb.extract(texts, layers=["h.0"], progress=False)
    mask = ds["mask"].values
    for i, t in enumerate(texts):
        ids = tok(t, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            ref = lm(ids, output_hidden_states=True).hidden_states[1][0]  # the output of h.0
        np.testing.assert_allclose(ds["h.0"].values[i][mask[i]], ref.numpy(), rtol=1e-4, atol=1e-5)
    assert ds.attrs["modality"] == "text" and ds.attrs["model"] == "my-lm"


def test_a_sequential_names_its_modules_by_number():
    seq = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Conv2d(4, 2, 3)).eval()
    x = torch.randn(2, 3, 16, 12)
    ds = nbfeat.load(seq).extract(x, layers="2", progress=False)
    with torch.no_grad():
        np.testing.assert_allclose(ds["2"].values, seq(x).numpy(), rtol=1e-5, atol=1e-6)
