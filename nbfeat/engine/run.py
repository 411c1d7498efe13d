"""An extraction run: resolved inputs and targets, batches in, feature arrays out.

The run is the contract between the engine and its sinks (memory -> xarray, zarr store,
Dask workers); see docs/architecture.md.

>>> run = bb.prepare("images/", layers=["layer3"], pool="mean")      # doctest: +SKIP
>>> ds = run.to_xarray(run.iter_batches())                           # doctest: +SKIP
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nbfeat.data.images import ImageReadError, array_to_pil, open_rgb
from nbfeat.data.inputs import Inputs, resolve_inputs
from nbfeat.engine.allocation import empty, tune_malloc
from nbfeat.engine.buckets import text_batches
from nbfeat.engine.hooks import Capture
from nbfeat.engine.pooling import Layout, PoolSpec, apply_pool, pooled_dims
from nbfeat.engine.selection import Target, select
from nbfeat.engine.stacking import Stacks
from nbfeat.errors import InputError, NbfeatError, UnknownLayerError
from nbfeat.models.adapters.base import MAP, Context, chain

# On a CPU a batch runs as forward passes whose largest module output stays near this size
# (the probe measures it per row). A CPU's throughput is flat from a few rows per pass up
# (resnet50, ViT-S/16, ConvNeXt-T on 2 cores: within 5% from 4 to 32 rows), while the
# activations, and so the peak memory, grow with the rows: resnet50 (3.2 MB a row) runs a
# batch of 32 as four passes of 8 (ViT-S/16 then resnet50 layer1, layer3, avgpool to zarr on
# 96 JPEGs, twice in one process: peak RSS 1474 MiB against 2021 in one pass, same speed).
# Small rows (a 64 px UNet, short texts) run whole, where per-pass overhead would show.
# At least one row per torch thread.
CPU_PASS_BYTES = 32 << 20


@dataclass
class VarSpec:
    """One output variable: dims (sample first), shape without sample, dtype, attrs, coords."""

    dims: tuple[str, ...]
    shape: tuple[int, ...]
    dtype: Any
    attrs: dict[str, Any]
    coords: dict[str, tuple[str, Any]] = field(default_factory=dict)  # name -> (dim, values)


@dataclass
class Batch:
    positions: np.ndarray
    features: dict[str, np.ndarray]
    sample_coords: dict[str, np.ndarray]
    failed: list[tuple[int, str]]
    keys: dict[int, str] = field(default_factory=dict)  # position -> content key (ok and failed)


class ExtractionRun:
    """Everything needed to extract `targets` of a backbone for `inputs`, batch by batch."""

    def __init__(
        self,
        bb: Any,
        inputs: Any,
        layers: Any = None,
        nodes: Any = None,
        pool: Any = None,
        flatten: bool = False,
        batch_size: int = 32,
        num_workers: int | None = None,
        ids: list[str] | None = None,
        labels: list[str] | None = None,
        stages: Any = None,
        length_buckets: bool = True,
    ):
        if int(batch_size) < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}.")
        tune_malloc()
        self.bb = bb
        self.inputs: Inputs = resolve_inputs(inputs, bb.modality, ids, labels)
        self.targets: list[Target] = select(bb, layers, nodes, pool, stages)
        self.flatten = bool(flatten)
        self.batch_size = int(batch_size)
        self.num_workers = num_workers
        self.length_buckets = bool(length_buckets)  # text: similar lengths share a batch (nbfeat.engine.buckets)
        self.device = bb.device
        self._args = {"layers": _jsonable(layers), "nodes": _jsonable(nodes), "pool": _jsonable(pool), "flatten": self.flatten, "batch_size": self.batch_size}
        if stages is not None:
            self._args["stages"] = _jsonable(stages)
        if not self.length_buckets:  # the order of batches only, not the values: not in the fingerprint
            self._args["length_buckets"] = False
        # module path -> distinct (pooling, view) asked of it (a module may serve several targets)
        self._pools: dict[str, list[tuple[PoolSpec | None, str]]] = {}
        for t in self.targets:
            for m in t.modules:
                if t.key not in self._pools.setdefault(m, []):
                    self._pools[m].append(t.key)
        slots: dict[tuple[str, int], tuple[str, int, int]] = {}  # see nbfeat.engine.stacking
        for t in [t for t in self.targets if t.stacked]:
            for depth, m in enumerate(t.modules):
                slots.setdefault((m, self._pools[m].index(t.key)), (t.name, depth, len(t.modules)))
        self._stacks = Stacks(slots)
        # (module path, view) -> layout, from the family adapter at the probe
        self._layouts: dict[tuple[str, str], Layout] = {}
        self._context = Context()
        self._output_index: dict[str, int] = {}
        self._mask: Any = None
        self._text_failed: dict[int, str] = {}
        self._split_calls: set[str] = set()
        self._forward_limit: int | None = None  # set when out of memory halves the batch
        self._row_bytes = 0  # the probe's largest module output per row, for its input's size
        self._row_elements = 1  # elements of one row of the probe's input (text: its tokens)
        self._oom_reported = False
        if bb.modality == "text":
            self._tokenize()
        self.variables: dict[str, VarSpec] = {}  # filled by the probe, read by _assemble
        self.variables = self._probe()
        if bb.modality == "text":  # stacked token outputs land at the run's width (nbfeat.engine.stacking)
            for t in self.targets:
                spec = self.variables.get(t.name)
                if t.stacked and spec is not None and "token" in spec.dims:
                    axis = spec.dims.index("token")  # in (sample, layer, ...): the captured output lacks `layer`
                    self._stacks.widths[t.name] = (axis - 1, int(spec.shape[axis - 1]))

    # ---- public contract -------------------------------------------------------------

    @property
    def samples(self) -> Any:
        return self.inputs.samples

    @property
    def skipped(self) -> list[tuple[str, str, str]]:
        """Files in an input folder that are not images: (sample id, path, reason)."""
        return list(self.inputs.skipped)

    @property
    def attrs(self) -> dict[str, Any]:
        return self.bb.provenance()

    @property
    def spec(self) -> dict[str, Any]:
        """JSON-able arguments that rebuild this run elsewhere (with the same inputs)."""
        return {"load": self.bb.load_kwargs(), "extract": dict(self._args)}

    def key(self) -> dict[str, Any]:
        """Everything besides the inputs that changes the values (see nbfeat.store.key)."""
        from nbfeat.store.key import run_key

        return run_key(self)

    def fingerprint(self) -> str:
        """Hash of `key()`: model, load arguments, weights digest, config, targets, preprocessing."""
        from nbfeat.store.key import digest

        return digest(self.key())

    def input_keys(self, positions: Iterable[int]) -> dict[int, str]:
        """Content key per input position (text: the text and its token ids)."""
        out = {}
        for p in positions:
            p = int(p)
            key = self.inputs.content_key(p)
            if self.bb.modality == "text":
                key = "sha256:" + hashlib.sha256(f"{key}|{self._ids[p]}".encode()).hexdigest()[:32]
            out[p] = key
        return out

    def iter_batches(self, positions: Iterable[int] | None = None, window: int | None = None, keys: bool = False) -> Iterator[Batch]:
        """Yield a Batch per `batch_size` inputs (in the order of `positions`).

        Text with `length_buckets` comes in batches of similar token length instead, sorted
        within `window` consecutive positions (None: a window sized for streaming sinks);
        `Batch.positions` says which inputs each batch holds. `keys=True` fills
        `Batch.keys` with each input's content key (what a store keeps to detect changes).
        """
        import torch

        pos = np.arange(len(self.inputs)) if positions is None else np.asarray(list(positions), dtype=np.int64)
        loader = self._loader(pos, window)
        try:
            for positions_, x, failed in loader:
                p = np.asarray(positions_, dtype=np.int64)
                # content keys (hashing every input) only for sinks that keep them: stores
                keyed = self.input_keys([*p, *(f[0] for f in failed)]) if keys else {}
                if x is None:
                    yield Batch(p, {}, {}, failed, keyed)
                    continue
                # Hooks live only while one batch runs, never across a yield: a paused,
                # closed or abandoned generator leaves the user's model as it was. The
                # backbone's lock serialises forward passes from several threads.
                with self.bb.forward_lock, torch.inference_mode(), Capture(self.bb.model, list(self._pools), self._transform, early_exit=self._early_exit) as cap:
                    batch = self._forward_batch(cap, p, x)
                batch.failed, batch.keys = failed, keyed
                del cap  # the batch is the only reference to its outputs
                yield batch
                # Nothing here may hold this batch's outputs while the next forward runs: it
                # would allocate around them, into fresh memory (resnet50 `layer1`: 100 MiB
                # a batch, 25k more page faults). Consumers drop theirs too.
                del batch, x
        finally:
            close = getattr(loader, "close", None)
            if close is not None:
                close()

    @property
    def _early_exit(self) -> bool:
        # not when a source runs whole forwards per call (CORnet) or a family reuses one
        # module at every depth (ALBERT: the shared layer's first call is not its last)
        return not getattr(self.bb._loaded, "call_dims", None) and getattr(self.bb.adapter, "early_exit", True)

    def _forward_batch(self, cap: Capture, positions: np.ndarray, x: Any) -> Batch:
        """The batch's outputs, from forward passes of at most `_pass_rows` rows each.

        Each slice's features are copied into the batch's arrays as soon as it is done, so at
        most one slice's outputs are held twice (not the whole batch).
        """
        n = len(positions)
        step = self._pass_rows(x)
        if step >= n:
            return self._assemble(positions, self._capture(cap, x), [])
        features: dict[str, np.ndarray] = {}
        coords: dict[str, list[np.ndarray]] = {}
        for start in range(0, n, step):
            sl = slice(start, min(start + step, n))
            part = self._assemble(positions[sl], self._capture(cap, _rows(x, sl)), [])
            for k, v in part.features.items():
                if k not in features:
                    features[k] = empty((n, *v.shape[1:]), v.dtype)
                features[k][sl] = v
            for k, v in part.sample_coords.items():
                coords.setdefault(k, []).append(v)
            del part
        # coordinates are small, and their string widths may differ between slices
        return Batch(positions, features, {k: np.concatenate(v) for k, v in coords.items()}, [])

    def _pass_rows(self, x: Any) -> int:
        """Rows per forward pass for batch `x`: out of memory's limit; on a CPU, rows that keep
        the largest module output near CPU_PASS_BYTES, evened out (32 rows at 10 a pass run as
        8, 8, 8, 8). The probe's output size scales with the input's (text: its token width)."""
        import torch

        n = _rows_count(x)
        rows = self._forward_limit or n
        if self.device.type == "cpu" and self._row_bytes:
            per_row = max(1, self._row_bytes * _row_elements(x) // self._row_elements)
            rows = min(rows, max(CPU_PASS_BYTES // per_row, torch.get_num_threads(), 1))
        passes = -(-n // max(rows, 1))
        return -(-n // passes) if n else 1

    def _capture(self, cap: Capture, x: Any) -> dict[str, list[Any]]:
        """One forward pass; out of memory halves the batch (reported once) and goes on."""
        try:
            outputs = cap.run(lambda: self._forward(x))
        except Exception as e:
            n = _rows_count(x)
            if not _is_oom(e):
                raise
            if n == 1:
                raise InputError("A single sample does not fit in device memory: use a smaller dtype (dtype='bfloat16') or another device.") from None
            _free_device_memory()
            half = max(1, n // 2)
            if not self._oom_reported:
                warnings.warn(f"Out of memory at batch size {n}: going on with batches of {half}.", RuntimeWarning, stacklevel=3)
                self._oom_reported = True
            self._forward_limit = half
            parts, start = [], 0
            while start < n:  # the limit may shrink again inside: re-read it each step
                step = self._forward_limit
                parts.append(self._capture(cap, _rows(x, slice(start, start + step))))
                start += step
            return {k: _cat_calls([p[k] for p in parts]) for k in parts[0]}
        self._output_index.update(cap.output_index)
        return outputs

    def to_xarray(self, batches: Iterable[Batch] | None = None, progress: bool = False) -> Any:
        """Collect batches in memory into labelled xarray (see nbfeat.data.labelled)."""
        from nbfeat.data.labelled import to_xarray

        batches = self.iter_batches(window=len(self.inputs)) if batches is None else batches  # rows land by position: sort the whole run
        if progress:
            batches = _progress(batches, len(self.inputs))
        return to_xarray(self, batches)

    # ---- inputs ----------------------------------------------------------------------

    def _tokenize(self) -> None:
        """Token ids and token_text per text, up front (nbfeat.engine.tokens): the
        tokenizer's special tokens kept, its own truncation at the model's context."""
        from nbfeat.engine.tokens import tokenize

        limit = self.bb.max_length
        enc = tokenize(self.bb.tokenizer, self.inputs.texts or [], limit, pieces=False)  # token_text per batch
        ids = enc.ids
        if enc.truncated:
            warnings.warn(
                f"{enc.truncated} text(s) longer than the model's context ({limit} tokens) were truncated.",
                UserWarning,
                stacklevel=4,
            )
        for i, row in enumerate(ids):
            if not row or all(enc.added[i]):  # nothing of its own: BERT's "" is [CLS] [SEP]
                self._text_failed[i] = "empty text (no tokens)"
        self._ids = ids
        self._tmax = max([len(r) for r in ids] + [1])

    def _loader(self, positions: np.ndarray, window: int | None = None) -> Iterator[tuple[list[int], Any, list[tuple[int, str]]]]:
        kind = self.inputs.kind
        chunks = [positions[i : i + self.batch_size] for i in range(0, len(positions), self.batch_size)]
        if kind == "tensor":
            for chunk in chunks:
                x = self.inputs.items[list(chunk)]
                failed = []
                if not _all_finite(x):
                    bad = ~x.flatten(1).isfinite().all(dim=1)
                    failed = [(int(p), "NaN or inf values in the tensor") for p in chunk[bad.numpy()]]
                    chunk, x = chunk[~bad.numpy()], x[~bad]
                yield list(chunk), (self._to_device(x) if len(chunk) else None), failed
        elif kind == "text":
            if self.length_buckets:
                chunks = text_batches(self, positions, window)
            for chunk in chunks:
                good = [int(p) for p in chunk if int(p) not in self._text_failed]
                failed = [(int(p), self._text_failed[int(p)]) for p in chunk if int(p) in self._text_failed]
                yield good, (self._pad_tokens(good) if good else None), failed
        else:
            yield from self._image_batches(chunks)

    def _image_batches(self, chunks: list[np.ndarray]) -> Iterator[tuple[list[int], Any, list[tuple[int, str]]]]:
        from torch.utils.data import DataLoader

        dataset = _ImageItems(self.inputs, self.bb.preprocess, self.bb.input_size[-1])
        workers = self._workers(sum(len(c) for c in chunks))
        loader = DataLoader(
            dataset,
            batch_sampler=[list(map(int, c)) for c in chunks],
            num_workers=workers,
            collate_fn=_collate,
            pin_memory=self.device.type == "cuda",
            prefetch_factor=4 if workers else None,
            persistent_workers=False,
        )
        for positions, x, failed in loader:
            yield positions, (self._to_device(x) if x is not None else None), failed

    def _workers(self, n: int) -> int:
        """DataLoader worker processes: only on cores the forward pass leaves free.

        On the CPU, torch's threads already hold every core; a decoding process beside them
        makes both slower (2 cores: a whole call 1.5x slower than decoding between batches).
        """
        if n <= 1:
            return 0  # the probe
        if self.num_workers is not None:
            return int(self.num_workers)
        if self.inputs.kind != "files" or n <= self.batch_size:
            return 0  # in-memory images or a single batch: worker start-up would cost more
        import torch

        cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        busy = torch.get_num_threads() if self.device.type == "cpu" else 1
        return max(0, min(8, cores - busy))

    def _pad_tokens(self, positions: list[int]) -> Any:
        import torch

        rows = [self._ids[p] for p in positions]
        width = max(len(r) for r in rows)
        pad = self.bb.tokenizer.pad_token_id or 0
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        return ids.to(self.device), mask.to(self.device)

    def _to_device(self, x: Any) -> Any:
        import torch

        x = x.to(self.device, non_blocking=True)
        if self.bb.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x.to(self.bb.dtype) if self.bb.dtype is not None and x.is_floating_point() else x

    # ---- forward and capture ---------------------------------------------------------

    def _forward(self, x: Any) -> Any:
        model, name = self.bb.model, self.bb.input_name
        self._stacks.reset()
        with self.bb.autocast():
            if self.bb.modality == "text":
                ids, mask = x
                self._mask = mask
                return model(input_ids=ids, attention_mask=mask)
            self._mask = None
            return model(**{name: x}, **self.bb.adapter.forward_kwargs()) if name else model(x)

    def _transform(self, path: str, tensor: Any) -> list[Any]:
        out = []
        for k, (p, view) in enumerate(self._pools[path]):
            layout = self._layout(path, view, tensor.dim())
            try:
                pooled = apply_pool(self._full_width(tensor, layout, p), layout, p, self.flatten, self._mask)
            except NbfeatError:
                raise
            except Exception as e:  # a restore or pool that does not fit this output: say so, no traceback
                raise UnknownLayerError(
                    f"Layer {path} of {self.bb.id} ({self.bb.adapter.family}): its output {tuple(tensor.shape)} does not fit "
                    f"{'the layout ' + repr(layout.note) if layout.note else 'pooling ' + repr(str(p))} ({type(e).__name__}). Pick its block or another layer."
                ) from None
            out.append(self._stacks.put(path, k, pooled))
        return out

    def _full_width(self, tensor: Any, layout: Layout, pool: PoolSpec | None) -> Any:
        """Text tokens about to be flattened: pads NaN and the token axis at the run's width,
        so every batch (each at its own length) flattens to the same features."""
        if not (layout.text and layout.dims == ("token", "channel") and self._mask is not None):
            return tensor
        if not (self.flatten and pool is None) and not (pool is not None and pool.kind == "flatten"):
            return tensor
        import torch

        x = tensor.masked_fill(~self._mask.bool().unsqueeze(-1), float("nan"))
        missing = self._tmax - x.shape[1]
        if missing > 0:
            x = torch.cat([x, x.new_full((x.shape[0], missing, x.shape[2]), float("nan"))], dim=1)
        return x

    def _layout(self, path: str, view: str, ndim: int) -> Layout:
        """The family adapter's layout of `path` (its stage view when `view` names a stage)."""
        layout = self._layouts.get((path, view))
        if layout is not None:
            return layout
        adapter = self.bb.adapter
        try:
            layout = adapter.layout(path, ndim, self._context)
            if view:
                stage = next(s for s in self.bb.stages if s.name == view)
                fn = adapter.stage_view(stage, self._context)
                layout = Layout(MAP, note=f"{view} as the library's backbone gives it", restore=chain(layout.restore, fn)) if fn is not None or layout.dims == MAP else None
                if layout is None:
                    raise UnknownLayerError(f"{view} of {self.bb.id}: its output is not a feature map nbfeat can give as the backbone does.")
        except UnknownLayerError:
            raise
        except Exception as e:  # a family rule that does not fit this module: say so, no traceback
            raise UnknownLayerError(f"Layer {path} of {self.bb.id} ({adapter.family}): nbfeat cannot read its output ({type(e).__name__}: {str(e).splitlines()[0][:160]}). Pick its block or another layer.") from None
        self._layouts[(path, view)] = layout
        return layout

    @contextmanager
    def _context_hooks(self, x: Any) -> Iterator[None]:
        """At the probe: record the inputs of the modules the adapter's layouts depend on."""
        import torch

        self._context = Context(input_hw=tuple(int(i) for i in x.shape[-2:]) if isinstance(x, torch.Tensor) and x.dim() == 4 else None)
        wanted = {c for m in self._pools if (c := self.bb.adapter.context_for(m)) is not None}
        modules = dict(self.bb.model.named_modules())
        handles = []

        def record(path: str) -> Any:
            def hook(module: Any, args: Any, kwargs: Any) -> None:
                if path not in self._context.calls:
                    self._context.calls[path] = (tuple(_summary(a) for a in args), {k: _summary(v) for k, v in kwargs.items()})

            return hook

        for path in wanted:
            if path in modules:
                handles.append(modules[path].register_forward_pre_hook(record(path), with_kwargs=True))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def _assemble(self, positions: np.ndarray, outputs: dict[str, list[Any]], failed: list[tuple[int, str]]) -> Batch:
        import torch

        features = {}
        captured: dict[str, int] = {}  # token variable -> the width its forward ran at
        for t in self.targets:
            per_module = []
            seen: dict[str, int] = {}
            for m in t.modules:
                k = self._pools[m].index(t.key)
                calls = [c[k] for c in outputs[m]]
                if t.name in self._split_calls:  # calls of different shapes: one variable each
                    for i, c in enumerate(calls):
                        features[f"{t.name}#{i}"] = _numpy(c)
                    break
                if t.stacked and t.modules.count(m) > 1:  # one module at every depth (ALBERT): depth i is its i-th call
                    seen[m] = seen.get(m, -1) + 1
                    per_module.append(calls[seen[m]])
                    continue
                per_module.append(calls[0] if len(calls) == 1 else torch.stack(calls, dim=1))
            else:
                x = self._stacks.take(t.name, per_module) if t.stacked else per_module[0]
                features[t.name], captured[t.name] = self._pad_token_axis(t.name, _numpy(x))
        coords: dict[str, np.ndarray] = {}
        if self.bb.modality == "text":
            coords = self._token_coords(positions)
            for name, arr in features.items():
                # padded positions hold NaN, whatever the model made of pads; past the width
                # the forward ran at (the longest text of the batch, not of this slice of it)
                # _pad_token_axis already wrote NaN
                spec = self.variables.get(name)
                if spec is not None and "token" in spec.dims:
                    axis = spec.dims.index("token")
                    width = captured.get(name, arr.shape[axis])
                    np.moveaxis(arr, axis, 1)[:, :width][~coords["mask"][:, :width]] = np.nan
        return Batch(positions, features, coords, failed)

    def _pad_token_axis(self, name: str, arr: np.ndarray) -> tuple[np.ndarray, int]:
        """`arr` padded with NaN to the run's token width, and the width it was captured at."""
        spec = self.variables.get(name)
        if self.bb.modality != "text" or spec is None or "token" not in spec.dims:
            return arr, 0
        axis = spec.dims.index("token")
        width = int(arr.shape[axis])
        missing = spec.shape[axis - 1] - width
        if missing <= 0:
            return arr, width
        if not np.issubdtype(arr.dtype, np.floating):
            arr = arr.astype(np.float32)
        pad = [(0, 0)] * arr.ndim
        pad[axis] = (0, missing)
        return np.pad(arr, pad, constant_values=np.nan), width

    def _token_coords(self, positions: np.ndarray) -> dict[str, np.ndarray]:
        from nbfeat.engine.tokens import tokenize

        text = np.full((len(positions), self._tmax), "", dtype=object)
        mask = np.zeros((len(positions), self._tmax), dtype=bool)
        texts = self.inputs.texts or []
        enc = tokenize(self.bb.tokenizer, [texts[int(p)] for p in positions], self.bb.max_length)
        for i in range(len(positions)):
            pieces = enc.pieces[i]
            text[i, : len(pieces)] = pieces
            mask[i, : len(pieces)] = True
        return {"token_text": text.astype(str), "mask": mask}

    # ---- the probe: variable specs before the first batch ----------------------------

    def _probe(self) -> dict[str, VarSpec]:
        """Run one input through the model to learn every variable's dims and shape."""
        import torch

        first = self._first_readable()
        _, x, failed = next(iter(self._loader(np.asarray([first]))))
        if x is None:
            raise InputError(f"Input {self.inputs.ids[first]!r} cannot be used: {failed[0][1]}.")
        self._check_tensor_inputs(x)
        sizes: list[int] = []
        handles = [m.register_forward_hook(_largest_output(sizes)) for m in self.bb.model.modules() if not isinstance(m, torch.jit.ScriptModule)]
        try:
            with self.bb.forward_lock, torch.inference_mode(), self._context_hooks(x), Capture(self.bb.model, list(self._pools), self._transform, early_exit=self._early_exit) as cap:
                try:
                    outputs = cap.run(lambda: self._forward(x))
                except (RuntimeError, ValueError, AssertionError, TypeError) as e:
                    if self.inputs.kind != "tensor" or _is_oom(e):
                        raise
                    raise InputError(f"The model rejected inputs of shape {tuple(x.shape)}: {str(e).splitlines()[0][:200]}") from None
                self._output_index.update(cap.output_index)
        finally:
            for h in handles:
                h.remove()
        self._row_bytes, self._row_elements = max(sizes, default=0) // _rows_count(x), _row_elements(x)
        self._check_rows(outputs, _rows_count(x))
        specs = {}
        for t in self.targets:
            k = [self._pools[m].index(t.key) for m in t.modules]
            calls = len(outputs[t.modules[0]]) // t.modules.count(t.modules[0])  # ALBERT: one call per depth
            shapes = {tuple(c[k[0]].shape) for c in outputs[t.modules[0]]}
            if len(shapes) > 1 and not t.stacked:
                # e.g. a Bottleneck's shared ReLU: 64, 64 then 256 channels
                self._split_calls.add(t.name)
                for i, c in enumerate(outputs[t.modules[0]]):
                    dims = pooled_dims(self._layouts[(t.modules[0], t.view)], t.pool, self.flatten)
                    attrs = {"module": t.modules[0], "call": i, "pool": str(t.pool) if t.pool else "", "output_index": self._output_index.get(t.modules[0], -1)}
                    specs[f"{t.name}#{i}"] = VarSpec(("sample", *dims), tuple(c[k[0]].shape[1:]), _numpy(c[k[0]][:0]).dtype, attrs)
                continue
            if t.stacked:
                self._check_stackable(t, [tuple(outputs[m][0][i].shape[1:]) for m, i in zip(t.modules, k)])
            sample = outputs[t.modules[0]][0][k[0]]
            layout = self._layouts[(t.modules[0], t.view)]
            dims = pooled_dims(layout, t.pool, self.flatten)
            shape = list(sample.shape[1:])
            if self.bb.modality == "text" and "token" in dims:
                shape[dims.index("token")] = self._tmax
            lead_dims, lead_shape = [], []
            if t.stacked:
                lead_dims.append("layer")
                lead_shape.append(len(t.modules))
            if calls > 1:
                # a source may name the calls (CORnet: time steps) and then runs whole forwards
                lead_dims.append(getattr(self.bb._loaded, "call_dims", {}).get(t.modules[0], "call"))
                lead_shape.append(calls)
            attrs: dict[str, Any] = {"pool": str(t.pool) if t.pool else "", "output_index": self._output_index.get(t.modules[0], -1)}
            if t.stacked:
                attrs["modules"] = json.dumps(list(t.modules))
            else:
                attrs["module"] = t.modules[0]
            depths = [self._relative_depth(m) for m in t.modules]
            if all(d is not None for d in depths):  # where the module sits in the block stack
                attrs["depths" if t.stacked else "depth"] = json.dumps(depths) if t.stacked else depths[0]
            if layout.note:
                attrs["layout"] = layout.note
            if t.view:
                attrs["stage"] = t.view
            attrs["family"] = self.bb.adapter.family
            if layout.grid and "token" in dims:
                attrs["prefix_tokens"] = layout.prefix_tokens
                attrs["grid"] = f"{layout.grid[0]}x{layout.grid[1]}"
            coords = {}
            if t.stacked:
                block_paths = list(t.blocks) or self.bb.nodes.get("block", list(t.modules))
                coords = {"layer": ("layer", np.arange(len(t.modules))), "module": ("layer", np.asarray(block_paths[: len(t.modules)], dtype=str))}
            specs[t.name] = VarSpec(("sample", *lead_dims, *dims), (*lead_shape, *shape), _numpy(sample[:0]).dtype, attrs, coords)
        return specs

    def _check_rows(self, outputs: dict[str, list[Any]], n: int) -> None:
        """Every captured output must have one row per input: a module that runs per window
        (Swin/SAM attention internals) or folds the batch elsewhere cannot be labelled per sample."""
        for path, calls in outputs.items():
            rows = int(calls[0][0].shape[0]) if calls and calls[0] and calls[0][0].dim() else n
            if rows != n:
                block = next((b for b in self.bb.blocks if path.startswith(b + ".")), None)
                hint = f" Its block's nodes are on the image grid: layers='{self.bb.adapter.roles(block).get('attn', block)}' or '{block}'." if block else " Pick its parent module."
                raise UnknownLayerError(f"Layer {path} of {self.bb.id} gives {rows} rows for {n} input(s) (it runs per window or folds the batch), so nbfeat cannot label it per sample.{hint}")

    def _relative_depth(self, path: str) -> float | None:
        """Position of the block holding `path` in the repeated blocks: 0.0 first, 1.0 last."""
        blocks = self.bb.blocks
        for i, b in enumerate(blocks):
            if path == b or path.startswith(b + "."):
                return round(i / (len(blocks) - 1), 6) if len(blocks) > 1 else 1.0
        return None

    def _check_stackable(self, t: Target, shapes: list[tuple[int, ...]]) -> None:
        if len(set(shapes)) > 1:
            first, other = shapes[0], next(sh for sh in shapes if sh != shapes[0])
            raise UnknownLayerError(
                f"nodes='{t.name}' stacks every depth along `layer`, but {self.bb.id}'s blocks differ in shape "
                f"({first} vs {other}{', even pooled' if t.pool else ''}). Extract them as separate variables: "
                f"layers=bb.blocks (or a glob such as 'layer4.*')."
            )

    def _check_tensor_inputs(self, x: Any) -> None:
        if self.inputs.kind != "tensor":
            return
        want = self.bb.input_size[0]
        if x.dim() != 4 or x.shape[1] != want:
            raise InputError(
                f"A model-ready tensor must be N x {want} x H x W (preprocessed like {self.bb.input_size}); got {tuple(x.shape)}."
            )

    def _first_readable(self) -> int:
        if self.inputs.kind == "text":
            good = [i for i in range(len(self.inputs)) if i not in self._text_failed]
            if not good:
                raise InputError("Every text is empty: nothing to extract.")
            return good[0]
        if self.inputs.kind == "tensor":
            items = self.inputs.items
            for start in range(0, len(items), self.batch_size):  # batch by batch: no full-size temporaries
                rows = items[start : start + self.batch_size]
                if _all_finite(rows):
                    return start
                finite = rows.flatten(1).isfinite().all(dim=1).nonzero()
                if len(finite):
                    return start + int(finite[0])
            raise InputError("The input tensor holds NaN or inf values; clean it first (torch.nan_to_num).")
        if self.inputs.kind == "images":  # in-memory images: the first that converts
            items = _ImageItems(self.inputs, None, self.bb.input_size[-1])
            reasons = []
            for i in range(min(len(self.inputs), 200)):
                _, ok, reason = items.decode(i)
                if ok is not None:
                    return i
                reasons.append(f"{self.inputs.ids[i]}: {reason}")
            raise InputError(f"None of the first {len(reasons)} images could be used (e.g. {reasons[0]}).")
        if self.inputs.kind != "files":
            return 0
        reasons = []
        for i, path in enumerate(self.inputs.paths[:200]):
            try:
                open_rgb(path, self.bb.input_size[-1])
                return i
            except ImageReadError as e:
                reasons.append(f"{self.inputs.ids[i]}: {e}")
        raise InputError(f"None of the first {len(reasons)} images could be read (e.g. {reasons[0]}).")


