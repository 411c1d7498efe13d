"""The YAML extraction config shared by the `%%nbfeat` cell magic and `nbfeat extract`.

A config is plain YAML (read with `yaml.safe_load`: no Python objects, ever)::

    model: timm:resnet50
    inputs: images/
    layers:
      layer3: {pool: [avg2d, 8]}
      layer4: {pool: mean}
    out: feats.zarr

>>> cfg = load_config("model: resnet18\\ninputs: images/\\nlayers: {layer4: {pool: mean}}")
>>> cfg.to_kwargs()["pool"]
{'layer4': 'mean'}

Relative paths (`inputs`, `out`, `weights`) are relative to the current directory, so one
file means the same thing in a notebook and on the command line run from the same folder.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    StrictInt,
    StrictStr,
    Tag,
    ValidationError,
)
from pydantic_core import PydanticCustomError

from nbfeat.errors import NbfeatError, closest

# key -> what it holds; the order is the order of `nbfeat help` and the docs
KEYS: dict[str, str] = {
    "model": "one model id: timm:..., torchvision:..., hf:<hub id or dir>, or an alias",
    "models": "several model ids: a list, or a mapping id -> {layers, nodes, pool, weights}",
    "inputs": "an image folder, a file or glob, a list of paths, or (text models) a list of strings",
    "layers": "a module path, glob or block index, a list of them, or a mapping layer -> {pool: spec}",
    "nodes": "node roles stacked over depth: attn, mlp, block (one or a list)",
    "stages": "stage outputs in Hugging Face out_indices numbering (0: the stem): one index or a list, as AutoBackbone / timm features_only give them",
    "pool": "one pooling spec for every layer: mean, max, cls, last, flatten, [avg2d, k], [max2d, k]",
    "flatten": "flatten each sample's features to one 'feature' dim (true/false)",
    "batch_size": "samples per batch (default 32; a CPU may run it as smaller forward passes)",
    "length_buckets": "text: batch texts of similar token length together, results in your order (true, the default, or false)",
    "num_workers": "data-loading workers (default: chosen for you)",
    "device": "cpu, cuda, cuda:1, mps ... (default: cuda when available)",
    "dtype": "float32, bfloat16 or float16",
    "channels_last": "run convolutions in NHWC memory format: faster CNNs on recent GPUs and CPUs (true/false)",
    "amp": "run the forward pass under autocast, bfloat16 (true/false)",
    "pretrained": "published weights (true, the default) or random weights (false)",
    "weights": "a local checkpoint file or Hugging Face directory (or a mapping model -> path)",
    "preprocess": "the image transform: 'default' (the source's own), 'imagenet' (resize 256, crop 224, the THINGSvision default) or 'clip'",
    "model_kwargs": "arguments for the model constructor, e.g. {img_size: 224} (or a mapping model -> arguments)",
    "out": "a zarr store to stream into (bounded memory, resumable)",
    "overwrite": "replace an existing store at 'out' made with other settings (true/false)",
    "cache": "keep the features in the notebook cache and read them back on a rerun with the same key (true, or a cache folder)",
    "progress": "show a progress bar (true/false)",
}
PER_LAYER_KEYS = ("pool",)
PER_MODEL_KEYS = ("layers", "nodes", "pool", "weights", "model_kwargs")
ROLES = ("attn", "mlp", "block")


# what str.splitlines() breaks at, written as escapes: a message quoting a key typed with a
# newline in it stays one line
_LINE_BREAKS = str.maketrans({c: repr(c)[1:-1] for c in "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"})


def one_line(text: str) -> str:
    """`text` with line breaks escaped, so a message quoting user text stays one line.

    >>> print(one_line("a\\nb"))
    a\\nb
    """
    return text.translate(_LINE_BREAKS)


class ConfigError(NbfeatError, ValueError):
    """A config that nbfeat cannot use; the message names the key and what to write."""

    def __init__(self, message: str) -> None:
        super().__init__(one_line(message))


@dataclass
class ExtractConfig:
    """A validated extraction config: `nbfeat.extract(**cfg.to_kwargs())` runs it.

    `layers`, `nodes`, `pool` and `weights` are per model id (`{model_id: value}`) so one
    shape covers a single model and several.

    Example:
        >>> cfg = load_config("model: resnet18\\ninputs: images/\\nlayers: layer4")
        >>> cfg.models, cfg.layers
        (['resnet18'], {'resnet18': 'layer4'})
    """

    models: list[str]
    inputs: Any
    layers: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, Any] = field(default_factory=dict)
    pool: dict[str, Any] = field(default_factory=dict)
    weights: dict[str, Any] = field(default_factory=dict)
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)  # flatten, batch_size, device, out, ...
    single: bool = True  # written as `model:` (one result) rather than `models:` (a DataTree)
    inputs_expr: str | None = None  # the user variable `inputs` named, for `to_code`

    @property
    def out(self) -> str | None:
        return self.options.get("out")

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `nbfeat.extract` (only what the config sets, plus models/inputs)."""
        kw: dict[str, Any] = {"models": self.models[0] if self.single else list(self.models), "inputs": self.inputs}
        for key in PER_MODEL_KEYS:
            per_model = getattr(self, key)
            values = [per_model.get(m) for m in self.models]
            if all(v is None for v in values):
                continue
            kw[key] = values[0] if self.single or all(_same(v, values[0]) for v in values) else {m: per_model.get(m) for m in self.models}
        kw.update(self.options)
        return kw

    def to_code(self) -> str:
        """The equivalent Python call, e.g. to paste into a script.

        >>> print(load_config("model: resnet18\\ninputs: images/\\nlayers: layer4").to_code())
        nbfeat.extract('resnet18', 'images/', layers='layer4')
        """
        kw = self.to_kwargs()
        args = [repr(kw.pop("models")), self.inputs_expr or repr(kw.pop("inputs"))]
        kw.pop("inputs", None)
        args += [f"{k}={v!r}" for k, v in kw.items()]
        return f"nbfeat.extract({', '.join(args)})"


