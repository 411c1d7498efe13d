"""Forward hooks that copy outputs at capture and stop the forward pass early.

Each target module gets a hook that takes the hidden state out of tuple/ModelOutput outputs,
pools it, and keeps a private copy (an in-place op after the module must not change it).
Every call is kept, so a module called twice (resnet's shared `relu`) yields both outputs.

Early exit: once every target is *done*, the hook raises `StopForward` and the rest of the
model never runs. A target is done when its enclosing module finishes (so every call inside
it has happened); a target held directly by a Sequential/ModuleList, or by the model itself,
is called once and is done when it returns.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def _interrupts_deferred() -> Iterator[None]:
    """SIGINT held back (delivered on exit) in the main thread; elsewhere, nothing to do."""
    import signal
    import threading

    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


class StopForward(BaseException):
    """Raised from a hook to end the forward pass (BaseException: model code may catch Exception)."""


def hidden_state(output: Any) -> tuple[Any, int]:
    """The tensor to keep from a module output, and which tuple element it was (-1: not a tuple)."""
    import torch

    if isinstance(output, torch.Tensor):
        return output, -1
    if hasattr(output, "last_hidden_state") and output.last_hidden_state is not None:
        return output.last_hidden_state, 0
    if isinstance(output, tuple | list):
        for i, item in enumerate(output):
            if isinstance(item, torch.Tensor):
                return item, i
    if isinstance(output, dict):
        for i, item in enumerate(output.values()):
            if isinstance(item, torch.Tensor):
                return item, i
    raise TypeError(f"module output of type {type(output).__name__} holds no tensor")


def done_markers(model: Any, targets: list[str]) -> set[str]:
    """For each target, the module whose return means the target has finished all its calls."""
    import torch.nn as nn

    modules = dict(model.named_modules())
    markers = set()
    for path in targets:
        parent = path.rpartition(".")[0]
        holder = modules.get(parent, model)
        if parent == "" or isinstance(holder, nn.Sequential | nn.ModuleList | nn.ModuleDict):
            markers.add(path)
        else:
            markers.add(parent)
    return markers


class Capture:
    """Hooks on `targets` (module paths) of `model`; use as a context manager around forwards.

    `transform(path, tensor)` turns each captured tensor into the list of tensors kept
    (one per pooling asked of that module); it runs on the model's device.
    """

    def __init__(self, model: Any, targets: list[str], transform: Callable[[str, Any], Any], early_exit: bool = True):
        self.model = model
        self.targets = list(dict.fromkeys(targets))
        self.transform = transform
        self.early_exit = early_exit
        self.markers = done_markers(model, self.targets)
        self.outputs: dict[str, list[Any]] = {}
        self.output_index: dict[str, int] = {}
        self._fired: set[str] = set()
        self._handles: list[Any] = []

    def __enter__(self) -> Capture:
        modules = dict(self.model.named_modules())
        try:
            for path in self.targets:
                self._handles.append(modules[path].register_forward_hook(self._capture_hook(path)))
            if self.early_exit:
                for path in self.markers:
                    self._handles.append(modules[path].register_forward_hook(self._marker_hook(path)))
        except BaseException:  # a KeyboardInterrupt half-way: __exit__ would not run
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: Any) -> None:
        # Ctrl-C waits until every hook is off (remove() twice is harmless)
        with _interrupts_deferred():
            while self._handles:
                self._handles[-1].remove()
                self._handles.pop()

    def reset(self) -> None:
        self.outputs = {p: [] for p in self.targets}
        self._fired = set()

    def _capture_hook(self, path: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            tensor, index = hidden_state(output)
            self.output_index[path] = index
            live = tensor.untyped_storage().data_ptr()
            # A view of the live output is copied now, before an in-place op can change it;
            # not when this module is the last to run (the forward stops right after it).
            last = self.early_exit and path in self.markers and self.markers - self._fired == {path}
            kept = [k.clone() if k.untyped_storage().data_ptr() == live and not last else k for k in self.transform(path, tensor.detach())]
            self.outputs[path].append(kept)

        return hook

    def _marker_hook(self, path: str) -> Callable[..., None]:
        def hook(module: Any, args: Any, output: Any) -> None:
            self._fired.add(path)
            if len(self._fired) == len(self.markers):
                raise StopForward

        return hook

    def run(self, forward: Callable[[], Any]) -> dict[str, list[Any]]:
        """Run one forward pass, return {path: [per call: [one tensor per pooling]]}."""
        self.reset()
        try:
            forward()
        except StopForward:
            pass
        missing = [p for p in self.targets if not self.outputs[p]]
        if missing:
            raise RuntimeError(
                f"Layer {missing[0]} did not run in the forward pass (it may be unused by this model's forward); pick another layer."
            )
        return self.outputs
