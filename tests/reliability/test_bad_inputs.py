"""Odd paths, symlink loops, huge images, and property tests: a result or one clear message."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import nbfeat
from nbfeat.engine.pooling import parse_pool
from nbfeat.engine.selection import select
from nbfeat.errors import NbfeatError


@pytest.fixture(scope="module")
def resnet():
    return nbfeat.load("torchvision:resnet18", pretrained=False)


def test_unicode_and_space_paths_and_symlink_loop(resnet, tmp_path):
    root = tmp_path / "dossier ünïcødé"
    (root / "chat noir 猫").mkdir(parents=True)
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    img.save(root / "chat noir 猫" / "photo 1 ✓.png")
    os.symlink(root, root / "chat noir 猫" / "loop")  # a directory symlink back to the root
    ds = resnet.extract(root, layers="layer1", pool="mean", progress=False)
    assert list(ds["sample"].values) == ["chat noir 猫/photo 1 ✓.png"]
    assert list(ds["label"].values) == ["chat noir 猫"]


def test_huge_image_is_reduced_not_rejected(resnet, tmp_path):
    path = tmp_path / "huge.jpg"
    Image.new("L", (20000, 20000), 128).save(path, quality=30)
    ds = resnet.extract([path], layers="layer1", pool="mean", progress=False)
    assert ds.sizes["sample"] == 1 and json.loads(ds.attrs["failed"]) == []


def test_duplicate_paths_get_distinct_ids(resnet, image_dir):
    p = next(image_dir.rglob("*.png"))
    ds = resnet.extract([p, p], layers="layer1", pool="mean", progress=False)
    assert ds.sizes["sample"] == 2 and len(set(ds["sample"].values)) == 2


layer_specs = st.one_of(
    st.integers(-20, 20),
    st.text(max_size=12),
    st.sampled_from(["layer1", "layer4.*", "*.conv1", "attn", "block", "-1", "fc", "layer1.0.relu", "[", "**"]),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(layers=st.one_of(layer_specs, st.lists(layer_specs, max_size=3)), nodes=st.one_of(st.none(), st.text(max_size=6), st.sampled_from(["block", "attn"])))
def test_layer_selection_never_crashes(resnet, layers, nodes):
    try:
        targets = select(resnet, layers=layers, nodes=nodes)
    except NbfeatError as e:
        assert str(e) and "\n" not in str(e)
    else:
        assert targets and all(set(t.modules) <= set(resnet.layers()) for t in targets)


@settings(max_examples=200, deadline=None)
@given(spec=st.one_of(st.none(), st.text(max_size=10), st.tuples(st.text(max_size=6), st.one_of(st.integers(-3, 40), st.text(max_size=3))), st.dictionaries(st.text(max_size=5), st.integers(0, 9), max_size=2)))
def test_pool_spec_parsing_never_crashes(spec):
    try:
        parse_pool(spec)
    except NbfeatError as e:
        assert str(e)
