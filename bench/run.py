"""Run the benchmarks, write `bench/results.json` and the table in `docs/benchmarks.md`.

    python -m bench.run                  # everything (10-20 min on 2 CPU cores)
    python -m bench.run --quick          # small sizes, for development
    python -m bench.run --only forward --only text
    python -m bench.run --skip memory    # the full memory run (20,000 images) takes ~25 min

`--only` (and `--skip`) replace only the sections that run in an existing results.json and keeps the others, so the
table always shows the latest figure of each benchmark (each section says when and how it
was measured). A benchmark that cannot run records why instead of a figure.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import importlib
import json
import sys
import time
import traceback
from typing import Any

from bench.common import ROOT, machine

RESULTS = ROOT / "bench" / "results.json"
DOC = ROOT / "docs" / "benchmarks.md"

# name -> module with run(quick) -> dict; in the order they run
BENCHMARKS = {
    "forward": "bench.forward",
    "e2e": "bench.e2e",
    "text": "bench.text",
    "memory": "bench.memory",
    "startup": "bench.startup",
    "allocator": "bench.allocator",
    "families": "bench.families",
    "scale": "bench.scale",
    "gpu": "bench.gpu",
}


def run_one(name: str, quick: bool) -> dict[str, Any]:
    started = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    try:
        module = importlib.import_module(BENCHMARKS[name])
    except ModuleNotFoundError as e:
        if e.name != BENCHMARKS[name]:
            raise
        result: dict[str, Any] = {"status": "pending", "reason": f"{BENCHMARKS[name].replace('.', '/')}.py is not written yet"}
    else:
        try:
            result = module.run(quick=quick)
        except Exception as e:  # one broken benchmark must not lose the others' figures
            result = {"status": "error", "reason": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()[-3000:]}
    result.setdefault("status", "ok")
    result.update({"quick": quick, "started": started, "seconds": round(time.perf_counter() - t0, 1)})
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes (development)")
    parser.add_argument("--only", action="append", choices=list(BENCHMARKS), help="run only this benchmark (repeatable)")
    parser.add_argument("--skip", action="append", default=[], choices=list(BENCHMARKS), help="leave this benchmark out (repeatable); its last figures stay")
    parser.add_argument("--no-doc", action="store_true", help="do not rewrite docs/benchmarks.md")
    args = parser.parse_args(argv)

    names = [n for n in (args.only or list(BENCHMARKS)) if n not in args.skip]
    results: dict[str, Any] = {"benchmarks": {}}
    if RESULTS.exists() and (args.only or args.skip):
        try:
            results = json.loads(RESULTS.read_text())
        except json.JSONDecodeError:
            pass
    results["machine"] = machine()
    results.setdefault("benchmarks", {})
    for name in names:
        print(f"[bench] {name} ...", flush=True)
        result = run_one(name, args.quick)
        result["machine_load_avg_1m"] = machine()["load_avg_1m"]
        results["benchmarks"][name] = result
        print(f"[bench] {name}: {result['status']} in {result['seconds']} s" + (f" ({result.get('reason')})" if result.get("reason") else ""), flush=True)
        RESULTS.write_text(json.dumps(results, indent=1, default=str) + "\n")  # keep what is done if a later one dies
    if not args.no_doc:
        from bench.report import markdown

        DOC.write_text(markdown(results))
        print(f"[bench] wrote {RESULTS.relative_to(ROOT)} and {DOC.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
