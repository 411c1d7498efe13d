"""Benchmark 6: glibc allocator settings, plain forward and nbfeat, in subprocesses.

Each round runs every (case, setting) pair once, settings in an order rotated per round;
the figure per case and setting is the median over rounds of time(default) / time(setting)
(above 1: the setting is faster), with the kernel share of CPU time and the minor page faults
beside it (the churn the settings are meant to cut).

By default glibc serves every block above its (dynamic, at most 32 MiB) mmap threshold with a
fresh mmap, so each batch's 100 MB activations are new zeroed pages: page faults and kernel
time. A 1 GiB threshold (the environment variable is taken as is; checked with mallinfo2 on
glibc 2.36) keeps them on the heap for reuse; MALLOC_TOP_PAD_ keeps freed heap mapped. Setting
the threshold freezes the trim threshold at 128 KiB. The third setting adds MALLOC_ARENA_MAX=1:
with the pad, no per-thread arena hands freed memory back, so each would keep its own peak.
The fourth leaves glibc alone and sets torch's THP_MEM_ALLOC_ENABLE=1: fewer, larger page
faults for the same fresh memory (the alternative that keeps the default's lower peak).
The environment settings run with NBFEAT_MALLOC=default (nbfeat leaves the allocator
alone); the last is nbfeat as shipped: `tune_malloc()` sets the threshold and the pad with
mallopt() when an extraction starts.

>>> python -m bench.run --quick --only allocator      # doctest: +SKIP
"""

from __future__ import annotations

from typing import Any

from bench.common import median, python_module, r3, run_json

MiB = 1 << 20
UNTOUCHED = {"NBFEAT_MALLOC": "default"}
SETTINGS = {
    "default": UNTOUCHED,
    "top_pad+mmap": {**UNTOUCHED, "MALLOC_TOP_PAD_": str(512 * MiB), "MALLOC_MMAP_THRESHOLD_": str(1024 * MiB)},
    # one arena: thread arenas (torch, store threads) no longer each keep their own high-water mark
    "top_pad+mmap+one arena": {**UNTOUCHED, "MALLOC_TOP_PAD_": str(512 * MiB), "MALLOC_MMAP_THRESHOLD_": str(1024 * MiB), "MALLOC_ARENA_MAX": "1"},
    # glibc untouched; torch asks for transparent huge pages on its blocks of 2 MiB and more,
    # so each fault maps 2 MiB instead of 4 KiB (the kernel still zeroes every page)
    "torch huge pages": {**UNTOUCHED, "THP_MEM_ALLOC_ENABLE": "1"},
    # what nbfeat ships: the process sets the threshold and the pad itself (tune_malloc)
    "nbfeat tune_malloc": {},
}
EXTRA_ARGS = {"nbfeat tune_malloc": ["--mallopt"]}


def cases(quick: bool) -> dict[str, list[str]]:
    if quick:
        return {"plain": ["--n", "8", "--batch-size", "4"], "nbfeat-layer1": ["--n", "16", "--batch-size", "8"]}
    return {
        "plain": ["--n", "48", "--batch-size", "16"],
        "nbfeat-layer1": ["--n", "64", "--batch-size", "32"],
        "nbfeat-nodes": ["--n", "32", "--batch-size", "16"],
    }


def run(quick: bool = False, rounds: int | None = None) -> dict[str, Any]:
    rounds = rounds or (1 if quick else 2)
    settings = {k: SETTINGS[k] for k in ("default", "top_pad+mmap", "nbfeat tune_malloc")} if quick else SETTINGS
    names = list(settings)
    got: dict[tuple[str, str], list[dict[str, Any]]] = {}
    errors = []
    for r in range(rounds):
        for case, args in cases(quick).items():
            order = names[r % len(names) :] + names[: r % len(names)]
            for s in order:
                out = run_json(python_module("bench.alloc_worker", "--case", case, *args, *EXTRA_ARGS.get(s, [])), env=settings[s], timeout=1200)
                if "error" in out:
                    errors.append(f"{case} {s}: {out['error']}")
                    continue
                got.setdefault((case, s), []).append(out)
    rows = []
    for case in cases(quick):
        base = got.get((case, "default"), [])
        for s in names:
            runs = got.get((case, s), [])
            if not runs or not base:
                continue
            cpu = [x["user_s"] + x["sys_s"] for x in runs]
            rows.append(
                {
                    "case": case,
                    "setting": s,
                    "env": " ".join(f"{k}={v}" for k, v in settings[s].items()) or ("mallopt(M_MMAP_THRESHOLD 1 GiB, M_TOP_PAD 512 MiB, M_ARENA_MAX 1), by nbfeat" if s in EXTRA_ARGS else "(none)"),
                    "seconds": r3(median([x["seconds"] for x in runs])),
                    "speedup_vs_default": r3(median([b["seconds"] / x["seconds"] for b, x in zip(base, runs)])),
                    "kernel_cpu_share": r3(median([x["sys_s"] / c for x, c in zip(runs, cpu) if c > 0])),
                    "minor_faults": int(median([x["minor_faults"] for x in runs])),
                    "max_rss_mib": round(median([x["max_rss_mib"] for x in runs])),
                }
            )
    result: dict[str, Any] = {"params": {"rounds": rounds, "cases": {k: " ".join(v) for k, v in cases(quick).items()}}, "rows": rows}
    if errors:
        result["errors"] = errors
    return result