class _ImageItems:
    """Map-style dataset: position -> (position, CHW tensor or None, failure reason)."""

    def __init__(self, inputs: Inputs, preprocess: Any, side: int):
        self.inputs, self.preprocess, self.side = inputs, preprocess, side

    def __len__(self) -> int:
        return len(self.inputs)

    def __getitem__(self, pos: int) -> tuple[int, Any, str]:
        pos, img, reason = self.decode(pos)
        return pos, (self.preprocess(img) if img is not None else None), reason

    def decode(self, pos: int) -> tuple[int, Any, str]:
        """(position, RGB PIL image or None, failure reason)."""
        item = self.inputs.items[pos]
        try:
            if self.inputs.kind == "files":
                img = open_rgb(item, self.side)
            elif type(item).__module__.startswith("PIL."):
                from nbfeat.data.images import to_rgb

                img = to_rgb(item, self.side)
            else:
                img = array_to_pil(item.cpu().numpy() if hasattr(item, "cpu") else item)
            return pos, img, ""
        except ImageReadError as e:
            return pos, None, str(e)
        except (ValueError, TypeError) as e:  # a bad in-memory array: recorded like a bad file
            return pos, None, str(e).splitlines()[0][:200]


def _summary(value: Any) -> Any:
    """A module argument as the layout context keeps it: tensors as their shape."""
    import torch

    if isinstance(value, torch.Tensor):
        return tuple(int(i) for i in value.shape)
    if isinstance(value, tuple | list) and all(isinstance(v, int) for v in value):
        return tuple(value)
    return value if isinstance(value, int | float | str | bool | type(None)) else type(value).__name__


