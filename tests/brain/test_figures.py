"""The layer profile and the brain-vs-layer heatmap; rich display of results."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nbfeat  # noqa: E402
from nbfeat.brain import plot_brain_matrix, plot_profile, target_rdms  # noqa: E402
from nbfeat.errors import NbfeatError  # noqa: E402
from tests.brain.helpers import simulated, three_layers  # noqa: E402


@pytest.fixture(scope="module")
def results():
    dt = three_layers(n=40)
    resp, _ = simulated(dt, v=6, k=4, noise=1.0)
    enc = nbfeat.encode(dt, resp, cv=4, alphas=np.logspace(-1, 4, 6), by="region", backend="sklearn")
    rsa = nbfeat.compare(dt, target_rdms(resp, by="region"), bootstrap=20)
    return enc, rsa


def test_profile_draws_one_line_per_model_the_ceiling_band_and_the_best_layer(results):
    enc, rsa = results
    for res in (enc, rsa):
        fig, ax = plt.subplots()
        assert plot_profile(res, target="IT", ax=ax) is fig
        labels = [t.get_text() for t in ax.get_legend().get_texts()]
        assert labels == ["noise ceiling", "m2", "m1"]
        lo, hi = float(res.ceiling["lower"].sel(target="IT")), float(res.ceiling["upper"].sel(target="IT"))
        (band,) = ax.patches  # axhspan: the ceiling band (bootstrap CIs are PolyCollections)
        y = band.get_path().transformed(band.get_patch_transform()).vertices[:, 1]
        assert [y.min(), y.max()] == pytest.approx(sorted([lo, hi]), abs=1e-9)
        stars = [ln for ln in ax.lines if ln.get_marker() == "*"]
        assert len(stars) == 2
        best_m1 = res.best.set_index(["model", "target"]).loc[("m1", "IT")]
        star_y = {float(s.get_ydata()[0]) for s in stars}
        assert any(abs(y - best_m1.score) < 1e-12 for y in star_y)
        plt.close(fig)
    assert plot_profile(enc, normalized=True).axes[0].get_ylabel().endswith("/ ceiling")


def test_matrix_heatmap_is_targets_by_layers(results):
    enc, rsa = results
    fig = rsa.plot_matrix()
    img = fig.axes[0].images[0].get_array()
    assert img.shape == (2, 3)
    np.testing.assert_allclose(np.asarray(img), rsa.scores.transpose("target", "rep").values)
    assert [t.get_text() for t in fig.axes[0].get_xticklabels()] == [str(v) for v in rsa.scores["layer"].values]
    fig2, ax = plt.subplots()
    assert plot_brain_matrix(enc, ax=ax, normalized=True) is fig2
    plt.close(fig2)
    with pytest.raises(NbfeatError, match="what nbfeat.encode"):
        plot_profile(object())
    with pytest.raises(NbfeatError, match="No target"):
        plot_profile(rsa, target="V9")


def test_rich_display_and_cell_sources(results):
    enc, rsa = results
    for res in (enc, rsa):
        html = res._repr_html_()
        assert "<table" in html and "data:image/png;base64," in html
        assert len(res.sources) == res.scores.sizes["rep"]
    dt = three_layers(n=12)
    comp = nbfeat.compare(dt)
    html = comp._repr_html_()
    assert "<table" in html and "data:image/png;base64," in html
    assert comp.source_of("m1/b") == {"model": "m1", "layer": "b", "node": "/m1/b", "variable": "b", "isel": {}}
    with pytest.raises(NbfeatError, match="Did you mean"):
        comp.source_of("m1/bb")
