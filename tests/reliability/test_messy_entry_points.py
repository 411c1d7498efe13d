"""Every bad input through the magic, the CLI and YAML: a correct result or one clear line.

One messy folder (see messy.py) serves the whole module. A run over it must finish the good
images with the values Python gives and record each bad one, whatever the entry point; inputs
that cannot work at all give one line (a UsageError in the notebook, exit status 2 on the
command line). Only three commands run as real subprocesses (each imports torch); the other
command-line cases call `nbfeat.cli.main` in this process, which is the same code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from IPython.core.error import UsageError

import nbfeat
from nbfeat.cli import main as cli_main
from tests.reliability.messy import BAD, GOOD, MESSY, UNICODE_DIR, build_messy

ROOT = Path(__file__).resolve().parents[2]
MODEL = "torchvision:resnet18"
LONG_TEXT = "word " * 500  # far past the tiny GPT-2's 64-token context


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    from nbfeat.examples import save_tiny_gpt2

    root = tmp_path_factory.mktemp("project")
    build_messy(root / MESSY)
    (root / "empty folder").mkdir()
    save_tiny_gpt2(root / "gpt2")
    return root


@pytest.fixture(scope="module")
def reference(project):
    """What the Python API gives for the messy folder (random weights, seeded)."""
    bb = nbfeat.load(MODEL, pretrained=False, device="cpu")
    return bb.extract(project / MESSY, layers="layer1", pool="mean", progress=False)


def assert_messy_result(ds, reference):
    """Good images out, in folder order, with the Python values; every bad one recorded."""
    assert list(np.asarray(ds["sample"].values)) == GOOD
    np.testing.assert_allclose(np.asarray(ds["layer1"].values), reference["layer1"].values, rtol=1e-5, atol=1e-6)
    failed = {r["sample"]: r["reason"] for r in json.loads(ds.attrs["failed"])}
    assert sorted(failed) == sorted(BAD)
    for sample, reason in BAD.items():
        assert reason in failed[sample], (sample, failed[sample])
    assert ds.attrs["n_failed"] == len(BAD)


def test_python_reference_is_the_expected_split(reference):
    assert_messy_result(reference, reference)
    assert np.isfinite(reference["layer1"].values).all()


# ---- the magics ----------------------------------------------------------------------------


@pytest.fixture
def ip(shell, project, monkeypatch):
    monkeypatch.chdir(project)
    before = set(shell.user_ns)
    yield shell
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]


def ok(ip, cell):
    result = ip.run_cell(cell, store_history=False)
    assert result.error_before_exec is None and result.error_in_exec is None, result.error_in_exec
    return result.result


def one_line(ip, capsys, cell):
    """Run a cell that must fail with one UsageError line, no traceback; returns the line."""
    capsys.readouterr()
    result = ip.run_cell(cell, store_history=False)
    assert isinstance(result.error_in_exec, UsageError), repr(result.error_in_exec)
    err = without_load_bars(capsys.readouterr().err)
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err.removeprefix("UsageError: ")


def without_load_bars(err):
    # transformers draws a "Loading weights" bar on stderr even with progress off: reported to
    # the models owner; it is noise, not an error message
    return "\n".join(line for line in err.splitlines() if not line.startswith("Loading weights")).strip()


def test_magic_line_on_the_messy_folder_with_a_quoted_path(ip, capsys, reference):
    capsys.readouterr()
    ok(ip, f'%nbfeat extract {MODEL} --random --inputs "{MESSY}/" --layers layer1 --pool mean -o feats')
    assert capsys.readouterr().out.strip() == f"feats = Dataset, {len(GOOD)} samples: layer1 (channel 64)"
    assert_messy_result(ip.user_ns["feats"], reference)
    # single quotes and backslash-escaped spaces work too, as in a shell
    sub = f"{MESSY}/{UNICODE_DIR}"
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs '{sub}' --layers layer1 --pool mean -o again")
    escaped = sub.replace(" ", "\\ ")
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs {escaped} --layers layer1 --pool mean -o third")
    for name in ("again", "third"):
        assert list(ip.user_ns[name]["sample"].values) == ["photo 1 ✓.png"]


def test_magic_cell_yaml_streams_the_messy_folder_to_a_store(ip, capsys, project, reference):
    store = project / "cell store.zarr"
    capsys.readouterr()
    ok(ip, f"%%nbfeat -o streamed\nmodel: {MODEL}\npretrained: false\ninputs: {MESSY}/\nlayers: {{layer1: {{pool: mean}}}}\nout: {store.name}\n")
    assert capsys.readouterr().out.strip() == f"streamed = Dataset, {len(GOOD)} samples: layer1 (channel 64)"
    assert_messy_result(ip.user_ns["streamed"], reference)
    assert_messy_result(nbfeat.open(store), reference)  # the failures are in the store too


def test_magic_glob_through_a_symlink_loop_lists_each_file_once(ip, project):
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/**/*.png' --layers layer1 --pool mean -o pngs")
    ds = ip.user_ns["pngs"]
    want = [s for s in GOOD if s.endswith(".png")]  # .PNG does not match *.png, as in a shell
    assert list(ds["sample"].values) == want  # once each, although `loop` leads back to the root
    failed = sorted(r["sample"] for r in json.loads(ds.attrs["failed"]))
    assert failed == sorted(s for s in BAD if s.endswith(".png"))


@pytest.fixture
def bad_values(ip):
    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    ip.user_ns.update(
        nan_tensor=torch.full((2, 3, 32, 32), float("nan")),
        inf_tensor=torch.full((1, 3, 32, 32), float("inf")),
        int_tensor=torch.zeros(2, 3, 32, 32, dtype=torch.int32),
        gray_tensor=torch.zeros(2, 1, 32, 32),
        five_d=torch.zeros(2, 3, 4, 4, 4),
        no_samples=torch.zeros(0, 3, 32, 32),
        nan_image=np.full((30, 40, 3), np.nan, np.float32),
        seven_channels=np.zeros((2, 30, 40, 7), np.uint8),
        with_none=[rgb, None],
        empty_list=[],
        empty_texts=["", ""],
    )


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/bad'", "None of the first 11 images could be read (e.g. bomb.png: image larger than"),
        (f"%nbfeat extract {MODEL} --random --inputs 'empty folder'", "No images found in"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/empty sub-folder'", "No images found in"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/bad/zero.png'", "(e.g. zero.png: empty file (0 bytes))"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/bad/text.jpg'", "(e.g. text.jpg: not an image"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/bad/self_loop.png'", "Too many levels of symbolic links"),
        (f"%nbfeat extract {MODEL} --random --inputs 'no such folder/'", "No such file or folder: 'no such folder/'"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/*.nothing'", "No files match"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}/a**b'", "Cannot use the glob"),
        (f"%nbfeat extract {MODEL} --random --inputs '{MESSY}", "No closing quotation"),
        (f"%nbfeat extract {MODEL} --random --inputs nan_tensor", "The input tensor holds NaN or inf values"),
        (f"%nbfeat extract {MODEL} --random --inputs inf_tensor", "The input tensor holds NaN or inf values"),
        (f"%nbfeat extract {MODEL} --random --inputs int_tensor", "A model-ready tensor must be float; got torch.int32."),
        (f"%nbfeat extract {MODEL} --random --inputs gray_tensor", "must be N x 3 x H x W"),
        (f"%nbfeat extract {MODEL} --random --inputs five_d", "Cannot use an array of shape (2, 3, 4, 4, 4)"),
        (f"%nbfeat extract {MODEL} --random --inputs no_samples", "No inputs to extract from"),
        (f"%nbfeat extract {MODEL} --random --inputs nan_image", "the image array holds NaN or inf"),
        (f"%nbfeat extract {MODEL} --random --inputs seven_channels", "got shape (30, 40, 7)"),
        (f"%nbfeat extract {MODEL} --random --inputs with_none", "Input 1 is a NoneType"),
        (f"%nbfeat extract {MODEL} --random --inputs empty_list", "No inputs to extract from"),
        ("%nbfeat extract hf:gpt2 --inputs empty_texts", "Every text is empty"),
        (f"%%nbfeat\nmodel: {MODEL}\ninputs: [\n", "Config is not valid YAML"),
        (f"%%nbfeat\nmodel: {MODEL}\ninputs: !!int x\n", "a value could not be read"),
        (f"%%nbfeat\nmodel: {MODEL}\ninputs: 5\n", "'inputs' must be a path, a glob, or a list of paths or texts, got 5."),
        (f'%%nbfeat\nmodel: {MODEL}\ninputs: images\n"lay\\ner": x\n', "Unknown config key 'lay\\ner'"),
    ],
)
def test_magic_bad_inputs_give_one_line(ip, capsys, bad_values, cell, message):
    line = one_line(ip, capsys, cell)
    assert message in line, line


def test_magic_in_memory_odd_modes_convert_and_one_bad_array_is_recorded(ip):
    from PIL import Image

    rgb = np.random.default_rng(0).integers(0, 255, (30, 40, 3), dtype=np.uint8)
    modes = ("CMYK", "P", "RGBA", "L", "LA", "I;16", "I", "F", "1")
    ip.user_ns["pils"] = [Image.fromarray(rgb).convert(m) for m in modes]
    ip.user_ns["arrays"] = [rgb, rgb.astype(np.uint16) * 200, rgb > 100, rgb.astype(np.float32) / 255, np.full((30, 40, 3), np.nan, np.float32)]
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs pils --layers layer1 --pool mean -o from_pil")
    ds = ip.user_ns["from_pil"]
    assert ds.sizes["sample"] == len(modes) and json.loads(ds.attrs["failed"]) == []
    assert np.isfinite(ds["layer1"].values).all()
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs arrays --layers layer1 --pool mean -o from_arrays")
    ds = ip.user_ns["from_arrays"]
    assert list(ds["sample"].values) == ["0", "1", "2", "3"]
    assert json.loads(ds.attrs["failed"]) == [{"sample": "4", "path": "", "reason": "the image array holds NaN or inf"}]


def test_magic_duplicate_paths_get_distinct_ids(ip, project):
    path = str(project / MESSY / "good" / "rgb.png")
    ip.user_ns["twice"] = [path, path]
    ok(ip, f"%nbfeat extract {MODEL} --random --inputs twice --layers layer1 --pool mean -o dup")
    ds = ip.user_ns["dup"]
    assert list(ds["sample"].values) == ["rgb.png", "rgb.png#1"]
    np.testing.assert_array_equal(ds["layer1"].values[0], ds["layer1"].values[1])


def test_magic_empty_and_over_long_texts(ip, project):
    ip.user_ns["texts"] = ["", "hello there", LONG_TEXT, "😀 ünï 猫 \x00"]
    with pytest.warns(UserWarning, match=r"1 text\(s\) longer than the model's context \(64 tokens\) were truncated"):
        ok(ip, "%nbfeat extract hf:gpt2 --inputs texts --layers -1 -o tok")
    ds = ip.user_ns["tok"]
    assert list(ds["sample"].values) == ["1", "2", "3"]
    assert ds.sizes["token"] == 64  # the long text, cut at the context
    assert json.loads(ds.attrs["failed"]) == [{"sample": "0", "path": "", "reason": "empty text (no tokens)"}]


# ---- the command line ----------------------------------------------------------------------


def nbfeat_cmd(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "nbfeat", *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def test_cli_yaml_over_the_messy_folder_finishes_the_good_and_records_the_bad(project, reference):
    config = project / "messy config.yaml"
    config.write_text(
        f"model: {MODEL}\npretrained: false\ninputs: {MESSY}/\nlayers:\n  layer1: {{pool: mean}}\nout: cli store.zarr\nprogress: false\n",
        encoding="utf-8",
    )
    r = nbfeat_cmd("extract", config.name, cwd=project)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == f"Wrote cli store.zarr: Dataset, {len(GOOD)} samples: layer1 (channel 64)"
    assert "Traceback" not in r.stderr
    assert_messy_result(nbfeat.open(project / "cli store.zarr"), reference)


def test_cli_flags_over_a_folder_of_only_bad_files_exit_2_with_one_line(project):
    r = nbfeat_cmd("extract", MODEL, "--random", "--inputs", f"{MESSY}/bad", "--layers", "layer1", "--out", "never.zarr", cwd=project)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().startswith("nbfeat extract: None of the first 11 images could be read (e.g. bomb.png: image larger than")
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr


def test_cli_yaml_texts_empty_and_over_long(project):
    config = project / "texts.yaml"
    config.write_text(
        "model: hf:gpt2\ninputs: ['', hello there, " + json.dumps(LONG_TEXT) + "]\nlayers: -1\nout: texts.zarr\nprogress: false\n"
    )
    r = nbfeat_cmd("extract", config.name, cwd=project)
    assert r.returncode == 0, r.stderr
    last_block = nbfeat.load(f"hf:{project / 'gpt2'}").blocks[-1]
    assert r.stdout.strip() == f"Wrote texts.zarr: Dataset, 2 samples: {last_block} (token 64, channel 32)"
    # the warning is one line about the run, not a source line of nbfeat
    assert without_load_bars(r.stderr) == "nbfeat: UserWarning: 1 text(s) longer than the model's context (64 tokens) were truncated."
    ds = nbfeat.open(project / "texts.zarr")
    assert list(ds["sample"].values) == ["1", "2"]
    assert json.loads(ds.attrs["failed"]) == [{"sample": "0", "path": "", "reason": "empty text (no tokens)"}]


@pytest.fixture
def in_project(project, monkeypatch):
    monkeypatch.chdir(project)
    return project


def cli_one_line(capsys, *argv):
    capsys.readouterr()
    status = cli_main([str(a) for a in argv])
    err = capsys.readouterr().err.strip()
    assert status == 2, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.mark.parametrize(
    ("yaml", "message"),
    [
        ("inputs: empty folder/", "No images found in"),
        (f"inputs: {MESSY}/bad/zero.jpg", "(e.g. zero.jpg: empty file (0 bytes))"),
        (f"inputs: {MESSY}/bad/text.png", "(e.g. text.png: not an image"),
        (f"inputs: [{MESSY}/bad/truncated.jpg, {MESSY}/bad/corrupt.png]", "None of the first 2 images could be read"),
        ("inputs: no such folder/", "No such file or folder: 'no such folder/'"),
        ("inputs: []", "The config needs 'inputs'"),
        ("inputs: ''", "The config needs 'inputs'"),
        ("inputs: [a.png, 3]", "'inputs' must be a path, a glob, or a list of paths or texts, got ['a.png', 3]."),
        ("inputs: {a: b}", "'inputs' must be a path"),
        ("inputs: x\nbatch_size: 0", "'batch_size' must be a positive integer, got 0."),
        ("inputs: x\nbatch_size: 2.5", "'batch_size' must be a positive integer, got 2.5."),
        ("inputs: x\ndtype: int8", "'dtype' must be float32, bfloat16 or float16, got 'int8'."),
        ("inputs: x\nlayers: [[layer1]]", "'layers' entries must be module paths, globs or block indices, got ['layer1']."),
        ("inputs: x\npool: [avg2d, 2, 3]", "a pooling spec is a name (mean) or a pair like [avg2d, 8]"),
        ("inputs: !!python/object/new:os.system [echo hi]", "is not allowed"),
    ],
)
def test_cli_yaml_bad_inputs_exit_2_with_one_line(in_project, capsys, yaml, message):
    (in_project / "bad.yaml").write_text(f"model: {MODEL}\npretrained: false\n{yaml}\nout: bad.zarr\nprogress: false\n")
    err = cli_one_line(capsys, "extract", "bad.yaml")
    assert err.startswith("nbfeat extract: ") and message in err, err


def test_cli_yaml_glob_loop_and_duplicate_paths_finish(in_project, capsys):
    good = f"{MESSY}/good/rgb.png"
    (in_project / "dup.yaml").write_text(f"model: {MODEL}\npretrained: false\ninputs: [{good}, {good}]\nlayers: layer1\npool: mean\nout: dup.zarr\nprogress: false\n")
    assert cli_main(["extract", "dup.yaml"]) == 0
    assert list(nbfeat.open("dup.zarr")["sample"].values) == ["rgb.png", "rgb.png#1"]
    assert cli_main(["extract", MODEL, "--random", "--inputs", f"{MESSY}/**/*.jpg", "--layers", "layer1", "--pool", "mean", "--out", "jpgs.zarr"]) == 0
    ds = nbfeat.open("jpgs.zarr")
    assert list(ds["sample"].values) == [s for s in GOOD if s.endswith(".jpg")]
    assert sorted(r["sample"] for r in json.loads(ds.attrs["failed"])) == sorted(s for s in BAD if s.endswith(".jpg"))


def test_cli_a_yaml_alias_bomb_is_refused_quickly_and_briefly(in_project, capsys):
    # nine levels of nine references: tiny as text, 387 million items if spelled out
    levels = ["&a0 [x, x, x, x, x, x, x, x, x]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 9)]
    (in_project / "bomb.yaml").write_text(f"model: {MODEL}\ninputs: [{', '.join(levels)}]\nout: b.zarr\n")
    err = cli_one_line(capsys, "extract", "bomb.yaml")
    assert "'inputs' must be a path" in err and len(err) < 500


def test_warnings_format_is_restored_after_the_command(in_project, capsys):
    before = warnings.formatwarning
    cli_one_line(capsys, "extract", "missing.yaml")
    assert warnings.formatwarning is before
