"""%nbfeat and %%nbfeat in a real IPython shell: namespace, printed lines, values, errors."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from tests.conftest import write_images

REPO_MODEL = "torchvision:resnet18"


@pytest.fixture
def ip(shell, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]
    shell.run_line_magic("config", "NbfeatMagics.short_errors = True")


@pytest.fixture(scope="module")
def resnet(tmp_path_factory):
    """A random-weight resnet18 saved as a user's checkpoint, and the module for references."""
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.get_model("resnet18", weights=None).eval()
    path = tmp_path_factory.mktemp("ckpt") / "resnet18.pth"
    torch.save(model.state_dict(), path)
    return model, path


@pytest.fixture
def images(tmp_path):
    write_images(tmp_path / "images", n_per_class=2, size=(40, 52))
    return tmp_path / "images"


def run(ip, cell):
    return ip.run_cell(cell, store_history=False)


def ok(ip, cell):
    result = run(ip, cell)
    assert result.error_in_exec is None and result.error_before_exec is None, result.error_in_exec
    return result


def fails(ip, capsys, cell):
    """Run a cell that must fail with one clean line; returns that line."""
    from IPython.core.error import UsageError

    capsys.readouterr()
    result = run(ip, cell)
    assert isinstance(result.error_in_exec, UsageError), result.error_in_exec
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("UsageError: ")
    return err.removeprefix("UsageError: ")


def reference(model, batch, layer):
    """Output of `model.<layer>` for a preprocessed batch, by hand with a forward hook."""
    out = {}
    handle = model.get_submodule(layer).register_forward_hook(lambda m, i, o: out.setdefault("x", o.detach()))
    with torch.no_grad():
        model(batch)
    handle.remove()
    return out["x"]


def by_hand_batch(paths):
    from PIL import Image
    from torchvision.models import ResNet18_Weights

    transform = ResNet18_Weights.DEFAULT.transforms()
    return torch.stack([transform(Image.open(p).convert("RGB")) for p in paths])


def variable(result, name):
    """A variable from a Dataset or a DataTree (one node per variable)."""
    import xarray as xr

    if isinstance(result, xr.DataTree):
        node = result[name]
        return node[name] if isinstance(node, xr.DataTree) else node
    return result[name]


# ---- loading and help ------------------------------------------------------------------------


def test_load_ext_registers_line_and_cell_magic(ip):
    magics = ip.magics_manager.magics
    assert "nbfeat" in magics["line"] and "nbfeat" in magics["cell"]
    ok(ip, "%load_ext nbfeat")  # loading twice is harmless


def test_help_documents_every_subcommand(ip, capsys):
    ok(ip, "%nbfeat help")
    out = capsys.readouterr().out
    for words in ("%nbfeat models", "%nbfeat tree", "%nbfeat extract", "%nbfeat browse", "%nbfeat explore", "%nbfeat help", "%%nbfeat"):
        assert words in out
    for flag in ("--inputs", "--layers", "--pool", "--out", "-o NAME", "--set"):
        assert flag in out
    doc = ip.find_line_magic("nbfeat").__doc__
    assert doc.strip() == out.strip()
    ok(ip, "%nbfeat help extract")
    extract_help = capsys.readouterr().out
    assert "%nbfeat extract" in extract_help and "--layers" in extract_help and "%nbfeat tree" not in extract_help
    ok(ip, "%nbfeat extract -h")
    assert capsys.readouterr().out.strip() == extract_help.strip()
    ok(ip, "%nbfeat help %%nbfeat")
    assert "inputs: images/" in capsys.readouterr().out


def test_question_mark_shows_the_help(ip, capsys):
    ok(ip, "%nbfeat?")
    out = capsys.readouterr().out
    assert "%nbfeat extract" in out and "--layers" in out and "%%nbfeat" in out


# ---- models ----------------------------------------------------------------------------------


