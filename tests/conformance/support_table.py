"""Generate docs/support.md from the conformance matrix (tests/conformance/rows.py).

    python -m tests.conformance.support_table          # rewrite docs/support.md
    python -m tests.conformance.support_table --check  # exit 1 when it is out of date

tests/conformance/test_support_table.py checks the committed page matches the matrix.
"""

from __future__ import annotations

import sys
from pathlib import Path

from nbfeat.models.adapters import registry
from tests.conformance.rows import ROWS, Row

PAGE = Path(__file__).resolve().parents[2] / "docs" / "support.md"

INTRO = """# Supported architectures

Generated from the conformance matrix (`tests/conformance/rows.py`) by
`python -m tests.conformance.support_table`; do not edit by hand. Every row is a small model
with random weights, saved and loaded back through the public path (`nbfeat.load(id,
weights=...)` or `hf:<dir>`), and every node, stage and pool listed was checked **for values**
against the library's own reference on a non-square input (unless the row says why not).
`make test` runs the matrix; a row that fails there is not supported.

A model whose family nbfeat has no adapter for still works through the **generic** fallback:
repeated blocks and `attn`/`mlp` children found in the module tree, outputs read by rank only
(4-d: NCHW, 3-d: tokens without a patch grid). The tree, `bb.adapter.family` and the `family`
attr say `generic`; `stages=`, `avg2d` on tokens and windowed outputs are refused there with a
message saying so. A timm model without a family adapter gets `timm.features` instead: its
`feature_info` levels are the stages and the repeated blocks inside each level the node groups.
"""

NOTES = """## How to read the results

- **Nodes** (`nodes=["attn", "mlp", "block"]`) are stacked along `layer`. On hierarchical
  models (Swin, ConvNeXt, Hiera, SAM2, CNNs with stages of different widths) each stage is
  its own variable, `block.stage1`, `block.stage2`, ... (a `DataTree` when shapes differ),
  with the block path of every depth in the `module` coordinate.
- **Stages** (`stages=[1, 2]` or `layers="stage2"`) use Hugging Face `out_indices` numbering:
  `stage0` is the stem / embeddings where the library counts one. Each is the tensor
  `AutoBackbone(...).feature_maps` / timm `features_only` (`forward_intermediates`) gives for
  that index, including the backbone's own post-processing (HF Dinov2: final layernorm, prefix
  tokens dropped, NCHW; HF Swin: the per-stage LayerNorm of `SwinBackbone`, output *before*
  downsampling). For timm CNNs whose `feature_info` starts at stride 2 (ResNet, RegNet,
  EfficientNet, MobileNetV3), `stageK` is `features_only` `out_indices=(K,)`; for Swin,
  ConvNeXt and SAM2 HieraDet `stage0` is the stem / patch embedding and `stageK` is feature
  level K-1; Hiera, SAM and timm ViTs start at `stage1` (block or stage K-1 on its grid: timm
  lists no stem level for them). `bb.stages` lists them.
- **Layouts** come from the family adapter, never from sizes: NHWC outputs (Swin, SAM,
  ConvNeXt MLPs) are moved to channel-first, window-partitioned attention (Swin incl. shifted
  windows, SAM, SAM2) is merged back onto the image grid with the block's own un-partition,
  Hiera's unrolled tokens are rerolled with `Hiera.reroll`. The variable's `layout` attr says
  what was done.
- **Pools**: `mean`/`max` over ViT tokens skip the class, register and distillation tokens
  (like timm's average pooling); `mean_all` averages every token; `cls` exists only where the
  model has a class token (else a short error naming `mean`/`last`); on maps `mean`/`max` are
  over `y, x`; `avg2d`/`max2d` pool maps and ViT patch grids to k x k.
"""


def _cell(items: tuple[str, ...] | tuple[int, ...]) -> str:
    return ", ".join(f"`{i}`" for i in items) if items else "-"


def _input(row: Row) -> str:
    x = row.inputs()
    if hasattr(x, "shape"):
        text = f"{x.shape[-2]}x{x.shape[-1]}"
        return f"{text} (square: {row.square_only})" if row.square_only else text
    return "texts: ragged, non-ASCII, one over the context"


def render() -> str:
    lines = [INTRO, "## Verified rows", "", "| row | library | family | input | nodes | stages | pools | refused | checked against |", "|---|---|---|---|---|---|---|---|---|"]
    for row in ROWS:
        lines.append(
            f"| {row.id} | {row.library} | `{row.family}` | {_input(row)} | {_cell(row.nodes)} | {_cell(row.stages)} | {_cell(row.pools)} | {_cell(row.refused_pools)} | {row.checked} |"
        )
    n_arch = len(ROWS)
    libs = sorted({r.library for r in ROWS})
    lines += ["", f"{n_arch} rows over {', '.join(libs)}.", ""]
    lines += ["## Where each node is taken", "", "| family | attn | mlp | block |", "|---|---|---|---|"]
    families = {r.family for r in ROWS}
    for cls in registry():
        if cls.family not in families and cls.family != "generic":
            continue
        where = cls.where if isinstance(cls.where, dict) else {}
        lines.append(f"| `{cls.family}` | {where.get('attn', '-')} | {where.get('mlp', '-')} | {where.get('block', '-')} |")
    lines += ["", NOTES]
    return "\n".join(lines).rstrip() + "\n"


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        if not PAGE.exists() or PAGE.read_text() != text:
            print(f"{PAGE} is out of date: run python -m tests.conformance.support_table")
            return 1
        return 0
    PAGE.write_text(text)
    print(f"wrote {PAGE}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
