"""`make demo`: a first run that shows learned features where it can, and says so where it cannot.

With a reachable model hub (or weights in the local cache) the demo loads pretrained DINOv2
ViT-S/14. Offline it says so in one line and takes ResNet-18 with random weights instead: a
random CNN's features still change visibly with depth (edges and colour early, coarse blobs
late), where a random DINOv2 shows the same picture at every block (its LayerScale starts at
1e-5, so each block's output is almost its input). The images are drawn shapes plus real
photographs that scikit-image ships.

    python -m nbfeat.demo --out demo_output [--model MODEL] [--notebook notebooks/01_quickstart.ipynb]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from nbfeat.examples import CLASSES, add_photos, make_images

PRETRAINED = ("dinov2_vits14", {"model_kwargs": {"img_size": 224}})
OFFLINE = ("torchvision:resnet18", {})
HUB = ("huggingface.co", 443)


@dataclass
class DemoModel:
    """The demo's backbone, what it is (one line), and layers at increasing depth to look at."""

    bb: Any
    note: str
    layers: list[str] = field(default_factory=list)
    pretrained: bool = False


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hugging Face hub answers (False at once when HF_HUB_OFFLINE is set)."""
    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on"):
        return False
    try:
        with socket.create_connection(HUB, timeout=timeout):
            return True
    except OSError:
        return False


def demo_model(model: str | None = None, device: Any = "cpu") -> DemoModel:
    """Pretrained DINOv2 when the hub is reachable or the weights are cached, else ResNet-18
    with random weights (and a one-line note saying so).

    Example:
        >>> m = demo_model()          # doctest: +SKIP
        >>> print(m.note)             # doctest: +SKIP
        offline: no pretrained weights here, so ResNet-18 with RANDOM weights ...
    """
    if not hub_reachable():
        # set before the hub client is imported: a download attempt then fails at once
        # instead of waiting on the network, and weights already in the cache still load
        os.environ["HF_HUB_OFFLINE"] = "1"
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import nbfeat
    from nbfeat.errors import OfflineError

    name, kwargs = (model, {}) if model else PRETRAINED
    try:
        bb = nbfeat.load(name, pretrained=True, device=device, **kwargs)
        return DemoModel(bb, f"pretrained weights: {bb.id}", _depths(bb), pretrained=True)
    except OfflineError:
        pass
    name, kwargs = (model, {}) if model else OFFLINE
    bb = nbfeat.load(name, pretrained=False, device=device, **kwargs)
    note = (
        f"offline: no pretrained weights here, so {bb.id} with RANDOM weights "
        "(real forward passes; a random CNN's features still change with depth, but carry no learned meaning)"
    )
    return DemoModel(bb, note, _depths(bb), pretrained=False)


def _depths(bb: Any) -> list[str]:
    """Four layers spread over depth: a CNN's stages (layer1..layer4), or blocks of a ViT."""
    stages = [p for p in ("layer1", "layer2", "layer3", "layer4") if p in set(bb.layers())]
    if len(stages) == 4:
        return stages
    blocks = bb.blocks
    if len(blocks) >= 4:
        n = len(blocks)
        return [blocks[i] for i in sorted({n // 4 - 1, n // 2 - 1, 3 * n // 4 - 1, n - 1})]
    return list(blocks) or bb.layers()[-1:]


def demo_images(root: str | os.PathLike[str], per_class: int = 8) -> Path:
    """Drawn shapes (circles/, squares/, stripes/) and real photographs (photos/) in `root`."""
    folder = make_images(root, per_class=per_class)
    add_photos(folder)
    return folder


def nearest_neighbour_accuracy(features: np.ndarray, labels: np.ndarray) -> float:
    """Leave-one-out 1-NN accuracy by cosine similarity: how well a layer separates the classes."""
    x = features.reshape(len(features), -1)
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sim = x @ x.T
    np.fill_diagonal(sim, -np.inf)
    return float((labels[sim.argmax(axis=1)] == labels).mean())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m nbfeat.demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="demo_output", help="output folder (default: demo_output)")
    parser.add_argument("--model", default=None, help=f"model id or alias (default: {PRETRAINED[0]}, or {OFFLINE[0]} offline)")
    parser.add_argument("--notebook", default=None, help="also execute this notebook into an HTML page in --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    images = demo_images(out / "images")
    print(f"images: {sum(1 for _ in images.rglob('*.png'))} in {images} ({', '.join((*CLASSES, 'photos'))})")

    t0 = time.perf_counter()
    m = demo_model(args.model)
    print(f"model:  {m.bb}\nweights: {m.note}")
    store = out / "features.zarr"
    ds = m.bb.extract(images, layers=m.layers, pool="mean", out=store, overwrite=True, progress=False)
    elapsed = time.perf_counter() - t0
    arrays = ds.nbfeat.to_numpy()  # a Dataset, or a DataTree when the layers' shapes differ
    labels = np.asarray(ds["label"].values)
    print(f"\nextracted {len(labels)} samples in {elapsed:.1f} s -> {store}")
    print(f"{'layer':<26}{'shape':<16}1-NN accuracy (chance {1 / (len(CLASSES) + 1):.2f})")
    for name, values in arrays.items():
        print(f"{name.rpartition('/')[2]:<26}{str(values.shape):<16}{nearest_neighbour_accuracy(values, labels):.2f}")
    print(f"failed inputs: {ds.attrs.get('n_failed', 0)}")
    if args.notebook:
        html = run_notebook(Path(args.notebook), out)
        print(f"\nnotebook: executed {args.notebook} -> {html.resolve()} (plots and saved widget views included)")
    return 0


def run_notebook(path: Path, out: Path) -> Path:
    """Execute a notebook with `out` as its working folder and save it as HTML there.

    Widget state is not stored, as JupyterLab does not by default: the HTML page then shows
    each widget's saved view (a PNG), which needs no kernel.
    """
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", store_widget_state=False, resources={"metadata": {"path": str(out)}}).execute()
    nbformat.write(nb, out / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    target = out / (path.stem + ".html")
    target.write_text(html, encoding="utf-8")
    return target


if __name__ == "__main__":
    sys.exit(main())
