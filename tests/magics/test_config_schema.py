"""One typed schema for the YAML config: the JSON Schema file, model_kwargs, CLI/magic flags."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import yaml

from nbfeat.config import (
    SCHEMA_FILE,
    ConfigError,
    flag_hint,
    flags_to_raw,
    json_schema,
    load_config,
    parse_model_kwargs,
)

EXAMPLE = """\
model: timm:vit_small_patch14_dinov2
model_kwargs: {img_size: 224}
inputs: images/
layers:
  blocks.5: {pool: cls}
  -1: {pool: [avg2d, 4]}
nodes: [attn, block]
batch_size: 8
pretrained: false
out: feats.zarr
"""


def test_the_published_json_schema_is_up_to_date():
    # regenerate with: python -m nbfeat.config --schema nbfeat/config.schema.json
    assert json.loads(SCHEMA_FILE.read_text()) == json.loads(json.dumps(json_schema())), "run: python -m nbfeat.config --schema nbfeat/config.schema.json"
    out = subprocess.run([sys.executable, "-m", "nbfeat.config", "--schema"], capture_output=True, text=True, check=True).stdout
    assert json.loads(out) == json.loads(SCHEMA_FILE.read_text())


def test_editors_check_configs_with_it():
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads(SCHEMA_FILE.read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    ok = yaml.safe_load(EXAMPLE)
    ok["layers"] = {str(k): v for k, v in ok["layers"].items()}  # JSON object keys are text
    jsonschema.validate(ok, schema)
    several = {"models": {"timm:resnet50": {"layers": "layer4", "model_kwargs": {"drop_rate": 0.0}}}, "inputs": ["a.png", "b.png"]}
    jsonschema.validate(several, schema)
    for bad in ({**ok, "layer": "x"}, {**ok, "batch_size": 0}, {**ok, "dtype": "float64"}, {**ok, "pretrained": "maybe"}, {**ok, "model_kwargs": 3}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)
    assert "model_kwargs" in schema["properties"] and schema["properties"]["layers"]["description"]


def test_model_kwargs_in_yaml_flags_and_magic_words():
    kw = load_config(EXAMPLE).to_kwargs()
    assert kw["model_kwargs"] == {"img_size": 224} and kw["layers"] == {"blocks.5": "cls", -1: ("avg2d", 4)}
    kw = load_config("models: {timm:resnet50: {model_kwargs: {drop_rate: 0.1}}, torchvision:alexnet: {}}\ninputs: x\n").to_kwargs()
    assert kw["model_kwargs"] == {"timm:resnet50": {"drop_rate": 0.1}, "torchvision:alexnet": None}
    with pytest.raises(ConfigError, match=r"'model_kwargs' must be a mapping of constructor arguments"):
        load_config("model: a\ninputs: x\nmodel_kwargs: 224\n")
    assert parse_model_kwargs(["img_size=224", "dynamic_img_size=true"]) == {"img_size": 224, "dynamic_img_size": True}
    assert parse_model_kwargs(["img_size=224,drop_rate=0.5"]) == {"img_size": 224, "drop_rate": 0.5}
    assert parse_model_kwargs(['{"img_size": 224}']) == {"img_size": 224}
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        parse_model_kwargs(["img_size"])


def test_no_pretrained_is_random_and_unknown_flags_suggest():
    from nbfeat.cli import build_parser

    parser = build_parser()
    for flag in ("--no-pretrained", "--random"):
        args = parser.parse_args(["extract", "timm:resnet50", "--inputs", "x", flag])
        assert flags_to_raw(args, ["timm:resnet50"])["pretrained"] is False
    args = parser.parse_args(["extract", "timm:resnet50", "--inputs", "x", "--model-kwargs", "img_size=224"])
    assert flags_to_raw(args, ["m"])["model_kwargs"] == {"img_size": 224}
    with pytest.raises(ConfigError, match="contradict"):
        flags_to_raw(parser.parse_args(["extract", "m", "--pretrained", "--random"]))
    assert flag_hint("unrecognized arguments: --batchsize 8", ["--batch-size", "--out"]) == " Did you mean --batch-size?"
    r = subprocess.run([sys.executable, "-m", "nbfeat", "extract", "m", "--inputs", "x", "--batchsize", "3"], capture_output=True, text=True)
    assert r.returncode == 2 and "Did you mean --batch-size?" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_magic_flags_speak_the_same_words(shell):
    from IPython.core.error import UsageError

    with pytest.raises(UsageError, match=r"Did you mean --batch-size\?"):
        shell.run_line_magic("nbfeat", "extract timm:resnet50 --inputs x --batchsize 3 --code")
    shell.run_line_magic("nbfeat", "extract timm:vit_small_patch16_224 --inputs . --no-pretrained --model-kwargs img_size=224 --code")
