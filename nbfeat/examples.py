"""Sample data for demos, notebooks and tests that must run offline.

`make_images` draws a small labelled image folder. The `save_tiny_*` functions build small
Hugging Face models with random weights and save them the way a downloaded model is saved,
so `nbfeat.load("hf:<dir>")` takes exactly the path a hub model takes.

>>> folder = make_images("sample_images")                       # doctest: +SKIP
>>> lm = nbfeat.load("hf:" + str(save_tiny_gpt2("tiny-gpt2")))    # doctest: +SKIP
"""

from __future__ import annotations

import os
from pathlib import Path

CLASSES = ("circles", "squares", "stripes")
SENTENCES = [
    "I know this sky loves you",
    "the quick brown fox jumps over the lazy dog",
    "features from every layer of a network",
    "a cat sat on the mat and looked at the sky",
    "colourless green ideas sleep furiously",
    "the model reads one token at a time",
]


def make_images(root: str | os.PathLike[str], per_class: int = 8, size: int = 160, seed: int = 0) -> Path:
    """Draw `per_class` images per shape class (circles, squares, stripes) into `root/<class>/`."""
    import numpy as np
    from PIL import Image, ImageDraw

    root = Path(root)
    rng = np.random.default_rng(seed)
    for cls in CLASSES:
        (root / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            bg = tuple(int(c) for c in rng.integers(0, 256, 3))
            fg = tuple(int(c) for c in rng.integers(0, 256, 3))
            img = Image.new("RGB", (size, size), bg)
            d = ImageDraw.Draw(img)
            r = int(rng.integers(size // 6, size // 3))
            cx, cy = (int(v) for v in rng.integers(r, size - r, 2))
            if cls == "circles":
                d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
            elif cls == "squares":
                d.rectangle([cx - r, cy - r, cx + r, cy + r], fill=fg)
            else:
                step = int(rng.integers(8, 24))
                for x in range(0, size, step * 2):
                    d.rectangle([x, 0, x + step - 1, size], fill=fg)
            img.save(root / cls / f"{cls}_{i:02d}.png")
    return root


PHOTOS = ("astronaut", "coffee", "chelsea", "rocket")  # photographs scikit-image ships


def add_photos(root: str | os.PathLike[str], folder: str = "photos", side: int = 256) -> Path:
    """Write the real photographs scikit-image ships (astronaut, coffee, chelsea the cat, a
    rocket) into `root/<folder>/`, longest side `side` px; non-square on purpose.

    >>> add_photos("sample_images")                       # doctest: +SKIP
    PosixPath('sample_images/photos')
    """
    try:
        import skimage.data
    except ImportError:  # pragma: no cover - a dependency; the message says how to get it
        from nbfeat.errors import NbfeatError

        raise NbfeatError("The sample photographs come from scikit-image: pip install scikit-image") from None
    from PIL import Image

    out = Path(root) / folder
    out.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        img = Image.fromarray(getattr(skimage.data, name)()).convert("RGB")
        img.thumbnail((side, side))
        img.save(out / f"{name}.png")
    return out


def save_tiny_gpt2(path: str | os.PathLike[str], n_layer: int = 2, n_embd: int = 32, n_positions: int = 64, seed: int = 0) -> Path:
    """A GPT-2-shaped model (random weights) and a byte-level BPE tokenizer trained on a few sentences."""
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, GPT2TokenizerFast

    path = Path(path)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(SENTENCES * 5, vocab_size=300, min_frequency=1, special_tokens=["<|endoftext|>"])
    tok = GPT2TokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>", unk_token="<|endoftext|>")
    torch.manual_seed(seed)
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    cfg = GPT2Config(n_layer=n_layer, n_embd=n_embd, n_head=2, vocab_size=len(tok), n_positions=n_positions, bos_token_id=eos, eos_token_id=eos)
    GPT2LMHeadModel(cfg).eval().save_pretrained(path)
    tok.save_pretrained(path)
    return path


def save_tiny_dinov2(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A DINOv2-shaped image model (random weights, 28 px input, 7 px patches) and its processor."""
    import torch
    from transformers import BitImageProcessor, Dinov2Config, Dinov2Model

    path = Path(path)
    torch.manual_seed(seed)
    cfg = Dinov2Config(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=28, patch_size=7)
    Dinov2Model(cfg).eval().save_pretrained(path)
    BitImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 28, "width": 28}, do_convert_rgb=True).save_pretrained(path)
    return path


def save_tiny_vit(path: str | os.PathLike[str], seed: int = 0) -> Path:
    """A ViT-shaped image model (random weights, 32 px input, 8 px patches) and its processor."""
    import torch
    from transformers import ViTConfig, ViTImageProcessor, ViTModel

    path = Path(path)
    torch.manual_seed(seed)
    cfg = ViTConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, image_size=32, patch_size=8)
    ViTModel(cfg).eval().save_pretrained(path)
    ViTImageProcessor(size={"height": 32, "width": 32}).save_pretrained(path)
    return path
