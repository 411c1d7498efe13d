"""results.json -> docs/benchmarks.md (the generated table and short method notes).

>>> markdown(json.loads(Path("bench/results.json").read_text()))     # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

TITLES = {
    "forward": "1. nbfeat vs the plain forward (pre-decoded tensors)",
    "e2e": "2. End to end from JPEGs: nbfeat vs THINGSvision",
    "text": "3. Text: nodes at every depth vs Hugging Face `output_hidden_states`",
    "memory": "4. Memory",
    "startup": "5. Start-up",
    "allocator": "6. glibc allocator settings",
    "families": "7. Every family vs its own plain forward",
    "scale": "8. Scale: a Dask LocalCluster vs one process",
    "gpu": "GPU",
}

# per benchmark: (column header, row key); a missing key shows as "-"
COLUMNS: dict[str, list[tuple[str, str]]] = {
    "forward": [
        ("model", "model"),
        ("target", "target"),
        ("reference", "reference"),
        ("per batch vs ref (median)", "ratio_vs_reference"),
        ("min-max", "ratio_spread"),
        ("vs model(x)", "ratio_vs_full_forward"),
        ("ref cost / model(x)", "reference_cost_vs_full"),
        ("whole call vs ref", "whole_call_ratio_vs_reference"),
        ("min-max", "whole_call_spread"),
        ("whole call vs ref keeping its outputs", "whole_call_ratio_vs_reference_kept"),
        ("whole call vs preallocated loop", "whole_call_ratio_vs_preallocated"),
        ("min-max", "whole_call_preallocated_spread"),
        ("preallocated loop / bare ref", "preallocated_vs_reference"),
        ("result MiB", "result_mib"),
        ("first touch s", "first_touch_s"),
        ("first touch / whole call", "first_touch_share_of_call"),
        ("minor faults per call: extract / preallocated / ref", "_faults"),
        ("nbfeat img/s", "nbfeat_images_per_s"),
        ("prepare s", "prepare_s"),
    ],
    "e2e": [
        ("model, layer", "config"),
        ("images", "images"),
        ("nbfeat s", "nbfeat_s"),
        ("nbfeat img/s", "nbfeat_images_per_s"),
        ("THINGSvision s", "thingsvision_s"),
        ("THINGSvision img/s", "thingsvision_images_per_s"),
        ("speed-up", "speedup_vs_thingsvision"),
        ("speed-up, allocator untouched", "speedup_allocator_untouched"),
        ("nbfeat start-up imports s (torch incl.)", "nbfeat_first_call_imports_s"),
        ("CPU-time ratio", "cpu_time_ratio_vs_thingsvision"),
        ("nbfeat sink", "nbfeat_sink"),
        ("nbfeat workers", "nbfeat_workers"),
        ("nbfeat rows per forward pass", "nbfeat_pass_rows"),
        ("peak RSS MiB nbfeat / TV", "_rss"),
        ("peak RSS MiB nbfeat, allocator untouched", "nbfeat_untuned_max_rss_mib"),
        ("THINGSvision torch", "thingsvision_torch"),
    ],
    "text": [
        ("model", "model"),
        ("texts", "texts"),
        ("tokens", "tokens"),
        ("run token length", "run_token_length"),
        ("HF padded tokens", "hf_padded_tokens"),
        ("nbfeat padded tokens", "nbfeat_padded_tokens"),
        ("HF tok/s", "hf_tokens_per_s"),
        ("nbfeat tok/s", "nbfeat_tokens_per_s"),
        ("speed-up vs HF", "speedup_vs_hf"),
        ("min-max", "speedup_spread"),
        ("nbfeat tok/s, no buckets", "nbfeat_no_buckets_tokens_per_s"),
        ("speed-up, no buckets", "no_buckets_speedup_vs_hf"),
        ("speed-up incl. prepare", "whole_call_speedup_vs_hf"),
        ("prepare s", "prepare_s"),
    ],
    "memory": [
        ("images", "n"),
        ("seconds", "seconds"),
        ("img/s", "images_per_s"),
        ("RSS after load MiB", "baseline_mib"),
        ("peak, process tree (PSS) MiB", "peak_tree_mib"),
        ("peak RSS main MiB", "max_rss_mib"),
        ("peak RSS workers MiB", "max_rss_children_mib"),
        ("features MiB", "feature_mib"),
        ("store MiB", "store_mib"),
    ],
    "startup": [
        ("what", "what"),
        ("median s", "median_s"),
        ("min s", "min_s"),
        ("runs", "runs"),
        ("details", "_details"),
    ],
    "allocator": [
        ("case", "case"),
        ("setting", "setting"),
        ("env", "env"),
        ("seconds", "seconds"),
        ("speed-up vs default", "speedup_vs_default"),
        ("kernel share of CPU", "kernel_cpu_share"),
        ("minor page faults", "minor_faults"),
        ("peak RSS MiB", "max_rss_mib"),
    ],
    "families": [
        ("family", "family"),
        ("model", "model"),
        ("target", "target"),
        ("plain forward", "plain"),
        ("adapter", "adapter"),
        ("per batch vs plain (median)", "ratio_vs_plain"),
        ("min-max", "ratio_spread"),
        ("whole call vs plain", "whole_call_ratio_vs_plain"),
        ("nbfeat inputs/s", "nbfeat_per_s"),
        ("plain inputs/s", "plain_per_s"),
        ("prepare s", "prepare_s"),
        ("variables", "variables"),
        ("not measured", "error"),
    ],
    "scale": [
        ("setup", "setup"),
        ("images", "images"),
        ("seconds", "seconds"),
        ("img/s", "images_per_s"),
        ("speed-up vs one process", "speedup_vs_single"),
        ("peak memory MiB (all processes)", "peak_mib"),
        ("peak per process MiB", "peak_per_process_mib"),
        ("same values", "same_values"),
    ],
    "gpu": [
        ("model", "model"),
        ("layer", "layer"),
        ("plain img/s", "plain_images_per_s"),
        ("nbfeat img/s", "nbfeat_images_per_s"),
        ("nbfeat / plain time", "ratio_vs_plain"),
    ],
}

METHOD = """\
## How these are measured

