"""The Backbone: a loaded model that knows its preprocessing, layers, blocks and provenance.

>>> bb = nbfeat.load("torchvision:resnet18", pretrained=False)     # doctest: +SKIP
>>> bb.layers("layer4.*")[:2]                                      # doctest: +SKIP
['layer4.0', 'layer4.0.conv1']
>>> ds = bb.extract("images/", layers=["layer3", "layer4"], pool="mean")   # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt
import fnmatch
import json
from functools import cached_property
from typing import Any

from nbfeat._version import __version__
from nbfeat.models.loaded import Loaded


class Backbone:
    """A model plus everything nbfeat needs to extract from it. Build with `nbfeat.load`."""

    def __init__(self, model_id: str, source: str, name: str, loaded: Loaded, *, pretrained: bool, weights: str | None, device: Any, dtype: Any, trust_remote_code: bool = False, model_kwargs: dict[str, Any] | None = None, channels_last: bool = False, amp: bool = False):

        self.id = model_id
        self.source = source
        self.name = name
        self.modality = loaded.modality
        self.preprocess = loaded.preprocess
        self.tokenizer = loaded.tokenizer
        self.input_size = loaded.input_size
        self.input_name = loaded.input_name
        self.prefix_tokens = loaded.prefix_tokens
        self.max_length = loaded.max_length
        self.device = as_device(device)
        self.dtype = _as_dtype(dtype)
        self.model = loaded.model.to(self.device)
        if self.dtype is not None:
            self.model = self.model.to(self.dtype)
        self.channels_last = bool(channels_last)
        if self.channels_last:
            import torch

            self.model = self.model.to(memory_format=torch.channels_last)
        self.amp = bool(amp)
        self.pretrained = pretrained
        self._weights_arg = weights
        self._trust_remote_code = trust_remote_code
        self._model_kwargs = dict(model_kwargs or {})
        self._loaded = loaded

    # ---- structure -------------------------------------------------------------------

    def layers(self, pattern: str | None = None) -> list[str]:
        """Module paths in definition order, optionally filtered by a glob (`blocks.*.attn`)."""
        paths = self._paths
        return [p for p in paths if fnmatch.fnmatchcase(p, pattern)] if pattern else list(paths)

    @cached_property
    def _paths(self) -> list[str]:
        return [p for p, _ in self.model.named_modules() if p]

    @cached_property
    def adapter(self) -> Any:
        """The family adapter (nbfeat.models.adapters): roles, layouts and stages, as data."""
        from nbfeat.models.adapters import adapter_for

        return adapter_for(self.model, self._loaded)

    @cached_property
    def blocks(self) -> list[str]:
        """Module paths of the repeated blocks (what block indices like -1 refer to)."""
        return self.adapter.blocks()

    @cached_property
    def nodes(self) -> dict[str, list[str]]:
        """Node roles -> module path at each depth: `block`, and `attn`/`mlp` where present."""
        return self.adapter.nodes()

    @cached_property
    def stages(self) -> list[Any]:
        """Stages in HF `out_indices` numbering (`stages[0]` is stage0, the stem, where the
        library counts one): `Stage(index, module, blocks)`; [] when the family has none."""
        return self.adapter.stages()

    def dummy_inputs(self, batch_size: int = 1, device: Any = "cpu") -> tuple[tuple[Any, ...], dict[str, Any]]:
        """`(args, kwargs)` such that `bb.model(*args, **kwargs)` runs (use device="meta" for shapes)."""
        import torch

        if self.modality == "text":
            ids = torch.zeros((batch_size, 8), dtype=torch.long, device=device)
            return (), {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        x = torch.zeros((batch_size, *self.input_size), device=device, dtype=self.dtype or torch.float32)
        return ((), {self.input_name: x}) if self.input_name else ((x,), {})

    # ---- extraction ------------------------------------------------------------------

    def prepare(self, inputs: Any, layers: Any = None, nodes: Any = None, pool: Any = None, flatten: bool = False, batch_size: int = 32, num_workers: int | None = None, device: Any = None, ids: list[str] | None = None, labels: list[str] | None = None, stages: Any = None, length_buckets: bool = True) -> Any:
        """An ExtractionRun (batches on demand); `extract` is prepare + collect."""
        from nbfeat.engine.run import ExtractionRun

        if device is not None:
            self.to(device)
        return ExtractionRun(self, inputs, layers=layers, nodes=nodes, pool=pool, flatten=flatten, batch_size=batch_size, num_workers=num_workers, ids=ids, labels=labels, stages=stages, length_buckets=length_buckets)

    def extract(
        self,
        inputs: Any,
        layers: Any = None,
        nodes: Any = None,
        pool: Any = None,
        flatten: bool = False,
        batch_size: int = 32,
        num_workers: int | None = None,
        device: Any = None,
        ids: list[str] | None = None,
        labels: list[str] | None = None,
        out: str | None = None,
        client: Any = None,
        progress: bool = True,
        overwrite: bool = False,
        stages: Any = None,
        length_buckets: bool = True,
        cache: Any = None,
    ) -> Any:
        """Extract features for `inputs` as labelled xarray.

        Args:
            inputs: image folder, paths, PIL images, arrays, an NxCxHxW tensor, or texts.
            layers: module paths, globs (`blocks.*.attn`), block indices (-1), or roles;
                a dict `{layer: pool}` sets pooling per layer.
            nodes: roles `attn`, `mlp`, `block`, stacked over depth along `layer`; on a
                hierarchical model one variable per stage (`block.stage1`, ...).
            stages: stage numbers in HF `out_indices` numbering (0: the stem), each the
                tensor `AutoBackbone.feature_maps` / timm `features_only` gives (`bb.stages`).
            pool: one spec for all layers or `{layer: spec}`: mean, max, cls, last,
                flatten, ("avg2d", k), ("max2d", k).
            flatten: flatten each sample's features to a `feature` dim.
            out: a zarr store path: stream there (bounded memory, resumable) and return
                the lazily opened store.
            client: a dask.distributed Client to spread an `out=` run over workers.
            length_buckets: text only: batch texts of similar token length together (less
                compute spent on pads; the same values, in the same order). False: batches
                in input order.
            cache: True (or a folder): keep the features in the notebook cache and read
                them back when the same extraction of the same inputs runs again, across
                kernel restarts (`nbfeat.cache.info()`, `nbfeat.cache.clear()`).

        Example:
            >>> ds = bb.extract("images/", layers=["layer3", "layer4"], pool="mean")   # doctest: +SKIP
        """
        run = self.prepare(inputs, layers=layers, nodes=nodes, pool=pool, flatten=flatten, batch_size=batch_size, num_workers=num_workers, device=device, ids=ids, labels=labels, stages=stages, length_buckets=length_buckets)
        if out is not None:
            from nbfeat import store

            if cache:
                from nbfeat.errors import NbfeatError

                raise NbfeatError("Pass either out= (your own store) or cache= (the notebook cache), not both.")
            from nbfeat.engine.allocation import release_soon

            store.write(run, out, client=client, progress=progress, overwrite=overwrite)
            release_soon()  # the freed activations go back to the system once idle (tune_malloc kept them)
            return store.open(out)
        if client is not None:
            from nbfeat.errors import NbfeatError

            raise NbfeatError("client= needs out= (a zarr store the workers write to).")
        if cache:
            from nbfeat import cache as feature_cache

            return feature_cache.extract(run, cache, progress=progress)
        from nbfeat.engine.estimate import check_fits_in_memory

        check_fits_in_memory(run)  # before the first batch, not after an hour
        return run.to_xarray(progress=progress)

    def estimate(self, inputs: Any, layers: Any = None, nodes: Any = None, pool: Any = None, **kwargs: Any) -> Any:
        """Bytes per sample and in total for every variable, and the disk a store will take,
        before extracting anything but the one-sample probe (nbfeat.engine.estimate).

        Example:
            >>> bb.estimate("images/", layers="layer3")      # doctest: +SKIP
            <Estimate: 10000 samples, 7.5 GiB of features (784.0 KiB per sample) ...
        """
        from nbfeat.engine.estimate import estimate

        return estimate(self.prepare(inputs, layers=layers, nodes=nodes, pool=pool, **kwargs))

    @property
    def forward_lock(self) -> Any:
        """A lock held while an extraction's hooks are on the model: threads sharing this
        backbone run their forward passes one at a time, each with its own hooks."""
        lock = self.__dict__.get("_forward_lock")
        if lock is None:
            import threading

            lock = self.__dict__.setdefault("_forward_lock", threading.RLock())
        return lock

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_forward_lock"}  # locks do not pickle

    def to(self, device: Any) -> Backbone:
        """Move the model to `device` (in place); returns self."""

        self.device = as_device(device)
        self.model.to(self.device)
        return self

    # ---- provenance ------------------------------------------------------------------

    def load_kwargs(self) -> dict[str, Any]:
        """The `nbfeat.load` arguments that rebuild this backbone (e.g. on a Dask worker)."""
        return {
            "model": self.id,
            "pretrained": self.pretrained,
            "weights": self._weights_arg,
            "dtype": str(self.dtype).replace("torch.", "") if self.dtype is not None else None,
            "trust_remote_code": self._trust_remote_code,
            "model_kwargs": self._model_kwargs or None,
            "channels_last": self.channels_last,
            "amp": self.amp,
            **self._loaded.load_kwargs,
        }

    def autocast(self) -> Any:
        """The context the forward pass runs in: `torch.autocast` when loaded with `amp=True`."""
        import torch

        return torch.autocast(self.device.type, dtype=self.amp_dtype, enabled=self.amp)

    @property
    def amp_dtype(self) -> Any:
        """bfloat16, or float16 on a GPU without bfloat16."""
        import torch

        if self.device.type == "cuda" and not torch.cuda.is_bf16_supported():
            return torch.float16
        return torch.bfloat16

    def provenance(self) -> dict[str, Any]:
        """Dataset attrs: model, source, weights tag or hash, preprocessing, versions (no secrets)."""
        import torch

        return {
            "model": self.id,
            "source": self.source,
            "modality": self.modality,
            "pretrained": int(self.pretrained),
            "weights": self._loaded.weights,
            "preprocessing": json.dumps(self._loaded.preprocessing, sort_keys=True, default=str),
            # autocast changes the values as much as a dtype does: it is part of this key
            "dtype": str(self.dtype or torch.float32).replace("torch.", "") + (f"+autocast({str(self.amp_dtype).replace('torch.', '')})" if self.amp else ""),
            "memory_format": "channels_last" if self.channels_last else "contiguous",
            "family": self.adapter.family,
            "nbfeat_version": __version__,
            "torch_version": torch.__version__,
            **self._loaded.versions,
            **self._loaded.attrs,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        }

    # ---- display ---------------------------------------------------------------------

    def tree(self) -> Any:
        """The module tree widget: click to pick layers (`.selected`)."""
        from nbfeat.widgets import tree

        return tree(self)

    def __repr__(self) -> str:
        n = sum(p.numel() for p in self.model.parameters())
        weights = self._loaded.weights
        if weights.startswith("random"):
            weights = "random weights " + weights[len("random"):]
        return f"<Backbone {self.id}: {self.modality}, {n / 1e6:.1f}M params, {len(self.blocks)} blocks, {weights}, {self.device}>"


def as_device(device: Any) -> Any:
    """A torch.device from "cpu", "cuda:1", ... (None: cuda when available), or a clear error."""
    import torch

    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        from nbfeat.errors import NbfeatError

        raise NbfeatError(f"Unknown device {device!r}: use 'cpu', 'cuda', 'cuda:1' or 'mps'.") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        from nbfeat.errors import NbfeatError

        raise NbfeatError(f"device={device!r} but no CUDA GPU is available here: use device='cpu'.")
    return dev


def _as_dtype(dtype: Any) -> Any:
    import torch

    if dtype is None or isinstance(dtype, torch.dtype):
        return dtype
    name = str(dtype).replace("torch.", "")
    aliases = {"bf16": "bfloat16", "fp16": "float16", "half": "float16", "fp32": "float32", "float": "float32"}
    value = getattr(torch, aliases.get(name, name), None)
    if not isinstance(value, torch.dtype):
        from nbfeat.errors import NbfeatError

        raise NbfeatError(f"Unknown dtype {dtype!r}: use float32, bfloat16 or float16.")
    return value
