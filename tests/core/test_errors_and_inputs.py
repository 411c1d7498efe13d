"""Clear errors for user mistakes; messy image folders are converted or recorded, never fatal."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import nbfeat
from nbfeat.errors import (
    InputError,
    MissingDependencyError,
    NbfeatError,
    OfflineError,
    UnknownLayerError,
    UnknownModelError,
    require,
)


@pytest.fixture(scope="module")
def resnet():
    return nbfeat.load("torchvision:resnet18", pretrained=False)


def test_unknown_model_lists_closest_names():
    with pytest.raises(UnknownModelError, match=r"Unknown model 'timm:resnt50'.*Did you mean: timm:resnet50"):
        nbfeat.load("timm:resnt50", pretrained=False)
    with pytest.raises(UnknownModelError, match=r"alexnet"):
        nbfeat.load("alexnt", pretrained=False)
    with pytest.raises(UnknownModelError, match=r"Unknown model source 'tim'"):
        nbfeat.load("tim:resnet50", pretrained=False)


def test_unknown_layer_lists_closest_names(resnet, image_dir):
    with pytest.raises(UnknownLayerError, match=r"Unknown layer 'layer5'.*Did you mean: layer[1-4]"):
        resnet.extract(image_dir, layers="layer5", progress=False)
    with pytest.raises(UnknownLayerError, match=r"No layer .* matches 'blocks\.\*\.attn'"):
        resnet.extract(image_dir, layers="blocks.*.attn", progress=False)
    with pytest.raises(UnknownLayerError, match=r"no 'attn' node"):
        resnet.extract(image_dir, nodes="attn", progress=False)
    with pytest.raises(UnknownLayerError, match=r"out of range: .* 8 blocks"):
        resnet.extract(image_dir, layers=-9, progress=False)
    with pytest.raises(NbfeatError, match=r"Unknown pooling 'mena'.*Did you mean: mean"):
        resnet.extract(image_dir, layers="layer1", pool="mena", progress=False)
    with pytest.raises(NbfeatError, match=r"has no class token"):
        resnet.extract(image_dir, layers="layer1", pool="cls", progress=False)


def test_offline_pretrained_names_the_way_out(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from nbfeat.models import hub

    hub.hub_reachable.cache_clear()
    for model in ("timm:resnet18.a1_in1k", "hf:openai-community/gpt2", "gpt2"):
        with pytest.raises(OfflineError, match=r"pretrained=False.*weights="):
            nbfeat.load(model, pretrained=True)


def test_offline_torchvision_download_failure_is_clear(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))  # an empty cache: the download must fail here
    with pytest.raises(OfflineError, match=r"'torchvision:alexnet'.*pretrained=False"):
        nbfeat.load("torchvision:alexnet", pretrained=True)


def test_missing_optional_dependency_names_pip_command():
    with pytest.raises(MissingDependencyError, match=r"pip install nbfeat\[export\]"):
        require("surely_not_installed_pkg", "nbfeat[export]")


def test_bad_checkpoint_is_refused(tmp_path):
    import torch

    path = tmp_path / "wrong.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, path)
    with pytest.raises(NbfeatError, match=r"does not fit torchvision:resnet18.*missing"):
        nbfeat.load("torchvision:resnet18", weights=str(path))


def test_messy_folder_records_bad_files_and_converts_odd_modes(resnet, tmp_path):
    root = tmp_path / "messy"
    (root / "odd").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 255, (40, 40, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(root / "odd" / "rgb.png")
    Image.fromarray(rgb[..., 0]).save(root / "odd" / "gray.png")
    Image.fromarray(np.dstack([rgb, np.full((40, 40), 128, np.uint8)])).save(root / "odd" / "rgba.png")
    Image.fromarray((rng.integers(0, 65535, (40, 40))).astype(np.uint16)).save(root / "odd" / "sixteen.png")
    Image.fromarray(rgb).convert("P").save(root / "odd" / "palette.gif")
    Image.fromarray(rgb).convert("CMYK").save(root / "odd" / "cmyk.jpg")
    Image.new("RGB", (5000, 3000), (10, 200, 30)).save(root / "odd" / "huge.jpg", quality=50)
    (root / "empty.png").write_bytes(b"")
    (root / "text.jpg").write_text("this is not a jpeg")
    good = root / "odd" / "rgb.png"
    (root / "truncated.png").write_bytes(good.read_bytes()[:60])
    (root / "readme.md").write_text("# not an image")
    ds = resnet.extract(root, layers="layer1", pool="mean", progress=False)
    assert sorted(ds["sample"].values) == sorted(f"odd/{n}" for n in ("rgb.png", "gray.png", "rgba.png", "sixteen.png", "palette.gif", "cmyk.jpg", "huge.jpg"))
    failed = {r["sample"]: r["reason"] for r in json.loads(ds.attrs["failed"])}
    assert failed["empty.png"].startswith("empty file")
    assert "not an image" in failed["text.jpg"]
    assert "truncated" in failed["truncated.png"] or "corrupt" in failed["truncated.png"] or "not an image" in failed["truncated.png"]
    assert "not an image file" in failed["readme.md"]
    assert ds.attrs["n_failed"] == 4
    assert np.isfinite(ds["layer1"].values).all()


def test_empty_folder_and_bad_input_types(resnet, tmp_path):
    (tmp_path / "none").mkdir()
    with pytest.raises(InputError, match="No images found"):
        resnet.extract(tmp_path / "none", progress=False)
    with pytest.raises(InputError, match="No such file or folder"):
        resnet.extract(tmp_path / "missing", progress=False)
    with pytest.raises(InputError, match="NaN or inf"):
        import torch

        resnet.extract(torch.full((1, 3, 32, 32), float("nan")), progress=False)
    with pytest.raises(InputError, match="expected a path, a PIL image or an array"):
        resnet.extract([1, 2], progress=False)
    with pytest.raises(InputError, match="unique"):
        resnet.extract(np.zeros((2, 8, 8, 3), np.uint8), ids=["a", "a"], progress=False)


def test_list_models_table():
    df = nbfeat.list_models("dinov2")
    assert {"id", "source", "modality", "family", "extra", "note"} <= set(df.columns)
    assert "dinov2_vits14" in set(df["id"]) and "timm:vit_small_patch14_dinov2.lvd142m" in set(df["id"])
    assert (nbfeat.list_models("gpt2")["modality"] == "text").any()
    assert len(nbfeat.list_models("torchvision:*resnet*")) >= 5
    everything = nbfeat.list_models()
    assert set(everything["source"]) >= {"timm", "torchvision", "hf"}


def test_every_alias_names_a_model_that_exists():
    from nbfeat.models.aliases import ALIASES
    from nbfeat.models.registry import resolve

    for alias, (mid, *_rest) in ALIASES.items():
        if mid.partition(":")[0] in ("timm", "torchvision", "cornet"):  # hub ids are checked when loaded
            assert resolve(mid)[0] == mid.partition(":")[0], alias


def test_folder_without_config_is_not_a_model(tmp_path):
    (tmp_path / "d").mkdir()
    with pytest.raises(NbfeatError, match="no config.json"):
        nbfeat.load(f"hf:{tmp_path / 'd'}", pretrained=False)


def test_nan_rows_in_a_tensor_are_recorded_and_the_rest_finish(resnet):
    import torch

    x = torch.randn(4, 3, 32, 32)
    x[2, 0, 0, 0] = float("nan")
    ds = resnet.extract(x, layers="layer1", pool="mean", batch_size=2, progress=False)
    assert list(ds["sample"].values) == ["0", "1", "3"]
    assert json.loads(ds.attrs["failed"]) == [{"sample": "2", "path": "", "reason": "NaN or inf values in the tensor"}]
