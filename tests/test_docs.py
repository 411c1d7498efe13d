"""The docs site builds strictly, covers every magic/CLI word and config key, and its recipes hold."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"


def test_mkdocs_builds_strictly(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NO_MKDOCS_2_WARNING": "1"}
    r = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
    )
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert "WARNING" not in r.stderr, r.stderr[-3000:]
    api = (tmp_path / "site" / "api" / "index.html").read_text()
    for anchor in ("nbfeat.api.load", "nbfeat.api.extract", "nbfeat.models.registry.list_models", "nbfeat.config.load_config"):
        assert f'id="{anchor}"' in api


def test_every_config_key_magic_and_command_is_documented():
    from nbfeat.config import KEYS
    from nbfeat.magics import NbfeatMagics

    config = (DOCS / "config.md").read_text()
    for key in KEYS:
        assert f"| `{key}` |" in config, key
    magics = (DOCS / "magics.md").read_text()
    for sub in ("models", "tree", "extract", "browse", "explore"):
        assert f"## `%nbfeat {sub}" in magics, sub
    assert "## `%%nbfeat" in magics
    for flag in re.findall(r"--[a-z-]+", NbfeatMagics._extract.__doc__):
        assert f"`{flag}" in magics or f" {flag}" in magics, flag
    cli = (DOCS / "cli.md").read_text()
    for command in ("extract", "models", "tree"):
        assert f"## `nbfeat {command}`" in cli


def _block_after(text: str, marker: str) -> str:
    start = text.index(marker)
    body = text[start:].split("\n", 1)[1]
    return body.split("```", 1)[0].rstrip("\n")


def test_cli_tree_example_is_current():
    from nbfeat.cli import format_tree, load_structure

    shown = _block_after((DOCS / "cli.md").read_text(), "$ nbfeat tree torchvision:resnet18 --depth 1")
    assert format_tree(load_structure("torchvision:resnet18"), depth=1) == shown


# ---- recipes -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    from nbfeat.examples import make_images

    return make_images(tmp_path_factory.mktemp("recipes") / "images", per_class=1, size=48)


def test_thingsvision_recipe_exports_the_same_numbers(tmp_path, images):
    import torchvision
    from PIL import Image
    from torchvision.models import AlexNet_Weights

    import nbfeat
    import nbfeat.store

    torch.manual_seed(0)
    model = torchvision.models.get_model("alexnet", weights=None).eval()
    torch.save(model.state_dict(), tmp_path / "alexnet.pth")
    ds = nbfeat.extract("torchvision:alexnet", str(images), layers="features.10", flatten=True, weights=str(tmp_path / "alexnet.pth"), device="cpu", progress=False)
    nbfeat.store.export(ds, tmp_path / "features", format="npy")

    names = (tmp_path / "features" / "file_names.txt").read_text().split()
    arr = np.load(tmp_path / "features" / "features.10.npy")
    transform = AlexNet_Weights.DEFAULT.transforms()
    batch = torch.stack([transform(Image.open(images / n).convert("RGB")) for n in names])
    with torch.no_grad():
        expected = model.features[:11](batch).flatten(1)
    np.testing.assert_allclose(arr, expected.numpy(), rtol=1e-4, atol=1e-4)


def test_hf_out_indices_recipe_matches_autobackbone(tmp_path, images):
    from PIL import Image
    from transformers import AutoImageProcessor, Dinov2Backbone

    import nbfeat
    from nbfeat.examples import save_tiny_dinov2

    path = save_tiny_dinov2(tmp_path / "dinov2")
    bb = nbfeat.load(f"hf:{path}", device="cpu")
    last_two = [s.index for s in bb.stages[-2:]]  # == out_indices=[-2, -1]
    hf = Dinov2Backbone.from_pretrained(str(path), out_indices=[-2, -1]).eval()
    ds = bb.extract(str(images), stages=last_two, progress=False)

    processor = AutoImageProcessor.from_pretrained(str(path))
    pixels = processor([Image.open(images / s).convert("RGB") for s in ds["sample"].values], return_tensors="pt")["pixel_values"]
    with torch.no_grad():
        maps = hf(pixel_values=pixels).feature_maps
    for index, expected in zip(last_two, maps):
        torch.testing.assert_close(torch.as_tensor(ds[f"stage{index}"].values), expected, rtol=1e-4, atol=1e-4)


def test_ncut_recipe_nodes_stack_over_depth(tmp_path, images):
    import nbfeat
    from nbfeat.examples import save_tiny_dinov2

    bb = nbfeat.load(f"hf:{save_tiny_dinov2(tmp_path / 'dinov2')}", device="cpu")
    ds = bb.extract(str(images), nodes=["attn", "mlp", "block"], progress=False)
    assert ds["block"].dims == ("sample", "layer", "token", "channel")
    assert list(ds["attn"]["module"].values) == bb.blocks
    cls = bb.extract(str(images), nodes="block", pool="cls", progress=False)
    assert cls["block"].dims == ("sample", "layer", "channel")
    np.testing.assert_allclose(cls["block"].values, ds["block"].isel(token=0).values, rtol=1e-5, atol=1e-6)
