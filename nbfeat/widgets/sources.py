"""Where the activation browser gets one sample's layer output from.

`DatasetSource` reads labelled results (a Dataset or DataTree from `bb.extract`, or a store
from `nbfeat.open`): one sample of one variable at a time, so a lazy store loads only what is
shown. `BackboneSource` runs the model: the first look at a layer extracts it for the shown
samples in one batch (the forward stops right after that layer) and keeps it in an LRU cache.

>>> src = BackboneSource(bb, "images/", max_samples=8)      # doctest: +SKIP
>>> src.layer(0, "layer3").values.shape                     # doctest: +SKIP
(256, 14, 14)
"""

from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from nbfeat.errors import InputError, NbfeatError, UnknownLayerError, did_you_mean
from nbfeat.widgets.views import LayerData, thumbnail

STACK_KEY = "\0block"  # cache key of the text token-by-layer stack (no module has this name)


class Stack:
    """A text sample's hidden states at every block: values (L, T, C), one label per row."""

    def __init__(self, values: np.ndarray, labels: list[str], modules: list[str], name: str = ""):
        self.values, self.labels, self.modules, self.name = values, labels, modules, name

    def row_of(self, layer: str, depth: int = 0) -> int:
        """The row of `layer`: `depth` for the stacked variable itself, else the row of the
        block that is, or holds, `layer` (-1: none)."""
        if layer == self.name:
            return depth
        for i, m in enumerate(self.modules):
            if layer == m or layer.startswith(m + "."):
                return i
        return -1