def load_config(
    text_or_path: str | os.PathLike[str] | Mapping[str, Any],
    overrides: Iterable[str] = (),
    extra: Mapping[str, Any] | None = None,
) -> ExtractConfig:
    """Read, override and validate a config (YAML text, a `.yaml` path, or a dict).

    `overrides` are `key=value` strings (the CLI's `--set`); the value is YAML
    (`batch_size=8`, `pretrained=false`, `layers=[layer3, layer4]`) and the key may be
    dotted into nested mappings (`layers.layer4.pool=max`). `extra` holds already-parsed
    keys (from command-line flags, see `flags_to_raw`), applied last.

    Example:
        >>> load_config("model: resnet18\\ninputs: images/", ["batch_size=8"]).options
        {'batch_size': 8}
    """
    if isinstance(text_or_path, Mapping):
        raw: Any = dict(text_or_path)
    else:
        raw = parse_yaml(_read(text_or_path))
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"The config must be a YAML mapping of 'key: value' lines, got a {type(raw).__name__}.")
    for item in overrides:
        apply_override(raw, item)
    return validate(merge(raw, extra or {}))


def _read(text_or_path: str | os.PathLike[str]) -> str:
    if isinstance(text_or_path, os.PathLike):
        path = Path(text_or_path)
    else:
        text = str(text_or_path)
        looks_like_file = "\n" not in text and (text.strip().endswith((".yaml", ".yml")) or os.path.isfile(text))
        if not looks_like_file:
            return text
        path = Path(text.strip())
    if not path.is_file():
        raise ConfigError(f"Config file '{path}' not found.")
    return path.read_text(encoding="utf-8")


def parse_yaml(text: str) -> Any:
    """`yaml.safe_load`, with one-line messages; Python tags (`!!python/object`) are refused."""
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.constructor.ConstructorError as e:
        tag = re.search(r"tag '([^']*)'", str(e.problem or ""))
        name = tag.group(1).replace("tag:yaml.org,2002:", "!!") if tag else "this tag"
        raise ConfigError(
            f"Config{_where(e)}: the tag '{name}' is not allowed; nbfeat reads configs as plain YAML "
            "(safe loading) and never builds Python objects from them."
        ) from None
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"Config is not valid YAML{_where(e)}: {problem}.") from None
    except RecursionError:
        raise ConfigError("Config is not valid YAML: nested too deeply.") from None
    except (ValueError, TypeError, LookupError, AttributeError, OverflowError) as e:
        # PyYAML's own constructors fail like this on values such as `!!int x`,
        # `!!float` (empty) or `2001-02-30`
        raise ConfigError(f"Config is not valid YAML: a value could not be read ({type(e).__name__}: {str(e)[:120]}).") from None


def _where(e: Any) -> str:
    mark = getattr(e, "problem_mark", None)
    return f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""


def apply_override(raw: dict[str, Any], item: str) -> None:
    """Apply one `key=value` override to a raw config mapping, in place.

    >>> raw = {"layers": {"layer4": {"pool": "mean"}}}
    >>> apply_override(raw, "layers.layer4.pool=max"); raw
    {'layers': {'layer4': {'pool': 'max'}}}
    """
    key, sep, value_text = item.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set takes key=value (e.g. batch_size=8), got '{item}'.")
    value = parse_yaml(value_text) if value_text.strip() else None
    parts = key.split(".")
    top = parts[0]
    if top not in KEYS:
        raise ConfigError(f"--set {key}: unknown config key '{top}'.{_hint(top, KEYS)} Allowed keys: {', '.join(KEYS)}.")
    if top in ("model", "models"):  # setting one replaces the other
        raw.pop("models" if top == "model" else "model", None)
    node: Any = raw
    rest = parts
    while len(rest) > 1:
        name, rest = _next_key(node, rest)
        child = node.get(name)
        if not isinstance(child, dict):
            child = {} if child is None else _as_mapping(child, name)
            node[name] = child
        node = child
    node[rest[0]] = value


