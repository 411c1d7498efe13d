"""The built front end and the binary wire format shared with js/src/codec.ts."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

import nbfeat
from nbfeat.widgets import _base

ROOT = Path(__file__).resolve().parents[2]


def test_js_and_python_versions_agree():
    assert json.loads((ROOT / "js" / "package.json").read_text())["version"] == nbfeat.__version__


def test_the_bundle_is_built_and_exports_render():
    js = _base.BUNDLE.read_text()
    assert "render" in js and "export" in js
    css = _base.STYLES.read_text()
    classes = set(re.findall(r"\.([a-zA-Z][\w-]*)", css))
    assert "nbfeat-tree-row" in classes
    assert [c for c in classes if not c.startswith("nbfeat-")] == []  # _css is page-global


def test_a_missing_bundle_says_how_to_build_it(monkeypatch, tmp_path):
    from nbfeat.widgets.tree_widget import TreeWidget

    monkeypatch.setattr(_base, "BUNDLE", tmp_path / "widgets.js")
    with pytest.raises(nbfeat.errors.NbfeatError, match=r"make js"):
        TreeWidget([])


def test_pack_writes_little_endian_c_order_and_refuses_float64():
    a = np.arange(6, dtype=">f2").reshape(2, 3).T  # big-endian, not contiguous
    specs, buffers = _base.pack({"a": a, "b": np.ones((2, 2), np.uint8)})
    assert specs == [{"name": "a", "dtype": "float16", "shape": [3, 2]}, {"name": "b", "dtype": "uint8", "shape": [2, 2]}]
    np.testing.assert_array_equal(np.frombuffer(bytes(buffers[0]), "<f2").reshape(3, 2), a)
    assert len(bytes(buffers[1])) == 4
    with pytest.raises(TypeError, match="float64"):
        _base.pack({"x": np.zeros(3)})