class DatasetSource:
    """Browse labelled results: each variable with a `sample` dim is a layer."""

    def __init__(self, data: Any, title: str | None = None):
        import xarray as xr

        if isinstance(data, xr.DataArray):
            data = data.to_dataset(name=str(data.name or "data"))
        self._vars: dict[str, Any] = {}
        self._refs: dict[str, str] = {}  # variable -> how code reaches it from the DataTree
        if isinstance(data, xr.DataTree):
            for node in data.subtree:
                ds = node.to_dataset()
                path = node.path.strip("/")
                for name in node.data_vars:
                    key = path if path.rpartition("/")[2] == name else "/".join(p for p in (path, str(name)) if p)
                    self._vars[key] = ds[name]
                    self._refs[key] = f"[{path!r}][{str(name)!r}]" if path else f"[{str(name)!r}]"
            attrs = dict(data.attrs) or next((dict(n.attrs) for n in data.subtree if n.attrs), {})
        elif isinstance(data, xr.Dataset):
            self._vars = {str(k): data[k] for k in data.data_vars}
            attrs = dict(data.attrs)
        else:
            raise InputError(f"nbfeat.browse takes a Dataset, DataTree or DataArray (or a backbone and inputs); got {type(data).__name__}.")
        self._vars = {k: v for k, v in self._vars.items() if "sample" in v.dims}
        if not self._vars:
            raise InputError("Nothing to browse: no variable has a 'sample' dim.")
        first = next(iter(self._vars.values()))
        n = first.sizes["sample"]
        # per-sample coords; a DataTree keeps the non-index ones (label, path, token_text) on
        # its root only
        coords = {str(k): c for k, c in first.coords.items()}
        if isinstance(data, xr.DataTree):
            coords = {str(k): c for k, c in data.to_dataset().coords.items()} | coords
        per_sample = {k: np.asarray(c.values) for k, c in coords.items() if c.dims[:1] == ("sample",) and c.sizes["sample"] == n}
        self._ids = [str(s) for s in per_sample["sample"]] if "sample" in per_sample else [str(i) for i in range(n)]
        self._labels = [str(s) for s in per_sample["label"]] if "label" in per_sample else [""] * n
        self._paths = [str(s) for s in per_sample["path"]] if "path" in per_sample else [""] * n
        self._token_text = per_sample.get("token_text")
        self._mask = per_sample.get("mask")
        self._text = per_sample.get("text")  # the texts themselves: token spans (spans.py)
        self.modality = str(attrs.get("modality") or ("text" if self._token_text is not None else "image"))
        self.title = title or str(attrs.get("model", "")) or "extracted features"
        self.note = ""
        self._is_tree = isinstance(data, xr.DataTree)
        # a store opened with nbfeat.open: the code reopens it
        source = getattr(data, "encoding", {}).get("source") if not self._is_tree else None
        self.store = str(source) if source and os.path.exists(str(source)) else ""
        self._attrs = attrs  # provenance: the model and its preprocessing (the thumbnails' crop)
        self._thumbs: dict[int, tuple[np.ndarray, bool]] = {}
        self._seen_model: Any = False  # False: not looked for yet; None: none to be had

    def samples(self) -> list[dict[str, str]]:
        return [{"id": i, "label": lab} for i, lab in zip(self._ids, self._labels)]

    def layers(self) -> list[str]:
        return list(self._vars)

    def default_layer(self) -> str:
        return next(iter(self._vars))

    def default_linked(self) -> list[str]:
        return list(self._vars)[:16] if self.modality == "image" else []

    def _var(self, name: str) -> Any:
        if name not in self._vars:
            raise UnknownLayerError(f"No variable {name!r} to browse.{did_you_mean(name, self._vars)}")
        return self._vars[name]

    def layer(self, i: int, name: str, depth: int = 0) -> LayerData:
        da = self._var(name).isel(sample=i)
        return LayerData(np.asarray(da.values), tuple(str(d) for d in da.dims), dict(da.attrs), self._tokens(da, i))

    def _tokens(self, da: Any, i: int) -> list[str] | None:
        if "token" not in da.dims:
            return None
        # a tree of several text models: each model's variables carry their own tokens
        own = "token_text" in da.coords and da.coords["token_text"].dims == ("token",)
        token_text = da.coords["token_text"].values if own else (self._token_text[i] if self._token_text is not None else None)
        mask = (da.coords["mask"].values if "mask" in da.coords else None) if own else (self._mask[i] if self._mask is not None else None)
        if token_text is None:
            return None
        text = [str(t) for t in token_text]
        if mask is not None:
            text = text[: int(np.asarray(mask, dtype=bool).sum())]
        return text

    def spans(self, i: int, name: str) -> np.ndarray | None:
        """Each shown token's characters in sample `i`'s text (int32 (T, 2), see
        `nbfeat.widgets.spans`), from its `token_text` and the `text` coord; None without them."""
        from nbfeat.widgets.spans import piece_spans

        da = self._var(name).isel(sample=i)
        text = str(da.coords["text"].values) if "text" in da.coords else (str(self._text[i]) if self._text is not None else None)
        tokens = self._tokens(da, i)
        if text is None or tokens is None:
            return None
        # a text cut at the context fills the whole token dim: its pieces give a prefix
        return piece_spans(text, tokens, truncated=len(tokens) == da.sizes["token"])

    def stack(self, i: int) -> Stack | None:
        """For text: the first variable stacked over depth with token and channel dims."""
        if self.modality != "text":
            return None
        names = sorted(self._vars, key=lambda k: k != "block")  # the block node first
        for name in names:
            da = self._vars[name]
            if da.dims[1:] == ("layer", "token", "channel"):
                one = da.isel(sample=i)
                tokens = self._tokens(one, i)
                values = np.asarray(one.values)[:, : len(tokens) if tokens is not None else None]
                modules = [str(m) for m in one.coords["module"].values] if "module" in one.coords else []
                labels = [f"{name} {k}" for k in range(values.shape[0])]
                return Stack(values, labels, modules, name=name)
        return None

    def thumbnail(self, i: int) -> tuple[np.ndarray, bool] | None:
        """Sample `i`'s image file as the model saw it (see `BackboneSource.thumbnail`) and
        True, where the model can be rebuilt with the preprocessing the results record; else
        the original image and False (a click fraction on it is not a place in the features)."""
        path = self._paths[i]
        if not path or self.modality != "image":
            return None
        if i in self._thumbs:
            return self._thumbs[i]
        try:
            from nbfeat.data.images import open_rgb

            bb = self._model()
            seen = seen_by_model(open_rgb(path, bb.input_size[-1]), bb.preprocess) if bb is not None else None
            out = (thumbnail(seen), True) if seen is not None else (thumbnail(open_rgb(path, 2 * 160)), False)
        except Exception:  # a moved or unreadable file: the view shows no thumbnail
            return None
        self._thumbs[i] = out
        return out

    def _model(self) -> Any:
        """The results' model rebuilt on the `meta` device (no weights loaded or allocated) for
        its preprocess, kept only when that preprocess is the one the results record
        (`preprocessing` attr, compared as written): None otherwise."""
        if self._seen_model is False:
            self._seen_model = None
            model, recorded = self._attrs.get("model"), self._attrs.get("preprocessing")
            if model and recorded:
                try:
                    import torch

                    import nbfeat

                    with torch.device("meta"):
                        bb = nbfeat.load(str(model), device="meta", pretrained=False)
                    if bb.provenance()["preprocessing"] == recorded:
                        self._seen_model = bb
                except Exception:  # not loadable here (offline, custom module): the original image
                    self._seen_model = None
        return self._seen_model

    def code(self, layers: list[str], sample: int, layer: str = "", depth: int = 0) -> str:
        if not layers:
            return ""
        name = "ds"
        lines = [f"# {name}: the results given to nbfeat.browse" + (f" (nbfeat.open({self.store!r}))" if self.store else "")]
        if self.store:
            lines = ["import nbfeat", "", f"{name} = nbfeat.open({self.store!r})"]
        for one in layers:
            ref = name + self._refs.get(one, f"[{one!r}]")
            dims = self._vars[one].dims if one in self._vars else ()
            lead = next((d for d in dims[1:2] if d in ("layer", "call")), None)
            at = f", {lead}={depth}" if lead and one == layer else ""
            lines.append(f"x = {ref}.isel(sample={sample}{at})  # sample {self._ids[sample]!r}")
        return "\n".join(lines)


