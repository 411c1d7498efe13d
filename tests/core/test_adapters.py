"""Family adapters: layouts from library metadata (not shapes), the generic fallback, the tree,
and short errors for what nbfeat cannot do. Values per architecture: tests/conformance."""

from __future__ import annotations

import pytest
import timm
import torch

import nbfeat
from nbfeat.errors import NbfeatError
from nbfeat.models.tree import module_tree
from tests.core.helpers import assert_values

SWIN = dict(depths=(2, 2), embed_dim=16, num_heads=(1, 2), img_size=(64, 96), window_size=4)


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def _saved_timm(tmp_path, name, **kwargs):
    from safetensors.torch import save_file

    torch.manual_seed(0)
    ref = timm.create_model(name, pretrained=False, **kwargs).eval()
    path = tmp_path / f"{name}.safetensors"
    save_file(ref.state_dict(), str(path))
    return ref, nbfeat.load(f"timm:{name}", weights=str(path), model_kwargs=kwargs)


def test_a_map_whose_channels_equal_its_height_stays_nchw(tmp_path):
    # resnet18 on 256x320: layer1 is 64 x 64 x 80, which a shape guess took for NHWC
    ref, bb = _saved_timm(tmp_path, "resnet18")
    x = torch.randn(2, 3, 256, 320)
    ds = bb.extract(x, layers=["layer1"], progress=False)
    with torch.no_grad():
        want = ref.layer1(ref.maxpool(ref.act1(ref.bn1(ref.conv1(x)))))
    assert ds["layer1"].dims == ("sample", "channel", "y", "x") and ds["layer1"].shape == (2, 64, 64, 80)
    assert_values(ds["layer1"].values, want)
    pooled = bb.extract(x, layers=["layer1"], pool="mean", progress=False)
    assert_values(pooled["layer1"].values, want.mean(dim=(2, 3)))
    assert "layout" not in ds["layer1"].attrs and ds["layer1"].attrs["family"] == "timm.cnn"


@pytest.mark.parametrize("kwargs", [dict(img_size=(64, 96)), dict(dynamic_img_size=True)])
def test_non_square_vit_grid_comes_from_the_patch_embedding(tmp_path, kwargs):
    ref, bb = _saved_timm(tmp_path, "vit_tiny_patch16_224", depth=1, **kwargs)
    x = torch.randn(2, 3, 64, 96)
    ds = bb.extract(x, layers=[-1], progress=False)
    assert ds["blocks.0"].attrs["grid"] == "4x6" and ds["blocks.0"].attrs["prefix_tokens"] == 1
    grid = bb.extract(x, layers=[-1], pool=("avg2d", 1), progress=False)
    assert_values(grid["blocks.0"].values[:, :, 0, 0], torch.as_tensor(ds["blocks.0"].values)[:, 1:].mean(dim=1))


def test_generic_fallback_says_so_in_attrs_and_tree():
    bb = nbfeat.load("torchvision:alexnet", pretrained=False)
    assert bb.adapter.family == "generic"
    ds = bb.extract(torch.randn(1, 3, 224, 224), layers=["features.0"], progress=False)
    assert ds.attrs["family"] == "generic" and ds["features.0"].attrs["family"] == "generic"
    assert module_tree(bb)[0]["family"] == "generic"
    with pytest.raises(NbfeatError, match="no stages") as err:
        bb.extract(torch.randn(1, 3, 224, 224), stages=[1], progress=False)
    assert len(str(err.value)) < 300


def test_tree_shows_windowed_attention_on_the_image_grid():
    bb = nbfeat.load("timm:swin_tiny_patch4_window7_224", pretrained=False, model_kwargs=SWIN)
    rows = {r["path"]: r for r in module_tree(bb)}
    assert rows[""]["family"] == "timm.swin"
    attn = rows["layers.0.blocks.1.attn"]
    assert attn["captured_shape"] == [24, 16, 16]  # 24 windows of 4x4 tokens
    assert attn["shape"] == [1, 16, 16, 24] and "windows undone" in attn["layout"] and "shift 2x2" in attn["layout"]
    assert rows["layers.0.blocks.1"]["shape"] == [1, 16, 16, 24]  # NHWC moved to channel-first


def test_nodes_on_a_hierarchical_model_give_one_group_per_stage():
    bb = nbfeat.load("timm:swin_tiny_patch4_window7_224", pretrained=False, model_kwargs=SWIN)
    dt = bb.extract(torch.randn(1, 3, 64, 96), nodes=["block"], progress=False)
    assert set(dt.children) == {"block.stage1", "block.stage2"}
    v = dt["block.stage2"]["block.stage2"]
    assert v.dims == ("sample", "layer", "channel", "y", "x") and v.shape == (1, 2, 32, 8, 12)
    assert list(dt["block.stage2"]["module"].values) == ["layers.1.blocks.0", "layers.1.blocks.1"]
    assert [s.name for s in bb.stages] == ["stage0", "stage1", "stage2"]