def _all_finite(x: Any) -> bool:
    """No NaN or inf anywhere in `x`: min and max in one pass (NaN propagates), no temporaries."""
    import torch

    lo, hi = torch.aminmax(x)
    return bool(torch.isfinite(lo) & torch.isfinite(hi))


def _rows(x: Any, sl: slice) -> Any:
    return tuple(t[sl] for t in x) if isinstance(x, tuple) else x[sl]


def _rows_count(x: Any) -> int:
    return int((x[0] if isinstance(x, tuple) else x).shape[0])


def _row_elements(x: Any) -> int:
    """Elements of one row of the model's (first) input: C x H x W pixels, or a text's tokens."""
    t = x[0] if isinstance(x, tuple) else x
    return max(1, int(t.numel()) // max(1, int(t.shape[0])))


def _is_oom(e: BaseException) -> bool:
    import torch

    return isinstance(e, torch.cuda.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())


def _free_device_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _cat_calls(parts: list[list[list[Any]]]) -> list[list[Any]]:
    """Join the captures of consecutive sub-batches: per call, per pooling, along the batch dim."""
    import torch

    return [[torch.cat(list(pools)) for pools in zip(*calls)] for calls in zip(*parts)]


def _largest_output(sizes: list[int]) -> Any:
    """A forward hook that appends the bytes of every tensor a module outputs to `sizes`."""
    import torch

    def hook(module: Any, args: Any, out: Any) -> None:
        items = out.values() if isinstance(out, dict) else out if isinstance(out, (tuple, list)) else (out,)
        sizes.extend(t.numel() * t.element_size() for t in items if isinstance(t, torch.Tensor))

    return hook


def _numpy(x: Any) -> np.ndarray:
    import torch

    return (x.float() if x.dtype == torch.bfloat16 else x).cpu().numpy()


def _collate(items: list[tuple[int, Any, str]]) -> tuple[list[int], Any, list[tuple[int, str]]]:
    import torch

    good = [(p, x) for p, x, _ in items if x is not None]
    failed = [(p, r) for p, x, r in items if x is None]
    x = torch.stack([x for _, x in good]) if good else None
    return [p for p, _ in good], x, failed


def _progress(batches: Iterable[Batch], total: int) -> Iterator[Batch]:
    from tqdm.auto import tqdm

    with tqdm(total=total, unit="img", desc="nbfeat", leave=False) as bar:
        for b in batches:
            bar.update(len(b.positions) + len(b.failed))
            yield b


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, PoolSpec):
        return [value.kind, value.size] if value.size else value.kind
    return value
