"""The YAML config shared by %%nbfeat and `nbfeat extract`: parsing, safety, validation, overrides."""

from __future__ import annotations

import pytest

from nbfeat.config import ConfigError, ExtractConfig, apply_override, flags_to_raw, load_config
from nbfeat.errors import NbfeatError

ISSUE_EXAMPLE = """\
model: timm:resnet50
inputs: images/
layers:
  layer3: {pool: [avg2d, 8]}
  layer4: {pool: mean}
out: feats.zarr
"""


def test_issue_example_maps_to_extract_kwargs():
    cfg = load_config(ISSUE_EXAMPLE)
    assert isinstance(cfg, ExtractConfig)
    assert cfg.to_kwargs() == {
        "models": "timm:resnet50",
        "inputs": "images/",
        "layers": ["layer3", "layer4"],
        "pool": {"layer3": ("avg2d", 8), "layer4": "mean"},
        "out": "feats.zarr",
    }


def test_config_file_path_and_text_give_the_same_config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(ISSUE_EXAMPLE)
    assert load_config(path).to_kwargs() == load_config(str(path)).to_kwargs() == load_config(ISSUE_EXAMPLE).to_kwargs()


def test_missing_config_file_is_one_line():
    with pytest.raises(ConfigError, match=r"Config file 'nope\.yaml' not found\.$"):
        load_config("nope.yaml")


def test_python_tags_are_refused_with_a_clear_message(tmp_path):
    marker = tmp_path / "pwned"
    evil = f"model: !!python/object/apply:os.system ['touch {marker}']\ninputs: images/\n"
    with pytest.raises(ConfigError) as e:
        load_config(evil)
    msg = str(e.value)
    assert "!!python/object/apply:os.system" in msg and "not allowed" in msg and "safe" in msg
    assert "\n" not in msg
    assert not marker.exists()
    with pytest.raises(ConfigError, match="not allowed"):
        load_config("model: !!python/name:os.system\ninputs: x\n")


def test_invalid_yaml_names_the_line():
    with pytest.raises(ConfigError, match=r"not valid YAML \(line 3"):
        load_config("model: resnet18\ninputs: [images\nlayers: x\n")


@pytest.mark.parametrize(
    ("text", "pattern"),
    [
        ("model: resnet18\ninputs: x\nlayer: layer4\n", r"Unknown config key 'layer'\. Did you mean 'layers'\? Allowed keys: model, models, inputs"),
        ("model: resnet18\ninputs: x\nbatchsize: 8\n", r"Did you mean 'batch_size'\?"),
        ("model: resnet18\ninputs: x\nlayers:\n  layer4: {pooling: mean}\n", r"layers 'layer4': unknown key 'pooling'\. Did you mean 'pool'\? Allowed keys: pool\."),
        ("model: resnet18\ninputs: x\nlayers:\n  layer4: {pool: avg}\n", None),  # an alias the engine accepts
        ("model: resnet18\ninputs: x\nlayers:\n  layer4: {pool: average2d}\n", r"layers 'layer4' pool: "),
        ("model: resnet18\ninputs: x\npool: [avg2d, 0]\n", r"pool: Pooling size must be a positive integer"),
        ("model: resnet18\ninputs: x\nbatch_size: eight\n", r"'batch_size' must be a positive integer, got 'eight'\."),
        ("model: resnet18\ninputs: x\npretrained: maybe\n", r"'pretrained' must be true or false"),
        ("model: resnet18\ninputs: x\nnodes: [attention]\n", r"'nodes' takes the roles attn, mlp, block, got 'attention'"),
        ("model: resnet18\nmodels: [alexnet]\ninputs: x\n", r"either 'model' \(one\) or 'models' \(several\), not both"),
        ("inputs: x\n", r"needs 'model'"),
        ("model: resnet18\n", r"needs 'inputs'"),
        ("", r"config is empty"),
        ("- model: resnet18\n", r"must be a YAML mapping"),
        ("model: resnet18\ninputs: x\ndtype: float64\n", r"'dtype' must be float32, bfloat16 or float16"),
        ("models:\n  alexnet: {layer: x}\ninputs: x\n", r"models 'alexnet': unknown key 'layer'\. Did you mean 'layers'\?"),
    ],
)
def test_validation_messages_are_one_line_and_name_the_key(text, pattern):
    if pattern is None:
        load_config(text)
        return
    with pytest.raises(ConfigError, match=pattern) as e:
        load_config(text)
    assert "\n" not in str(e.value)
    assert isinstance(e.value, NbfeatError)


def test_layer_forms():
    base = "model: resnet18\ninputs: x\n"
    assert load_config(base + "layers: layer4").to_kwargs()["layers"] == "layer4"
    assert load_config(base + "layers: -1").to_kwargs()["layers"] == -1
    assert load_config(base + "layers: [layer3, -1]").to_kwargs()["layers"] == ["layer3", -1]
    # shorthand: layer -> spec; a layer with no pooling stays out of the pool dict
    kw = load_config(base + "layers: {layer3: [max2d, 2], layer4: mean, fc: null}").to_kwargs()
    assert kw["layers"] == ["layer3", "layer4", "fc"]
    assert kw["pool"] == {"layer3": ("max2d", 2), "layer4": "mean"}
    # a global pool fills layers that name none
    kw = load_config(base + "pool: max\nlayers: {layer3: {pool: mean}, layer4: {}}").to_kwargs()
    assert kw["pool"] == {"layer3": "mean", "layer4": "max"}
    # globs and block indices expand in the engine: the per-layer mapping goes as layers=
    kw = load_config(base + "layers: {'blocks.*.attn': {pool: cls}, -1: {pool: mean}}").to_kwargs()
    assert kw["layers"] == {"blocks.*.attn": "cls", -1: "mean"} and "pool" not in kw


