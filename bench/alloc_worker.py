"""One allocator-benchmark case in a fresh process (glibc reads MALLOC_* at start-up).

Cases: `plain` (resnet50 `model(x)` per batch), `nbfeat-layer1` (`bb.extract(x,
layers=["layer1"])`: big feature maps, the most allocation churn), `nbfeat-nodes` (ViT-S/16
attn/mlp/block at every depth). One untimed warm-up batch, then the timed work; prints wall
seconds, user and kernel CPU seconds and minor page faults of the timed part.

    MALLOC_TOP_PAD_=536870912 python -m bench.alloc_worker --case plain --n 32 --batch-size 16
"""

from __future__ import annotations

import argparse
import resource
import time

from bench.common import emit, peak_rss_mib


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--case", choices=["plain", "nbfeat-layer1", "nbfeat-nodes"], required=True)
    p.add_argument("--n", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--mallopt", action="store_true", help="nbfeat's own settings, applied from inside the process (tune_malloc)")
    a = p.parse_args()
    if a.mallopt:
        from nbfeat.engine.allocation import tune_malloc

        tune_malloc()

    import torch

    import nbfeat

    torch.manual_seed(0)
    x = torch.randn(a.n, 3, 224, 224)
    model_id = "timm:vit_small_patch16_224" if a.case == "nbfeat-nodes" else "torchvision:resnet50"
    bb = nbfeat.load(model_id, pretrained=False, device="cpu")
    kw = {"nodes": ["attn", "mlp", "block"]} if a.case == "nbfeat-nodes" else {"layers": ["layer1"]}

    def work(xs: torch.Tensor) -> None:
        if a.case == "plain":
            with torch.inference_mode():
                for i in range(0, len(xs), a.batch_size):
                    bb.model(xs[i : i + a.batch_size])
        else:
            bb.extract(xs, batch_size=a.batch_size, progress=False, **kw)

    work(x[: a.batch_size])
    r0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    work(x)
    seconds, r1 = time.perf_counter() - t0, resource.getrusage(resource.RUSAGE_SELF)
    emit({"seconds": seconds, "user_s": r1.ru_utime - r0.ru_utime, "sys_s": r1.ru_stime - r0.ru_stime, "minor_faults": r1.ru_minflt - r0.ru_minflt, "max_rss_mib": peak_rss_mib()})


if __name__ == "__main__":
    main()
