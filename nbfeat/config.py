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

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nbfeat.errors import NbfeatError, closest

# key -> what it holds; the order is the order of `nbfeat help` and the docs
KEYS: dict[str, str] = {
    "model": "one model id: timm:..., torchvision:..., hf:<hub id or dir>, or an alias",
    "models": "several model ids: a list, or a mapping id -> {layers, nodes, pool, weights}",
    "inputs": "an image folder, a file or glob, a list of paths, or (text models) a list of strings",
    "layers": "a module path, glob or block index, a list of them, or a mapping layer -> {pool: spec}",
    "nodes": "node roles stacked over depth: attn, mlp, block (one or a list)",
    "pool": "one pooling spec for every layer: mean, max, cls, last, flatten, [avg2d, k], [max2d, k]",
    "flatten": "flatten each sample's features to one 'feature' dim (true/false)",
    "batch_size": "samples per forward pass (default 32)",
    "num_workers": "data-loading workers (default: chosen for you)",
    "device": "cpu, cuda, cuda:1, mps ... (default: cuda when available)",
    "dtype": "float32, bfloat16 or float16",
    "channels_last": "run convolutions in NHWC memory format: faster CNNs on recent GPUs and CPUs (true/false)",
    "amp": "run the forward pass under autocast, bfloat16 (true/false)",
    "pretrained": "published weights (true, the default) or random weights (false)",
    "weights": "a local checkpoint file or Hugging Face directory (or a mapping model -> path)",
    "out": "a zarr store to stream into (bounded memory, resumable)",
    "overwrite": "replace an existing store at 'out' made with other settings (true/false)",
    "progress": "show a progress bar (true/false)",
}
PER_LAYER_KEYS = ("pool",)
PER_MODEL_KEYS = ("layers", "nodes", "pool", "weights")
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
    options: dict[str, Any] = field(default_factory=dict)  # flatten, batch_size, device, out, ...
    single: bool = True  # written as `model:` (one result) rather than `models:` (a DataTree)
    inputs_expr: str | None = None  # the user variable `inputs` named, for `to_code`

    @property
    def out(self) -> str | None:
        return self.options.get("out")

    def to_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for `nbfeat.extract` (only what the config sets, plus models/inputs)."""
        kw: dict[str, Any] = {"models": self.models[0] if self.single else list(self.models), "inputs": self.inputs}
        for key in ("layers", "nodes", "pool", "weights"):
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


# ---- validation --------------------------------------------------------------------------


def validate(raw: Mapping[str, Any]) -> ExtractConfig:
    """Check a raw config mapping and normalise it to an ExtractConfig (one-line errors)."""
    if not raw:
        raise ConfigError("The config is empty: it needs at least 'model' and 'inputs'.")
    for key in raw:
        if key not in KEYS:
            raise ConfigError(f"Unknown config key '{key}'.{_hint(str(key), KEYS)} Allowed keys: {', '.join(KEYS)}.")
    if "model" in raw and "models" in raw:
        raise ConfigError("Use either 'model' (one) or 'models' (several), not both.")
    if "model" not in raw and "models" not in raw:
        raise ConfigError("The config needs 'model' (one model id) or 'models' (several).")
    if "inputs" not in raw or raw["inputs"] in (None, "", []):
        raise ConfigError("The config needs 'inputs': an image folder, a list of files, or a list of texts.")

    per_model: dict[str, dict[str, Any]] = {}
    if "model" in raw:
        models = [_model_id(raw["model"], "model")]
        single = True
    else:
        models, per_model = _models(raw["models"])
        single = False
    cfg = ExtractConfig(models=models, inputs=_inputs(raw["inputs"]), single=single)

    for m in models:
        own = per_model.get(m, {})
        for key in ("layers", "nodes", "pool", "weights"):
            if key in own and key in raw:
                raise ConfigError(f"'{key}' is set both at the top level and under models '{m}': keep one.")
        layers, pool_from_layers = _layers(_for_model(raw.get("layers"), m, models, "layers") if "layers" in raw else own.get("layers"), m)
        pool_raw = _for_model(raw.get("pool"), m, models, "pool") if "pool" in raw else own.get("pool")
        layers, pool = _merge_pool(layers, pool_from_layers, pool_raw)
        cfg.layers[m] = layers
        cfg.pool[m] = pool
        cfg.nodes[m] = _nodes(_for_model(raw.get("nodes"), m, models, "nodes") if "nodes" in raw else own.get("nodes"))
        weights = _for_model(raw.get("weights"), m, models, "weights") if "weights" in raw else own.get("weights")
        cfg.weights[m] = _optional_str(weights, "weights")

    for key, check in _OPTION_CHECKS.items():
        if key in raw and raw[key] is not None:
            cfg.options[key] = check(raw[key], key)
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


def _model_id(value: Any, key: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"'{key}' must be a model id like timm:resnet50, got {_show(value)}.")
    return value.strip()


def _models(value: Any) -> tuple[list[str], dict[str, dict[str, Any]]]:
    if isinstance(value, str):
        return [_model_id(value, "models")], {}
    if isinstance(value, list) and value:
        models = [_model_id(v, "models") for v in value]
        if len(set(models)) != len(models):
            raise ConfigError("'models' lists the same model twice.")
        return models, {}
    if isinstance(value, dict) and value:
        per_model: dict[str, dict[str, Any]] = {}
        for mid, settings in value.items():
            mid = _model_id(mid, "models")
            settings = settings or {}
            if not isinstance(settings, dict):
                raise ConfigError(f"models '{mid}': give a mapping of {', '.join(PER_MODEL_KEYS)}, got {_show(settings)}.")
            for k in settings:
                if k not in PER_MODEL_KEYS:
                    raise ConfigError(f"models '{mid}': unknown key '{k}'.{_hint(str(k), PER_MODEL_KEYS)} Allowed keys: {', '.join(PER_MODEL_KEYS)}.")
            per_model[mid] = settings
        return list(per_model), per_model
    raise ConfigError(f"'models' must be a list of model ids or a mapping id -> settings, got {_show(value)}.")


def _for_model(value: Any, model: str, models: list[str], key: str) -> Any:
    """A top-level value, or its entry for `model` when it is keyed by model id."""
    if isinstance(value, dict) and len(models) > 1 and value and all(k in models for k in value):
        return value.get(model)
    return value


def _inputs(value: Any) -> Any:
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    raise ConfigError(f"'inputs' must be a path, a glob, or a list of paths or texts, got {_show(value)}.")


def _layer_key(key: Any) -> str | int:
    if isinstance(key, bool) or not isinstance(key, str | int):
        raise ConfigError(f"'layers' entries must be module paths, globs or block indices, got {_show(key)}.")
    return key


def _layers(value: Any, model: str) -> tuple[Any, dict[str | int, Any]]:
    """(layers as given, {layer: pool} from a per-layer mapping)."""
    if value is None:
        return None, {}
    if isinstance(value, dict):
        pools: dict[str | int, Any] = {}
        for key, settings in value.items():
            key = _layer_key(key)
            if isinstance(settings, dict) and not _is_pool_mapping(settings):
                for k in settings:
                    if k not in PER_LAYER_KEYS:
                        raise ConfigError(f"layers '{key}': unknown key '{k}'.{_hint(str(k), PER_LAYER_KEYS)} Allowed keys: {', '.join(PER_LAYER_KEYS)}.")
                settings = settings.get("pool")
            pools[key] = _pool_spec(settings, f"layers '{key}' pool")
        if not pools:
            raise ConfigError("'layers' is an empty mapping: name at least one layer.")
        return list(pools), pools
    if isinstance(value, list):
        if not value:
            raise ConfigError("'layers' is an empty list: name at least one layer, or leave it out for the last block.")
        return [_layer_key(v) for v in value], {}
    return _layer_key(value), {}


def _is_pool_mapping(settings: dict[str, Any]) -> bool:
    # `{avg2d: 8}` is a pool spec written as a mapping; `{pool: ...}` is per-layer settings
    return len(settings) == 1 and next(iter(settings)) in ("avg2d", "max2d")


def _pool_spec(value: Any, what: str) -> Any:
    """A pooling spec checked now (so a typo fails before the model loads), in the API's form."""
    from nbfeat.engine.pooling import parse_pool

    if isinstance(value, list):
        value = tuple(value)
    parts = value.values() if isinstance(value, dict) else value if isinstance(value, tuple) else ()
    if len(parts) > 2 or not all(v is None or isinstance(v, str | int | float) for v in parts):
        raise ConfigError(f"{what}: a pooling spec is a name (mean) or a pair like [avg2d, 8], got {_show(value)}.")
    try:
        parse_pool(value)
    except NbfeatError as e:
        raise ConfigError(f"{what}: {e}") from None
    return value


