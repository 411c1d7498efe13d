"""The code a view gives, run in a fresh Python process, reproduces the shown array bit for bit.

Every case is shown in this process (the widget's own extraction, as a click makes it), its
code is taken from the widget, and all the codes run in ONE new interpreter that knows
nothing of this one. The arrays it saves must equal the ones the view showed, exactly.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from PIL import Image

import nbfeat
from nbfeat.examples import make_images, save_tiny_gpt2


def _shown(widget, layer, sample, depth=0):
    """What the view shows: ask as the front end does, then read the array it drew from."""
    widget.set_state({"layer": layer, "sample": sample, "depth": depth})
    reply, _ = widget.handle_request({"type": "nbfeat:request", "id": 1, "kind": "view", "sample": sample, "layer": layer, "depth": depth})
    assert reply["ok"], reply
    data = widget.source.layer(sample, layer, depth=depth)
    # a module called several times: the view shows one call (the depth picker)
    return data.values[depth] if data.dims[:1] == ("call",) else data.values


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    root = tmp_path_factory.mktemp("code")
    before = os.getcwd()
    os.chdir(root)  # relative paths, as in a notebook's folder
    folder = make_images("imgs", per_class=2, size=72)
    out = {}

    # a CNN, channels_last, a folder; two layers of different shapes selected (a DataTree)
    cnn = nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu", channels_last=True)
    ex = nbfeat.explore(cnn, folder)
    ex.tree.set_state({"selected": ["layer2", "layer3.1"], "focused": "layer3.1"})
    out["cnn_folder"] = (ex.browser, _shown(ex.browser, "layer3.1", 2))

    # a ViT with model_kwargs and a dtype, given a list of paths (more than it shows)
    paths = [str(p) for p in sorted(folder.rglob("*.png"))]
    vit = nbfeat.load("timm:vit_tiny_patch16_224", pretrained=False, device="cpu", model_kwargs={"img_size": 64}, dtype="bfloat16")
    w = nbfeat.browse(vit, paths, layer="blocks.1", max_samples=4)
    out["vit_paths_dtype"] = (w, _shown(w, "blocks.1", 3))

    # pooling, and a module called twice per forward (resnet's shared ReLU)
    w = nbfeat.browse(cnn, folder, pool=("avg2d", 2), layer="layer1")
    out["cnn_pool"] = (w, _shown(w, "layer1", 1))
    w = nbfeat.browse(cnn, folder, layer="layer1.0.relu")
    out["called_twice"] = (w, _shown(w, "layer1.0.relu", 0, depth=1))

    # text: a GPT-2-shaped model saved like a download, texts of different lengths
    gpt = nbfeat.load("hf:" + str(save_tiny_gpt2(root / "tiny-gpt2")), device="cpu")
    w = nbfeat.browse(gpt, ["the cat sat", "a much longer sentence about the sky"], layer="h.1")
    out["text"] = (w, _shown(w, "h.1", 1))
    yield root, out
    os.chdir(before)


def test_the_code_of_every_view_reproduces_the_array_in_a_fresh_process(cases):
    root, out = cases
    script = ["import numpy as np", "arrays = {}"]
    for name, (widget, _) in out.items():
        code = widget.code
        assert "nbfeat.load(" in code and "x = " in code, code
        script += [f"ns = {{}}\nexec({code!r}, ns)", f"arrays[{name!r}] = np.asarray(ns['x'].values)"]
    script.append("np.savez('fresh.npz', **arrays)")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(_repo()), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run([sys.executable, "-c", "\n".join(script)], cwd=root, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    fresh = np.load(root / "fresh.npz")
    for name, (_, shown) in out.items():
        got = fresh[name]
        assert got.shape == shown.shape, (name, got.shape, shown.shape)
        # the view keeps float32; a bfloat16 model's values are exact in float32
        assert np.array_equal(got.astype(np.float32), shown, equal_nan=True), name
        assert got.astype(np.float32).tobytes() == shown.tobytes(), name


def test_the_code_states_every_load_argument_and_how_inputs_were_built(cases):
    _, out = cases
    vit = out["vit_paths_dtype"][0].code
    assert "model_kwargs={'img_size': 64}" in vit and "dtype='bfloat16'" in vit and "pretrained=False" in vit
    assert "inputs = ['imgs/" in vit and "batch_size=4" in vit
    cnn = out["cnn_folder"][0].code
    assert "channels_last=True" in cnn and "inputs = 'imgs'  # a folder (6 inputs)" in cnn
    assert "layers=['layer2', 'layer3.1']" in cnn  # the tree's selection, not only the shown layer
    assert "pool=('avg2d', 2)" in out["cnn_pool"][0].code
    assert "call=1" in out["called_twice"][0].code or "#1" in out["called_twice"][0].code


def test_in_memory_inputs_are_said_to_be_in_memory(resnet):
    w = nbfeat.browse(resnet, [Image.new("RGB", (40, 40), (200, 10, 10))] * 2, layer="layer1")
    assert "# inputs: in-memory images (PIL images or arrays), 2 shown; they cannot be written as code." in w.code
    assert "inputs =" not in w.code


def test_results_code_names_the_variable_and_sample(resnet, tmp_path):
    folder = make_images(tmp_path / "imgs", per_class=1, size=48)
    ds = resnet.extract(folder, layers=["layer1", "layer4"], progress=False)
    w = nbfeat.browse(ds, layer="layer4")
    w.sample = 2
    ns = {"ds": ds}
    exec(textwrap.dedent(w.code), ns)
    assert np.array_equal(ns["x"].values, ds["layer4"]["layer4"].isel(sample=2).values if hasattr(ds, "children") else ds["layer4"].isel(sample=2).values)


def _repo():
    from pathlib import Path

    return Path(nbfeat.__file__).resolve().parents[1]
