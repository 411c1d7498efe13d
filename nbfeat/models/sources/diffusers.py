"""Diffusion UNet features: `diffusers:<hub id or pipeline folder>` (what ncut-pytorch calls
`Diffusion(...)`). Needs `pip install "nbfeat[diffusers]"`.

The model nbfeat hooks is `DiffusionFeatures`: an image (in [-1, 1]) is encoded by the VAE
(the latent distribution's mean, times the VAE's scaling factor), noised to `timestep` with
the pipeline's own scheduler (`add_noise`) and a noise drawn from `seed` (the same noise for
every image, so features do not depend on batching), then passed through the UNet with the
prompt encoded by the pipeline's text encoder (the empty prompt by default). The layers are
`unet.down_blocks.<i>`, `unet.mid_block`, `unet.up_blocks.<i>` (and everything inside). A DiT
pipeline (`DiTTransformer2DModel`) gives `transformer.transformer_blocks.<i>`, conditioned on
`class_label` (default: the null class, i.e. unconditional).

`model_kwargs`: `timestep` (default 100 of the scheduler's 1000), `prompt` (default ""),
`seed` (default 0), `resolution` (default: the pipeline's own, the denoiser's `sample_size`
times the VAE's downsampling, 512 for SD 1.x),
`class_label` (DiT only). All are
recorded in provenance (attrs and `preprocessing`, hence the store key).

>>> bb = nbfeat.load("diffusers:CompVis/stable-diffusion-v1-4",
...                  model_kwargs={"timestep": 200})                       # doctest: +SKIP
>>> ds = bb.extract("images/", layers=["unet.down_blocks.2", "unet.up_blocks.1"])  # doctest: +SKIP
"""

from __future__ import annotations

import json
import os
from typing import Any

from nbfeat.errors import NbfeatError
from nbfeat.models import checkpoints
from nbfeat.models.hub import hf_token, offline_error, offline_unless_reachable
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source

DEFAULTS = {"timestep": 100, "prompt": "", "seed": 0}
_KNOWN = {"timestep", "prompt", "seed", "resolution", "class_label"}
_DITS = ("DiTTransformer2DModel", "Transformer2DModel")


def _module_base() -> Any:
    import torch

    return torch.nn.Module


class DiffusionFeatures(_module_base()):  # type: ignore[misc]
    """VAE-encode, noise to a timestep, run the denoiser (a UNet, or a DiT `transformer`):
    the forward whose blocks nbfeat hooks."""

    def __init__(self, vae: Any, denoiser: Any, scheduler: Any, prompt_embeds: Any, timestep: int, seed: int, kind: str = "unet", class_label: int | None = None):
        super().__init__()
        self.vae = vae
        self.kind = kind
        setattr(self, kind, denoiser)  # `unet.down_blocks.0`, `transformer.transformer_blocks.3`
        self.scheduler = scheduler  # a config object, not a module
        self.timestep = int(timestep)
        self.seed = int(seed)
        self.class_label = class_label
        self.register_buffer("prompt_embeds", prompt_embeds, persistent=False)

    def forward(self, x: Any) -> Any:
        import torch

        latents = self.vae.encode(x).latent_dist.mean * float(getattr(self.vae.config, "scaling_factor", 1.0))
        gen = torch.Generator(device="cpu").manual_seed(self.seed)
        noise = torch.randn(latents.shape[1:], generator=gen, dtype=torch.float32).to(latents)
        noise = noise.expand_as(latents)
        t = torch.full((latents.shape[0],), self.timestep, dtype=torch.long, device=latents.device)
        noisy = self.scheduler.add_noise(latents, noise, t)
        if self.kind == "transformer":  # DiT: class-conditional (the null class by default)
            labels = torch.full((latents.shape[0],), int(self.class_label or 0), dtype=torch.long, device=latents.device)
            return self.transformer(noisy, timestep=t, class_labels=labels).sample
        if self.prompt_embeds is None:
            return self.unet(noisy, t).sample
        cond = self.prompt_embeds.to(noisy.dtype).expand(latents.shape[0], *self.prompt_embeds.shape[1:])
        return self.unet(noisy, t, encoder_hidden_states=cond).sample