def _next_key(node: dict[str, Any], parts: list[str]) -> tuple[str, list[str]]:
    # Layer paths and model ids contain dots: take the longest prefix that is an existing key,
    # else (under `layers`) everything but a trailing per-layer key, else one part.
    for n in range(len(parts) - 1, 0, -1):
        name = ".".join(parts[:n])
        if name in node:
            return name, parts[n:]
    if len(parts) > 2 and parts[-1] in PER_LAYER_KEYS:
        return ".".join(parts[:-1]), parts[-1:]
    return parts[0], parts[1:]


def _as_mapping(value: Any, name: str) -> dict[str, Any]:
    # `layers: [layer3, layer4]` overridden as `layers.layer4.pool=max` becomes a mapping
    items = value if isinstance(value, list) else [value]
    if all(isinstance(v, str | int) for v in items):
        return {v: None for v in items}
    raise ConfigError(f"--set: '{name}' holds {_show(value)}, which has no keys to set.")


# ---- the schema --------------------------------------------------------------------------
# One typed schema (pydantic v2) checks every key and publishes the JSON Schema editors read
# (nbfeat/config.schema.json, `python -m nbfeat.config --schema`). What the schema cannot say
# (model and models together, a pool under both layers and pool) is checked after it.


def _pool_shape(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "pair"
    if isinstance(value, dict):
        return "short" if _is_pool_mapping(value) else "bad"
    return "name"


def _check_pool(value: Any) -> Any:
    """A pooling spec checked by the engine's own parser (so a typo fails before the model loads)."""
    from nbfeat.engine.pooling import parse_pool

    value = tuple(value) if isinstance(value, list) else value
    try:
        parse_pool(value)
    except NbfeatError as e:
        raise PydanticCustomError("pool", "{message}", {"message": str(e)}) from None
    return value


PoolSpec = Annotated[
    Annotated[StrictStr, Tag("name")]
    | Annotated[tuple[StrictStr, StrictInt], Tag("pair")]
    | Annotated[dict[Literal["avg2d", "max2d"], StrictInt], Tag("short")]
    | Annotated[dict[Literal["avg2d", "max2d"], StrictInt], Tag("bad")],
    Discriminator(_pool_shape),
    AfterValidator(_check_pool),
    Field(description="mean, max, cls, last, flatten, avg2d:8, [avg2d, 8] or {avg2d: 8}"),
]
LayerKey = Annotated[StrictStr | StrictInt, Field(description="a module path, a glob (blocks.*.attn) or a block index (-1)")]


class LayerSettings(BaseModel):
    """Settings of one layer: `layer4: {pool: mean}`."""

    model_config = ConfigDict(extra="forbid")
    pool: PoolSpec | None = None


def _layer_value_shape(value: Any) -> str:
    if value is None:
        return "none"
    return "settings" if isinstance(value, dict) and not _is_pool_mapping(value) else "spec"


LayerValue = Annotated[
    Annotated[None, Tag("none")] | Annotated[LayerSettings, Tag("settings")] | Annotated[PoolSpec, Tag("spec")],
    Discriminator(_layer_value_shape),
]


def _layers_shape(value: Any) -> str:
    return "list" if isinstance(value, list) else "map" if isinstance(value, dict) else "one"


Layers = Annotated[
    Annotated[LayerKey, Tag("one")]
    | Annotated[list[LayerKey], Field(min_length=1), Tag("list")]
    | Annotated[dict[LayerKey, LayerValue], Field(min_length=1), Tag("map")],
    Discriminator(_layers_shape),
    Field(description="a module path, glob or block index, a list of them, or a mapping layer -> {pool: spec}"),
]
Role = Literal["attn", "mlp", "block"]
Nodes = Annotated[Role | list[Role], Field(description="node roles stacked over depth: attn, mlp, block")]


def _pool_arg_shape(value: Any) -> str:
    return "per_layer" if isinstance(value, dict) and not _is_pool_mapping(value) else "spec"


PoolArg = Annotated[
    Annotated[PoolSpec, Tag("spec")] | Annotated[dict[LayerKey, PoolSpec | None], Tag("per_layer")],
    Discriminator(_pool_arg_shape),
    Field(description="one pooling spec for every layer, or a mapping layer -> spec"),
]
Text = Annotated[StrictStr, Field(min_length=1)]
ModelKwargs = Annotated[dict[str, Any], Field(description="passed to the model constructor, e.g. {img_size: 224}")]


class ModelSettings(BaseModel):
    """What one model under `models:` may set for itself."""

    model_config = ConfigDict(extra="forbid")
    layers: Layers | None = None
    nodes: Nodes | None = None
    pool: PoolArg | None = None
    weights: Text | None = None
    model_kwargs: ModelKwargs | None = None


def _per_model(description: str) -> Any:
    """A top-level key that is one value for every model, or a mapping model id -> value:
    checked per model (`ModelSettings`) once the models are known."""
    return Annotated[Any, Field(description=description)]


def _models_shape(value: Any) -> str:
    return "list" if isinstance(value, list) else "map" if isinstance(value, dict) else "one"


class ConfigSchema(BaseModel):
    """An extraction config: the `%%nbfeat` cell body and `nbfeat extract CONFIG.yaml`."""

    model_config = ConfigDict(extra="forbid", title="nbfeat extraction config")
    model: Text | None = Field(None, description=KEYS["model"])
    models: (
        Annotated[
            Annotated[Text, Tag("one")]
            | Annotated[list[Text], Field(min_length=1), Tag("list")]
            | Annotated[dict[str, ModelSettings | None], Field(min_length=1), Tag("map")],
            Discriminator(_models_shape),
        ]
        | None
    ) = Field(None, description=KEYS["models"])
    inputs: Text | Annotated[list[StrictStr], Field(min_length=1)] | None = Field(None, description=KEYS["inputs"])
    layers: _per_model(KEYS["layers"]) = None  # type: ignore[valid-type]
    nodes: _per_model(KEYS["nodes"]) = None  # type: ignore[valid-type]
    pool: _per_model(KEYS["pool"]) = None  # type: ignore[valid-type]
    flatten: StrictBool | None = Field(None, description=KEYS["flatten"])
    batch_size: Annotated[StrictInt, Field(ge=1)] | None = Field(None, description=KEYS["batch_size"])
    num_workers: Annotated[StrictInt, Field(ge=0)] | None = Field(None, description=KEYS["num_workers"])
    device: Text | None = Field(None, description=KEYS["device"])
    dtype: Literal["float32", "bfloat16", "float16", "fp32", "bf16", "fp16"] | None = Field(None, description=KEYS["dtype"])
    channels_last: StrictBool | None = Field(None, description=KEYS["channels_last"])
    amp: StrictBool | None = Field(None, description=KEYS["amp"])
    pretrained: StrictBool | None = Field(None, description=KEYS["pretrained"])
    weights: _per_model(KEYS["weights"]) = None  # type: ignore[valid-type]
    model_kwargs: _per_model(KEYS["model_kwargs"]) = None  # type: ignore[valid-type]
    out: Text | None = Field(None, description=KEYS["out"])
    overwrite: StrictBool | None = Field(None, description=KEYS["overwrite"])
    cache: StrictBool | Text | None = Field(None, description=KEYS["cache"])
    stages: StrictInt | list[StrictInt] | None = Field(None, description=KEYS["stages"])
    length_buckets: StrictBool | None = Field(None, description=KEYS["length_buckets"])
    preprocess: Literal["default", "imagenet", "clip"] | None = Field(None, description=KEYS["preprocess"])
    progress: StrictBool | None = Field(None, description=KEYS["progress"])


class _ConfigDocs(ConfigSchema):
    """ConfigSchema with the per-model keys spelled out, for the JSON Schema only."""

    model_config = ConfigDict(extra="forbid", title="nbfeat extraction config")
    layers: Layers | dict[str, Layers] | None = Field(None, description=KEYS["layers"])
    nodes: Nodes | dict[str, Nodes] | None = Field(None, description=KEYS["nodes"])
    pool: PoolArg | dict[str, PoolArg] | None = Field(None, description=KEYS["pool"])
    weights: Text | dict[str, Text] | None = Field(None, description=KEYS["weights"])
    model_kwargs: ModelKwargs | dict[str, ModelKwargs] | None = Field(None, description=KEYS["model_kwargs"])


OPTION_KEYS = ("stages", "flatten", "batch_size", "length_buckets", "num_workers", "device", "dtype", "channels_last", "amp", "pretrained", "preprocess", "out", "overwrite", "cache", "progress")


def json_schema() -> dict[str, Any]:
    """The JSON Schema of a config file (what nbfeat/config.schema.json holds).

    >>> json_schema()["title"]
    'nbfeat extraction config'
    """
    schema = _ConfigDocs.model_json_schema()
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "$id": SCHEMA_ID, **schema}


