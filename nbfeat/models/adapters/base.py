"""The family-adapter contract: what nbfeat knows about one model family, as data.

An adapter is chosen from the library's own metadata (timm `feature_info`,
`num_prefix_tokens`, module classes; HF `config.model_type`; torchvision model classes), never
from tensor shapes. It states:

- the repeated blocks and, at each depth, the module path of every node role
  (`attn`, `mlp`, `block`) and where it is taken (`where`: before/after residual, LayerScale);
- node groups: one per stage for hierarchical models (Swin, ConvNeXt, Hiera, CNNs), one
  unnamed group for a plain stack (ViT, GPT-2);
- the output layout of any module path (`layout`): tokens with prefix-token count and patch
  grid, NCHW, NHWC, windows (with a `restore` that undoes them), a vector, text tokens;
- the stages in Hugging Face `out_indices` numbering (`stages`: 0 is the stem/embeddings where
  the library counts one), with the backbone's own post-processing (`stage_view`).

>>> from nbfeat.models.adapters import adapter_for                       # doctest: +SKIP
>>> adapter_for(timm.create_model("swin_tiny_patch4_window7_224"), loaded).family  # doctest: +SKIP
'timm.swin'
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

ROLES = ("attn", "mlp", "block")

MAP = ("channel", "y", "x")
TOKENS = ("token", "channel")
VECTOR = ("channel",)


@dataclass(frozen=True)
class Layout:
    """How to read one module's captured output (batch first).

    `restore` (when set) turns the captured tensor into `dims` order: NHWC -> NCHW, windows
    -> the image grid, an unrolled token order -> the grid, a LayerScale the block applies
    outside the module. `dims` are the dims after the batch dim, once restored.
    """

    dims: tuple[str, ...]
    prefix_tokens: int = 0  # class/register/distillation tokens before the patch tokens
    class_token: bool = False  # token 0 is a class token (`pool="cls"` is valid)
    grid: tuple[int, int] | None = None  # patch grid of token outputs (rows x cols)
    text: bool = False  # text tokens: padded, `last` is the last real token
    note: str = ""  # what `restore` does, for attrs (e.g. "windows undone (7x7, shift 3)")
    restore: Callable[[Any], Any] | None = field(default=None, compare=False, repr=False)

    @property
    def nhwc(self) -> bool:  # kept for callers of the old field
        return "NHWC" in self.note


@dataclass(frozen=True)
class Stage:
    """One stage in HF `out_indices` numbering: `stage0` is the stem/embeddings."""

    index: int
    module: str  # the module whose output is this stage (before the backbone's post-processing)
    blocks: tuple[str, ...] = ()  # repeated blocks inside the stage (empty for the stem)

    @property
    def name(self) -> str:
        return f"stage{self.index}"


@dataclass(frozen=True)
class Group:
    """Blocks stacked together for `nodes=`: a stage of a hierarchical model, or all of them."""

    name: str  # "" for a plain stack, else "stage1", ... (variables `block.stage1`)
    blocks: tuple[str, ...]


@dataclass
class Context:
    """What the layout of an output may depend on, beyond the model: the input and the
    inputs of the modules the adapter asked for (`context_for`), recorded at the probe."""

    input_hw: tuple[int, int] | None = None  # spatial size of the model input (images)
    calls: dict[str, tuple[tuple[Any, ...], dict[str, Any]]] = field(default_factory=dict)  # path -> (args, kwargs); tensors as shapes

    def arg_shape(self, path: str) -> tuple[int, ...] | None:
        """Shape of the first tensor argument of the module at `path` (its input)."""
        call = self.calls.get(path)
        if call is None:
            return None
        return next((a for a in call[0] if isinstance(a, tuple) and a and all(isinstance(i, int) for i in a)), None)


class Adapter:
    """Base of every family adapter; the generic fallback is `GenericAdapter`."""

    family: ClassVar[str] = "generic"
    library: ClassVar[str] = ""  # timm | torchvision | hf | ""
    # role -> where that node is taken (docs/support.md, the tree, attrs)
    where: ClassVar[dict[str, str]] = {}

    def __init__(self, model: Any, loaded: Any = None):
        self.model = model
        self.loaded = loaded
        self.modules = dict(model.named_modules())

    @classmethod
    def matches(cls, model: Any, loaded: Any) -> bool:
        """True when this adapter knows `model` (from library metadata, never shapes)."""
        return False

    # ---- structure -------------------------------------------------------------------

    def groups(self) -> list[Group]:
        """Node groups in depth order (override); default: one unnamed group of all blocks."""
        return []

    def blocks(self) -> list[str]:
        """Module paths of the repeated blocks, in depth order (what `layers=-1` means)."""
        return [b for g in self.groups() for b in g.blocks]

    def roles(self, block: str) -> dict[str, str]:
        """Role -> module path at the depth of `block` (`block` itself always)."""
        return {"block": block}

    def nodes(self) -> dict[str, list[str]]:
        """Role -> module path at every depth; a role is listed only if every depth has it."""
        blocks = self.blocks()
        if not blocks:
            return {}
        per = [self.roles(b) for b in blocks]
        return {r: [p[r] for p in per] for r in ROLES if all(r in p for p in per)}

    def stages(self) -> list[Stage]:
        """Stages in HF out_indices numbering (index 0: stem), [] when the family has none."""
        return []

    # ---- layout ----------------------------------------------------------------------

    def context_for(self, path: str) -> str | None:
        """A module whose input the layout of `path` needs (a block's spatial size), or None."""
        return None

    def layout(self, path: str, ndim: int, ctx: Context) -> Layout:
        """The layout of the output of `path` (a tensor of `ndim` dims, batch first)."""
        return rank_layout(ndim, text=self.is_text)

    def forward_kwargs(self) -> dict[str, Any]:
        """Extra keyword arguments for the model's forward (images called by keyword), e.g.
        HF `interpolate_pos_encoding=True` so non-square inputs work; {} by default."""
        return {}

    def stage_view(self, stage: Stage, ctx: Context) -> Callable[[Any], Any] | None:
        """The backbone's post-processing of a stage output (norm, prefix dropped, NCHW),
        applied after `restore`; None when the stage is the restored output as is."""
        return None

    @property
    def is_text(self) -> bool:
        return getattr(self.loaded, "modality", "image") == "text"

    def describe(self) -> dict[str, str]:
        """Short description for the tree and attrs."""
        return {"family": self.family, **{f"node_{k}": v for k, v in self.where.items()}}


def rank_layout(ndim: int, text: bool = False, prefix_tokens: int = 0) -> Layout:
    """The layout when the family says nothing more: by rank only (never NHWC, never a grid)."""
    if ndim == 4:
        return Layout(MAP)
    if ndim == 3:
        return Layout(TOKENS, prefix_tokens=prefix_tokens, text=text)
    if ndim == 2:
        return Layout(VECTOR)
    return Layout(tuple(f"dim_{i}" for i in range(1, ndim)))


def nhwc_layout(note: str = "NHWC, moved to channel-first") -> Layout:
    return Layout(MAP, note=note, restore=_nhwc_to_nchw)


def _nhwc_to_nchw(x: Any) -> Any:
    return x.permute(0, 3, 1, 2)


def tokens_to_map(grid: tuple[int, int], prefix: int = 0) -> Callable[[Any], Any]:
    """(B, prefix + h*w, C) raster-order tokens -> (B, C, h, w)."""
    h, w = grid

    def restore(x: Any) -> Any:
        x = x[:, prefix:]
        return x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)

    return restore


def chain(*fns: Callable[[Any], Any] | None) -> Callable[[Any], Any] | None:
    fns_ = [f for f in fns if f is not None]
    if not fns_:
        return None
    if len(fns_) == 1:
        return fns_[0]

    def run(x: Any) -> Any:
        for f in fns_:
            x = f(x)
        return x

    return run


def is_instance_named(obj: Any, *names: str) -> bool:
    """`obj`'s class (or a base) has one of `names`: lets an adapter match a library class
    without importing the library."""
    return any(c.__name__ in names for c in type(obj).__mro__)
