"""Property tests: any config or magic line a user can type gives a result or one clear line.

A user mistake must never surface as a traceback (another exception type) or as a message
over several lines. Layer selection and pooling specs are covered in test_bad_inputs.py.
"""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from nbfeat.config import KEYS, load_config
from nbfeat.errors import NbfeatError

# what a user could type on one line: no control characters or line separators (a magic line
# cannot hold them; a cell with them is Python, not the magic's business)
typed = st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp"))


def assert_one_line(error: BaseException) -> None:
    text = str(error)
    assert text and len(text.splitlines()) == 1, repr(text)
    assert len(text) < 2000, f"{len(text)} characters"


# ---- load_config: random mappings, overrides and YAML text ---------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 300),
    st.floats(allow_nan=True),
    st.text(max_size=8),
    st.sampled_from(["mean", "avg2d:8", "layer4", "timm:resnet50", "images/", "-1", "cls", "attn", "cuda", "float16", "*", "blocks.*.attn", "a\nb"]),
)
keys_any = st.one_of(st.sampled_from([*KEYS, "pool", "layer4", "avg2d", "layers"]), st.text(max_size=6), st.integers(-2, 5))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(keys_any, inner, max_size=3)), max_leaves=8)
overrides = st.one_of(
    st.text(max_size=15),
    st.builds(
        lambda k, v: f"{k}={v}",
        st.sampled_from([*KEYS, "layers.layer4.pool", "models.x.layers", "layers.blocks.3.attn.pool", "pool.x.y"]),
        st.one_of(st.text(max_size=10), st.sampled_from(["[a, b]", "{a: 1}", "!!python/object:os.system {}", "&a [*a]", "!!int x", "[", "null"])),
    ),
)


@settings(max_examples=400, deadline=None)
@given(raw=st.dictionaries(st.one_of(st.sampled_from(list(KEYS)), st.text(max_size=8)), values, max_size=6), sets=st.lists(overrides, max_size=2))
def test_config_mappings_and_overrides_never_crash(raw, sets):
    try:
        cfg = load_config(raw, overrides=sets)
    except NbfeatError as e:
        assert_one_line(e)
    else:  # a config that validates can be run and written as code
        assert set(cfg.to_kwargs()) >= {"models", "inputs"}
        assert cfg.to_code().startswith("nbfeat.extract(")


yaml_pieces = st.sampled_from(
    ["model: ", "models:", "inputs: ", "layers:", "pool:", "  ", "\n", "- ", "{", "}", "[", "]", ": ", ",", "'", '"',
     "!!python/object:os.system", "!!python/object/apply:os.system ['x']", "!!binary", "&a ", "*a", "<<: *a", "---", "...",
     "? ", "|", ">", "#", "timm:resnet50", "layer4", "mean", "avg2d", "8", "-1", "null", "true", "1e309", ".nan", "!!set",
     "!!omap", "%YAML 1.1", "\t", "\x00", "\ufeff", "ünï", "!custom", "!!int 'x'", "!!float", "!!bool x", "!!timestamp x",
     "2001-02-30", "~", "=", "batch_size: ", "0x1F", ".inf", "[[[[[[[[[[[[[[[[[[[["]
)


@settings(max_examples=400, deadline=None)
@given(text=st.one_of(st.lists(yaml_pieces, max_size=25).map("".join), st.text(max_size=60)))
def test_random_yaml_text_never_crashes(text):
    if "\n" not in text and text.strip().endswith((".yaml", ".yml")):
        text += "\n"  # a one-line text ending in .yaml would be read as a file name
    try:
        cfg = load_config(text)
    except NbfeatError as e:
        assert_one_line(e)
    else:
        cfg.to_code()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a: !!float", "a value could not be read (IndexError"),
        ("a: !!int x", "a value could not be read (ValueError"),
        ("a: 2001-02-30", "day is out of range for month"),
        ("a: !!timestamp x", "a value could not be read"),
        ("- !!bool x", "a value could not be read"),
        ("[" * 5000, "nested too deeply"),
        ('model: resnet18\ninputs: x\n"la\\u2028yers": x\n', "Unknown config key 'la\\u2028yers'"),
    ],
)
def test_yaml_constructor_failures_are_config_errors(text, message):
    with pytest.raises(NbfeatError) as info:
        load_config(text)
    assert message in str(info.value)
    assert_one_line(info.value)


