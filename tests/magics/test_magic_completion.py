"""Tab completion for %nbfeat in a real IPython shell: subcommands, options, model ids, layers."""

from __future__ import annotations

import pytest


@pytest.fixture
def ip(shell):
    return shell


def complete(ip, text):
    """(replaced text, completion texts) as a Jupyter front end would get them."""
    from IPython.core.completer import provisionalcompleter

    with provisionalcompleter():
        found = list(ip.Completer.completions(text, len(text)))
    return [(text[c.start : c.end], c.text) for c in found]


def texts(ip, text):
    return [t for _, t in complete(ip, text)]


def test_subcommands(ip):
    assert texts(ip, "%nbfeat ex") == ["extract", "explore"]
    assert set(texts(ip, "%nbfeat ")) >= {"models", "tree", "extract", "browse", "explore", "help"}


def test_model_ids_replace_the_whole_id(ip):
    import nbfeat

    found = complete(ip, "%nbfeat extract torchvision:resnet1")
    assert ("torchvision:resnet1", "torchvision:resnet18") in found
    assert all(t.startswith("torchvision:resnet1") for _, t in found)
    ids = set(nbfeat.list_models()["id"])
    assert {t for _, t in found} <= ids
    # a bare name finds ids from every source; timm's bare names come before pretrained tags
    bare = texts(ip, "%nbfeat tree resnet5")
    assert "torchvision:resnet50" in bare and "timm:resnet50" in bare
    assert bare.index("timm:resnet50") < bare.index("timm:resnet50.a1_in1k")


def test_layer_names_after_layers(ip):
    found = complete(ip, "%nbfeat extract torchvision:resnet18 --layers layer4.0.c")
    assert [t for _, t in found] == ["layer4.0.conv1", "layer4.0.conv2"]
    assert all(r == "layer4.0.c" for r, _ in found)
    # after a comma only the last name is completed; earlier ones stay
    assert texts(ip, "%nbfeat extract torchvision:resnet18 --layers layer3,layer4.1.b") == ["layer3,layer4.1.bn1", "layer3,layer4.1.bn2"]
    # a second name after a space
    assert "layer2" in texts(ip, "%nbfeat extract torchvision:resnet18 --layers layer1 lay")


def test_layers_come_from_a_loaded_backbone_variable(ip):
    import nbfeat

    ip.user_ns["bb_for_completion"] = nbfeat.load("torchvision:alexnet", pretrained=False, device="cpu")
    try:
        assert texts(ip, "%nbfeat extract bb_for_completion --layers features.1") == ["features.1", "features.10", "features.11", "features.12"]
    finally:
        del ip.user_ns["bb_for_completion"]


def test_options_roles_pools(ip):
    assert texts(ip, "%nbfeat extract torchvision:resnet18 --la") == ["--layers"]
    assert texts(ip, "%nbfeat extract torchvision:resnet18 --nodes b") == ["block"]
    assert texts(ip, "%nbfeat extract torchvision:resnet18 --pool layer4=av") == ["layer4=avg2d:"]
    assert "layer4=" in texts(ip, "%nbfeat extract torchvision:resnet18 --pool layer")


def test_unknown_model_and_other_lines_are_left_alone(ip):
    assert not any(t.startswith("layer") for t in texts(ip, "%nbfeat extract timm:no_such_model_x --layers lay"))
    ip.user_ns["nbfeat_completion_var"] = 1
    try:
        assert "nbfeat_completion_var" in texts(ip, "nbfeat_completion_v")
    finally:
        del ip.user_ns["nbfeat_completion_var"]
