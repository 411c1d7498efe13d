"""open_clip models: `openclip:<arch>/<pretrained tag>`, `openclip:hf-hub:<org/repo>`,
`openclip:local-dir:<folder>`; the image tower by default, the text tower with a `/text`
suffix or `modality="text"`. Needs `pip install "nbfeat[openclip]"`.

- Image tower: `model.visual` (encode_image without the final normalisation); preprocessing:
  open_clip's own eval transform for the weights.
- Text tower: token embedding, transformer, ln_final and projection of the same model
  (encode_text without normalisation); tokenizer: open_clip's own (`get_tokenizer`). The
  tower runs on the real tokens only: CLIP's text attention is causal, so every real
  token's features equal those of open_clip's 77-token padded run.

>>> bb = nbfeat.load("openclip:ViT-B-16/openai")                      # doctest: +SKIP
>>> tb = nbfeat.load("openclip:ViT-B-16/openai/text")                 # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from nbfeat.errors import NbfeatError, UnknownModelError, closest
from nbfeat.models import checkpoints
from nbfeat.models.hub import offline_error, offline_unless_reachable
from nbfeat.models.loaded import Loaded
from nbfeat.models.sources.base import Request, Source

_SCHEMAS = ("hf-hub:", "local-dir:")
TOWERS = ("image", "text")


def split_name(name: str) -> tuple[str, str | None, str | None]:
    """`arch/tag/text` -> (arch, tag or None, tower or None); hub ids keep their slash."""
    tower = None
    for t in TOWERS:
        if name.endswith("/" + t):
            name, tower = name[: -len(t) - 1], t
    if name.startswith(_SCHEMAS):
        return name, None, tower
    arch, _, tag = name.partition("/")
    return arch, (tag or None), tower


class OpenCLIPSource(Source):
    name = "openclip"
    extra = "openclip"
    requires = ("open_clip",)
    bare = False
    default_preprocess = "open_clip's own eval transform for the weights (resize to the model's size, bicubic, CLIP mean/std)"

    def names(self) -> list[str]:
        if not self.installed():
            return []
        import open_clip

        return [f"{a}/{t}" for a, t in open_clip.list_pretrained()]

    def rows(self) -> list[tuple[str, str, str, str, str, str]]:
        if not self.installed():
            # a few well-known ids so `list_models("clip")` shows what the extra brings
            known = ["ViT-B-32/openai", "ViT-B-16/openai", "ViT-L-14/openai", "ViT-B-16/laion2b_s34b_b88k", "ViT-H-14/laion2b_s32b_b79k"]
            return [(f"openclip:{n}", "openclip", "image", "CLIP", self.pip(), "install the extra to list all") for n in known]
        return [(f"openclip:{n}", "openclip", "image", "CLIP", self.pip(), "text tower: .../text") for n in self.names()]

    def resolve(self, name: str) -> str:
        self.check_installed()
        import open_clip

        arch, tag, _ = split_name(name)
        if arch.startswith(_SCHEMAS):
            return name
        archs = open_clip.list_models()
        if arch not in archs:
            hits = closest(arch, archs, n=6)
            hint = f" Did you mean: {', '.join('openclip:' + h for h in hits)}?" if hits else ""
            raise UnknownModelError(f"Unknown open_clip architecture '{arch}'.{hint} open_clip.list_pretrained() lists arch/tag pairs.")
        if tag is not None:
            tags = open_clip.list_pretrained_tags_by_model(arch)
            if tag not in tags:
                raise UnknownModelError(f"open_clip has no '{tag}' weights for {arch}: use one of {', '.join(tags) or '(none: pretrained=False or weights=<file>)'}.")
        return name

    def build(self, name: str, model_kwargs: dict[str, Any]) -> Any:
        import open_clip

        arch, _, _ = split_name(name)
        return open_clip.create_model(arch, pretrained=None, **model_kwargs)

    def load(self, req: Request) -> Loaded:
        import open_clip

        arch, tag, tower = split_name(req.name)
        if tower and req.modality and tower != req.modality:
            raise NbfeatError(f"'openclip:{req.name}' names the {tower} tower but modality={req.modality!r}.")
        tower = tower or req.modality or "image"
        schema = arch.startswith(_SCHEMAS)
        if req.weights is not None:
            pretrained: str | None = str(req.weights)
        elif req.pretrained and not schema:
            if tag is None:
                tags = open_clip.list_pretrained_tags_by_model(arch)
                raise NbfeatError(f"'openclip:{arch}' needs a weights tag: openclip:{arch}/<tag> with one of {', '.join(tags) or '(none)'}; or pretrained=False.")
            pretrained = tag
        else:
            pretrained = None
        try:
            with offline_unless_reachable():
                model, _, transform = open_clip.create_model_and_transforms(
                    arch, pretrained=pretrained, load_weights=req.pretrained or req.weights is not None or not schema, **req.model_kwargs
                )
                tokenizer = open_clip.get_tokenizer(arch) if tower == "text" else None
        except (OSError, RuntimeError) as e:
            if pretrained and req.weights is None:
                raise offline_error(f"openclip:{req.name}", e) from None
            raise
        if req.weights is not None:
            weights = checkpoints.file_digest(req.weights)
        elif pretrained or (schema and req.pretrained):
            weights = f"openclip:{arch}" + (f"/{pretrained}" if pretrained else "")
        else:
            weights = "random"
        model.eval()
        versions = {"open_clip_version": open_clip.__version__}
        if tower == "text":
            text = TextTower(model).eval()
            ctx = int(getattr(model, "context_length", 0) or getattr(getattr(model, "text", None), "context_length", 77))
            wrapped = TokenizerAdapter(tokenizer)
            return Loaded(
                model=text,
                modality="text",
                weights=weights,
                tokenizer=wrapped,
                input_name="input_ids",
                max_length=ctx,
                preprocessing={"tokenizer": type(tokenizer).__name__, "max_length": ctx},
                versions=versions,
                attrs={"tower": "text"},
            )
        from nbfeat.models.sources.preprocess import describe

        visual = model.visual
        size = getattr(visual, "image_size", 224)
        size = tuple(size) if isinstance(size, list | tuple) else (size, size)
        return Loaded(
            model=visual,
            modality="image",
            weights=weights,
            preprocess=transform,
            input_size=(3, int(size[0]), int(size[1])),
            prefix_tokens=1 if getattr(visual, "class_embedding", None) is not None else 0,
            preprocessing=describe(transform),
            versions=versions,
            attrs={"tower": "image"},
        )


class TokenizerAdapter:
    """open_clip's tokenizer with the calls the engine makes of a Hugging Face tokenizer:
    `tok(texts)["input_ids"]` (real tokens, start/end included, no padding), `decode`,
    `pad_token_id`."""

    def __init__(self, tok: Any):
        self.tok = tok
        inner = getattr(tok, "tokenizer", None)  # open_clip's HFTokenizer wraps a transformers one
        self.hf = inner if inner is not None and hasattr(inner, "pad_token_id") else None
        self.pad_token_id = (self.hf.pad_token_id or 0) if self.hf is not None else 0
        self.model_max_length = getattr(tok, "context_length", 77)

    def __call__(self, texts: list[str], add_special_tokens: bool = True, truncation: bool = False, **_: Any) -> dict[str, list[list[int]]]:
        if self.hf is not None:
            return {"input_ids": self.hf(list(texts), add_special_tokens=add_special_tokens, truncation=truncation)["input_ids"]}
        t = self.tok
        # full rows: the engine cuts long texts and keeps the end-of-text token last, as
        # open_clip does (the pooled output reads it)
        return {"input_ids": [[t.sot_token_id, *t.encode(text), t.eot_token_id] for text in texts]}

    def decode(self, ids: list[int]) -> str:
        return (self.hf or self.tok).decode(list(ids))


def _module_base() -> Any:
    import torch

    return torch.nn.Module


class TextTower(_module_base()):  # type: ignore[misc]
    """The text tower of an open_clip model as its own module (the same submodules, shared)."""

    def __init__(self, clip: Any):
        super().__init__()
        object.__setattr__(self, "_clip", clip)  # not a child: the image tower stays out of the tree
        holder = getattr(clip, "text", None)
        if holder is not None and not hasattr(holder, "token_embedding"):
            self.text = holder  # a Hugging Face text encoder: takes any length itself
            self._kind = "hf"
            return
        self._kind = "custom" if holder is not None else "clip"
        src = holder if holder is not None else clip
        if getattr(src, "cls_emb", None) is not None:
            raise NbfeatError("This open_clip model's text tower appends a class token (CoCa): not supported yet.")
        self.token_embedding = src.token_embedding
        self.positional_embedding = src.positional_embedding
        self.transformer = src.transformer
        self.ln_final = src.ln_final
        proj = src.text_projection
        if proj is not None:
            self.text_projection = proj
        self.register_buffer("attn_mask", src.attn_mask, persistent=False)
        self._pool = getattr(src, "text_pool_type", None) or getattr(src, "pool_type", "argmax")
        self._eos = getattr(src, "text_eos_id", None) if holder is None else getattr(src, "eos_id", None)

    def forward(self, input_ids: Any, attention_mask: Any = None) -> Any:
        if self._kind == "hf":
            return self.text(input_ids)
        from open_clip.transformer import text_global_pool

        n = input_ids.shape[1]
        cast = self.transformer.get_cast_dtype()
        x = self.token_embedding(input_ids).to(cast) + self.positional_embedding[:n].to(cast)
        mask = self.attn_mask[:n, :n] if self.attn_mask is not None else None
        x = self.ln_final(self.transformer(x, attn_mask=mask))
        pooled = text_global_pool(x, input_ids, self._pool, eos_token_id=self._eos)
        proj = getattr(self, "text_projection", None)
        if proj is None:
            return pooled
        return proj(pooled) if callable(proj) and not hasattr(proj, "shape") else pooled @ proj
