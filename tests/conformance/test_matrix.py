"""The conformance matrix: every row of tests/conformance/rows.py, every node, stage and pool,
checked for values against the library's own reference (see rows.py)."""

from __future__ import annotations

import contextlib
import copy
import warnings

import pytest
import torch

import nbfeat
from nbfeat.errors import NbfeatError
from tests.conformance.rows import ROWS, Row


def _variables(ds):
    """{name: DataArray} of a Dataset or a DataTree of one-variable nodes."""
    if type(ds).__name__ == "Dataset":
        return dict(ds.data_vars)
    out = {}
    for name in ds.children:
        out.update(ds[name].to_dataset().data_vars)
    return out


def _close(actual, expected, what):
    # equal_nan: padded text positions are NaN in nbfeat's output and in the reference
    torch.testing.assert_close(torch.as_tensor(actual), expected.detach().float(), rtol=1e-4, atol=1e-4, equal_nan=True, msg=lambda m: f"{what}: {m}")


def _warns(row: Row):
    """The warning a row's inputs must give (text longer than the context), else none."""
    return pytest.warns(UserWarning, match=row.warns) if row.warns else contextlib.nullcontext()


def _extract(row: Row, bb, x, **kwargs):
    return bb.extract(x, progress=False, **row.extract_kwargs, **kwargs)


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """The rows are tiny: one intra-op thread is fastest, and on a busy shared machine two
    spinning threads make a 7 ms forward take seconds."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    cache = {}

    def get(row: Row):
        if row.id not in cache:
            model = None if row.random_load else row.build()
            model_id, kwargs = row.save(model, tmp_path_factory.mktemp(row.id))
            bb = nbfeat.load(model_id, **kwargs)
            if row.random_load:  # too big to save per run: the reference runs a copy of nbfeat's model
                model = copy.deepcopy(bb.model).eval()
            cache[row.id] = (model, bb)
        return cache[row.id]

    return get


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_row(row: Row, loaded):
    model, bb = loaded(row)
    assert bb.adapter.family == row.family
    x = row.inputs()
    want = row.reference(model, x)
    if row.nodes or row.stages:
        with _warns(row):
            ds = _extract(row, bb, x, nodes=list(row.nodes) or None, stages=list(row.stages) or None)
        got = _variables(ds)
        expected = {k: v for k, v in want.items() if not k.startswith("pool:")}
        asked = {k for k in expected if k.split(".")[0] in row.nodes or (k.startswith("stage") and int(k[5:]) in row.stages)}
        assert set(got) == asked, f"{row.id}: nbfeat gave {sorted(got)}, the reference {sorted(asked)}"
        for name in sorted(asked):
            _close(got[name].values, expected[name], f"{row.id} {name}")
            assert got[name].attrs["family"] == row.family
    for pool in row.pools:
        with _warns(row):
            ds = _extract(row, bb, x, layers=[-1], pool=pool)
        (var,) = _variables(ds).values()
        _close(var.values, want[f"pool:{pool}"], f"{row.id} pool={pool}")
    for pool in row.refused_pools:
        with pytest.raises(NbfeatError) as err, warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # the row's own warning is checked above
            bb.extract(x, layers=[-1], pool=pool, progress=False, **row.extract_kwargs)  # refused at the probe, before any warning matters
        assert len(str(err.value)) < 300 and "mean" in str(err.value)
