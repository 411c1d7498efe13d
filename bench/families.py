"""Benchmark 7: every model family as a ratio to its own plain forward pass.

So a family adapter cannot make a family slow unnoticed. Per family, random weights, the
model loaded through the same public path a user takes (`nbfeat.load`), and per batch, back
to back in a rotated order: the family's own plain forward (`model(x)`, `model(**enc)`,
`unet(latents, t, encoder_hidden_states)`) and nbfeat's engine on the same batch
(`run.iter_batches`, batches dropped as a sink would). The whole call is `bb.extract(...)`
(prepare, probe, engine, labelled result in memory) against the plain loop over all batches.

- Swin-T: nodes attn/mlp/block at every depth (window attention merged back onto the grid);
- ConvNeXt-T: its four stages as timm `features_only` / HF `AutoBackbone` give them;
- BERT-base (text, every text 64 tokens so buckets play no part): nodes attn/mlp/block x 12;
- a diffusion UNet at one timestep (`diffusers:` source), when that source is installed;
- a user's own `torch.nn.Module` (`nbfeat.load(module)`): a torchvision ResNet-18 built by hand.

>>> python -m bench.run --quick --only families      # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import Paired, collect, median, r3, timed

GOAL = 1.10  # per batch, nbfeat vs the family's own forward


def run(quick: bool = False) -> dict[str, Any]:
    n = 16 if quick else 64
    bs = 8 if quick else 16
    rounds = 2
    rows, notes = [], []
    with tempfile.TemporaryDirectory(prefix="nbfeat-bench-families-") as tmp:
        for label, build in FAMILIES:
            try:
                case = build(Path(tmp), n)
            except Exception as e:  # a family whose source is not there yet: say why, go on
                rows.append({"family": label, "status": "not measured", "error": f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"})
                continue
            try:
                rows.append({"family": label, **measure(case, n, bs, rounds)})
            except Exception as e:
                rows.append({"family": label, "status": "error", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-1500:]})
            del case
            collect()
    goals = [
        {"goal": f"family vs its own plain forward, per batch: {r['family']}", "target": f"<= {GOAL}", "measured": r["ratio_vs_plain"], "met": r["ratio_vs_plain"] <= GOAL}
        for r in rows
        if "ratio_vs_plain" in r
    ]
    return {"params": {"inputs": n, "batch_size": bs, "whole-call rounds": rounds, "device": "cpu", "weights": "random"}, "rows": rows, "goals": goals, "notes": notes}


def measure(case: dict[str, Any], n: int, bs: int, rounds: int) -> dict[str, Any]:
    """Per-batch paired timings of the plain forward and nbfeat's engine, then whole calls."""
    import torch

    bb, inputs, kw, plain = case["bb"], case["inputs"], case["kw"], case["plain"]
    chunks = [list(range(i, min(i + bs, n))) for i in range(0, n, bs)]
    prepare_s, r = timed(lambda: bb.prepare(inputs, batch_size=bs, **kw))

    def forward(chunk: list[int]) -> Callable[[], None]:
        def call() -> None:
            with torch.inference_mode():
                plain(chunk)

        return call

    def engine(chunk: list[int]) -> Callable[[], None]:
        def call() -> None:
            for _ in r.iter_batches(chunk):
                pass

        return call

    forward(chunks[0])()  # warm-up
    engine(chunks[0])()
    pairs = Paired()
    for i, chunk in enumerate(chunks):
        pairs.time_round(i, {"plain": forward(chunk), "nbfeat": engine(chunk)})
    variables = {k: [*v.dims] for k, v in r.variables.items()}
    r = None  # the prepared run is done with
    collect()

    def plain_loop() -> None:
        with torch.inference_mode():
            for c in chunks:
                plain(c)

    whole = Paired()
    for i in range(rounds):
        whole.time_round(i, {"extract": lambda: bb.extract(inputs, batch_size=bs, progress=False, **kw), "plain": plain_loop})
        collect()
    return {
        "model": case["model"],
        "target": case["target"],
        "plain": case["plain_name"],
        "ratio_vs_plain": r3(pairs.ratio("nbfeat", "plain")),
        "ratio_spread": pairs.spread("nbfeat", "plain"),
        "whole_call_ratio_vs_plain": r3(whole.ratio("extract", "plain")),
        "nbfeat_per_s": r3(n / median(whole.times["extract"])),
        "plain_per_s": r3(n / median(whole.times["plain"])),
        "prepare_s": r3(prepare_s),
        "variables": ", ".join(f"{k} ({' x '.join(d[1:])})" for k, d in list(variables.items())[:4]) + (" ..." if len(variables) > 4 else ""),
        "adapter": bb.adapter.family,
    }


def _images(n: int, size: int = 224) -> Any:
    import torch

    torch.manual_seed(0)
    return torch.randn(n, 3, size, size)