SCHEMA_ID = "urn:nbfeat:config-schema"  # an identifier; the file ships in the package
SCHEMA_FILE = Path(__file__).with_name("config.schema.json")


# ---- validation --------------------------------------------------------------------------

# union members and wrappers pydantic puts in an error's location: not keys the user wrote
_TAGS = {"one", "list", "map", "name", "pair", "short", "bad", "none", "settings", "spec", "per_layer"}


def _parse(schema: type[BaseModel], raw: Mapping[str, Any], where: str = "") -> BaseModel:
    try:
        return schema.model_validate(dict(raw))
    except ValidationError as e:
        # the most specific error: in a union, the member that got furthest into the value
        best = max(e.errors(), key=lambda err: len(err["loc"]))
        raise ConfigError(_message(best, where, schema, raw)) from None


def _user_loc(loc: Iterable[Any]) -> list[Any]:
    """An error location without the union members and wrappers pydantic adds."""
    wrappers = ("function-", "tagged-union", "nullable", "union", "literal", "constrained", "tuple", "dict", "list", "json-or")
    return [p for p in loc if not (isinstance(p, str) and (p in _TAGS or p.startswith(wrappers)))]


def _message(err: Any, where: str, schema: type[BaseModel], raw: Mapping[str, Any]) -> str:
    loc = _user_loc(err["loc"])
    kind, value = err["type"], err.get("input")
    head = f"{where}: " if where else ""
    key = str(loc[0]) if loc else ""
    if kind == "extra_forbidden":
        # the unknown key is the last element as written, even when it looks like a tag ('one')
        name, parent = err["loc"][-1], _user_loc(err["loc"][:-1])
        if parent and parent[0] == "layers" and len(parent) >= 2:
            return f"{head}layers '{parent[1]}': unknown key '{name}'.{_hint(name, PER_LAYER_KEYS)} Allowed keys: {', '.join(PER_LAYER_KEYS)}."
        if parent and parent[0] == "models" and len(parent) >= 2:
            return f"models '{parent[1]}': unknown key '{name}'.{_hint(name, PER_MODEL_KEYS)} Allowed keys: {', '.join(PER_MODEL_KEYS)}."
        if where:
            return f"{head}unknown key '{name}'.{_hint(name, PER_MODEL_KEYS)} Allowed keys: {', '.join(PER_MODEL_KEYS)}."
        return f"Unknown config key '{name}'.{_hint(name, KEYS)} Allowed keys: {', '.join(KEYS)}."
    if kind == "pool":
        at = f"layers '{loc[1]}' pool" if key == "layers" and len(loc) > 1 else f"pool '{loc[1]}'" if key == "pool" and len(loc) > 1 else "pool"
        return f"{head}{at}: {err['ctx']['message']}"
    if key == "nodes":
        return f"{head}'nodes' takes the roles {', '.join(ROLES)}, got {_show(value)}.{_hint(value, ROLES)}"
    if key == "layers" and len(loc) > 1 and isinstance(loc[1], int):
        return f"{head}'layers' entries must be module paths, globs or block indices, got {_show(value)}."
    if key == "layers":
        return f"{head}'layers' must be module paths, globs or block indices (a name, a list, or a mapping layer -> {{pool: spec}}), got {_show(value)}."
    if key == "pool":
        return f"{head}pool: a pooling spec is a name (mean) or a pair like [avg2d, 8], got {_show(value)}."
    if key in ("model", "models") and len(loc) <= 2:
        return f"'{key}' must be a model id like timm:resnet50" + (" (or a list, or a mapping id -> settings)" if key == "models" else "") + f", got {_show(value)}."
    if key == "models":
        return f"models: {err['msg']}, got {_show(value)}."
    if key == "inputs" and raw.get("inputs") in (None, "", []):
        return _NEEDS_INPUTS
    if key == "inputs":
        value = raw.get("inputs", value)
        return f"'inputs' must be a path, a glob, or a list of paths or texts, got {_show(value)}."
    if kind == "bool_type":
        return f"{head}'{key}' must be true or false, got {_show(value)}."
    if kind in ("int_type", "int_parsing", "int_from_float", "greater_than_equal") and key != "stages":
        what = "an integer >= 0" if key == "num_workers" else "a positive integer"
        return f"{head}'{key}' must be {what}, got {_show(value)}."
    if key == "stages":
        return f"'stages' must be a stage index (0: the stem, 1, 2, ...) or a list of them, got {_show(value)}."
    if key == "preprocess":
        return f"'preprocess' must be default, imagenet or clip, got {_show(value)}.{_hint(value, ('default', 'imagenet', 'clip'))}"
    if key == "dtype":
        return f"'dtype' must be float32, bfloat16 or float16, got {_show(value)}."
    if key in ("weights", "device", "out") or kind in ("string_type", "string_too_short"):
        return f"{head}'{key}' must be a path or name (text), got {_show(value)}."
    if key == "model_kwargs":
        return f"{head}'model_kwargs' must be a mapping of constructor arguments (img_size: 224), got {_show(value)}."
    return f"{head}{'.'.join(map(str, loc)) or 'config'}: {err['msg']}, got {_show(value)}."


