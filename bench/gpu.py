"""GPU figures (only where `torch.cuda.is_available()`): resnet50 and ViT-B/16, batch 256, bf16.

Images/s of the plain forward `model(x)` and of `bb.extract(x)` at the last layer (features
copied back to host memory, as a user gets them), inputs already on the device, rounds
alternating which goes first. Skipped cleanly without a GPU.

>>> python -m bench.run --only gpu      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from bench.common import Paired, collect, r3

MODELS = [("torchvision:resnet50", "avgpool"), ("timm:vit_base_patch16_224", "blocks.11")]


def run(quick: bool = False) -> dict[str, Any]:
    import torch

    if not torch.cuda.is_available():
        return {"status": "skipped", "reason": "no CUDA device here (torch.cuda.is_available() is False)"}
    bs = 256
    n = bs * (2 if quick else 8)
    rows = []
    for m, layer in MODELS:
        rows.append(measure(m, layer, "cuda", "bfloat16", n, bs, rounds=2 if quick else 3))
        collect()
        torch.cuda.empty_cache()
    return {"params": {"batch_size": bs, "images": n, "dtype": "bfloat16", "device": torch.cuda.get_device_name(0)}, "rows": rows}


def measure(model_id: str, layer: str, device: str, dtype: str, n: int, bs: int, rounds: int) -> dict[str, Any]:
    """Plain forward vs bb.extract over `n` images on `device` (also runs on CPU, for checking)."""
    import torch

    import nbfeat

    bb = nbfeat.load(model_id, pretrained=False, device=device, dtype=dtype)
    x = torch.randn(n, 3, 224, 224, device=device, dtype=bb.dtype)
    sync = torch.cuda.synchronize if device.startswith("cuda") else (lambda: None)

    def plain() -> None:
        with torch.inference_mode():
            for i in range(0, n, bs):
                bb.model(x[i : i + bs])
        sync()

    def extract() -> None:
        bb.extract(x, layers=[layer], batch_size=bs, progress=False)
        sync()

    plain()  # warm-up: kernels, allocator
    extract()
    pairs = Paired()
    for r in range(rounds):
        pairs.time_round(r, {"plain": plain, "nbfeat": extract})
    return {
        "model": model_id,
        "layer": layer,
        "plain_images_per_s": r3(n * rounds / pairs.total("plain")),
        "nbfeat_images_per_s": r3(n * rounds / pairs.total("nbfeat")),
        "ratio_vs_plain": r3(pairs.ratio("nbfeat", "plain")),
    }