class BackboneSource:
    """Browse a model's layers for a few inputs, extracting each layer on first look."""

    def __init__(self, bb: Any, inputs: Any, max_samples: int = 16, cache_bytes: int = 512 * 2**20, pool: Any = None, cache: Any = None):
        from nbfeat.data.inputs import resolve_inputs

        self.bb = bb
        self.disk_cache = cache  # True or a folder: layers seen once come back from nbfeat.cache
        self.raw_inputs = inputs  # as the user gave them: the code says how they were built
        self.pool = pool  # one pooling spec for every layer shown (None: the raw output)
        resolved = resolve_inputs(inputs, bb.modality)
        self.note = ""
        self.n_total = len(resolved)  # every input: what a full extraction would cover
        if len(resolved) > max_samples:
            self.note = f"showing the first {max_samples} of {len(resolved)} inputs (max_samples)"
            resolved = resolved.subset(range(max_samples))
        self.inputs = resolved
        self.modality = str(bb.modality)
        self.title = str(bb.id)
        self.cache_bytes = int(cache_bytes)
        self._cache: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self.extractions = 0  # forward runs so far (tests check the cache with it)
        self._thumbs: dict[int, tuple[np.ndarray, bool]] = {}  # sample -> thumbnail(), drawn once

    def samples(self) -> list[dict[str, str]]:
        texts = self.inputs.texts
        return [
            {"id": i, "label": (texts[k][:48] if texts else lab)}
            for k, (i, lab) in enumerate(zip(self.inputs.ids, self.inputs.labels))
        ]

    def layers(self) -> list[str]:
        return list(self.bb.layers())

    def default_layer(self) -> str:
        return self.bb.blocks[-1] if self.bb.blocks else self.bb.layers()[-1]

    def default_linked(self) -> list[str]:
        """Up to 8 repeated blocks spread over depth (a strip of a 40-block model would
        otherwise hold every block's output for every shown sample)."""
        blocks = list(self.bb.blocks)
        if self.modality != "image" or len(blocks) < 2:
            return []
        picks = sorted({round(i * (len(blocks) - 1) / 7) for i in range(8)}) if len(blocks) > 8 else range(len(blocks))
        return [blocks[i] for i in picks]

    def prefetch(self, names: list[str]) -> None:
        """Extract every layer of `names` not cached yet, in one forward pass."""
        missing = [n for n in dict.fromkeys(names) if n not in self._cache]
        if len(missing) > 1:
            entry = self._extract("\0" + ",".join(missing), layers=missing, pool=self.pool)
            for n in missing:
                self._cache[n] = entry

    def _extract(self, key: str, **spec: Any) -> dict[str, Any]:
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        run = self.bb.prepare(self.inputs, batch_size=len(self.inputs), **spec)
        n = len(self.inputs)
        values = {name: np.full((n, *v.shape), np.nan, dtype=np.float32) for name, v in run.variables.items()}
        failed: dict[int, str] = {}
        token_text = mask = None
        batches = run.iter_batches() if not self.disk_cache else _cached_batches(run, self.disk_cache)
        for batch in batches:
            for name, arr in batch.features.items():
                values[name][batch.positions] = arr
            for pos, reason in batch.failed:
                failed[int(pos)] = reason
            if "token_text" in batch.sample_coords:
                tt, mk = batch.sample_coords["token_text"], batch.sample_coords["mask"]
                if token_text is None:
                    token_text = np.full((n, tt.shape[1]), "", dtype=object)
                    mask = np.zeros((n, tt.shape[1]), dtype=bool)
                token_text[batch.positions] = tt
                mask[batch.positions] = mk
        self.extractions += 1
        entry = {"variables": run.variables, "values": values, "failed": failed, "token_text": token_text, "mask": mask}
        self._cache[key] = entry
        # an entry of several layers is cached under each of their names: count it once
        while len(self._cache) > 1 and sum(sum(a.nbytes for a in e["values"].values()) for e in {id(e): e for e in self._cache.values()}.values()) > self.cache_bytes:
            self._cache.popitem(last=False)
        return entry

    def _check(self, entry: dict[str, Any], i: int) -> None:
        if not 0 <= i < len(self.inputs):
            raise InputError(f"Sample {i} is out of range: {len(self.inputs)} samples.")
        if i in entry["failed"]:
            raise InputError(f"Sample {self.inputs.ids[i]!r} could not be read: {entry['failed'][i]}")

    def _tokens(self, entry: dict[str, Any], i: int) -> list[str] | None:
        if entry["token_text"] is None:
            return None
        n = int(entry["mask"][i].sum())
        return [str(t) for t in entry["token_text"][i][:n]]

    def layer(self, i: int, name: str, depth: int = 0) -> LayerData:
        if name not in set(self.bb.layers()):
            raise UnknownLayerError(f"{name!r} is not a module of {self.bb.id}.{did_you_mean(name, self.bb.layers())}")
        entry = self._extract(name, layers=[name], pool=self.pool)
        self._check(entry, i)
        variables = entry["variables"]
        if name in variables:
            spec = variables[name]
            return LayerData(entry["values"][name][i], tuple(spec.dims[1:]), dict(spec.attrs), self._tokens(entry, i))
        # a module called several times with outputs of different shapes: one variable per call
        calls = sorted((k for k in variables if k.startswith(name + "#")), key=lambda k: int(k.rpartition("#")[2]))
        if not calls:
            raise NbfeatError(f"{name!r} gave no output to show.")
        key = calls[min(max(depth, 0), len(calls) - 1)]
        spec = variables[key]
        return LayerData(entry["values"][key][i], tuple(spec.dims[1:]), dict(spec.attrs), self._tokens(entry, i), n_depth=len(calls), depth_label="call")

    def spans(self, i: int, name: str) -> np.ndarray | None:
        """Each token's characters in text `i` (int32 (T, 2), see `nbfeat.widgets.spans`),
        from the tokenizer's own offsets; None for a tokenizer without them."""
        from nbfeat.widgets.spans import offset_spans

        tok, texts = self.bb.tokenizer, self.inputs.texts
        if not texts or not (getattr(tok, "is_fast", False) and callable(tok)):
            return None
        kw = {"add_special_tokens": True, "return_offsets_mapping": True, "return_special_tokens_mask": True, "verbose": False}
        enc = tok(texts[i], truncation=False, **kw)
        context = self.bb.max_length
        if context is not None and len(enc["input_ids"]) > context:  # cut as the run cuts it (engine.tokens)
            enc = tok(texts[i], truncation=True, max_length=context, **kw)
        return offset_spans(texts[i], enc["offset_mapping"], enc["special_tokens_mask"])

    def stack(self, i: int) -> Stack | None:
        if self.modality != "text" or not self.bb.nodes.get("block"):
            return None
        entry = self._extract(STACK_KEY, nodes=["block"])
        self._check(entry, i)
        tokens = self._tokens(entry, i)
        values = entry["values"]["block"][i]
        if tokens is not None:
            values = values[:, : len(tokens)]
        modules = list(json.loads(entry["variables"]["block"].attrs.get("modules", "[]")) or self.bb.nodes["block"])
        return Stack(values, list(modules), modules)

    def thumbnail(self, i: int) -> tuple[np.ndarray, bool] | None:
        """Input `i` as the model saw it (decoded as the run decodes it, then the source's own
        preprocess: resize, crop) as a small uint8 (h, w, 3) picture, and True; or the decoded
        image and False where the preprocess cannot be undone to pixels. A click at fractions
        (fy, fx) of a True picture is the same place in every spatial feature map."""
        if self.inputs.kind == "text":
            return None
        if i in self._thumbs:
            return self._thumbs[i]
        try:
            if self.inputs.kind == "tensor":  # model-ready CxHxW floats: stretch to 0..255 for a look
                x = self.inputs.items[i].detach().float().cpu().numpy()
                x = (x - x.min()) / max(float(x.max() - x.min()), 1e-12)
                x = np.moveaxis(x, 0, -1)
                rgb = x[..., :3] if x.shape[-1] >= 3 else np.repeat(x[..., :1], 3, -1)
                out = (thumbnail((rgb * 255).astype(np.uint8)), True)
            else:
                from nbfeat.engine.run import _ImageItems

                _, img, _ = _ImageItems(self.inputs, None, self.bb.input_size[-1]).decode(i)
                if img is None:
                    return None
                seen = seen_by_model(img, self.bb.preprocess)
                out = (thumbnail(seen), True) if seen is not None else (thumbnail(img), False)
        except Exception:  # the browser still shows the layer without a thumbnail
            return None
        self._thumbs[i] = out
        return out

    def variables(self, layers: list[str], probe: bool = True) -> dict[str, Any] | None:
        """`run.variables` of an extraction of `layers`: from the cache, else a one-sample
        probe (None instead when `probe` is False and a layer was never extracted)."""
        out: dict[str, Any] = {}
        missing = []
        for name in layers:
            entry = self._cache.get(name)
            if entry is None:
                missing.append(name)
            else:
                out.update(entry["variables"])
        if missing and not probe:
            return None
        if missing:
            out.update(self.bb.prepare(self.inputs.subset([0]), layers=missing, pool=self.pool).variables)
        return out

    def code(self, layers: list[str], sample: int = 0, layer: str = "", depth: int = 0, probe: bool = True) -> str:
        """Code that, run in a fresh kernel, extracts `layers` and picks the shown array as `x`.

        `probe=False` writes it from the layers extracted so far only (no forward pass): a
        layer about to be shown is extracted anyway, and the code is written again then.
        """
        from nbfeat.widgets.code import view_code

        if not layers:
            return ""
        try:
            variables = self.variables(list(layers), probe=probe)
        except Exception:  # a layer the model cannot run to: the code is still worth showing
            variables = {}
        return view_code(self.bb, self.raw_inputs, self.inputs, list(layers), layer=layer, sample=sample, depth=depth, pool=self.pool, variables=variables)