def test_models_returns_the_table(ip):
    import nbfeat

    result = ok(ip, "%nbfeat models resnet1")
    table = result.result
    expected = nbfeat.list_models("resnet1")
    assert list(table["id"]) == list(expected["id"])
    assert "torchvision:resnet18" in set(table["id"])
    assert all("resnet1" in i.lower() or "resnet1" in f.lower() for i, f in zip(table["id"], table["family"]))


def test_models_without_a_match_says_so(ip, capsys):
    result = ok(ip, "%nbfeat models zzz_no_such_model")
    assert result.result is None
    assert "No model id matches 'zzz_no_such_model'" in capsys.readouterr().out


# ---- extract (line) --------------------------------------------------------------------------


def test_extract_binds_name_prints_one_line_and_values_match(ip, capsys, resnet, images):
    model, ckpt = resnet
    capsys.readouterr()
    ok(ip, f"%nbfeat extract {REPO_MODEL} --weights {ckpt} --inputs images --layers layer3 layer4 --pool layer3=avg2d:2 layer4=mean -o feats")
    out = capsys.readouterr().out.strip().splitlines()
    assert out == ["feats = DataTree, 4 samples: layer3 (channel 256, y 2, x 2), layer4 (channel 512)"]
    feats = ip.user_ns["feats"]
    assert list(feats["sample"].values) == ["cats/img0.png", "cats/img1.png", "dogs/img0.png", "dogs/img1.png"]
    assert list(feats["label"].values) == ["cats", "cats", "dogs", "dogs"]
    batch = by_hand_batch([images / s for s in feats["sample"].values])
    l3 = torch.nn.functional.adaptive_avg_pool2d(reference(model, batch, "layer3"), 2)
    l4 = reference(model, batch, "layer4").mean(dim=(2, 3))
    torch.testing.assert_close(torch.as_tensor(variable(feats, "layer3").values), l3, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(torch.as_tensor(variable(feats, "layer4").values), l4, rtol=1e-4, atol=1e-4)


def test_extract_without_name_returns_the_result(ip, resnet):
    model, ckpt = resnet
    x = torch.randn(3, 3, 64, 64)
    ip.user_ns["batch"] = x
    result = ok(ip, f"%nbfeat extract {REPO_MODEL} --weights {ckpt} --inputs batch --layers -1 --pool mean")
    ds = result.result
    assert ds is not None and "feats" not in ip.user_ns
    (name,) = [k for k in ds.data_vars] if hasattr(ds, "data_vars") and ds.data_vars else [None]
    expected = reference(model, x, "layer4.1").mean(dim=(2, 3))
    torch.testing.assert_close(torch.as_tensor(ds[name].values), expected, rtol=1e-4, atol=1e-4)
    assert list(ds["sample"].values) == ["0", "1", "2"]


def test_extract_inputs_from_a_list_of_pil_images(ip, capsys, resnet, images):
    from PIL import Image

    model, ckpt = resnet
    paths = sorted(images.rglob("*.png"))[:3]
    ip.user_ns["pics"] = [Image.open(p).convert("RGB") for p in paths]
    ok(ip, f"%nbfeat extract {REPO_MODEL} --weights {ckpt} -i pics -l layer4 -p mean -o f")
    assert capsys.readouterr().out.startswith("f = ")
    f = ip.user_ns["f"]
    expected = reference(model, by_hand_batch(paths), "layer4").mean(dim=(2, 3))
    torch.testing.assert_close(torch.as_tensor(variable(f, "layer4").values), expected, rtol=1e-4, atol=1e-4)


def test_extract_with_a_loaded_backbone_variable(ip, resnet, images):
    import nbfeat

    model, ckpt = resnet
    ip.user_ns["bb"] = nbfeat.load(REPO_MODEL, weights=str(ckpt), device="cpu")
    ok(ip, "%nbfeat extract bb --inputs images --layers layer4 --pool max -o g")
    g = ip.user_ns["g"]
    paths = [images / s for s in g["sample"].values]
    expected = reference(model, by_hand_batch(paths), "layer4").amax(dim=(2, 3))
    torch.testing.assert_close(torch.as_tensor(variable(g, "layer4").values), expected, rtol=1e-4, atol=1e-4)


def test_extract_code_prints_the_equivalent_call(ip, capsys, images):
    ip.user_ns["pics"] = ["images/cats/img0.png"]
    ok(ip, f"%nbfeat extract {REPO_MODEL} --inputs pics --layers layer3,layer4 --pool mean --random --code")
    assert capsys.readouterr().out.strip() == "nbfeat.extract('torchvision:resnet18', pics, layers=['layer3', 'layer4'], pool='mean', pretrained=False)"


def test_extract_streams_to_a_store(ip, capsys, resnet, images):
    model, ckpt = resnet
    ok(ip, f"%nbfeat extract {REPO_MODEL} --weights {ckpt} --inputs images --layers layer4 --pool mean --out feats.zarr -o s")
    assert (images.parent / "feats.zarr").is_dir()
    s = ip.user_ns["s"]
    paths = [images / x for x in s["sample"].values]
    expected = reference(model, by_hand_batch(paths), "layer4").mean(dim=(2, 3))
    np.testing.assert_allclose(np.asarray(variable(s, "layer4").values), expected.numpy(), rtol=1e-4, atol=1e-4)


# ---- extract (cell) ---------------------------------------------------------------------------


def test_cell_magic_runs_the_yaml_config(ip, capsys, resnet, images):
    model, ckpt = resnet
    capsys.readouterr()
    ok(ip, f"%%nbfeat -o feats\nmodel: {REPO_MODEL}\nweights: {ckpt}\ninputs: images/\nlayers:\n  layer3: {{pool: [avg2d, 2]}}\n  layer4: {{pool: mean}}\n")
    assert capsys.readouterr().out.strip() == "feats = DataTree, 4 samples: layer3 (channel 256, y 2, x 2), layer4 (channel 512)"
    feats = ip.user_ns["feats"]
    batch = by_hand_batch([images / s for s in feats["sample"].values])
    l3 = torch.nn.functional.adaptive_avg_pool2d(reference(model, batch, "layer3"), 2)
    torch.testing.assert_close(torch.as_tensor(variable(feats, "layer3").values), l3, rtol=1e-4, atol=1e-4)
    assert feats.attrs["model"] == REPO_MODEL


def test_cell_line_flags_and_set_override_the_body(ip, capsys, images):
    ip.user_ns["pics"] = ["images/cats/img0.png"]
    body = f"model: {REPO_MODEL}\ninputs: pics\nlayers: {{layer4: {{pool: mean}}}}\nbatch_size: 2\n"
    ok(ip, "%%nbfeat --code --random --set layers.layer4.pool=max --set batch_size=8\n" + body)
    assert capsys.readouterr().out.strip() == "nbfeat.extract('torchvision:resnet18', pics, layers=['layer4'], pool={'layer4': 'max'}, batch_size=8, pretrained=False)"
    assert "feats" not in ip.user_ns


def test_cell_without_name_returns_the_result(ip, images):
    result = ok(ip, f"%%nbfeat\nmodel: {REPO_MODEL}\npretrained: false\ninputs: images\nlayers: layer4\npool: mean\n")
    assert result.result is not None and result.result.sizes["sample"] == 4


def test_text_inputs_from_a_variable(ip, tmp_path):
    from nbfeat.examples import SENTENCES, save_tiny_gpt2

    path = save_tiny_gpt2(tmp_path / "gpt2")
    ip.user_ns["sentences"] = SENTENCES[:2]
    ok(ip, f"%%nbfeat -o tok\nmodel: hf:{path}\ninputs: sentences\nnodes: block\npool: last\n")
    tok = ip.user_ns["tok"]
    block = variable(tok, "block")
    assert block.dims == ("sample", "layer", "channel") and block.sizes["layer"] == 2

    from transformers import AutoModel, AutoTokenizer

    model, tk = AutoModel.from_pretrained(path).eval(), AutoTokenizer.from_pretrained(path)
    for i, text in enumerate(SENTENCES[:2]):
        with torch.no_grad():
            hidden = model(**tk(text, return_tensors="pt"), output_hidden_states=True).hidden_states
        # block outputs are hidden_states[1:], except that GPT-2 applies ln_f to the last one
        torch.testing.assert_close(torch.as_tensor(block.values[i, 0]), hidden[1][0, -1], rtol=1e-4, atol=1e-4)


# ---- errors: one line, no traceback ------------------------------------------------------------


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("%nbfeat extrct", "Unknown %nbfeat subcommand 'extrct'. Did you mean 'extract'?"),
        ("%nbfeat extract timm:resnt50 --inputs images --random", "Unknown model 'timm:resnt50'. Did you mean: timm:resnet50"),
        (f"%nbfeat extract {REPO_MODEL} --inputs images --layers layer9 --random", "Unknown layer 'layer9'"),
        (f"%nbfeat extract {REPO_MODEL} --layers layer4", "needs --inputs"),
        (f"%nbfeat extract {REPO_MODEL} --inputs imgs", "--inputs 'imgs': no variable or path of that name."),
        (f"%nbfeat extract {REPO_MODEL} --inputs images --batch-size x", "%nbfeat extract: argument --batch-size: invalid int value: 'x'"),
        (f"%nbfeat extract {REPO_MODEL} --inputs images --bogus", "%nbfeat extract: unrecognized arguments: --bogus"),
        (f"%nbfeat extract {REPO_MODEL} --inputs images --pool avg2d", "'avg2d' needs an output size"),
        (f"%nbfeat extract {REPO_MODEL} --inputs images -o 1x --random", "-o 1x: not a valid Python variable name."),
        ("%nbfeat browse nothing_here", "%nbfeat browse: no variable or store named 'nothing_here'."),
        (f"%%nbfeat\nmodel: {REPO_MODEL}\ninputs: images\nlayer: layer4\n", "Unknown config key 'layer'. Did you mean 'layers'?"),
        ("%%nbfeat\nmodel: !!python/object/apply:os.system [echo hi]\ninputs: images\n", "the tag '!!python/object/apply:os.system' is not allowed"),
        ("%%nbfeat\n\n", "the cell is empty"),
        ("%%nbfeat\n- a\n- b\n", "must hold a YAML mapping"),
    ],
)
def test_user_mistakes_are_one_line(ip, capsys, images, cell, expected):
    line = fails(ip, capsys, cell)
    assert expected in line


