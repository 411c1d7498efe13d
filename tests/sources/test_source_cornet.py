"""CORnet-Z/-S/-R/-RT vs forwards written here from the papers, with published-style checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import nbfeat


def bn(sd, p, x):
    return F.batch_norm(x, sd[p + ".running_mean"], sd[p + ".running_var"], sd[p + ".weight"], sd[p + ".bias"], False, 0.0, 1e-5)


def gn(sd, p, x):
    return F.group_norm(x, 32, sd[p + ".weight"], sd[p + ".bias"], 1e-5)


def conv(sd, p, x, stride=1, padding=0):
    return F.conv2d(x, sd[p + ".weight"], sd.get(p + ".bias"), stride=stride, padding=padding)


def z_forward(sd, x):
    out = {}
    for area, k, s in (("V1", 7, 2), ("V2", 3, 1), ("V4", 3, 1), ("IT", 3, 1)):
        x = F.max_pool2d(F.relu(conv(sd, f"{area}.conv", x, s, k // 2)), 3, 2, 1)
        out[area] = x
    return out


def s_forward(sd, x):
    out = {}
    x = F.relu(bn(sd, "V1.norm1", conv(sd, "V1.conv1", x, 2, 3)))
    x = F.max_pool2d(x, 3, 2, 1)
    x = F.relu(bn(sd, "V1.norm2", conv(sd, "V1.conv2", x, 1, 1)))
    out["V1"] = x
    for area, times in (("V2", 2), ("V4", 4), ("IT", 2)):
        steps = []
        x = conv(sd, f"{area}.conv_input", x)
        for t in range(times):
            skip = bn(sd, f"{area}.norm_skip", conv(sd, f"{area}.skip", x, 2)) if t == 0 else x
            h = F.relu(bn(sd, f"{area}.norm1_{t}", conv(sd, f"{area}.conv1", x)))
            h = F.relu(bn(sd, f"{area}.norm2_{t}", conv(sd, f"{area}.conv2", h, 2 if t == 0 else 1, 1)))
            x = F.relu(bn(sd, f"{area}.norm3_{t}", conv(sd, f"{area}.conv3", h)) + skip)
            steps.append(x)
        out[area] = torch.stack(steps, 1)
    return out


def r_forward(sd, img, times, lag):
    areas = (("V1", 7, 4), ("V2", 3, 2), ("V4", 3, 2), ("IT", 3, 2))
    state, outs = {}, {a: [] for a, _, _ in areas}

    def step(a, k, s, x, prev, shape):
        if x is None:
            x = torch.zeros(shape)
        else:
            x = F.relu(gn(sd, f"{a}.norm_input", conv(sd, f"{a}.conv_input", x, s, k // 2)))
        h = x if prev is None else x + prev
        return F.relu(gn(sd, f"{a}.norm1", conv(sd, f"{a}.conv1", h, 1, 1)))

    h, w = img.shape[-2:]
    shapes = {}
    for (a, k, s), c in zip(areas, (64, 128, 256, 512)):  # each area's output size: conv arithmetic
        h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
        shapes[a] = (img.shape[0], c, h, w)
    for i, (a, k, s) in enumerate(areas):
        state[a] = step(a, k, s, img if i == 0 else None, None, shapes.get(a))
        outs[a].append(state[a])
    for _ in range(1, times):
        below = dict(state) if lag else state
        for i, (a, k, s) in enumerate(areas):
            x = img if i == 0 else below[areas[i - 1][0]]
            state[a] = step(a, k, s, x, state[a], None)
            outs[a].append(state[a])
    return {a: torch.stack(v, 1) for a, v in outs.items()}


@pytest.mark.parametrize("name", ["cornet_z", "cornet_s", "cornet_r", "cornet_rt"])
def test_cornet_values_and_time_dim(name, tmp_path):
    from nbfeat.models.sources import cornet_arch

    sd = {k: v.detach().clone() for k, v in cornet_arch.BUILDERS[name]().state_dict().items()}
    if name != "cornet_z":  # BatchNorm statistics that are not the identity
        for k in sd:
            if k.endswith("running_var"):
                sd[k] = torch.rand_like(sd[k]) + 0.5
            elif k.endswith("running_mean"):
                sd[k] = torch.randn_like(sd[k]) * 0.1
    if name == "cornet_s":  # 53M parameters: skip the 200 MB file, same state dict
        bb = nbfeat.load(f"cornet:{name}", pretrained=False)
        bb.model.load_state_dict(sd)
    else:  # saved as the published checkpoints are: {"state_dict": ...} with DataParallel's "module."
        ckpt = tmp_path / f"{name}.pth"
        torch.save({"epoch": 1, "state_dict": {"module." + k: v for k, v in sd.items()}}, ckpt)
        bb = nbfeat.load(f"cornet:{name}", weights=str(ckpt))
        assert bb.provenance()["weights"].startswith("sha256:")
    x = torch.randn(2, 3, 64, 72)
    ds = bb.extract(x, layers=["V1", "V2", "V4", "IT"], progress=False)
    with torch.no_grad():
        if name == "cornet_z":
            ref = z_forward(sd, x)
        elif name == "cornet_s":
            ref = s_forward(sd, x)
        else:
            ref = r_forward(sd, x, 5, lag=name == "cornet_rt")
    for area in ("V1", "V2", "V4", "IT"):
        got = ds[area][area]
        np.testing.assert_allclose(got.values, ref[area].numpy(), rtol=1e-4, atol=1e-4, err_msg=f"{name} {area}")
        recurrent = name in ("cornet_r", "cornet_rt") or (name == "cornet_s" and area != "V1")
        assert ("time" in got.dims) == recurrent, (name, area, got.dims)


def test_cornet_names_and_published_urls():
    from nbfeat.models.sources import cornet_arch

    for alias in ("cornet-s", "CORnet-S", "cornet_s"):
        assert nbfeat.models.registry.lookup(alias).id == "cornet:cornet_s"
    assert all(u.startswith("https://s3.amazonaws.com/cornet-models/") for u in cornet_arch.URLS.values())
    with pytest.raises(nbfeat.errors.NbfeatError, match="times"):
        nbfeat.load("cornet:cornet_s", pretrained=False, model_kwargs={"times": 3})
    assert nbfeat.load("cornet:cornet_r", pretrained=False, model_kwargs={"times": 2}).model.times == 2
