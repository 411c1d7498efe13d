"""Simulated brain data with a known answer: responses made from one layer's features."""

from __future__ import annotations

import numpy as np
import xarray as xr

from nbfeat.brain.targets import responses


def ids(n):
    return [f"stim/{i:03d}.png" for i in range(n)]


def three_layers(n=120, widths=(15, 20, 10), seed=0) -> xr.DataTree:
    """Two 'models': m1 with layers a, b (b made the responses), m2 with layer c."""
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=(n, w)) for w in widths]
    s = ids(n)
    return xr.DataTree.from_dict({
        "/": xr.Dataset(coords={"sample": s}),
        "/m1": xr.Dataset(attrs={"model": "m1"}),
        "/m1/a": xr.Dataset({"a": (("sample", "channel"), xs[0])}),
        "/m1/b": xr.Dataset({"b": (("sample", "channel"), xs[1])}),
        "/m2": xr.Dataset({"c": (("sample", "channel"), xs[2])}, attrs={"model": "m2"}),
    })


def simulated(dt, layer="/m1/b", var="b", v=16, k=4, noise=2.0, seed=1):
    """responses = X_b W (unit variance per neuroid) + noise (sd `noise`), k repeats.

    Returns (responses, analytic r ceiling of the repeat average = sqrt(1 / (1 + noise^2 / k))).
    """
    rng = np.random.default_rng(seed)
    x = np.asarray(dt[layer][var].values)
    w = rng.normal(size=(x.shape[1], v))
    sig = x @ w
    sig = (sig - sig.mean(0)) / sig.std(0)
    vals = sig[:, :, None] + noise * rng.normal(size=(*sig.shape, k))
    region = ["V1"] * (v // 2) + ["IT"] * (v - v // 2)
    resp = responses(vals, samples=[str(s) for s in dt["sample"].values], neuroid_coords={"region": region})
    return resp, float(np.sqrt(1.0 / (1.0 + noise**2 / k)))