def _merge_pool(layers: Any, from_layers: dict[str | int, Any], pool_raw: Any) -> tuple[Any, Any]:
    default = None
    if isinstance(pool_raw, dict) and not _is_pool_mapping(pool_raw):
        pool_map = {_layer_key(k): _pool_spec(v, f"pool '{k}'") for k, v in pool_raw.items()}
        if not from_layers:
            return layers, pool_map
        for k in pool_map:
            if k not in from_layers:
                raise ConfigError(f"'pool' names '{k}', which 'layers' does not list ({', '.join(map(str, from_layers))}).")
            if from_layers[k] is not None:
                raise ConfigError(f"Layer '{k}' has a pool under both 'layers' and 'pool': keep one.")
        from_layers = {k: pool_map.get(k, v) for k, v in from_layers.items()}
    elif pool_raw is not None:
        default = _pool_spec(pool_raw, "pool")
    if not from_layers:
        return layers, default
    merged = {k: (v if v is not None else default) for k, v in from_layers.items()}
    if not all(isinstance(k, str) and not any(c in k for c in "*?[") for k in merged):
        # globs and block indices expand inside the engine, which reads per-layer pools
        # from the layers mapping itself
        return merged, default
    pools = {k: v for k, v in merged.items() if v is not None}
    return list(merged), (pools or None)


