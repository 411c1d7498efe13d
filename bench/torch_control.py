"""Plain forward throughput under whichever torch runs this script (a control for benchmark 2).

THINGSvision runs on the torch it pins, nbfeat on the project's: this times `model(x)` for
the same model and batch in each environment, so the end-to-end speed-up can be split into
what the tools do and what the torch versions do. Standalone (torch + timm/torchvision
only): it runs in both virtual environments. Prints one JSON line.

    bench/.venv-thingsvision/bin/python bench/torch_control.py --model timm:vit_small_patch16_224
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--model", required=True)
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32)
    a = p.parse_args()

    import torch

    source, name = a.model.split(":", 1)
    if source == "timm":
        import timm

        model = timm.create_model(name, pretrained=False)
    else:
        import torchvision

        model = getattr(torchvision.models, name)(weights=None)
    model.eval()
    torch.manual_seed(0)
    x = torch.randn(a.n, 3, 224, 224)
    with torch.no_grad():
        model(x[: a.batch_size])  # warm-up
        t0 = time.perf_counter()
        for i in range(0, a.n, a.batch_size):
            model(x[i : i + a.batch_size])
        seconds = time.perf_counter() - t0
    sys.stdout.write("\n" + json.dumps({"seconds": seconds, "images": a.n, "torch_version": torch.__version__, "torch_threads": torch.get_num_threads()}) + "\n")


if __name__ == "__main__":
    main()