- Every figure is a ratio of timings taken in the same run: the machines are shared and
  noisy, so absolute seconds move between runs while ratios hold. Ratios are time over time
  (above 1: slower than the reference) unless the column says speed-up.
- Forward (1): per batch, the variants run back to back in an order rotated every batch;
  the figure is the median of the per-batch ratios, with their spread. nbfeat runs its engine
  on the same input positions (`ExtractionRun.iter_batches`, batches dropped as a sink would).
  The whole-call figure (the goals) times the real `bb.extract(tensor)` on every image
  (input checks, the one-sample probe, the engine, the labelled result in memory) against the
  reference loop over the same batches, median of 5 alternating rounds, each call started
  from a settled heap (garbage collected, `malloc_trim`) and its minor page faults counted. "Keeping its outputs"
  is that loop once more keeping what it computes (append, one `torch.cat`): holding features
  in memory costs page faults of fresh memory, which the bare reference never pays and which
  are dear on this VM. "Preallocated loop" is the honest limit when features are returned:
  the reference (for nodes, a hand-written ViT forward keeping attn, mlp and block of every
  depth) writing what nbfeat returns into arrays made once for every input. "First touch" is
  the time to write the result's bytes once into fresh memory (page faults + zeroing), a cost
  any tool that returns the features pays. Truncated references are written by hand (resnet stem + `layer1`..; ViT
  `patch_embed` + positions + `blocks[:k+1]`).
- End to end (2): each tool is a long-lived subprocess that keeps its models loaded; the same
  JPEG folder (500x375, quality 90), model (random weights), layer and batch size go to each,
  back to back, in an order rotated every call, after one untimed warm-up call per model.
  Each times itself from the call until the features are on disk (nbfeat:
  `bb.extract(folder, out=store)`; THINGSvision: `ImageDataset` + its `DataLoader` +
  `extract_features(output_dir=...)`). Speed-up = median over rounds of THINGSvision's time
  over nbfeat's; the CPU-time ratio is the same with process (+ DataLoader worker) CPU
  seconds, steadier on a shared machine. "Allocator untouched" is nbfeat with
  `NBFEAT_MALLOC=default` (no `tune_malloc`, see benchmark 6). THINGSvision runs in `bench/.venv-thingsvision` with the
  torch it pins; the notes give a plain `model(x)` control under each torch. Peak RSS is
  each server's high-water mark over the whole run; before any extraction each server also
  builds both models and reports its RSS, so the notes split the peak into imports, loaded
  models and what extracting added (the torch versions differ in their own footprint).
- Text (3): texts of long-tailed lengths (5-510 tokens). HF, as its docs show it, tokenizes
  each batch of 32 in the user's order with `padding=True` and runs
  `model(..., output_hidden_states=True)`; nbfeat runs its engine on the same texts with its
  default length buckets (and once more without); whole runs alternate, medians over rounds.
- Start-up (5): fresh subprocesses, median of several runs.
- Allocator (6): fresh subprocesses per setting (glibc reads `MALLOC_*` at start), settings
  rotated per round, medians over rounds of time(default) / time(setting).
- Families (7): per family, per batch, its own plain forward and nbfeat's engine back to back
  (order rotated); the whole call is `bb.extract` against the plain loop, 2 rounds. Each model
  is loaded through `nbfeat.load` with random weights; a family whose source is missing says so.