def _nodes(value: Any) -> Any:
    if value is None:
        return None
    names = value if isinstance(value, list) else [value]
    for n in names:
        if n not in ROLES:
            raise ConfigError(f"'nodes' takes the roles {', '.join(ROLES)}, got {_show(n)}.{_hint(n, ROLES)}")
    return value


def _optional_str(value: Any, key: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise ConfigError(f"'{key}' must be a path or name (text), got {_show(value)}.")
    return value


def _bool(value: Any, key: str) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"'{key}' must be true or false, got {_show(value)}.")
    return value


def _count(minimum: int) -> Any:
    def check(value: Any, key: str) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            what = "a positive integer" if minimum else "an integer >= 0"
            raise ConfigError(f"'{key}' must be {what}, got {_show(value)}.")
        return value

    return check


def _dtype(value: Any, key: str) -> str:
    allowed = ("float32", "bfloat16", "float16", "fp32", "bf16", "fp16")
    if value not in allowed:
        raise ConfigError(f"'{key}' must be float32, bfloat16 or float16, got {_show(value)}.")
    return str(value)


def _str(value: Any, key: str) -> str:
    return _optional_str(value, key) or ""


_OPTION_CHECKS: dict[str, Any] = {
    "flatten": _bool,
    "batch_size": _count(1),
    "num_workers": _count(0),
    "device": _str,
    "dtype": _dtype,
    "channels_last": _bool,
    "amp": _bool,
    "pretrained": _bool,
    "out": _str,
    "overwrite": _bool,
    "progress": _bool,
}


def _same(a: Any, b: Any) -> bool:
    return a == b and type(a) is type(b)


# The extract options the magic and the CLI share (argparse flags -> config keys), so both
# speak the same words as the YAML.
EXTRACT_FLAGS: list[tuple[tuple[str, ...], dict[str, Any]]] = [
    (("-i", "--inputs"), {"metavar": "INPUTS", "help": "image folder, file, glob, or (in a notebook) the name of a variable holding PIL images, a tensor or a list of texts"}),
    (("-l", "--layers"), {"nargs": "+", "metavar": "LAYER", "help": "module paths, globs (blocks.*.attn) or block indices (-1); commas work too"}),
    (("--nodes",), {"nargs": "+", "metavar": "ROLE", "help": "node roles stacked over depth: attn, mlp, block"}),
    (("-p", "--pool"), {"nargs": "+", "metavar": "SPEC", "help": "one spec for all layers (mean, max, cls, last, flatten, avg2d:8, max2d:4) or LAYER=SPEC each"}),
    (("--flatten",), {"action": "store_true", "default": None, "help": "flatten each sample's features to one 'feature' dim"}),
    (("--batch-size",), {"type": int, "metavar": "N", "help": "samples per forward pass (default 32)"}),
    (("--num-workers",), {"type": int, "metavar": "N", "help": "data-loading workers"}),
    (("--device",), {"help": "cpu, cuda, cuda:1, mps (default: cuda when available)"}),
    (("--dtype",), {"help": "float32, bfloat16 or float16"}),
    (("--channels-last",), {"action": "store_true", "default": None, "help": "run convolutions in NHWC memory format"}),
    (("--amp",), {"action": "store_true", "default": None, "help": "run the forward pass under autocast (bfloat16)"}),
    (("--pretrained",), {"action": "store_true", "default": None, "help": "published weights (the default)"}),
    (("--random",), {"action": "store_true", "default": None, "help": "random weights instead of the published ones (pretrained: false)"}),
    (("--weights",), {"metavar": "PATH", "help": "a local checkpoint file or Hugging Face directory"}),
    (("--out",), {"metavar": "STORE", "help": "zarr store to stream into (bounded memory, resumable)"}),
    (("--overwrite",), {"action": "store_true", "default": None, "help": "replace a store at --out made with other settings"}),
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
    if get("random"):
        raw["pretrained"] = False
    elif get("pretrained"):
        raw["pretrained"] = True
    for key in ("flatten", "batch_size", "num_workers", "device", "dtype", "channels_last", "amp", "weights", "out", "overwrite"):
        if get(key) is not None:
            raw[key] = get(key)
    return raw


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


__all__ = ["EXTRACT_FLAGS", "KEYS", "ConfigError", "ExtractConfig", "flags_to_raw", "load_config", "validate"]
