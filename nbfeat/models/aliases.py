"""The families the field names, mapped to source ids (one table, used everywhere).

Each entry: alias -> Alias(model id, family, modality, pip extra or "", note, model_kwargs).
The names people copy from ncut-pytorch (`SAM(sam_vit_b)`, `DiNO(dino_vits8_896)`, ...) and
THINGSvision (`cornet-s`, `clip`, ...) are entries as written; resolution variants carry
their `model_kwargs` (`img_size`). `UNSHIPPED` names families no library ships, with the way to
bring them as a module.
"""

from __future__ import annotations

from typing import Any, NamedTuple


class Alias(NamedTuple):
    id: str
    family: str
    modality: str
    extra: str
    note: str
    model_kwargs: dict[str, Any] = {}


_TABLE: dict[str, tuple[Any, ...]] = {
    # DINO (ViT, self-supervised, Caron et al. 2021)
    "dino_vits16": ("timm:vit_small_patch16_224.dino", "DINO", "image", "", ""),
    "dino_vits8": ("timm:vit_small_patch8_224.dino", "DINO", "image", "", ""),
    "dino_vitb16": ("timm:vit_base_patch16_224.dino", "DINO", "image", "", ""),
    "dino_vitb8": ("timm:vit_base_patch8_224.dino", "DINO", "image", "", ""),
    # DINOv2 and DINOv2 with registers
    "dinov2_vits14": ("timm:vit_small_patch14_dinov2.lvd142m", "DINOv2", "image", "", ""),
    "dinov2_vitb14": ("timm:vit_base_patch14_dinov2.lvd142m", "DINOv2", "image", "", ""),
    "dinov2_vitl14": ("timm:vit_large_patch14_dinov2.lvd142m", "DINOv2", "image", "", ""),
    "dinov2_vitg14": ("timm:vit_giant_patch14_dinov2.lvd142m", "DINOv2", "image", "", ""),
    "dinov2_vits14_reg": ("timm:vit_small_patch14_reg4_dinov2.lvd142m", "DINOv2-reg", "image", "", ""),
    "dinov2_vitb14_reg": ("timm:vit_base_patch14_reg4_dinov2.lvd142m", "DINOv2-reg", "image", "", ""),
    "dinov2_vitl14_reg": ("timm:vit_large_patch14_reg4_dinov2.lvd142m", "DINOv2-reg", "image", "", ""),
    "dinov2_vitg14_reg": ("timm:vit_giant_patch14_reg4_dinov2.lvd142m", "DINOv2-reg", "image", "", ""),
    "dinov2_hf_small": ("hf:facebook/dinov2-small", "DINOv2", "image", "", "Hugging Face weights"),
    "dinov2_hf_base": ("hf:facebook/dinov2-base", "DINOv2", "image", "", "Hugging Face weights"),
    # CLIP image towers: OpenAI, LAION, ConvNeXt, EVA02
    "clip_vitb32": ("timm:vit_base_patch32_clip_224.openai", "CLIP (OpenAI)", "image", "", ""),
    "clip_vitb16": ("timm:vit_base_patch16_clip_224.openai", "CLIP (OpenAI)", "image", "", ""),
    "clip_vitl14": ("timm:vit_large_patch14_clip_224.openai", "CLIP (OpenAI)", "image", "", ""),
    "clip_rn50": ("timm:resnet50_clip.openai", "CLIP (OpenAI)", "image", "", ""),
    "clip_vitb32_laion": ("timm:vit_base_patch32_clip_224.laion2b", "CLIP (LAION)", "image", "", ""),
    "clip_vitb16_laion": ("timm:vit_base_patch16_clip_224.laion2b", "CLIP (LAION)", "image", "", ""),
    "clip_vith14_laion": ("timm:vit_huge_patch14_clip_224.laion2b", "CLIP (LAION)", "image", "", ""),
    "clip_convnext_base": ("timm:convnext_base.clip_laion2b", "CLIP (ConvNeXt)", "image", "", ""),
    "clip_eva02_base": ("timm:eva02_base_patch16_clip_224.merged2b", "CLIP (EVA02)", "image", "", ""),
    "clip_eva02_large": ("timm:eva02_large_patch14_clip_224.merged2b", "CLIP (EVA02)", "image", "", ""),
    "clip_hf_vitb32": ("hf:openai/clip-vit-base-patch32", "CLIP (OpenAI)", "image", "", "Hugging Face weights; image tower"),
    # MAE
    "mae_vitb16": ("timm:vit_base_patch16_224.mae", "MAE", "image", "", ""),
    "mae_vitl16": ("timm:vit_large_patch16_224.mae", "MAE", "image", "", ""),
    "mae_vith14": ("timm:vit_huge_patch14_224.mae", "MAE", "image", "", ""),
    # SAM and SAM2 image encoders
    "sam_vitb": ("timm:samvit_base_patch16.sa1b", "SAM", "image", "", "image encoder"),
    "sam_vitl": ("timm:samvit_large_patch16.sa1b", "SAM", "image", "", "image encoder"),
    "sam_vith": ("timm:samvit_huge_patch16.sa1b", "SAM", "image", "", "image encoder"),
    "sam2_tiny": ("timm:sam2_hiera_tiny.fb_r896", "SAM2", "image", "", "Hiera image encoder"),
    "sam2_small": ("timm:sam2_hiera_small.fb_r896", "SAM2", "image", "", "Hiera image encoder"),
    "sam2_base_plus": ("timm:sam2_hiera_base_plus.fb_r896", "SAM2", "image", "", "Hiera image encoder"),
    "sam2_large": ("timm:sam2_hiera_large.fb_r1024", "SAM2", "image", "", "Hiera image encoder"),
    # ImageNet-supervised ViT
    "vit_s16_in1k": ("timm:vit_small_patch16_224.augreg_in21k_ft_in1k", "ImageNet ViT", "image", "", ""),
    "vit_b16_in1k": ("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", "ImageNet ViT", "image", "", ""),
    "vit_l16_in1k": ("timm:vit_large_patch16_224.augreg_in21k_ft_in1k", "ImageNet ViT", "image", "", ""),
    # torchvision CNNs (the neuroscience classics)
    "alexnet": ("torchvision:alexnet", "AlexNet", "image", "", ""),
    "vgg16": ("torchvision:vgg16", "VGG", "image", "", ""),
    "vgg19": ("torchvision:vgg19", "VGG", "image", "", ""),
    "resnet18": ("torchvision:resnet18", "ResNet", "image", "", ""),
    "resnet50": ("torchvision:resnet50", "ResNet", "image", "", ""),
    "resnet101": ("torchvision:resnet101", "ResNet", "image", "", ""),
    # Language models
    "gpt2": ("hf:openai-community/gpt2", "GPT-2", "text", "", ""),
    "gpt2-medium": ("hf:openai-community/gpt2-medium", "GPT-2", "text", "", ""),
    "gpt2-large": ("hf:openai-community/gpt2-large", "GPT-2", "text", "", ""),
    "llama3_8b": ("hf:meta-llama/Meta-Llama-3-8B", "Llama 3", "text", "", "gated: set HF_TOKEN"),
    "llama3.1_8b": ("hf:meta-llama/Llama-3.1-8B", "Llama 3", "text", "", "gated: set HF_TOKEN"),
    "llama3.2_1b": ("hf:meta-llama/Llama-3.2-1B", "Llama 3", "text", "", "gated: set HF_TOKEN"),
    "llama3.2_3b": ("hf:meta-llama/Llama-3.2-3B", "Llama 3", "text", "", "gated: set HF_TOKEN"),
    # CORnet (Kubilius et al. 2018/2019), as THINGSvision names them
    "cornet-z": ("cornet:cornet_z", "CORnet", "image", "", "THINGSvision name"),
    "cornet-s": ("cornet:cornet_s", "CORnet", "image", "", "THINGSvision name; recurrent: a `time` dim"),
    "cornet-r": ("cornet:cornet_r", "CORnet", "image", "", "THINGSvision name; recurrent: a `time` dim"),
    "cornet-rt": ("cornet:cornet_rt", "CORnet", "image", "", "THINGSvision name; recurrent: a `time` dim"),
    # CLIP through open_clip (THINGSvision's `clip` default is ViT-B/32 OpenAI)
    "clip": ("openclip:ViT-B-32/openai", "CLIP (OpenAI)", "image", "", "THINGSvision name; text tower: .../text"),
    "OpenCLIP": ("openclip:ViT-B-32/laion400m_e32", "CLIP (LAION)", "image", "", "THINGSvision name"),
    # ncut-pytorch's backbone list, spelled as written there
    "SAM2(sam2_hiera_t)": ("timm:sam2_hiera_tiny.fb_r896", "SAM2", "image", "", "ncut-pytorch name; Hiera trunk"),
    "SAM2(sam2_hiera_s)": ("timm:sam2_hiera_small.fb_r896", "SAM2", "image", "", "ncut-pytorch name; Hiera trunk"),
    "SAM2(sam2_hiera_b+)": ("timm:sam2_hiera_base_plus.fb_r896", "SAM2", "image", "", "ncut-pytorch name; Hiera trunk"),
    "SAM2(sam2_hiera_l)": ("timm:sam2_hiera_large.fb_r1024", "SAM2", "image", "", "ncut-pytorch name; Hiera trunk"),
    "SAM(sam_vit_b)": ("timm:samvit_base_patch16.sa1b", "SAM", "image", "", "ncut-pytorch name; image encoder, 1024 px"),
    "SAM(sam_vit_l)": ("timm:samvit_large_patch16.sa1b", "SAM", "image", "", "ncut-pytorch name; image encoder, 1024 px"),
    "SAM(sam_vit_h)": ("timm:samvit_huge_patch16.sa1b", "SAM", "image", "", "ncut-pytorch name; image encoder, 1024 px"),
    **{
        f"DiNOv2reg(dinov2_vit{s}14_reg)": (f"timm:vit_{size}_patch14_reg4_dinov2.lvd142m", "DiNOv2-reg", "image", "", "ncut-pytorch name, at its 672 px", {"img_size": 672})
        for s, size in (("s", "small"), ("b", "base"), ("l", "large"), ("g", "giant"))
    },
    **{
        f"DiNOv2(dinov2_vit{s}14)": (f"timm:vit_{size}_patch14_dinov2.lvd142m", "DiNOv2", "image", "", "ncut-pytorch name, at its 672 px", {"img_size": 672})
        for s, size in (("s", "small"), ("b", "base"), ("l", "large"), ("g", "giant"))
    },
    **{
        f"DiNO(dino_vit{s}{p}_{r})": (f"timm:vit_{size}_patch{p}_224.dino", "DINO", "image", "", f"ncut-pytorch name, at {r} px", {"img_size": r})
        for s, size, p, r in (
            ("s", "small", 8, 896), ("b", "base", 8, 896), ("s", "small", 8, 672), ("b", "base", 8, 672),
            ("s", "small", 8, 448), ("b", "base", 8, 448), ("s", "small", 16, 448), ("b", "base", 16, 448),
        )
    },
    "DiNO(dino_vitb8)": ("timm:vit_base_patch8_224.dino", "DINO", "image", "", "ncut-pytorch demo name"),
    "Diffusion(stabilityai/stable-diffusion-2)": ("diffusers:stabilityai/stable-diffusion-2", "Stable Diffusion", "image", "diffusers", "ncut-pytorch name; UNet blocks at a timestep"),
    "Diffusion(CompVis/stable-diffusion-v1-4)": ("diffusers:CompVis/stable-diffusion-v1-4", "Stable Diffusion", "image", "diffusers", "ncut-pytorch name; UNet blocks at a timestep"),
    "Diffusion(stabilityai/stable-diffusion-3-medium-diffusers)": ("diffusers:stabilityai/stable-diffusion-3-medium-diffusers", "Stable Diffusion 3", "image", "diffusers", "ncut-pytorch name; gated (HF_TOKEN); an MMDiT, see docs/recipes/ncut.md"),
    "CLIP(ViT-B-16/openai)": ("openclip:ViT-B-16/openai", "CLIP (OpenAI)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(ViT-L-14/openai)": ("openclip:ViT-L-14/openai", "CLIP (OpenAI)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(ViT-H-14/openai)": ("openclip:ViT-H-14/laion2b_s32b_b79k", "CLIP (LAION)", "image", "openclip", "ncut-pytorch name; OpenAI never released a ViT-H-14: these are open_clip's LAION-2B weights"),
    "CLIP(ViT-B-16/laion2b_s34b_b88k)": ("openclip:ViT-B-16/laion2b_s34b_b88k", "CLIP (LAION)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(convnext_base_w_320/laion_aesthetic_s13b_b82k)": ("openclip:convnext_base_w_320/laion_aesthetic_s13b_b82k", "CLIP (ConvNeXt)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(convnext_large_d_320/laion2b_s29b_b131k_ft_soup)": ("openclip:convnext_large_d_320/laion2b_s29b_b131k_ft_soup", "CLIP (ConvNeXt)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(convnext_xxlarge/laion2b_s34b_b82k_augreg_soup)": ("openclip:convnext_xxlarge/laion2b_s34b_b82k_augreg_soup", "CLIP (ConvNeXt)", "image", "openclip", "ncut-pytorch name"),
    "CLIP(eva02_base_patch14_448/mim_in22k_ft_in1k)": ("timm:eva02_base_patch14_448.mim_in22k_ft_in1k", "EVA02", "image", "", "ncut-pytorch name; timm weights"),
    "CLIP(eva02_large_patch14_448/mim_m38m_ft_in22k_in1k)": ("timm:eva02_large_patch14_448.mim_m38m_ft_in22k_in1k", "EVA02", "image", "", "ncut-pytorch name; timm weights"),
    "MAE(vit_base)": ("timm:vit_base_patch16_224.mae", "MAE", "image", "", "ncut-pytorch name"),
    "MAE(vit_large)": ("timm:vit_large_patch16_224.mae", "MAE", "image", "", "ncut-pytorch name"),
    "MAE(vit_huge)": ("timm:vit_huge_patch14_224.mae", "MAE", "image", "", "ncut-pytorch name"),
    "ImageNet(vit_base)": ("timm:vit_base_patch16_224.augreg2_in21k_ft_in1k", "ImageNet ViT", "image", "", "ncut-pytorch name, at its 672 px", {"img_size": 672}),
    # ncut-pytorch's text list: bare hub ids
    "meta-llama/Meta-Llama-3.1-8B": ("hf:meta-llama/Llama-3.1-8B", "Llama 3", "text", "", "ncut-pytorch name; the hub renamed the repo; gated: set HF_TOKEN"),
    "meta-llama/Meta-Llama-3-8B": ("hf:meta-llama/Meta-Llama-3-8B", "Llama 3", "text", "", "ncut-pytorch name; gated: set HF_TOKEN"),
}

ALIASES: dict[str, Alias] = {k: Alias(*v) for k, v in _TABLE.items()}


def _module_recipe(what: str, build: str) -> str:
    return (
        f"{what} Bring it as a module: {build} then bb = nbfeat.load(encoder, preprocess='imagenet', "
        "name='<your name>') (any torch.nn.Module works: tree, nodes, extract, out=, client=)."
    )


# Names whose family no supported library ships: the answer says how to bring it.
UNSHIPPED: dict[str, str] = {
    "MobileSAM(TinyViT)": _module_recipe(
        "MobileSAM's TinyViT encoder is not in timm, torchvision or Hugging Face.",
        "pip install git+https://github.com/ChaoningZhang/MobileSAM.git; from mobile_sam import sam_model_registry; "
        "encoder = sam_model_registry['vit_t'](checkpoint='mobile_sam.pt').image_encoder;",
    ),
    "LISA(xinlai/LISA-7B-v1)": _module_recipe(
        "LISA needs its own repository's code (a LLaVA + SAM model).",
        "install https://github.com/dvlab-research/LISA, build its model, take the part you study as `encoder`;",
    ),
    **{
        f"{m}-rn50": _module_recipe(
            f"THINGSvision's '{m}-rn50' is a ResNet-50 with {m} weights from VISSL or torch.hub, which no supported library ships.",
            f"convert the {m} checkpoint to torchvision keys and use nbfeat.load('torchvision:resnet50', weights='{m}_rn50.pth'), or build encoder = the hub model;",
        )
        for m in ("simclr", "mocov2", "jigsaw", "rotnet", "swav", "pirl", "barlowtwins", "vicreg")
    },
    **{
        f"{arch}_ecoset": (
            f"THINGSvision's '{arch}_ecoset' is a torchvision {arch.lower()} trained on Ecoset (565 classes): download its "
            f"checkpoint from the Kietzmann lab and load it with nbfeat.load('torchvision:{arch.lower().replace('inception', 'inception_v3')}', "
            "model_kwargs={'num_classes': 565}, weights='<checkpoint>.pth')."
        )
        for arch in ("Alexnet", "Resnet50", "VGG16", "Inception")
    },
    "AlexNet_SalObjSub": "THINGSvision's 'AlexNet_SalObjSub' comes from a Caffe model: convert it to a torchvision alexnet state dict and use nbfeat.load('torchvision:alexnet', weights='<file>.pth').",
    "Harmonization": "THINGSvision's Harmonization models are Keras/TensorFlow models: nbfeat extracts from PyTorch models only.",
}
