"""Each plot draws a non-blank figure (rendered to pixels with Agg) and honours ax=."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

import nbfeat  # noqa: E402
from nbfeat.analysis import plots  # noqa: E402
from nbfeat.errors import NbfeatError  # noqa: E402
from tests.analysis.builders import conv_dataset, text_dataset, two_model_tree, vit_tokens  # noqa: E402


def pixels(fig):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(fig)  # figures closed in pyplot keep only a base canvas
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].astype(float)


def assert_drawn(fig):
    px = pixels(fig)
    assert px.std() > 10, "the figure looks blank"


def test_plot_rdm_with_label_blocks():
    ds = conv_dataset(n=10)
    r = ds["layer3"].nbfeat.rdm()
    fig = plots.plot_rdm(r, sort=True)
    assert_drawn(fig)
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["cats", "dogs"]
    assert len(ax.lines) == 2  # one separator on each axis
    assert_drawn(ds["layer4"].nbfeat.plot_rdm(metric="euclidean"))


def test_plot_comparison_and_into_a_given_axes():
    res = nbfeat.compare(two_model_tree(), method="cka")
    fig, ax = plt.subplots()
    try:
        out = plots.plot_comparison(res, ax=ax)
        assert out is fig
        assert_drawn(fig)
        assert len(ax.texts) == 16  # annotated cells
    finally:
        plt.close(fig)
    assert_drawn(res.plot(annotate=False))


def test_plot_pca_for_feature_maps_and_vit_tokens():
    fig = plots.plot_pca(conv_dataset(n=6)["layer3"])
    assert_drawn(fig)
    assert len(fig.axes[0].images) == 6
    vit = vit_tokens(n=4)
    fig2 = vit.nbfeat.plot_pca()
    assert_drawn(fig2)
    img = fig2.axes[0].images[0].get_array()
    assert img.shape == (3, 4, 3)  # the 3x4 patch grid, class token dropped
    with pytest.raises(NbfeatError, match="Select one entry"):
        plots.plot_pca(text_dataset()["block"].isel(token=slice(0, 4)).assign_attrs(grid="2x2"))


def test_plot_token_layers_uses_token_text():
    ds = text_dataset()
    fig = ds["block"].nbfeat.plot_tokens(sample=1)
    assert_drawn(fig)
    ticks = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    real = ds["mask"].values[1]
    assert ticks == list(ds["token_text"].values[1][real])  # padding left out
    assert_drawn(plots.plot_token_layers(ds["block"], sample=str(ds["sample"].values[0]), reduce="mean"))


def test_figures_without_ax_are_not_left_open_in_pyplot():
    before = plt.get_fignums()
    plots.plot_rdm(conv_dataset()["layer4"].nbfeat.rdm())
    assert plt.get_fignums() == before