def test_short_errors_for_what_nbfeat_cannot_do():
    bb = nbfeat.load("timm:swin_tiny_patch4_window7_224", pretrained=False, model_kwargs=SWIN)
    x = torch.randn(1, 3, 64, 96)
    cases = [
        (dict(layers=[-1], pool="cls"), "no class token"),
        (dict(layers=["layers.0.blocks.0.attn.softmax"], pool="mean"), "does not apply"),
        (dict(stages=[7]), "stage0, stage1, stage2"),
        (dict(layers="stage9"), "stage0, stage1, stage2"),
        (dict(stages=["first"]), "stage numbers"),
    ]
    for kwargs, words in cases:
        with pytest.raises(NbfeatError) as err:
            bb.extract(x, progress=False, **kwargs)
        assert words in str(err.value) and len(str(err.value)) < 300 and "Traceback" not in str(err.value), kwargs


def test_a_timm_trunk_inside_open_clip_uses_its_family_adapter():
    # the CLIP ConvNeXt towers: open_clip's TimmModel wraps a timm ConvNeXt as `trunk`
    timm_model = pytest.importorskip("open_clip.timm_model")
    torch.manual_seed(0)
    visual = timm_model.TimmModel("convnext_atto", embed_dim=16, image_size=64, pool="avg", proj="linear").eval()
    bb = nbfeat.load(visual)
    assert bb.adapter.family == "timm.convnext" and bb.stages[1].module == "trunk.stages.0"
    x = torch.randn(2, 3, 64, 96)
    dt = bb.extract(x, nodes="block", stages=[1, 2], progress=False)
    with torch.no_grad():
        levels = visual.trunk.forward_intermediates(x, indices=4, intermediates_only=True)
    assert_values(dt["stage2"]["stage2"].values, levels[1])
    assert_values(dt["block.stage4"]["block.stage4"].values[:, -1], levels[3])
    assert list(dt["block.stage2"]["module"].values) == ["trunk.stages.1.blocks.0", "trunk.stages.1.blocks.1"]


def test_open_clip_vit_tower_nodes_and_pools():
    transformer = pytest.importorskip("open_clip.transformer")
    torch.manual_seed(0)
    visual = transformer.VisionTransformer(image_size=(32, 48), patch_size=8, width=32, layers=2, heads=2, mlp_ratio=2.0, output_dim=16).eval()
    bb = nbfeat.load(visual)
    assert bb.adapter.family == "open_clip.vit"
    x = torch.randn(2, 3, 32, 48)
    blocks = visual.transformer.resblocks
    out = {}

    def keep(key):
        def hook(module, args, output):  # returns None: a returned value would replace the output
            out.setdefault(key, (output[0] if isinstance(output, tuple) else output).clone())

        return hook

    hooks = [m.register_forward_hook(keep(k)) for k, m in [("attn0", blocks[0].attn), ("mlp1", blocks[1].mlp), ("block1", blocks[1])]]
    with torch.no_grad():
        visual(x)
    for h in hooks:
        h.remove()
    ds = bb.extract(x, nodes=["attn", "mlp", "block"], progress=False)
    assert_values(ds["attn"].values[:, 0], out["attn0"])
    assert_values(ds["mlp"].values[:, 1], out["mlp1"])
    assert_values(ds["block"].values[:, 1], out["block1"])
    pooled = bb.extract(x, layers=[-1], pool="mean", progress=False)
    assert_values(pooled["transformer.resblocks.1"].values, out["block1"][:, 1:].mean(dim=1))  # patch tokens only
    grid = bb.extract(x, layers=[-1], pool=("avg2d", 1), progress=False)
    assert grid["transformer.resblocks.1"].shape == (2, 32, 1, 1)


@pytest.mark.parametrize(
    "model, kwargs, layer, hint",
    [
        ("timm:swin_tiny_patch4_window7_224", SWIN, "layers.0.blocks.0.attn.softmax", "layers.0.blocks.0.attn"),
        ("timm:samvit_base_patch16", dict(depth=2, embed_dim=32, num_heads=2, img_size=(64, 96), global_attn_indexes=(1,), window_size=3), "blocks.0.attn.q_norm", "blocks.0.attn"),
    ],
)
def test_a_module_that_runs_per_window_gets_a_short_error(model, kwargs, layer, hint):
    bb = nbfeat.load(model, pretrained=False, model_kwargs=kwargs)
    with pytest.raises(NbfeatError) as err:
        bb.extract(torch.randn(2, 3, 64, 96), layers=[layer], progress=False)
    assert "per window" in str(err.value) and hint in str(err.value) and len(str(err.value)) < 400
