"""What a source loader hands back to the Backbone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Loaded:
    model: Any  # torch.nn.Module, in eval mode
    modality: str  # "image" | "text"
    weights: str  # a tag ("timm:resnet18.a1_in1k", "random") or "sha256:<hex>"
    preprocess: Callable[[Any], Any] | None = None  # PIL image -> CHW float tensor
    tokenizer: Any = None
    input_size: tuple[int, int, int] = (3, 224, 224)
    prefix_tokens: int = 0  # class/register tokens before the patch tokens
    input_name: str = ""  # "" = positional tensor; else the keyword (pixel_values, input_ids)
    max_length: int | None = None  # text context
    preprocessing: dict[str, Any] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=dict)
    # appended for the source contract (issue 15)
    attrs: dict[str, Any] = field(default_factory=dict)  # extra provenance attrs (str/int/float)
    load_kwargs: dict[str, Any] = field(default_factory=dict)  # nbfeat.load arguments beyond the id
    call_dims: dict[str, str] = field(default_factory=dict)  # module path -> dim name of its calls
