"""The names people copy from ncut-pytorch and THINGSvision, tried as written."""

from __future__ import annotations

import sys

import pytest
import torch

import nbfeat
from nbfeat.errors import MissingDependencyError, NbfeatError
from nbfeat.models.registry import list_models, lookup

SEEDS = {
    "SAM(sam_vit_b)": "timm:samvit_base_patch16.sa1b",
    "DiNOv2reg(dinov2_vits14_reg)": "timm:vit_small_patch14_reg4_dinov2.lvd142m",
    "CLIP(ViT-B-16/openai)": "openclip:ViT-B-16/openai",
    "Diffusion(CompVis/stable-diffusion-v1-4)": "diffusers:CompVis/stable-diffusion-v1-4",
    "meta-llama/Meta-Llama-3.1-8B": "hf:meta-llama/Llama-3.1-8B",
    "gpt2": "hf:openai-community/gpt2",
    "cornet-s": "cornet:cornet_s",
}


@pytest.mark.parametrize("typed", list(SEEDS))
def test_seed_names_resolve_with_the_alias_shown(typed):
    r = lookup(typed)
    assert r.id == SEEDS[typed]
    assert r.shown == f"{typed} -> {SEEDS[typed]}"


def test_resolution_variants_and_shown_on_the_backbone():
    bb = nbfeat.load("DiNO(dino_vits16_448)", pretrained=False)
    assert bb.id == "timm:vit_small_patch16_224.dino" and bb.input_size == (3, 448, 448)
    assert bb.resolved == "DiNO(dino_vits16_448) -> timm:vit_small_patch16_224.dino"
    assert bb.provenance()["resolved"] == bb.resolved and bb.load_kwargs()["model_kwargs"] == {"img_size": 448}
    assert lookup("DiNO(dino_vitb8_896)").model_kwargs == {"img_size": 896}
    assert lookup("dino(dino_vits8_672)").model_kwargs == {"img_size": 672}  # case and spaces do not matter


def test_model_kwargs_through_extract():
    ds = nbfeat.extract("timm:vit_small_patch16_224.dino", torch.randn(1, 3, 64, 48), layers="blocks.0", model_kwargs={"img_size": (64, 48)}, pretrained=False, progress=False)
    assert ds["blocks.0"].attrs["grid"] == "4x3"


def test_bare_hub_ids_and_unshipped_families():
    assert lookup("someorg/some-model").id == "hf:someorg/some-model"
    with pytest.raises(NbfeatError, match=r"nbfeat.load\(encoder"):
        lookup("MobileSAM(TinyViT)")
    with pytest.raises(NbfeatError, match="torchvision:resnet50"):
        lookup("simclr-rn50")
    with pytest.raises(NbfeatError, match="num_classes"):
        lookup("Alexnet_ecoset")


def test_every_ncut_and_thingsvision_name_has_an_entry():
    ncut = [
        "SAM2(sam2_hiera_t)", "SAM2(sam2_hiera_s)", "SAM2(sam2_hiera_b+)", "SAM2(sam2_hiera_l)", "SAM(sam_vit_b)", "SAM(sam_vit_l)", "SAM(sam_vit_h)",
        "DiNOv2reg(dinov2_vits14_reg)", "DiNOv2reg(dinov2_vitb14_reg)", "DiNOv2reg(dinov2_vitl14_reg)", "DiNOv2reg(dinov2_vitg14_reg)",
        "DiNOv2(dinov2_vits14)", "DiNOv2(dinov2_vitb14)", "DiNOv2(dinov2_vitl14)", "DiNOv2(dinov2_vitg14)",
        "DiNO(dino_vits8_896)", "DiNO(dino_vitb8_896)", "DiNO(dino_vits8_672)", "DiNO(dino_vitb8_672)", "DiNO(dino_vits8_448)",
        "DiNO(dino_vitb8_448)", "DiNO(dino_vits16_448)", "DiNO(dino_vitb16_448)",
        "Diffusion(stabilityai/stable-diffusion-2)", "Diffusion(CompVis/stable-diffusion-v1-4)", "Diffusion(stabilityai/stable-diffusion-3-medium-diffusers)",
        "CLIP(ViT-B-16/openai)", "CLIP(ViT-L-14/openai)", "CLIP(ViT-H-14/openai)", "CLIP(ViT-B-16/laion2b_s34b_b88k)",
        "CLIP(convnext_base_w_320/laion_aesthetic_s13b_b82k)", "CLIP(convnext_large_d_320/laion2b_s29b_b131k_ft_soup)",
        "CLIP(convnext_xxlarge/laion2b_s34b_b82k_augreg_soup)", "CLIP(eva02_base_patch14_448/mim_in22k_ft_in1k)",
        "CLIP(eva02_large_patch14_448/mim_m38m_ft_in22k_in1k)", "MAE(vit_base)", "MAE(vit_large)", "MAE(vit_huge)", "ImageNet(vit_base)",
        "meta-llama/Meta-Llama-3.1-8B", "meta-llama/Meta-Llama-3-8B", "gpt2",
    ]
    things = ["cornet-s", "cornet-r", "cornet-rt", "cornet-z", "clip", "OpenCLIP", "alexnet", "resnet50", "vgg16"]
    for name in ncut + things:
        assert lookup(name).id, name
    for name in ("MobileSAM(TinyViT)", "simclr-rn50", "barlowtwins-rn50", "Resnet50_ecoset", "AlexNet_SalObjSub", "Harmonization"):
        with pytest.raises(NbfeatError):
            lookup(name)


def test_list_models_fills_extra_and_a_missing_extra_names_the_pip_command(monkeypatch):
    df = list_models()
    clip = df[df["source"] == "openclip"]
    assert len(clip) and (clip["extra"] == 'pip install "nbfeat[openclip]"').all()
    assert (df[df["source"] == "diffusers"]["extra"] == 'pip install "nbfeat[diffusers]"').all()
    assert (df[df["source"].isin(["timm", "torchvision"])]["extra"] == "").all()
    assert {"cornet:cornet_s", "SAM(sam_vit_b)"} <= set(df["id"])
    # open_clip / diffusers not installed: the pip command, before any download
    monkeypatch.setitem(sys.modules, "open_clip", None)
    monkeypatch.setitem(sys.modules, "diffusers", None)
    with pytest.raises(MissingDependencyError, match=r'pip install "nbfeat\[openclip\]"'):
        nbfeat.load("CLIP(ViT-B-16/openai)")
    with pytest.raises(MissingDependencyError, match=r'pip install "nbfeat\[diffusers\]"'):
        nbfeat.load("Diffusion(CompVis/stable-diffusion-v1-4)")


def test_unknown_names_suggest_and_mention_modules():
    with pytest.raises(nbfeat.errors.UnknownModelError, match="nbfeat.load\\(module\\)"):
        nbfeat.load("resnet500000x")