def test_override_into_a_list_of_mappings_is_a_config_error():
    with pytest.raises(NbfeatError, match=r"--set: 'models' holds \[\{\}\], which has no keys to set\."):
        load_config({"models": [{}], "inputs": "x"}, overrides=["models.x.layers=layer4"])


# ---- magic arguments: random lines in one real shell ---------------------------------------


@pytest.fixture(scope="module")
def ip(shell, tmp_path_factory):
    import torch
    from PIL import Image

    root = tmp_path_factory.mktemp("magic fuzz")
    for folder, name in (("pics_a/a", "x.png"), ("my pics", "y.png")):
        (root / folder).mkdir(parents=True)
        Image.fromarray(np.zeros((20, 20, 3), np.uint8)).save(root / folder / name)
    before = set(shell.user_ns)
    shell.user_ns["tens"] = torch.zeros(1, 3, 32, 32)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        yield shell
    for name in set(shell.user_ns) - before:
        del shell.user_ns[name]


def run_line(ip, line):
    """Run one magic line; a user mistake must be one UsageError line, never a traceback."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        result = ip.run_cell(line, store_history=False)
    error = result.error_before_exec or result.error_in_exec
    if error is not None:
        assert isinstance(error, UsageError), f"{line!r}: {type(error).__name__}: {error}"
        assert_one_line(error)
    assert "Traceback" not in err.getvalue(), err.getvalue()
    return error


words = st.sampled_from(
    ["torchvision:resnet18", "timm:resnt50", "resnet18", "hf:", "--inputs pics_a/", "-i 'my pics/'", '"my pics', "tens",
     "--inputs tens", "--inputs nope/", "--layers", "-l", "layer1", "layer4.1", "-1", "blocks.*", "[", "--pool", "-p", "mean",
     "avg2d", "avg2d:0", "avg2d:2", "layer1=max", "=", "--nodes", "block", "attn", "--flatten", "--batch-size", "0", "-5",
     "2", "x", "--num-workers", "--device", "cpu", "meta", "cuda:9", "--dtype", "float16", "int8", "--random",
     "--pretrained", "--weights", "missing.pth", "--out", "o.zarr", "--overwrite", "--set", "batch_size=1",
     "layers.layer1.pool=max", "bogus=1", "model=", "-o", "name", "1x", "--code", "-h", "--help", "--bogus", "--", "\\",
     "'", "''", "ünï", "😀", "%", "$x", "{a}", "--set=pool=max"]
)
lines = st.lists(st.one_of(words, st.text(typed, max_size=6)), max_size=8).map(" ".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=lines, code=st.booleans())
def test_random_extract_lines_give_a_result_or_one_line(ip, rest, code):
    run_line(ip, f"%nbfeat extract {rest}" + (" --code" if code else ""))


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=lines, inputs=st.sampled_from(["pics_a/", "'my pics/'", "tens", "pics_a/a/x.png", "'pics_a/**/*.png'"]))
def test_random_options_on_a_runnable_extract(ip, rest, inputs):
    # a valid model and inputs first, so the options reach the engine and the model
    run_line(ip, f"%nbfeat extract torchvision:resnet18 --random --inputs {inputs} {rest}")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rest=st.one_of(lines, st.text(typed, max_size=12)))
def test_random_models_lines(ip, rest):
    error = run_line(ip, f"%nbfeat models {rest}")
    assert error is None or "%nbfeat models" in str(error) or "No closing quotation" in str(error)