- Scale (8): fresh processes; the Dask run uses `LocalCluster(n_workers=2,
  threads_per_worker=1)`, started before the timer (its start-up is reported apart); peak
  memory adds each process's own VmHWM.
- GPU figures appear only when `torch.cuda.is_available()`; no GPU was lent to this run.
"""


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.3g}" if abs(value) < 100 else f"{value:.0f}"
    if isinstance(value, list):
        if not value:
            return "none"
        return "-".join(_fmt(v) for v in value)
    return str(value).replace("|", "/")


def _cell(name: str, row: dict[str, Any], key: str) -> str:
    if key == "_rss":
        return f"{_fmt(row.get('nbfeat_max_rss_mib'))} / {_fmt(row.get('thingsvision_max_rss_mib'))}"
    if key == "_faults":
        f = row.get("minor_faults_per_call") or {}
        return " / ".join(_fmt(f.get(k)) for k in ("extract", "prealloc", "reference")) if f else "-"
    if key == "_details":
        skip = {"what", "median_s", "min_s", "runs"}
        return ", ".join(f"{k}: {_fmt(v)}" for k, v in row.items() if k not in skip)
    if key not in row and name == "e2e" and key.startswith(("thingsvision", "speedup")):
        return "failed" if "thingsvision_error" in row else "-"
    return _fmt(row.get(key))


def table(name: str, rows: list[dict[str, Any]]) -> str:
    cols = COLUMNS.get(name) or [(k, k) for k in dict.fromkeys(k for r in rows for k in r)]
    lines = ["| " + " | ".join(h for h, _ in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(_cell(name, r, k) for _, k in cols) + " |" for r in rows]
    return "\n".join(lines)


def markdown(results: dict[str, Any]) -> str:
    m = results.get("machine", {})
    benches = results.get("benchmarks", {})
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench.run`) from `bench/results.json`; do not edit",
        "by hand. `python -m bench.run --quick` runs small sizes, `--only NAME` one benchmark.",
        "",
        f"Machine: {m.get('cpu_count')} CPUs ({m.get('torch_threads')} torch threads), "
        f"{m.get('gpu') or 'no GPU'}, {m.get('platform')}, {m.get('glibc')}; torch {m.get('torch')}, "
        f"timm {m.get('timm')}, transformers {m.get('transformers')}, zarr {m.get('zarr')}; "
        f"nbfeat {m.get('nbfeat')}. Load average in each section's header (on 2 cores the benchmark's own threads make it about 2; above that, other work shared the machine).",
        "",
    ]
    goals = [g for b in benches.values() for g in b.get("goals", [])]
    mem = benches.get("memory", {})
    if mem.get("peak_mib") is not None:
        goals.append({"goal": f"peak memory streaming to zarr, up to {max(r.get('n', 0) for r in mem['runs'])} images", "target": f"< {mem['goal_mib']} MiB, flat in N", "measured": f"{mem['peak_mib']} MiB (+{mem.get('growth_mib_largest_vs_smallest')} largest vs smallest N)", "met": bool(mem.get("under_goal"))})
    if goals:
        out += ["## Goals", "", "| goal | target | measured | met |", "|---|---|---|---|"]
        out += [f"| {g['goal']} | {g['target']} | {_fmt(g['measured'])} | {'yes' if g['met'] else '**no**'} |" for g in goals]
        out.append("")
    for name, title in TITLES.items():
        b = benches.get(name)
        if b is None:
            continue
        out += [f"## {title}", ""]
        how = "quick sizes" if b.get("quick") else "full sizes"
        out.append(f"_{b.get('status')}, {how}, {b.get('started', '?')}, {b.get('seconds', '?')} s, load average {b.get('machine_load_avg_1m', '?')}_")
        out.append("")
        if b.get("status") in ("pending", "skipped", "error"):
            out += [f"**{b['status']}**: {b.get('reason', '')}", ""]
            continue
        params = b.get("params") or ({k: b[k] for k in ("model", "layer", "batch_size") if k in b} if name == "memory" else None)
        if params:
            out += ["Parameters: " + ", ".join(f"{k} {_fmt(v)}" for k, v in params.items()) + ".", ""]
        rows = b.get("rows") or (b.get("runs") if name == "memory" else None)
        if rows:
            out += [table(name, rows), ""]
        if name == "e2e" and b.get("thingsvision", {}).get("status") == "unavailable":
            out.append(f"- THINGSvision could not run here: {b['thingsvision']['reason']}")
        for row in rows or []:
            for k in ("nbfeat_error", "thingsvision_error", "error"):
                if row.get(k):
                    out.append(f"- {row.get('config') or row.get('what') or ''} {k.replace('_', ' ')}: {row[k]}")
        for note in b.get("notes", []) + b.get("errors", []):
            out.append(f"- {note}")
        if out[-1] != "":
            out.append("")
    out.append(METHOD)
    return "\n".join(out)