def seen_by_model(image: Any, preprocess: Any) -> np.ndarray | None:
    """`image` (RGB PIL) as the model gets it, as uint8 (H, W, 3): the source's own `preprocess`
    run on it (its resize and crop exactly), its per-channel normalization undone with the same
    preprocess run on a black and a white image of the same size. None when the preprocess is
    not a per-channel affine map of the pixels (nothing to undo it with).

    >>> seen_by_model(Image.new("RGB", (300, 200)), bb.preprocess).shape     # doctest: +SKIP
    (224, 224, 3)
    """
    from PIL import Image

    def chw(im: Any) -> np.ndarray:
        x = preprocess(im)
        x = x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x, dtype=np.float32)
        return x[0] if x.ndim == 4 and x.shape[0] == 1 else x

    x = chw(image)
    black, white = chw(Image.new("RGB", image.size, (0, 0, 0))), chw(Image.new("RGB", image.size, (255, 255, 255)))
    if x.ndim != 3 or x.shape != black.shape or x.shape != white.shape or x.shape[0] not in (1, 3):
        return None
    lo, hi = black.reshape(len(x), -1).mean(1), white.reshape(len(x), -1).mean(1)
    span = hi - lo
    flat = np.abs(black - lo[:, None, None]).max() + np.abs(white - hi[:, None, None]).max()
    if np.any(np.abs(span) < 1e-6) or flat > 1e-3 * float(np.abs(span).min()):
        return None  # not the same affine map at every pixel
    rgb = np.clip((x - lo[:, None, None]) / span[:, None, None], 0.0, 1.0)
    rgb = np.moveaxis(np.rint(rgb * 255.0).astype(np.uint8), 0, -1)
    return np.repeat(rgb, 3, -1) if rgb.shape[-1] == 1 else rgb


def _cached_batches(run: Any, cache: Any) -> list[Any]:
    """The run's features as one Batch, read from nbfeat.cache (extracted into it the first time)."""
    import json

    import xarray as xr

    from nbfeat import cache as disk
    from nbfeat.engine.run import Batch

    res = disk.extract(run, cache, progress=False)
    where = {sid: k for k, sid in enumerate(run.inputs.ids)}
    positions = np.asarray([where[str(s)] for s in res["sample"].values], dtype=np.int64)
    features = {}
    for name in run.variables:
        var = res[name][name] if isinstance(res, xr.DataTree) else res[name]  # DataTree: a node per variable
        features[name] = np.asarray(var.values)
    coords = {k: np.asarray(res[k].values) for k in ("token_text", "mask") if k in res.coords}
    failed = [(where[f["sample"]], f["reason"]) for f in json.loads(res.attrs.get("failed", "[]")) if f["sample"] in where]
    return [Batch(positions, features, coords, failed)]