class DiffusersSource(Source):
    name = "diffusers"
    extra = "diffusers"
    requires = ("diffusers",)
    checks_names = False
    default_preprocess = "resize + center crop to the pipeline's image size (512 for SD 1.x), scaled to [-1, 1]"

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        return [
            (f"diffusers:{n}", "diffusers", "image", "Stable Diffusion", self.pip(), "UNet blocks at a timestep")
            for n in ("CompVis/stable-diffusion-v1-4", "stabilityai/stable-diffusion-2")
        ]

    def load(self, req: Request) -> Loaded:
        import diffusers

        opts = {**DEFAULTS, **req.model_kwargs}
        unknown = set(opts) - _KNOWN
        if unknown:
            raise NbfeatError(f"diffusers: models take model_kwargs {sorted(_KNOWN)}; got {sorted(unknown)}.")
        path = req.weights if req.weights is not None else req.name
        local = os.path.isdir(path)
        kw: dict[str, Any] = {} if local else {"token": hf_token()}
        try:
            with offline_unless_reachable():
                index = _model_index(path, kw)
                kind = "unet"
                unet_cls = _component_class(index, "unet", diffusers)
                if unet_cls is None and isinstance(index.get("transformer"), list) and index["transformer"][1] in _DITS:
                    kind, unet_cls = "transformer", _component_class(index, "transformer", diffusers)
                if unet_cls is None:
                    what = f"a {index['transformer'][1]} denoiser" if isinstance(index.get("transformer"), list) else "no UNet"
                    raise NbfeatError(f"'diffusers:{req.name}' has {what}: nbfeat's diffusers source reads UNet pipelines (Stable Diffusion 1.x/2.x, UNet2DModel) and DiT; bring other denoisers (SD3's MMDiT, Flux) as a module.")
                vae_cls = _component_class(index, "vae", diffusers) or diffusers.AutoencoderKL
                sched_cls = _component_class(index, "scheduler", diffusers) or diffusers.DDPMScheduler
                if req.pretrained or req.weights is not None:
                    unet = unet_cls.from_pretrained(path, subfolder=kind, **kw)
                    vae = vae_cls.from_pretrained(path, subfolder="vae", **kw)
                else:
                    unet = unet_cls.from_config(unet_cls.load_config(path, subfolder=kind, **kw))
                    vae = vae_cls.from_config(vae_cls.load_config(path, subfolder="vae", **kw))
                scheduler = sched_cls.from_pretrained(path, subfolder="scheduler", **kw)
                prompt_embeds = _encode_prompt(path, index, str(opts["prompt"]), req.pretrained or req.weights is not None, kw)
        except OSError as e:
            if local:
                raise NbfeatError(f"Could not load the diffusers pipeline in {path}: {str(e).splitlines()[0][:200]}") from None
            raise offline_error(f"diffusers:{req.name}", e) from None
        if not 0 <= int(opts["timestep"]) < int(scheduler.config.num_train_timesteps):
            raise NbfeatError(f"timestep must be in [0, {scheduler.config.num_train_timesteps}), got {opts['timestep']}.")
        label = None
        if kind == "transformer":
            if opts["prompt"]:
                raise NbfeatError("A DiT pipeline takes class_label= (an ImageNet class id), not a prompt.")
            null = getattr(unet.config, "num_embeds_ada_norm", None)
            label = int(opts.get("class_label", null if null is not None else 0))
        model = DiffusionFeatures(vae.eval(), unet.eval(), scheduler, prompt_embeds, int(opts["timestep"]), int(opts["seed"]), kind=kind, class_label=label).eval()
        # the pipelines' own default image size: the denoiser's latent size times the VAE's factor
        factor = 2 ** (len(getattr(vae.config, "block_out_channels", (0,) * 4)) - 1)
        size = int(opts.get("resolution") or int(unet.config.sample_size) * factor)
        from torchvision import transforms as T

        from nbfeat.models.sources.preprocess import describe

        transform = T.Compose([T.Resize(size), T.CenterCrop(size), T.ToTensor(), T.Normalize([0.5] * 3, [0.5] * 3)])
        if local:
            tag = checkpoints.dir_digest(path) if (req.pretrained or req.weights is not None) else "random"
        else:
            tag = f"diffusers:{req.name}" if req.pretrained else "random"
        diffusion = {"timestep": int(opts["timestep"]), "prompt": str(opts["prompt"]), "seed": int(opts["seed"]), "scheduler": type(scheduler).__name__}
        if label is not None:
            diffusion["class_label"] = label
        return Loaded(
            model=model,
            modality="image",
            weights=tag,
            preprocess=transform,
            input_size=(3, size, size),
            preprocessing={**describe(transform), "diffusion": diffusion},
            versions={"diffusers_version": diffusers.__version__},
            attrs={k: v for k, v in diffusion.items()},
        )


def _model_index(path: str, kw: dict[str, Any]) -> dict[str, Any]:
    if os.path.isdir(path):
        f = os.path.join(path, "model_index.json")
        if not os.path.isfile(f):
            raise NbfeatError(
                f"{path} is not a diffusers pipeline folder (no model_index.json): save one with pipeline.save_pretrained(path), "
                "or a folder with unet/, vae/ and scheduler/ plus model_index.json."
            )
    else:
        from huggingface_hub import hf_hub_download

        f = hf_hub_download(path, "model_index.json", **kw)
    with open(f) as fh:
        return json.load(fh)


def _component_class(index: dict[str, Any], key: str, diffusers: Any) -> Any:
    entry = index.get(key)
    if not (isinstance(entry, list) and len(entry) == 2 and entry[0] == "diffusers"):
        return None
    return getattr(diffusers, entry[1], None)


def _encode_prompt(path: str, index: dict[str, Any], prompt: str, pretrained: bool, kw: dict[str, Any]) -> Any:
    """The text encoder's last hidden state for `prompt` (as StableDiffusionPipeline does), or
    None for an unconditional UNet."""
    import torch
    import transformers

    enc, tok = index.get("text_encoder"), index.get("tokenizer")
    if not (isinstance(enc, list) and isinstance(tok, list) and enc[1] and tok[1]):
        return None
    enc_cls, tok_cls = getattr(transformers, enc[1]), getattr(transformers, tok[1])
    tokenizer = tok_cls.from_pretrained(path, subfolder="tokenizer", **kw)
    if pretrained:
        encoder = enc_cls.from_pretrained(path, subfolder="text_encoder", **kw)
    else:
        encoder = enc_cls._from_config(enc_cls.config_class.from_pretrained(path, subfolder="text_encoder", **kw))
    ids = tokenizer(prompt, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt").input_ids
    with torch.inference_mode():
        return encoder.eval()(ids)[0].detach().clone()