def _timm(model_id: str, kw: dict[str, Any], target: str) -> Callable[[Path, int], dict[str, Any]]:
    def build(tmp: Path, n: int) -> dict[str, Any]:
        import nbfeat

        bb = nbfeat.load(model_id, pretrained=False, device="cpu")
        x = _images(n)
        return {"bb": bb, "inputs": x, "kw": kw, "plain": lambda c: bb.model(x[c[0] : c[-1] + 1]), "plain_name": "model(x)", "model": model_id, "target": target}

    return build


def swin(tmp: Path, n: int) -> dict[str, Any]:
    return _timm("timm:swin_tiny_patch4_window7_224", {"nodes": ["attn", "mlp", "block"]}, "nodes attn/mlp/block, every depth")(tmp, n)


def convnext(tmp: Path, n: int) -> dict[str, Any]:
    import nbfeat

    bb = nbfeat.load("timm:convnext_tiny", pretrained=False, device="cpu")
    numbers = [s.index for s in bb.stages if s.index > 0][-4:]
    case = _timm("timm:convnext_tiny", {"stages": numbers}, f"stages {numbers}")(tmp, n)
    return case


def bert(tmp: Path, n: int) -> dict[str, Any]:
    import nbfeat
    from bench.text import save_bert, texts_of

    path = save_bert(tmp / "bert")
    bb = nbfeat.load("hf:" + str(path), device="cpu")
    texts = texts_of([62] * n)  # + [CLS] and [SEP]: 64 tokens each
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    enc = tok(texts, padding=True, return_tensors="pt")
    assert enc["input_ids"].shape[1] == 64, enc["input_ids"].shape
    return {
        "bb": bb,
        "inputs": texts,
        "kw": {"nodes": ["attn", "mlp", "block"]},
        "plain": lambda c: bb.model(input_ids=enc["input_ids"][c[0] : c[-1] + 1], attention_mask=enc["attention_mask"][c[0] : c[-1] + 1]),
        "plain_name": "model(**enc)",
        "model": "BERT-base (hf:<dir>)",
        "target": "nodes attn/mlp/block x 12, 64 tokens",
    }


def unet(tmp: Path, n: int) -> dict[str, Any]:
    """A diffusion UNet at one timestep through the `diffusers:` source: a pipeline folder with a
    UNet2DModel (64-128-256-256 channels, attention at the middle levels) on the latents of a
    small AutoencoderKL, DDPM scheduler, timestep 100."""
    import json

    import diffusers
    import torch

    import nbfeat

    root = tmp / "unet-pipeline"
    torch.manual_seed(0)
    parts = {
        "unet": diffusers.UNet2DModel(
            sample_size=32, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(64, 128, 256, 256),
            down_block_types=("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
            up_block_types=("UpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        ),
        "vae": diffusers.AutoencoderKL(
            in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 64), sample_size=64, norm_num_groups=32,
            down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
        ),
        "scheduler": diffusers.DDPMScheduler(num_train_timesteps=1000),
    }
    for name, part in parts.items():
        part.save_pretrained(root / name)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "DDPMPipeline", "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DModel"], "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDPMScheduler"],
    }))
    bb = nbfeat.load("diffusers:" + str(root), pretrained=False, device="cpu", model_kwargs={"timestep": 100, "seed": 0})
    side = int(bb.input_size[-1])
    torch.manual_seed(0)
    x = torch.rand(n, 3, side, side) * 2 - 1
    model = bb.model
    layers = ["unet.mid_block", "unet.up_blocks.3"]
    return {
        "bb": bb, "inputs": x, "kw": {"layers": layers}, "plain": lambda c: model(x[c[0] : c[-1] + 1]),
        "plain_name": "the source's own forward (VAE encode, noise, UNet), one timestep",
        "model": f"UNet2DModel on AutoencoderKL latents, {side}px (diffusers:<dir>)", "target": ", ".join(layers),
    }


def user_module(tmp: Path, n: int) -> dict[str, Any]:
    import torchvision

    import nbfeat

    model = torchvision.models.resnet18()
    bb = nbfeat.load(model, name="my-resnet18", device="cpu")
    x = _images(n)
    return {"bb": bb, "inputs": x, "kw": {"layers": ["layer4"]}, "plain": lambda c: model(x[c[0] : c[-1] + 1]), "plain_name": "model(x)", "model": "nbfeat.load(torchvision resnet18 instance)", "target": "layer4"}


FAMILIES: list[tuple[str, Callable[[Path, int], dict[str, Any]]]] = [
    ("Swin-T", swin),
    ("ConvNeXt-T", convnext),
    ("BERT-base", bert),
    ("diffusion UNet", unet),
    ("user nn.Module", user_module),
]
