"""TreeWidget: traitlets, validation, pattern selection, and how the tree is built."""

from __future__ import annotations

import json

import pytest
import torch

import nbfeat
from nbfeat.errors import UnknownLayerError


def test_tree_of_a_backbone(resnet):
    w = resnet.tree()
    assert resnet.tree_widget is w
    assert w._kind == "tree" and w.title == "torchvision:resnet18"
    assert [r["path"] for r in w.rows] == ["", *resnet.layers()]
    assert w.row("layer2")["shape"] == [1, 128, 28, 28]
    state = w.get_state()
    assert json.loads(json.dumps(state["rows"])) == w.rows  # plain JSON, no numpy or tensors
    assert "_esm" in state and len(state["_esm"]) > 1000  # the built bundle, not a path


def test_selected_is_validated_ordered_and_observable(resnet):
    w = nbfeat.tree(resnet)
    seen = []
    w.observe(lambda ch: seen.append(ch["new"]), names=["selected"])
    w.selected = ["layer4", "layer1.0.conv1", "layer4"]
    assert w.selected == ["layer1.0.conv1", "layer4"]  # tree order, no duplicates
    assert seen == [["layer1.0.conv1", "layer4"]]
    with pytest.raises(UnknownLayerError, match=r"'layer9' is not a module of torchvision:resnet18\. Did you mean: layer4"):
        w.selected = ["layer9"]
    assert w.selected == ["layer1.0.conv1", "layer4"]


def test_selection_from_the_browser_side_reaches_python(resnet):
    w = nbfeat.tree(resnet)
    # what the view's save_changes delivers: a state update through the comm
    w.set_state({"selected": ["layer3", "layer2"], "focused": "layer3"})
    assert w.selected == ["layer2", "layer3"] and w.focused == "layer3"


def test_pattern_selection_matches_bb_layers(resnet):
    w = nbfeat.tree(resnet)
    assert w.select("layer*.0.conv1") == resnet.layers("layer*.0.conv1") == ["layer1.0.conv1", "layer2.0.conv1", "layer3.0.conv1", "layer4.0.conv1"]
    assert w.selected == resnet.layers("layer*.0.conv1") and w.focused == "layer4.0.conv1"
    with pytest.raises(UnknownLayerError, match="No module matches 'blocks.*.attn'"):
        w.select("blocks.*.attn")


def test_tree_from_an_id_builds_on_meta_without_weights():
    w = nbfeat.tree("torchvision:resnet50")
    rows = {r["path"]: r for r in w.rows}
    assert rows[""]["params"] == 25_557_032  # the published count: structure is real
    assert rows["layer4"]["shape"] == [1, 2048, 7, 7]
    assert w.title == "torchvision:resnet50"


def test_tree_of_a_bare_module_and_unknown_ids():
    w = nbfeat.tree(torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU()), height=200)
    assert w.title == "Sequential" and w.height == 200
    assert [r["shape"] for r in w.rows] == [None, None, None]  # a (1,3,224,224) image does not fit
    with pytest.raises(nbfeat.errors.UnknownModelError):
        nbfeat.tree("torchvision:no_such_net")


def test_widgets_are_lazy_attributes_of_nbfeat():
    from nbfeat import widgets

    assert nbfeat.tree is widgets.tree and nbfeat.browse is widgets.browse and nbfeat.explore is widgets.explore
    assert callable(widgets.tree)  # not shadowed by a submodule
    assert widgets.TreeWidget.__name__ == "TreeWidget"