def test_pool_per_layer_at_top_level():
    kw = load_config("model: resnet18\ninputs: x\nlayers: [layer3, layer4]\npool: {layer3: mean}\n").to_kwargs()
    assert kw == {"models": "resnet18", "inputs": "x", "layers": ["layer3", "layer4"], "pool": {"layer3": "mean"}}
    with pytest.raises(ConfigError, match="under both 'layers' and 'pool'"):
        load_config("model: resnet18\ninputs: x\nlayers: {layer3: mean}\npool: {layer3: max}\n")


def test_several_models_list_and_mapping_forms():
    kw = load_config(
        "models: [timm:resnet50, torchvision:alexnet]\ninputs: images/\n"
        "layers: {timm:resnet50: layer4, torchvision:alexnet: features.10}\npool: mean\n"
    ).to_kwargs()
    assert kw["models"] == ["timm:resnet50", "torchvision:alexnet"]
    assert kw["layers"] == {"timm:resnet50": "layer4", "torchvision:alexnet": "features.10"}
    assert kw["pool"] == "mean"  # the same for both: passed once

    kw = load_config(
        "models:\n"
        "  timm:resnet50: {layers: {layer4: {pool: mean}}}\n"
        "  torchvision:alexnet: {layers: features.10, weights: alexnet.pth}\n"
        "inputs: images/\n"
    ).to_kwargs()
    assert kw["layers"] == {"timm:resnet50": ["layer4"], "torchvision:alexnet": "features.10"}
    assert kw["pool"] == {"timm:resnet50": {"layer4": "mean"}, "torchvision:alexnet": None}
    # every model has an entry, so nbfeat.extract never sees a dict missing a model
    assert kw["weights"] == {"timm:resnet50": None, "torchvision:alexnet": "alexnet.pth"}


def test_overrides():
    cfg = load_config(ISSUE_EXAMPLE, ["batch_size=8", "pretrained=false", "layers.layer4.pool=max", "device=cuda:1"])
    kw = cfg.to_kwargs()
    assert kw["batch_size"] == 8 and kw["pretrained"] is False and kw["device"] == "cuda:1"
    assert kw["pool"] == {"layer3": ("avg2d", 8), "layer4": "max"}
    # dotted layer paths: the longest existing key wins, a new one ends before `pool`
    raw = {"layers": {"blocks.3.attn": {"pool": "cls"}}}
    apply_override(raw, "layers.blocks.3.attn.pool=mean")
    apply_override(raw, "layers.blocks.5.mlp.pool=max")
    assert raw == {"layers": {"blocks.3.attn": {"pool": "mean"}, "blocks.5.mlp": {"pool": "max"}}}
    # a list of layers becomes a mapping when one gets a pool
    raw = {"layers": ["layer3", "layer4"]}
    apply_override(raw, "layers.layer4.pool=mean")
    assert raw == {"layers": {"layer3": None, "layer4": {"pool": "mean"}}}
    # model replaces models (and the reverse)
    assert load_config("models: [a, b]\ninputs: x\n", ["model=resnet18"]).to_kwargs()["models"] == "resnet18"
    assert load_config(ISSUE_EXAMPLE, ["layers=[layer2, layer3]"]).to_kwargs()["layers"] == ["layer2", "layer3"]


@pytest.mark.parametrize(
    ("item", "pattern"),
    [("batch_size", r"--set takes key=value"), ("=3", r"--set takes key=value"), ("layer=x", r"unknown config key 'layer'\. Did you mean 'layers'\?"), ("x=!!python/object:os.system {}", "not allowed")],
)
def test_bad_overrides(item, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(ISSUE_EXAMPLE, [item])


def test_flags_to_raw_matches_the_yaml():
    flags = {"layers": ["layer3,layer4"], "pool": ["layer3=avg2d:8", "layer4=mean"], "random": True, "batch_size": 4}
    kw = load_config(flags_to_raw(flags, models=["timm:resnet50"]) | {"inputs": "images/"}).to_kwargs()
    assert kw == {"models": "timm:resnet50", "inputs": "images/", "layers": ["layer3", "layer4"], "pool": {"layer3": "avg2d:8", "layer4": "mean"}, "batch_size": 4, "pretrained": False}
    assert flags_to_raw({"layers": ["-1", "-2"]})["layers"] == [-1, -2]
    with pytest.raises(ConfigError, match="not two specs"):
        flags_to_raw({"pool": ["mean", "max"]})
    with pytest.raises(ConfigError, match="contradict"):
        flags_to_raw({"pretrained": True, "random": True})


def test_to_code_is_runnable_python():
    code = load_config(ISSUE_EXAMPLE).to_code()
    assert code == "nbfeat.extract('timm:resnet50', 'images/', layers=['layer3', 'layer4'], pool={'layer3': ('avg2d', 8), 'layer4': 'mean'}, out='feats.zarr')"
    compile(code, "<code>", "eval")
