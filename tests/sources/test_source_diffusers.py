"""diffusers: a tiny UNet + VAE + scheduler + CLIP text encoder saved as a pipeline folder,
loaded with nbfeat.load("diffusers:" + dir); values vs a forward with hooks written here."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import nbfeat
from nbfeat.errors import NbfeatError

diffusers = pytest.importorskip("diffusers")


def save_tiny_pipeline(root):
    import transformers

    torch.manual_seed(0)
    unet = diffusers.UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=32,
    )
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32), sample_size=16, norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    scheduler = diffusers.DDPMScheduler(num_train_timesteps=1000)
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    vocab = {"<|startoftext|>": 0, "<|endoftext|>": 1, **{t: i + 2 for i, t in enumerate(letters + [c + "</w>" for c in letters])}}
    (root / "tokenizer").mkdir(parents=True)
    (root / "tokenizer" / "vocab.json").write_text(json.dumps(vocab))
    (root / "tokenizer" / "merges.txt").write_text("#version: 0.2\n")
    tok = transformers.CLIPTokenizer(str(root / "tokenizer" / "vocab.json"), str(root / "tokenizer" / "merges.txt"), model_max_length=77)
    tok.save_pretrained(root / "tokenizer")
    text = transformers.CLIPTextModel(transformers.CLIPTextConfig(
        vocab_size=len(vocab), hidden_size=32, intermediate_size=37, num_attention_heads=4, num_hidden_layers=2,
        max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1,
    ))
    for name, part in (("unet", unet), ("vae", vae), ("scheduler", scheduler), ("text_encoder", text)):
        part.save_pretrained(root / name)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": diffusers.__version__,
        "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        "scheduler": ["diffusers", "DDPMScheduler"], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"],
    }))
    return root


@pytest.fixture(scope="module")
def pipe(tmp_path_factory):
    return save_tiny_pipeline(tmp_path_factory.mktemp("sd") / "tiny-sd")


def by_hand(root, x, timestep, prompt, seed, layers):
    import transformers

    unet = diffusers.UNet2DConditionModel.from_pretrained(root / "unet").eval()
    vae = diffusers.AutoencoderKL.from_pretrained(root / "vae").eval()
    sched = diffusers.DDPMScheduler.from_pretrained(root / "scheduler")
    tok = transformers.CLIPTokenizer.from_pretrained(root / "tokenizer")
    text = transformers.CLIPTextModel.from_pretrained(root / "text_encoder").eval()
    got = {}
    mods = dict(unet.named_modules())
    hs = [mods[p].register_forward_hook(lambda m, a, o, p=p: got.__setitem__(p, (o[0] if isinstance(o, tuple) else o).detach().clone())) for p in layers]
    with torch.no_grad():
        lat = vae.encode(x).latent_dist.mean * vae.config.scaling_factor
        noise = torch.randn(lat.shape[1:], generator=torch.Generator().manual_seed(seed)).expand_as(lat)
        t = torch.full((x.shape[0],), timestep, dtype=torch.long)
        noisy = sched.add_noise(lat, noise, t)
        ids = tok(prompt, padding="max_length", max_length=tok.model_max_length, truncation=True, return_tensors="pt").input_ids
        emb = text(ids)[0].expand(x.shape[0], -1, -1)
        unet(noisy, t, encoder_hidden_states=emb)
    for h in hs:
        h.remove()
    return got


@pytest.mark.parametrize("kwargs", [{}, {"timestep": 500, "prompt": "a cat", "seed": 7}])
def test_unet_blocks_vs_a_hand_written_forward(pipe, image_dir, kwargs):
    from PIL import Image

    bb = nbfeat.load(f"diffusers:{pipe}", model_kwargs=kwargs or None)
    layers = ["unet.down_blocks.0", "unet.mid_block", "unet.up_blocks.1"]
    paths = sorted(image_dir.rglob("*.png"))[:2]
    dt = bb.extract(paths, layers=layers, progress=False)
    x = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in paths])
    assert x.shape == (2, 3, 16, 16) and float(x.min()) >= -1.0
    opts = {"timestep": 100, "prompt": "", "seed": 0, **kwargs}
    ref = by_hand(pipe, x, opts["timestep"], opts["prompt"], opts["seed"], [p.removeprefix("unet.") for p in layers])
    for p in layers:
        np.testing.assert_allclose(dt[p][p].values, ref[p.removeprefix("unet.")].numpy(), rtol=1e-4, atol=1e-5, err_msg=p)
    attrs = dt.attrs
    assert (attrs["timestep"], attrs["prompt"], attrs["seed"]) == (opts["timestep"], opts["prompt"], opts["seed"])
    assert json.loads(attrs["preprocessing"])["diffusion"]["timestep"] == opts["timestep"]  # in the store key


def test_a_diffusers_unet_through_hf_points_to_diffusers(pipe):
    with pytest.raises(NbfeatError, match="diffusers:"):
        nbfeat.load(f"hf:{pipe / 'unet'}")
    with pytest.raises(NbfeatError, match="diffusers:"):
        nbfeat.load(f"hf:{pipe}")
    assert nbfeat.models.registry.lookup(str(pipe)).source == "diffusers"  # a bare pipeline folder
    with pytest.raises(NbfeatError, match="timestep"):
        nbfeat.load(f"diffusers:{pipe}", model_kwargs={"timestep": 5000})


def test_a_dit_pipeline_gives_its_transformer_blocks(tmp_path, image_dir):
    from PIL import Image

    torch.manual_seed(1)
    root = tmp_path / "tiny-dit"
    dit = diffusers.DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=16, in_channels=4, out_channels=8, num_layers=2, sample_size=8, patch_size=2, num_embeds_ada_norm=10)
    vae = diffusers.AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(32, 32), norm_num_groups=32,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"), up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"),
    )
    for name, part in (("transformer", dit), ("vae", vae), ("scheduler", diffusers.DDPMScheduler(num_train_timesteps=1000))):
        part.save_pretrained(root / name)
    (root / "model_index.json").write_text(json.dumps({
        "_class_name": "DiTPipeline", "transformer": ["diffusers", "DiTTransformer2DModel"],
        "vae": ["diffusers", "AutoencoderKL"], "scheduler": ["diffusers", "DDPMScheduler"],
    }))
    bb = nbfeat.load(f"diffusers:{root}", model_kwargs={"timestep": 250, "class_label": 3})
    paths = sorted(image_dir.rglob("*.png"))[:2]
    ds = bb.extract(paths, layers=["transformer.transformer_blocks.1"], progress=False)
    x = torch.stack([bb.preprocess(Image.open(p).convert("RGB")) for p in paths])
    got = {}
    h = dit.transformer_blocks[1].register_forward_hook(lambda m, a, o: got.__setitem__("b1", o.detach().clone()))
    with torch.no_grad():
        lat = vae.eval().encode(x).latent_dist.mean * vae.config.scaling_factor
        noise = torch.randn(lat.shape[1:], generator=torch.Generator().manual_seed(0)).expand_as(lat)
        t = torch.full((2,), 250, dtype=torch.long)
        noisy = diffusers.DDPMScheduler(num_train_timesteps=1000).add_noise(lat, noise, t)
        dit.eval()(noisy, timestep=t, class_labels=torch.full((2,), 3, dtype=torch.long))
    h.remove()
    np.testing.assert_allclose(ds["transformer.transformer_blocks.1"].values, got["b1"].numpy(), rtol=1e-4, atol=1e-5)
    assert ds.attrs["class_label"] == 3 and ds.attrs["timestep"] == 250
