"""Benchmark 5: start-up costs, each in fresh subprocesses (median of several).

- `import nbfeat` (and which heavy libraries it pulled in: none is the goal);
- `%load_ext nbfeat` in a fresh IPython shell (nbfeat's import included);
- the model-tree widget for a Llama-3-8B-sized model built on the `meta` device:
  `nbfeat.models.tree.module_tree(model)` and the widget `nbfeat.tree(model)`.

>>> python -m bench.run --quick --only startup      # doctest: +SKIP
"""

from __future__ import annotations

import sys
from typing import Any

from bench.common import median, r3, run_json

IMPORT = """
import json, sys, time
t = time.perf_counter()
import nbfeat
dt = time.perf_counter() - t
heavy = [m for m in ("torch", "xarray", "zarr", "dask", "transformers", "timm", "pandas", "IPython", "anywidget") if m in sys.modules]
print(json.dumps({"seconds": dt, "heavy": heavy}))
"""

LOAD_EXT = """
import json, time
from IPython.core.interactiveshell import InteractiveShell
shell = InteractiveShell.instance()
t = time.perf_counter()
shell.run_line_magic("load_ext", "nbfeat")
print(json.dumps({"seconds": time.perf_counter() - t}))
"""

TREE = """
import json, time
import torch
from transformers import AutoModelForCausalLM, LlamaConfig
from transformers.utils import logging
logging.set_verbosity_error()
cfg = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rope_theta=500000.0)
t = time.perf_counter()
with torch.device("meta"):
    model = AutoModelForCausalLM.from_config(cfg)
build = time.perf_counter() - t
params = sum(p.numel() for p in model.parameters())
from nbfeat.models.tree import module_tree
t = time.perf_counter()
rows = module_tree(model)
rows_s = time.perf_counter() - t
out = {"build_s": build, "module_tree_s": rows_s, "modules": len(rows), "params": params,
       "shapes_known": sum(r["shape"] is not None for r in rows)}
try:
    import nbfeat
    t = time.perf_counter()
    w = nbfeat.tree(model)
    out["widget_s"] = time.perf_counter() - t
    out["widget_rows"] = len(w.rows)
except Exception as e:
    out["widget_error"] = f"{type(e).__name__}: {e}"[:300]
print(json.dumps(out))
"""


def _repeat(code: str, times: int) -> list[dict[str, Any]]:
    return [run_json([sys.executable, "-c", code], timeout=600) for _ in range(times)]


def run(quick: bool = False) -> dict[str, Any]:
    reps = 3 if quick else 7
    rows, goals, notes = [], [], []

    imp = _repeat(IMPORT, reps)
    ok = [x for x in imp if "seconds" in x]
    if ok:
        s = median([x["seconds"] for x in ok])
        rows.append({"what": "import nbfeat", "median_s": r3(s), "min_s": r3(min(x["seconds"] for x in ok)), "runs": len(ok), "heavy_modules_loaded": ok[0]["heavy"]})
        goals.append({"goal": "import nbfeat", "target": "< 0.3 s", "measured": r3(s), "met": s < 0.3})
    else:
        rows.append({"what": "import nbfeat", "error": imp[-1].get("error")})

    ext = _repeat(LOAD_EXT, reps)
    ok = [x for x in ext if "seconds" in x]
    rows.append({"what": "%load_ext nbfeat (fresh IPython)", "median_s": r3(median([x["seconds"] for x in ok])), "min_s": r3(min(x["seconds"] for x in ok)), "runs": len(ok)} if ok else {"what": "%load_ext nbfeat", "error": ext[-1].get("error")})

    tree = _repeat(TREE, 1 if quick else 3)
    ok = [x for x in tree if "module_tree_s" in x]
    if ok:
        row = {
            "what": "Llama-3-8B-sized tree (meta device)",
            "params": ok[0]["params"],
            "modules": ok[0]["modules"],
            "shapes_known": ok[0]["shapes_known"],
            "build_on_meta_s": r3(median([x["build_s"] for x in ok])),
            "module_tree_s": r3(median([x["module_tree_s"] for x in ok])),
            "runs": len(ok),
        }
        if all("widget_s" in x for x in ok):
            row["widget_s"] = r3(median([x["widget_s"] for x in ok]))
            row["median_s"] = row["widget_s"]
            goals.append({"goal": "Llama-8B-sized tree widget (nbfeat.tree)", "target": "< 2 s", "measured": row["widget_s"], "met": row["widget_s"] < 2})
        else:
            row["widget"] = "pending: " + next(x["widget_error"] for x in ok if "widget_error" in x)
            row["median_s"] = row["module_tree_s"]
            goals.append({"goal": "Llama-8B-sized module_tree (widget pending)", "target": "< 2 s", "measured": row["module_tree_s"], "met": row["module_tree_s"] < 2})
        rows.append(row)
    else:
        rows.append({"what": "Llama-3-8B-sized tree", "error": tree[-1].get("error")})
        notes.append("tree: " + str(tree[-1].get("error")))
    return {"params": {"repeats": reps}, "rows": rows, "goals": goals, "notes": notes}