def test_short_errors_off_shows_the_real_exception(ip, capsys, images):
    from nbfeat.errors import UnknownModelError

    ok(ip, "%config NbfeatMagics.short_errors = False")
    result = run(ip, "%nbfeat extract timm:resnt50 --inputs images --random")
    assert isinstance(result.error_in_exec, UnknownModelError)


def test_config_settings_are_listed(ip, capsys):
    ok(ip, "%config NbfeatMagics")
    out = capsys.readouterr().out
    assert "progress" in out and "short_errors" in out and "device" in out


# ---- widgets (need nbfeat.widgets) ---------------------------------------------------------------


def test_tree_browse_explore_return_widgets(ip, images):
    widgets = pytest.importorskip("nbfeat.widgets")
    if not all(hasattr(widgets, name) for name in ("tree", "browse", "explore")):
        pytest.skip("nbfeat.widgets does not provide tree/browse/explore yet")
    tree = ok(ip, f"%nbfeat tree {REPO_MODEL}").result
    assert isinstance(tree, widgets.TreeWidget)
    assert {"layer4", "layer4.1.conv2"} <= {r["path"] for r in tree.rows}
    ok(ip, f"%nbfeat extract {REPO_MODEL} --random --inputs images --layers layer4 --pool mean -o feats")
    browser = ok(ip, "%nbfeat browse feats").result
    assert isinstance(browser, widgets.BrowserWidget)
    assert "layer4" in browser.layers and len(browser.samples) == 4
    explorer = ok(ip, f"%nbfeat explore {REPO_MODEL} --random --inputs images").result
    assert isinstance(explorer, widgets.Explorer)
    assert explorer.bb.id == REPO_MODEL and explorer.bb.pretrained is False
    assert widgets is sys.modules["nbfeat.widgets"]
