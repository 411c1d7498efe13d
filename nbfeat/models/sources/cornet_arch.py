"""CORnet-Z, -S, -R and -RT (Kubilius et al., 2018 arXiv:1909.06161; NeurIPS 2019), written
from the papers' descriptions. Areas V1, V2, V4, IT and a decoder, with the parameter names of
the published checkpoints (so `load_state_dict` takes them once `module.` is stripped).

Recurrent areas are *called once per time step* by the model's forward (CORnet-S: V2, V4 and
IT unroll 2, 4 and 2 steps; CORnet-R/-RT: every area, `times` steps), so a hook on `V4` sees
one output per step: nbfeat stacks them along a `time` dim.

>>> m = cornet_s()                      # random weights
>>> sorted(m.recurrent)
['IT', 'V2', 'V4']
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import torch
from torch import nn


class Flatten(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.size(0), -1)


class Identity(nn.Module):
    """Names a block's output (`V2.output`), as in the published models."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def _decoder(with_output: bool) -> nn.Sequential:
    parts: list[tuple[str, nn.Module]] = [("avgpool", nn.AdaptiveAvgPool2d(1)), ("flatten", Flatten()), ("linear", nn.Linear(512, 1000))]
    if with_output:
        parts.append(("output", Identity()))
    return nn.Sequential(OrderedDict(parts))


# ---- CORnet-Z: four conv-relu-pool areas ---------------------------------------------


class AreaZ(nn.Module):
    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2)
        self.nonlin = nn.ReLU(inplace=True)
        self.pool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.output = Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.pool(self.nonlin(self.conv(x))))


class CORnetZ(nn.Module):
    recurrent: tuple[str, ...] = ()

    def __init__(self) -> None:
        super().__init__()
        self.V1 = AreaZ(3, 64, kernel_size=7, stride=2)
        self.V2 = AreaZ(64, 128)
        self.V4 = AreaZ(128, 256)
        self.IT = AreaZ(256, 512)
        self.decoder = _decoder(True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.IT(self.V4(self.V2(self.V1(x)))))


# ---- CORnet-S: a feedforward V1, then bottleneck areas unrolled in time ---------------


class AreaS(nn.Module):
    """One CORnet-S area. Call with step t: t=0 takes the lower area's output (input conv,
    strided skip); t>0 takes this area's previous output (identity skip, stride 1)."""

    scale = 4

    def __init__(self, cin: int, cout: int, times: int):
        super().__init__()
        self.times = times
        wide = cout * self.scale
        self.conv_input = nn.Conv2d(cin, cout, kernel_size=1, bias=False)
        self.skip = nn.Conv2d(cout, cout, kernel_size=1, stride=2, bias=False)
        self.norm_skip = nn.BatchNorm2d(cout)
        self.conv1 = nn.Conv2d(cout, wide, kernel_size=1, bias=False)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(wide, wide, kernel_size=3, stride=2, padding=1, bias=False)
        self.nonlin2 = nn.ReLU(inplace=True)
        self.conv3 = nn.Conv2d(wide, cout, kernel_size=1, bias=False)
        self.nonlin3 = nn.ReLU(inplace=True)
        self.output = Identity()
        for t in range(times):  # a BatchNorm per time step, as trained
            setattr(self, f"norm1_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm2_{t}", nn.BatchNorm2d(wide))
            setattr(self, f"norm3_{t}", nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor, t: int = 0) -> torch.Tensor:
        if t == 0:
            x = self.conv_input(x)
            skip = self.norm_skip(self.skip(x))
            self.conv2.stride = (2, 2)
        else:
            skip = x
            self.conv2.stride = (1, 1)
        x = self.nonlin1(getattr(self, f"norm1_{t}")(self.conv1(x)))
        x = self.nonlin2(getattr(self, f"norm2_{t}")(self.conv2(x)))
        x = getattr(self, f"norm3_{t}")(self.conv3(x)) + skip
        return self.output(self.nonlin3(x))


class CORnetS(nn.Module):
    recurrent = ("V2", "V4", "IT")

    def __init__(self) -> None:
        super().__init__()
        self.V1 = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)),
                    ("norm1", nn.BatchNorm2d(64)),
                    ("nonlin1", nn.ReLU(inplace=True)),
                    ("pool", nn.MaxPool2d(kernel_size=3, stride=2, padding=1)),
                    ("conv2", nn.Conv2d(64, 64, kernel_size=3, stride=1, padding=1, bias=False)),
                    ("norm2", nn.BatchNorm2d(64)),
                    ("nonlin2", nn.ReLU(inplace=True)),
                    ("output", Identity()),
                ]
            )
        )
        self.V2 = AreaS(64, 128, times=2)
        self.V4 = AreaS(128, 256, times=4)
        self.IT = AreaS(256, 512, times=2)
        self.decoder = _decoder(True)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
                m.weight.data.normal_(0, math.sqrt(2.0 / n))
            elif isinstance(m, nn.BatchNorm2d):
                m.weight.data.fill_(1)
                m.bias.data.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.V1(x)
        for area in (self.V2, self.V4, self.IT):
            for t in range(area.times):
                x = area(x, t)
        return self.decoder(x)