_NEEDS_INPUTS = "The config needs 'inputs': an image folder, a list of files, or a list of texts."


def validate(raw: Mapping[str, Any]) -> ExtractConfig:
    """Check a raw config mapping against the schema and normalise it (one-line errors)."""
    if not raw:
        raise ConfigError("The config is empty: it needs at least 'model' and 'inputs'.")
    top = _parse(ConfigSchema, raw)
    if top.model is not None and top.models is not None:
        raise ConfigError("Use either 'model' (one) or 'models' (several), not both.")
    if top.model is None and top.models is None:
        raise ConfigError("The config needs 'model' (one model id) or 'models' (several).")
    if top.inputs in (None, "", []):
        raise ConfigError(_NEEDS_INPUTS)

    per_model: dict[str, dict[str, Any]] = {}
    if top.model is not None:
        models, single = [top.model.strip()], True
    else:
        single = False
        if isinstance(top.models, str):
            models = [top.models.strip()]
        elif isinstance(top.models, list):
            models = [m.strip() for m in top.models]
            if len(set(models)) != len(models):
                raise ConfigError("'models' lists the same model twice.")
        else:
            raw_models = dict(raw["models"])
            # the validated values, but as written (a pool pair stays a list until checked below)
            per_model = {m.strip(): {k: v for k, v in (raw_models[m] or {}).items()} for m in raw_models}
            models = list(per_model)
    cfg = ExtractConfig(models=models, inputs=top.inputs, single=single)

    for m in models:
        own = per_model.get(m, {})
        for key in PER_MODEL_KEYS:
            if key in own and raw.get(key) is not None:
                raise ConfigError(f"'{key}' is set both at the top level and under models '{m}': keep one.")
        settings = {k: _for_model(raw[k], m, models) for k in PER_MODEL_KEYS if raw.get(k) is not None} | own
        s = _parse(ModelSettings, settings, where=f"models '{m}'" if own else "")
        layers, pool_from_layers = _layers(s.layers)
        layers, pool = _merge_pool(layers, pool_from_layers, s.pool)
        cfg.layers[m], cfg.pool[m], cfg.nodes[m], cfg.weights[m] = layers, pool, s.nodes, s.weights
        cfg.model_kwargs[m] = s.model_kwargs

    for key in OPTION_KEYS:
        value = getattr(top, key)
        if value is not None:
            cfg.options[key] = value
    return cfg


