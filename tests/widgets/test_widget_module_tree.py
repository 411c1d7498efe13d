"""module_tree: hierarchy, parameter counts, and output shapes from a meta-device dry run."""

from __future__ import annotations

import time

import pytest
import torch
import torch.nn as nn

from nbfeat.models.tree import module_tree


def real_shapes(model, x):
    """Output shape of every module's first call in a real forward (the reference)."""
    from nbfeat.engine.hooks import hidden_state

    seen, calls = {}, {}

    def hook(path):
        def fn(m, a, out):
            calls[path] = calls.get(path, 0) + 1
            seen.setdefault(path, list(hidden_state(out)[0].shape))

        return fn

    handles = [m.register_forward_hook(hook(p)) for p, m in model.named_modules()]
    with torch.no_grad():
        model(x)
    for h in handles:
        h.remove()
    return seen, calls


def test_resnet_rows_match_a_real_forward(resnet):
    rows = module_tree(resnet)
    by_path = {r["path"]: r for r in rows}
    want_shapes, want_calls = real_shapes(resnet.model, torch.zeros(1, 3, 224, 224))
    assert [r["path"] for r in rows] == [p for p, _ in resnet.model.named_modules()]
    for path, module in resnet.model.named_modules():
        row = by_path[path]
        assert row["shape"] == want_shapes[path], path
        assert row["calls"] == want_calls[path], path
        assert row["params"] == sum(p.numel() for p in module.parameters())
        assert row["type"] == type(module).__name__
    assert by_path["layer1.0.relu"]["calls"] == 2  # the shared ReLU of a BasicBlock
    assert by_path["layer3.1.conv2"] == {
        "path": "layer3.1.conv2", "name": "conv2", "type": "Conv2d", "depth": 3, "parent": "layer3.1",
        "params": 256 * 256 * 9, "shape": [1, 256, 14, 14], "calls": 1, "role": None,
    }
    root = by_path[""]
    assert (root["name"], root["parent"], root["depth"], root["shape"]) == ("torchvision:resnet18", None, 0, [1, 1000])
    assert {r["path"] for r in rows if r["role"] == "block"} == set(resnet.blocks)


def test_the_dry_run_touches_no_weights_and_keeps_modes():
    import torchvision

    model = torchvision.models.get_model("resnet18", weights=None).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    ptrs = {k: v.data_ptr() for k, v in model.state_dict().items()}
    rows = module_tree(model)
    assert rows[0]["shape"] == [1, 1000]
    assert model.training and all(m.training for m in model.modules())
    for k, v in model.state_dict().items():
        assert v.data_ptr() == ptrs[k]
        torch.testing.assert_close(v, before[k], rtol=0, atol=0)  # batch-norm stats unmoved


def test_a_meta_model_gets_shapes_without_weights():
    import timm

    with torch.device("meta"):
        model = timm.create_model("vit_small_patch14_dinov2", pretrained=False)
    rows = {r["path"]: r for r in module_tree(model)}
    # timm's pretrained_cfg input size (518 px, 14 px patches): 37 x 37 patches + class token
    assert rows["blocks.11"]["shape"] == [1, 1 + 37 * 37, 384]
    assert rows["blocks.0.attn.qkv"]["shape"] == [1, 1370, 3 * 384]
    assert rows[""]["params"] == sum(p.numel() for p in model.parameters())
    assert all(p.is_meta for p in model.parameters())


def test_llama_8b_sized_tree_from_config_on_meta():
    from transformers import AutoModel, LlamaConfig

    cfg = LlamaConfig(hidden_size=4096, intermediate_size=14336, num_hidden_layers=32, num_attention_heads=32, num_key_value_heads=8, vocab_size=128256)
    t0 = time.perf_counter()
    with torch.device("meta"):
        model = AutoModel.from_config(cfg)
    t1 = time.perf_counter()
    rows = module_tree(model)
    t2 = time.perf_counter()
    by_path = {r["path"]: r for r in rows}
    for i in range(32):
        assert by_path[f"layers.{i}"]["shape"] == [1, 8, 4096]
        assert by_path[f"layers.{i}.mlp.gate_proj"]["shape"] == [1, 8, 14336]
        assert by_path[f"layers.{i}.self_attn.k_proj"]["shape"] == [1, 8, 1024]  # 8 kv heads
    assert by_path[""]["params"] == sum(p.numel() for p in model.parameters())
    assert by_path[""]["params"] > 7e9
    print(f"\nllama-8b-sized: build {t1 - t0:.2f} s, tree with shapes {t2 - t1:.2f} s, {len(rows)} modules")


def test_hf_models_use_their_main_input():
    from transformers import GPT2Config, GPT2Model, ViTConfig, ViTModel

    vit = ViTModel(ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8))
    assert module_tree(vit)[0]["shape"] == [1, 17, 32]
    gpt = GPT2Model(GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=100, bos_token_id=0, eos_token_id=0))
    rows = {r["path"]: r for r in module_tree(gpt)}
    assert rows["h.1"]["shape"] == [1, 8, 32]
    assert rows["h"]["shape"] is None and rows["h"]["calls"] == 0  # a ModuleList is never called


class NeedsRealValues(nn.Module):
    """Data-dependent control flow: `.item()` fails on meta tensors."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.head = nn.Linear(4, 2)

    def forward(self, x):
        y = self.conv(x)
        if y.mean().item() > 1e9:
            y = y * 0
        return self.head(y.mean(dim=(2, 3)))


def test_falls_back_to_a_real_pass_for_small_models():
    rows = {r["path"]: r for r in module_tree(NeedsRealValues())}
    assert rows["conv"]["shape"] == [1, 4, 222, 222]
    assert rows[""]["shape"] == [1, 2]


def test_never_crashes_when_no_pass_can_run():
    with torch.device("meta"):
        model = NeedsRealValues()
    rows = {r["path"]: r for r in module_tree(model)}
    # the meta pass got as far as the conv: its shape is right, later ones unknown
    assert rows["conv"]["shape"] == [1, 4, 222, 222]
    assert rows["head"]["shape"] is None and rows["head"]["calls"] is None
    assert rows["head"]["params"] == 4 * 2 + 2


def test_explicit_dummy_inputs():
    rows = module_tree(NeedsRealValues(), dummy=torch.zeros(1, 3, 10, 12))
    assert rows[1]["shape"] == [1, 4, 8, 10]
    rows = module_tree(NeedsRealValues(), dummy=((torch.zeros(1, 3, 5, 5),), {}))
    assert rows[1]["shape"] == [1, 4, 3, 3]


@pytest.mark.parametrize("bad", [object(), (("not a tensor",), {})])
def test_unusable_dummy_inputs_give_no_shapes(bad):
    rows = module_tree(nn.Sequential(nn.Linear(2, 2)), dummy=bad)
    assert [r["shape"] for r in rows] == [None, None]