# ---- CORnet-R and -RT: every area recurrent, `times` steps --------------------------


class AreaR(nn.Module):
    """One CORnet-R/-RT area: input conv (skipped when no input has arrived yet), added to
    the area's state, then conv-norm-relu. Returns the new state (also its output)."""

    def __init__(self, cin: int, cout: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.out_channels = cout
        self.conv_input = nn.Conv2d(cin, cout, kernel_size, stride=stride, padding=kernel_size // 2)
        self.norm_input = nn.GroupNorm(32, cout)
        self.nonlin_input = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cout, cout, kernel_size=3, padding=1, bias=False)
        self.norm1 = nn.GroupNorm(32, cout)
        self.nonlin1 = nn.ReLU(inplace=True)
        self.output = Identity()

    def forward(self, x: torch.Tensor | None, state: torch.Tensor | None, like: torch.Tensor, hw: tuple[int, int]) -> torch.Tensor:
        if x is None:  # nothing has reached this area yet (t=0 above V1)
            x = like.new_zeros((like.shape[0], self.out_channels, *hw))
        else:
            x = self.nonlin_input(self.norm_input(self.conv_input(x)))
        skip = x if state is None else x + state
        return self.output(self.nonlin1(self.norm1(self.conv1(skip))))


def _conv_out(size: int, kernel: int, stride: int) -> int:
    return (size + 2 * (kernel // 2) - kernel) // stride + 1


class CORnetR(nn.Module):
    """CORnet-R; `feedforward_lag=True` gives CORnet-RT (each area reads the area below at the
    previous step, so information climbs one area per step)."""

    recurrent = ("V1", "V2", "V4", "IT")

    def __init__(self, times: int = 5, feedforward_lag: bool = False):
        super().__init__()
        self.times = int(times)
        self.feedforward_lag = feedforward_lag
        self.V1 = AreaR(3, 64, kernel_size=7, stride=4)
        self.V2 = AreaR(64, 128, stride=2)
        self.V4 = AreaR(128, 256, stride=2)
        self.IT = AreaR(256, 512, stride=2)
        self.decoder = _decoder(False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        names = ("V1", "V2", "V4", "IT")
        h, w = image.shape[-2:]
        sizes = []
        for k, s in ((7, 4), (3, 2), (3, 2), (3, 2)):  # the spatial size each area makes
            h, w = _conv_out(h, k, s), _conv_out(w, k, s)
            sizes.append((h, w))
        out: dict[str, torch.Tensor | None] = {}
        for i, name in enumerate(names):  # t = 0: only V1 has an input
            out[name] = getattr(self, name)(image if i == 0 else None, None, image, sizes[i])
        for _ in range(1, self.times):
            below = dict(out) if self.feedforward_lag else out  # RT: last step's outputs
            for i, name in enumerate(names):
                x = image if i == 0 else below[names[i - 1]]
                out[name] = getattr(self, name)(x, out[name], image, sizes[i])
        return self.decoder(out["IT"])


def cornet_z() -> CORnetZ:
    return CORnetZ()


def cornet_s() -> CORnetS:
    return CORnetS()


def cornet_r(times: int = 5) -> CORnetR:
    return CORnetR(times=times)


def cornet_rt(times: int = 5) -> CORnetR:
    return CORnetR(times=times, feedforward_lag=True)


BUILDERS: dict[str, Any] = {"cornet_z": cornet_z, "cornet_s": cornet_s, "cornet_r": cornet_r, "cornet_rt": cornet_rt}
# the published checkpoints (dicarlolab/CORnet), keys under "state_dict" with a "module." prefix
URLS = {
    "cornet_z": "https://s3.amazonaws.com/cornet-models/cornet_z-5c427c9c.pth",
    "cornet_r": "https://s3.amazonaws.com/cornet-models/cornet_r-5930a990.pth",
    "cornet_rt": "https://s3.amazonaws.com/cornet-models/cornet_rt-933c001c.pth",
    "cornet_s": "https://s3.amazonaws.com/cornet-models/cornet_s-1d3f7974.pth",
}
