"""The `nbfeat` command (`python -m nbfeat`): exit codes, one-line errors, the shared YAML."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from tests.conftest import write_images

ROOT = Path(__file__).resolve().parents[1]


def nbfeat(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nbfeat", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def project(tmp_path):
    """A folder with images and a random-weight resnet18 checkpoint, as a user's would be."""
    import torchvision

    write_images(tmp_path / "images", n_per_class=2, size=(40, 52))
    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None).eval()
    torch.save(model.state_dict(), tmp_path / "resnet18.pth")
    return tmp_path, model


def test_help_and_version(tmp_path):
    r = nbfeat("--help", cwd=tmp_path)
    assert r.returncode == 0
    for word in ("extract", "models", "tree"):
        assert word in r.stdout
    r = nbfeat("extract", "--help", cwd=tmp_path)
    assert r.returncode == 0 and "--set KEY=VALUE" in r.stdout and "layer3: {pool: [avg2d, 8]}" in r.stdout
    r = nbfeat("help", "tree", cwd=tmp_path)
    assert r.returncode == 0 and "--depth" in r.stdout
    from nbfeat import __version__

    assert nbfeat("--version", cwd=tmp_path).stdout.strip() == f"nbfeat {__version__}"


def test_extract_config_file_values_and_summary(project):
    tmp_path, model = project
    config = tmp_path / "config.yaml"
    config.write_text(
        "model: torchvision:resnet18\n"
        "weights: resnet18.pth\n"
        "inputs: images/\n"
        "layers:\n"
        "  layer3: {pool: [avg2d, 2]}\n"
        "  layer4: {pool: mean}\n"
        "out: feats.zarr\n"
        "progress: false\n"
    )
    r = nbfeat("extract", "config.yaml", "--set", "batch_size=3", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "Wrote feats.zarr: DataTree, 4 samples: layer3 (channel 256, y 2, x 2), layer4 (channel 512)"

    from PIL import Image
    from torchvision.models import ResNet18_Weights

    import nbfeat as nb

    store = nb.open(str(tmp_path / "feats.zarr"))
    samples = list(store["sample"].values)
    assert samples == ["cats/img0.png", "cats/img1.png", "dogs/img0.png", "dogs/img1.png"]
    transform = ResNet18_Weights.DEFAULT.transforms()
    batch = torch.stack([transform(Image.open(tmp_path / "images" / s).convert("RGB")) for s in samples])
    seen = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.setdefault(n, o)) for n in ("layer3", "layer4")]
    with torch.no_grad():
        model(batch)
    for h in hooks:
        h.remove()
    l3 = store["layer3"]["layer3"] if "layer3" in getattr(store, "children", {}) else store["layer3"]
    l4 = store["layer4"]["layer4"] if "layer4" in getattr(store, "children", {}) else store["layer4"]
    np.testing.assert_allclose(np.asarray(l3.values), torch.nn.functional.adaptive_avg_pool2d(seen["layer3"], 2).numpy(), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(np.asarray(l4.values), seen["layer4"].mean(dim=(2, 3)).numpy(), rtol=1e-4, atol=1e-4)


def test_extract_code_and_flags_form(project):
    tmp_path, _ = project
    (tmp_path / "c.yml").write_text("model: timm:resnet50\ninputs: images/\nlayers:\n  layer3: {pool: [avg2d, 8]}\n  layer4: {pool: mean}\nout: feats.zarr\n")
    r = nbfeat("extract", "c.yml", "--code", "--random", "--set", "layers.layer4.pool=max", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nbfeat.extract('timm:resnet50', 'images/', layers=['layer3', 'layer4'], pool={'layer3': ('avg2d', 8), 'layer4': 'max'}, pretrained=False, out='feats.zarr')"
    # the flags form speaks the magic's words
    r = nbfeat("extract", "timm:resnet50", "--inputs", "images/", "--layers", "layer3", "layer4", "--pool", "layer4=mean", "--out", "f.zarr", "--code", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nbfeat.extract('timm:resnet50', 'images/', layers=['layer3', 'layer4'], pool={'layer4': 'mean'}, out='f.zarr')"
    # speed options: the same words as nbfeat.load and the YAML keys
    r = nbfeat("extract", "timm:resnet50", "--inputs", "images/", "--layers", "layer4", "--out", "f.zarr", "--channels-last", "--amp", "--code", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "nbfeat.extract('timm:resnet50', 'images/', layers='layer4', channels_last=True, amp=True, out='f.zarr')"


@pytest.mark.parametrize(
    ("args", "files", "message"),
    [
        (["extract", "missing.yaml"], {}, "nbfeat extract: Config file 'missing.yaml' not found."),
        (["extract", "c.yaml"], {"c.yaml": "model: resnet18\ninputs: images\nlayer: x\n"}, "nbfeat extract: Unknown config key 'layer'. Did you mean 'layers'?"),
        (["extract", "c.yaml"], {"c.yaml": "model: !!python/object/apply:os.system [echo pwned]\ninputs: images\n"}, "is not allowed"),
        (["extract", "c.yaml"], {"c.yaml": "model: resnet18\ninputs: images\n"}, "extract needs somewhere to write"),
        (["extract", "c.yaml", "--set", "batch_size"], {"c.yaml": "model: resnet18\ninputs: images\n"}, "--set takes key=value"),
        (["extract", "resnet18", "--layers", "layer4"], {}, "extract needs --inputs"),
        (["tree", "timm:resnt50"], {}, "nbfeat tree: Unknown model 'timm:resnt50'. Did you mean: timm:resnet50"),
        (["models", "zzz_no_such_model"], {}, "No model id matches 'zzz_no_such_model'"),
        (["extract", "resnet18", "--inputs", "x", "--batch-size", "many"], {}, "nbfeat extract: argument --batch-size: invalid int value: 'many' (see 'nbfeat extract --help')"),
        (["frobnicate"], {}, "nbfeat: argument COMMAND: invalid choice: 'frobnicate'"),
    ],
)
def test_user_errors_exit_2_with_one_line(tmp_path, args, files, message):
    for name, text in files.items():
        (tmp_path / name).write_text(text)
    r = nbfeat(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    err = r.stderr.strip()
    assert len(err.splitlines()) == 1, err
    assert message in err
    assert "Traceback" not in err
    assert not (tmp_path / "pwned").exists()


def test_path_errors_are_user_errors_and_others_exit_1(project):
    tmp_path, _ = project
    (tmp_path / "c.yaml").write_text("model: torchvision:resnet18\npretrained: false\ninputs: images/\nlayers: layer4\nout: images/cats/img0.png/feats.zarr\nprogress: false\n")
    r = nbfeat("extract", "c.yaml", cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"nbfeat extract: Not a directory: {tmp_path / 'images/cats/img0.png/feats.zarr'}"
    # anything nbfeat does not know as a user mistake is a bug: traceback, status 1
    r = nbfeat("extract", "c.yaml", "--set", "out=f.zarr", "--device", "no_such_device", cwd=tmp_path)
    if r.returncode == 2:  # the core now names bad devices itself: then it is one line
        assert len(r.stderr.strip().splitlines()) == 1
    else:
        assert r.returncode == 1 and "Traceback (most recent call last)" in r.stderr


def test_models_and_tree(tmp_path):
    r = nbfeat("models", "resnet1", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].split()[0] == "id"
    assert any(line.split()[0] == "torchvision:resnet18" for line in lines[1:])

    r = nbfeat("tree", "torchvision:resnet18", "--depth", "2", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "torchvision:resnet18  ResNet  11.7M params"
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:-1]}
    assert rows["layer4"] == ["Sequential", "512x7x7", "8.4M"]
    assert rows["layer4.1"] == ["BasicBlock", "512x7x7", "block", "4.7M"]
    assert rows["fc"] == ["Linear", "1000", "513.0K"]
    assert "layer4.1.conv2" not in rows  # below --depth 2
    assert lines[-1].startswith("8 repeated blocks (layer1.0 ... layer4.1): layers=-1 is the last")


def test_extract_into_the_cache_then_read_it_back(project):
    tmp_path, model = project
    args = ("extract", "torchvision:resnet18", "--weights", "resnet18.pth", "--inputs", "images/", "--layers", "layer4", "--pool", "mean", "--cache", "cache")
    first = nbfeat(*args, cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip() == "In the cache (cache): Dataset, 4 samples: layer4 (channel 512)"
    (entry,) = (tmp_path / "cache").glob("[!.]*.zarr")
    chunk = entry / "layer4" / "c" / "0" / "0"
    stamp = chunk.stat().st_mtime_ns
    again = nbfeat(*args, cwd=tmp_path)
    assert again.returncode == 0 and again.stdout == first.stdout
    assert chunk.stat().st_mtime_ns == stamp  # read back, not extracted again

    import nbfeat as nb

    ds = nb.cache.info(tmp_path / "cache")
    assert len(ds) == 1
    both = nbfeat(*args, "--out", "x.zarr", cwd=tmp_path)
    assert both.returncode == 2 and "not both" in both.stderr and len(both.stderr.strip().splitlines()) == 1


def test_stages_and_preprocess_from_the_command_line_equal_timm_features_only(tmp_path):
    import timm
    from PIL import Image
    from torchvision import transforms as T

    write_images(tmp_path / "images", n_per_class=1, size=(40, 52))
    torch.manual_seed(0)
    torch.save(timm.create_model("resnet18", pretrained=False).state_dict(), tmp_path / "r18.pth")
    r = nbfeat("extract", "timm:resnet18", "--weights", "r18.pth", "--inputs", "images/", "--stages", "1", "3", "--preprocess", "imagenet", "--out", "s.zarr", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    import nbfeat as nb

    store = nb.open(str(tmp_path / "s.zarr"))
    ref = timm.create_model("resnet18", pretrained=False, features_only=True, out_indices=(1, 3))
    ref.load_state_dict(torch.load(tmp_path / "r18.pth", weights_only=True), strict=False)
    ref.eval()
    imagenet = T.Compose([T.Resize(256), T.CenterCrop(224), T.ToTensor(), T.Normalize((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))])
    batch = torch.stack([imagenet(Image.open(tmp_path / "images" / s).convert("RGB")) for s in store["sample"].values])
    with torch.no_grad():
        want = ref(batch)
    for name, w in zip(("stage1", "stage3"), want):
        np.testing.assert_allclose(np.asarray(store[name][name].values), w.numpy(), rtol=1e-4, atol=1e-4)
    bad = nbfeat("extract", "timm:resnet18", "--inputs", "images/", "--preprocess", "imagnet", "--out", "t.zarr", cwd=tmp_path)
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1
