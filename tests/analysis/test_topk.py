"""topk: softmax probabilities, ImageNet names for 1000-way logits, labels kept, dask = numpy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import xarray as xr
from numpy.testing import assert_allclose
from torchvision.models import ResNet50_Weights

from nbfeat.errors import NbfeatError
from tests.analysis.builders import sample_coords


def _logits(n=5, c=1000, seed=0):
    rng = np.random.default_rng(seed)
    return xr.DataArray(
        rng.normal(size=(n, c)).astype(np.float32) * 3,
        dims=("sample", "channel"),
        coords=sample_coords(n),
        name="fc",
        attrs={"module": "fc"},
    )


def test_topk_of_imagenet_logits():
    da = _logits()
    out = da.nbfeat.topk(3)
    probs = torch.softmax(torch.from_numpy(da.values).double(), dim=-1)
    ref_p, ref_i = probs.topk(3, dim=-1)
    assert out.dims == ("sample", "rank") and list(out["rank"].values) == [1, 2, 3]
    assert_allclose(out.values, ref_p.numpy(), rtol=1e-10)
    assert (out["class_index"].values == ref_i.numpy()).all()
    names = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    assert list(out["class_name"].values[0]) == [names[i] for i in ref_i[0].tolist()]
    assert list(out["label"].values) == list(da["label"].values)
    assert out.attrs["module"] == "fc"


def test_topk_with_probabilities_names_and_dask():
    da = _logits(c=4)
    p = np.exp(da) / np.exp(da).sum("channel")
    out = p.nbfeat.topk(2, softmax=False, names=["a", "b", "c", "d"])
    order = np.argsort(-p.values, axis=1)[:, :2]
    assert_allclose(out.values, np.take_along_axis(p.values, order, 1), rtol=1e-6)
    assert (out["class_name"].values == np.array(["a", "b", "c", "d"])[order]).all()
    lazy = da.chunk({"sample": 2}).nbfeat.topk(2)
    assert lazy.chunks is not None
    assert_allclose(lazy.values, da.nbfeat.topk(2).values)
    assert (lazy["class_name"].values == da.nbfeat.topk(2)["class_name"].values).all()
    assert list(da.nbfeat.topk(1)["class_name"].values[:, 0])[0] in {"0", "1", "2", "3"}
    with pytest.raises(NbfeatError, match="between 1"):
        da.nbfeat.topk(9)