def _show(value: Any) -> str:
    """A short repr for messages: a YAML alias bomb (`&a [*b, *b, ...]`) nests references
    a few lines long into billions of items, which a plain repr would spell out."""
    import reprlib

    short = reprlib.Repr()
    short.maxlevel, short.maxstring, short.maxother = 2, 60, 60
    short.maxlist = short.maxtuple = short.maxdict = short.maxset = 6
    return short.repr(value)


def _hint(name: Any, allowed: Iterable[str]) -> str:
    if not isinstance(name, str | int):
        return ""
    hits = closest(str(name), allowed, n=1)
    return f" Did you mean '{hits[0]}'?" if hits else ""


def _for_model(value: Any, model: str, models: list[str]) -> Any:
    """A top-level value, or its entry for `model` when it is keyed by model id."""
    if isinstance(value, dict) and len(models) > 1 and value and all(k in models for k in value):
        return value.get(model)
    return value


def _layers(value: Any) -> tuple[Any, dict[str | int, Any]]:
    """(layers as given, {layer: pool} from a per-layer mapping), from validated values."""
    if not isinstance(value, dict):
        return value, {}
    pools = {k: (v.pool if isinstance(v, LayerSettings) else v) for k, v in value.items()}
    return list(pools), pools


def _is_pool_mapping(settings: Any) -> bool:
    # `{avg2d: 8}` is a pool spec written as a mapping; `{pool: ...}` is per-layer settings
    return isinstance(settings, dict) and len(settings) == 1 and next(iter(settings)) in ("avg2d", "max2d")


def _merge_pool(layers: Any, from_layers: dict[str | int, Any], pool_raw: Any) -> tuple[Any, Any]:
    default = None
    if isinstance(pool_raw, dict) and not _is_pool_mapping(pool_raw):
        pool_map = dict(pool_raw)
        if not from_layers:
            return layers, pool_map
        for k in pool_map:
            if k not in from_layers:
                raise ConfigError(f"'pool' names '{k}', which 'layers' does not list ({', '.join(map(str, from_layers))}).")
            if from_layers[k] is not None:
                raise ConfigError(f"Layer '{k}' has a pool under both 'layers' and 'pool': keep one.")
        from_layers = {k: pool_map.get(k, v) for k, v in from_layers.items()}
    elif pool_raw is not None:
        default = pool_raw
    if not from_layers:
        return layers, default
    merged = {k: (v if v is not None else default) for k, v in from_layers.items()}
    if not all(isinstance(k, str) and not any(c in k for c in "*?[") for k in merged):
        # globs and block indices expand inside the engine, which reads per-layer pools
        # from the layers mapping itself
        return merged, default
    pools = {k: v for k, v in merged.items() if v is not None}
    return list(merged), (pools or None)



