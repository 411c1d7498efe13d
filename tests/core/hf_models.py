"""Tiny Hugging Face models with random weights, saved the way a user's would be."""

from __future__ import annotations

import torch

CORPUS = [
    "I know this sky loves you",
    "the quick brown fox jumps over the lazy dog",
    "features from every layer of a network",
    "a cat sat on the mat and looked at the sky",
]


def save_gpt2(path, n_layer=2, n_positions=64):
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(CORPUS * 5, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=n_layer, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=n_positions)
    GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_dinov2(path):
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    torch.manual_seed(0)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=28, patch_size=7)
    Dinov2Model(cfg).eval().save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}, do_convert_rgb=True).save_pretrained(path)
    return path


def save_vit(path):
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    torch.manual_seed(0)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    ViTModel(cfg).eval().save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path
