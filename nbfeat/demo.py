"""`make demo`: extract features for generated sample images and print a summary.

Uses pretrained weights when the local cache has them, otherwise random weights (and says so).

    python -m nbfeat.demo --out demo_output [--model dinov2_vits14] [--notebook notebooks/01_quickstart.ipynb]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from nbfeat.examples import CLASSES, make_images

DEFAULT_MODEL = "dinov2_vits14"
def load_backbone(model: str):
    """Pretrained if cached, else random weights; returns (backbone, note)."""
    import nbfeat
    from nbfeat.errors import OfflineError

    kwargs = {"model_kwargs": {"img_size": 224}} if "dinov2" in model else {}
    try:
        return nbfeat.load(model, pretrained=True, **kwargs), "pretrained weights (from the local cache)"
    except OfflineError:
        note = (
            "RANDOM weights: the pretrained weights are not in the local cache and cannot be downloaded "
            "here. The features are real forward passes, but carry no learned meaning."
        )
        return nbfeat.load(model, pretrained=False, **kwargs), note


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
    parser.add_argument("--model", default=DEFAULT_MODEL, help=f"model id or alias (default: {DEFAULT_MODEL})")
    parser.add_argument("--notebook", default=None, help="also execute this notebook into an HTML page in --out")
    args = parser.parse_args(argv)
    out = Path(args.out)
    images = make_images(out / "images")
    print(f"images: {sum(1 for _ in images.rglob('*.png'))} generated in {images} ({', '.join(CLASSES)})")

    t0 = time.perf_counter()
    bb, note = load_backbone(args.model)
    print(f"model:  {bb}\nweights: {note}")
    layers = [bb.blocks[len(bb.blocks) // 2], -1]
    store = out / "features.zarr"
    ds = bb.extract(images, layers=layers, pool="mean", out=store, overwrite=True, progress=False)
    elapsed = time.perf_counter() - t0
    ds = ds.load()
    labels = ds["label"].values
    print(f"\nextracted {ds.sizes['sample']} samples in {elapsed:.1f} s -> {store}")
    print(f"{'layer':<14}{'dims':<22}{'shape':<16}1-NN accuracy (chance {1 / len(CLASSES):.2f})")
    for name, var in ds.data_vars.items():
        acc = nearest_neighbour_accuracy(var.values, labels)
        print(f"{name:<14}{str(var.dims):<22}{str(var.shape):<16}{acc:.2f}")
    print(f"failed inputs: {ds.attrs['n_failed']}")
    if args.notebook:
        html = run_notebook(Path(args.notebook), out)
        print(f"\nnotebook: executed {args.notebook} -> {html.resolve()} (plots and widget state included)")
    return 0


def run_notebook(path: Path, out: Path) -> Path:
    """Execute a notebook with `out` as its working folder and save it as HTML there."""
    import nbformat
    from nbclient import NotebookClient
    from nbconvert import HTMLExporter

    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(out)}}).execute()
    nbformat.write(nb, out / path.name)
    html, _ = HTMLExporter().from_notebook_node(nb)
    target = out / (path.stem + ".html")
    target.write_text(html, encoding="utf-8")
    return target


if __name__ == "__main__":
    sys.exit(main())