def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


# The extract options the magic and the CLI share (argparse flags -> config keys), so both
# speak the same words as the YAML.
EXTRACT_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("-i", "--inputs"), {"metavar": "INPUTS", "help": "image folder, file, glob, or (in a notebook) the name of a variable holding PIL images, a tensor or a list of texts"}),
    (("-l", "--layers"), {"nargs": "+", "metavar": "LAYER", "help": "module paths, globs (blocks.*.attn) or block indices (-1); commas work too"}),
    (("--nodes",), {"nargs": "+", "metavar": "ROLE", "help": "node roles stacked over depth: attn, mlp, block"}),
    (("-p", "--pool"), {"nargs": "+", "metavar": "SPEC", "help": "one spec for all layers (mean, max, cls, last, flatten, avg2d:8, max2d:4) or LAYER=SPEC each"}),
    (("--stages",), {"nargs": "+", "type": int, "metavar": "K", "help": "stage outputs in HF out_indices numbering (0: the stem), as AutoBackbone gives them"}),
    (("--flatten",), {"action": "store_true", "default": None, "help": "flatten each sample's features to one 'feature' dim"}),
    (("--batch-size",), {"type": int, "metavar": "N", "help": "samples per batch (default 32; a CPU may run it as smaller forward passes)"}),
    (("--length-buckets",), {"action": argparse.BooleanOptionalAction, "default": None, "help": "text: batch texts of similar token length together (the default); --no-length-buckets keeps the input order"}),
    (("--num-workers",), {"type": int, "metavar": "N", "help": "data-loading workers"}),
    (("--device",), {"help": "cpu, cuda, cuda:1, mps (default: cuda when available)"}),
    (("--dtype",), {"help": "float32, bfloat16 or float16"}),
    (("--channels-last",), {"action": "store_true", "default": None, "help": "run convolutions in NHWC memory format"}),
    (("--amp",), {"action": "store_true", "default": None, "help": "run the forward pass under autocast (bfloat16)"}),
    (("--pretrained",), {"action": argparse.BooleanOptionalAction, "default": None, "help": "published weights (the default); --no-pretrained: random weights"}),
    (("--random",), {"action": "store_true", "default": None, "help": "random weights instead of the published ones: the same as --no-pretrained (pretrained: false)"}),
    (("--weights",), {"metavar": "PATH", "help": "a local checkpoint file or Hugging Face directory"}),
    (("--preprocess",), {"choices": ["default", "imagenet", "clip"], "help": "the image transform: the source's own (default), imagenet (resize 256, crop 224) or clip"}),
    (("--model-kwargs",), {"nargs": "+", "metavar": "KEY=VALUE", "dest": "model_kwargs", "help": "model constructor arguments: img_size=224 (values are YAML), or one JSON/YAML mapping '{\"img_size\": 224}'"}),
    (("--out",), {"metavar": "STORE", "help": "zarr store to stream into (bounded memory, resumable)"}),
    (("--overwrite",), {"action": "store_true", "default": None, "help": "replace a store at --out made with other settings"}),
    (("--cache",), {"nargs": "?", "const": True, "default": None, "metavar": "DIR", "help": "read the features from the notebook cache when a run with the same key is there, else extract into it (default folder: $NBFEAT_CACHE_DIR or ~/.cache/nbfeat)"}),
    (("--set",), {"action": "append", "metavar": "KEY=VALUE", "dest": "set", "default": [], "help": "override a config key (YAML value; dotted keys reach into mappings: layers.layer4.pool=max)"}),
]


