"""The families the field names, mapped to source ids (one table, used everywhere).

Each entry: alias -> (model id, family, modality, pip extra or "", note).
"""

from __future__ import annotations

ALIASES: dict[str, tuple[str, str, str, str, str]] = {
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
}
