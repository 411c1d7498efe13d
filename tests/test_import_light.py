"""`import nbfeat`, `%load_ext nbfeat` and `nbfeat --help` import nothing heavy."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEAVY = {"torch", "torchvision", "xarray", "transformers", "timm", "zarr", "dask", "pandas", "matplotlib"}


def imported_top_level(*args):
    """Top-level packages imported by `python -X importtime *args` (from its stderr report)."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-X", "importtime", *args], capture_output=True, text=True, env=env, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    names = set()
    for line in r.stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip().split(".")[0])
    assert "nbfeat" in names or "IPython" in names  # the report was read
    return names, r.stdout


def test_import_nbfeat_is_light():
    names, _ = imported_top_level("-c", "import nbfeat; nbfeat.__version__")
    assert not HEAVY & names, sorted(HEAVY & names)


SHELL = textwrap.dedent(
    """
    from IPython.core.interactiveshell import InteractiveShell
    from IPython.core.completer import provisionalcompleter

    ip = InteractiveShell.instance()
    r = ip.run_cell("%load_ext nbfeat", store_history=False)
    assert r.error_in_exec is None, r.error_in_exec
    ip.run_cell("%nbfeat help", store_history=False)
    with provisionalcompleter():
        found = [c.text for c in ip.Completer.completions("%nbfeat ex", 10)]
    assert "extract" in found, found
    """
)


def test_load_ext_help_and_subcommand_completion_are_light():
    names, out = imported_top_level("-c", SHELL)
    assert "nbfeat" in names and "%nbfeat extract" in out
    assert not HEAVY & names, sorted(HEAVY & names)


@pytest.mark.parametrize("args", [["--help"], ["extract", "--help"], ["--version"]])
def test_cli_help_is_light(args):
    names, out = imported_top_level("-m", "nbfeat", *args)
    assert "nbfeat" in out
    assert not HEAVY & names, sorted(HEAVY & names)


STORE_RUN = textwrap.dedent(
    """
    import sys
    import torch, nbfeat

    bb = nbfeat.load("torchvision:resnet18", pretrained=False, device="cpu")
    out = sys.argv[1]
    ds = bb.extract(torch.randn(3, 3, 40, 56), layers=["layer2"], labels=["cat", "dog", "cat"], out=out, progress=False)
    assert list(ds.label.values) == ["cat", "dog", "cat"], ds.label.values
    assert ds["layer2"].chunks is not None  # still lazy, dask-backed
    print("distributed" in sys.modules)
    """
)


def test_store_run_without_client_does_not_import_distributed(tmp_path):
    # dask imports distributed whenever it picks a scheduler by name; the reader's small reads
    # must not, or every extract(out=...) pays 11 MiB of RSS for a client it never uses
    _, out = imported_top_level("-c", STORE_RUN, str(tmp_path / "feats.zarr"))
    assert out.strip().splitlines()[-1] == "False", out