def flags_to_raw(args: Any, models: Sequence[str] | None = None) -> dict[str, Any]:
    """Config keys from parsed EXTRACT_FLAGS (an argparse Namespace or a dict); unset flags are left out.

    `layers` items may be comma-separated and may be block indices (`-1`); `pool` items are
    one spec (`mean`, `avg2d:8`) or `layer=spec`.

    >>> flags_to_raw({"layers": ["layer3,layer4"], "pool": ["layer3=avg2d:8", "layer4=mean"]})
    {'layers': {'layer3': {'pool': 'avg2d:8'}, 'layer4': {'pool': 'mean'}}}
    """
    get = args.get if isinstance(args, Mapping) else (lambda k: getattr(args, k, None))
    raw: dict[str, Any] = {}
    if models:
        raw["model" if len(models) == 1 else "models"] = models[0] if len(models) == 1 else list(models)
    if get("inputs") is not None:
        raw["inputs"] = get("inputs")
    names = [_int_or_str(p) for item in (get("layers") or []) for p in str(item).split(",") if p.strip()]
    if names:
        raw["layers"] = names[0] if len(names) == 1 else names
    roles = [p.strip() for item in (get("nodes") or []) for p in str(item).split(",") if p.strip()]
    if roles:
        raw["nodes"] = roles[0] if len(roles) == 1 else roles
    for item in get("pool") or []:
        layer, sep, spec = str(item).rpartition("=")
        if not sep:
            if "pool" in raw:
                raise ConfigError("--pool: give one spec for all layers, or LAYER=SPEC for each, not two specs.")
            raw["pool"] = spec
            continue
        if not isinstance(raw.get("layers"), dict):
            listed = raw.get("layers")
            listed = listed if isinstance(listed, list) else ([] if listed is None else [listed])
            raw["layers"] = {k: None for k in listed}
        raw["layers"][_int_or_str(layer)] = {"pool": spec}
    if get("pretrained") and get("random"):
        raise ConfigError("--pretrained and --random contradict each other: pick one.")
    if get("random") or get("pretrained") is False:  # --random, --no-pretrained
        raw["pretrained"] = False
    elif get("pretrained"):
        raw["pretrained"] = True
    if get("model_kwargs"):
        raw["model_kwargs"] = parse_model_kwargs(get("model_kwargs"))
    for key in ("flatten", "batch_size", "length_buckets", "num_workers", "device", "dtype", "channels_last", "amp", "weights", "preprocess", "out", "overwrite", "cache"):
        if get(key) is not None:
            raw[key] = get(key)
    if get("stages"):
        raw["stages"] = list(get("stages")) if len(get("stages")) > 1 else get("stages")[0]
    return raw


def parse_model_kwargs(items: Sequence[str] | str) -> dict[str, Any]:
    """`--model-kwargs` values: `KEY=VALUE` words (each value read as YAML), or one mapping
    written as JSON or YAML.

    >>> parse_model_kwargs(["img_size=224", "dynamic_img_size=true"])
    {'img_size': 224, 'dynamic_img_size': True}
    >>> parse_model_kwargs(['{"img_size": 224}'])
    {'img_size': 224}
    """
    items = [items] if isinstance(items, str) else list(items)
    if len(items) == 1 and items[0].lstrip().startswith("{"):
        value = parse_yaml(items[0])  # JSON is YAML
        if not isinstance(value, dict):
            raise ConfigError(f"--model-kwargs: expected a mapping like '{{\"img_size\": 224}}', got {_show(items[0])}.")
        return value
    out: dict[str, Any] = {}
    for item in items:
        for part in [p for p in str(item).split(",") if p.strip()] if "=" in str(item) and str(item).count("=") > 1 else [str(item)]:
            key, sep, text = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError(f"--model-kwargs takes KEY=VALUE (img_size=224) or a JSON mapping, got {_show(part)}.")
            out[key.strip()] = parse_yaml(text) if text.strip() else None
    return out


def flag_hint(message: str, options: Iterable[str]) -> str:
    """A suggestion for argparse's "unrecognized arguments: --batchsize 8" message.

    >>> flag_hint("unrecognized arguments: --batchsize 8", ["--batch-size", "--out"])
    ' Did you mean --batch-size?'
    """
    m = re.search(r"unrecognized arguments?: (.*)", message)
    if not m:
        return ""
    longs = [o for o in options if o.startswith("--")]
    hints = []
    for word in m.group(1).split():
        if word.startswith("--"):
            hit = closest(word.partition("=")[0], longs, n=1)
            if hit:
                hints.append(hit[0])
    return f" Did you mean {', '.join(hints)}?" if hints else ""


def merge(raw: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    """`raw` with the keys of `extra` replacing its own (`model` and `models` replace each other)."""
    out = dict(raw)
    for key, value in extra.items():
        if key in ("model", "models"):
            out.pop("models" if key == "model" else "model", None)
        out[key] = value
    return out


def _int_or_str(text: str) -> str | int:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else text


__all__ = ["EXTRACT_FLAGS", "KEYS", "ConfigError", "ConfigSchema", "ExtractConfig", "flag_hint", "flags_to_raw", "json_schema", "load_config", "parse_model_kwargs", "validate"]


def _main(argv: Sequence[str] | None = None) -> int:
    """`python -m nbfeat.config --schema [PATH]`: write the JSON Schema (stdout, or PATH)."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m nbfeat.config", description="The JSON Schema of nbfeat's YAML config.")
    parser.add_argument("--schema", nargs="?", const="-", metavar="PATH", help=f"write it to PATH (default: stdout); the package's copy is {SCHEMA_FILE.name}")
    args = parser.parse_args(argv)
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if args.schema in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.schema).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(_main())
