"""Linear CKA: equals the HSIC formula with a centring matrix, invariances, dask = numpy."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
from scipy.stats import ortho_group

from nbfeat.analysis import cka as cka_mod
from nbfeat.analysis.cka import linear_cka
from tests.analysis.builders import conv_dataset


def hsic_cka(x, y):
    """CKA the textbook way: K = X X^T, L = Y Y^T, H = I - 11^T/n, HSIC = tr(K H L H)."""
    n = x.shape[0]
    h = np.eye(n) - np.ones((n, n)) / n
    gx, gy = x @ x.T, y @ y.T

    def hsic(a, b):
        return np.trace(a @ h @ b @ h)

    return hsic(gx, gy) / np.sqrt(hsic(gx, gx) * hsic(gy, gy))


@pytest.fixture
def xy():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(30, 12)) + 3.0  # a large mean: the streaming centring must cope
    y = x[:, :7] @ rng.normal(size=(7, 9)) + 0.5 * rng.normal(size=(30, 9))
    return x, y


@pytest.mark.parametrize("method", ["auto", "features", "gram"])
@pytest.mark.parametrize("chunk", [7, 2048])
def test_cka_equals_hsic_formula(xy, method, chunk):
    x, y = xy
    assert linear_cka(x, y, method=method, chunk=chunk) == pytest.approx(hsic_cka(x, y), rel=1e-10)


@pytest.mark.parametrize("method", ["features", "gram"])
def test_cka_invariances(xy, method):
    x, y = xy
    q = ortho_group.rvs(12, random_state=1)
    assert linear_cka(x, x, method=method) == pytest.approx(1.0)
    base = linear_cka(x, y, method=method)
    assert linear_cka(x @ q, y, method=method) == pytest.approx(base, rel=1e-10)
    assert linear_cka(7.5 * x, 0.1 * y, method=method) == pytest.approx(base, rel=1e-10)
    assert linear_cka(x + 100.0, y, method=method) == pytest.approx(base, rel=1e-8)


@pytest.mark.parametrize("method", ["features", "gram"])
def test_cka_on_dask_streams_and_matches(xy, method):
    x, y = xy
    lazy = linear_cka(dsa.from_array(x, chunks=(8, -1)), dsa.from_array(y, chunks=(5, 3)), method=method)
    assert lazy == pytest.approx(hsic_cka(x, y), rel=1e-10)
    mixed = linear_cka(dsa.from_array(x, chunks=(8, -1)), y, method=method)
    assert mixed == pytest.approx(hsic_cka(x, y), rel=1e-10)


def test_cka_on_dataarrays_flattens_features(monkeypatch):
    ds = conv_dataset(n=10)
    x = ds["layer3"].values.reshape(10, -1).astype(np.float64)
    y = ds["layer4"].values.astype(np.float64)
    expected = hsic_cka(x, y)
    assert ds["layer3"].nbfeat.cka(ds["layer4"]) == pytest.approx(expected, rel=1e-9)
    lazy = ds.chunk({"sample": 4})
    monkeypatch.setattr(cka_mod, "FEATURE_CELLS", 1)  # force the Gram path for wide data
    assert lazy["layer3"].nbfeat.cka(lazy["layer4"]) == pytest.approx(expected, rel=1e-9)
