"""The .nbfeat accessor: registration, laziness of `import nbfeat`, Dataset/DataTree mapping."""

from __future__ import annotations

import subprocess
import sys
import warnings

import numpy as np
import xarray as xr
from numpy.testing import assert_allclose

from nbfeat.analysis.accessor import DataArrayAccessor, DatasetAccessor, DataTreeAccessor, register
from tests.analysis.builders import conv_dataset, two_model_tree


def test_register_is_idempotent_and_silent():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        register()
        register()
    assert xr.DataArray.nbfeat is DataArrayAccessor
    assert xr.Dataset.nbfeat is DatasetAccessor
    assert xr.DataTree.nbfeat is DataTreeAccessor


def test_accessor_appears_when_xarray_is_imported_after_nbfeat():
    code = (
        "import sys, nbfeat\n"
        "assert 'xarray' not in sys.modules and 'matplotlib' not in sys.modules\n"
        "import xarray as xr\n"
        "da = xr.DataArray([[1.0, 2.0], [3.0, 5.0], [0.0, 1.0]], dims=('sample', 'channel'))\n"
        "print(float(da.nbfeat.center().sum()))\n"
        "assert 'matplotlib' not in sys.modules and 'torch' not in sys.modules\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert abs(float(out.stdout)) < 1e-12


def test_datatree_methods_keep_the_tree_shape():
    dt = two_model_tree()
    centred = dt.nbfeat.center()
    assert isinstance(centred, xr.DataTree)
    assert set(centred.children) == {"timm:resnet18", "torchvision:alexnet"}
    got = centred["torchvision:alexnet/features.10"]["features.10"].values
    ref = dt["torchvision:alexnet/features.10"]["features.10"].values
    assert_allclose(got, ref - ref.mean(0))
    assert centred["timm:resnet18"].attrs["model"] == "timm:resnet18"
    assert list(centred["timm:resnet18"]["label"].values) == list(dt["label"].values)
    fits = dt.nbfeat.pca(2)
    assert fits["timm:resnet18/layer3"]["scores"].shape == (10, 2)
    assert fits["torchvision:alexnet/classifier.4"]["loadings"].dims == ("component", "channel")
    rdms = dt.nbfeat.rdm()
    assert rdms["timm:resnet18"]["layer4"].dims == ("sample", "sample_")
    arrays = dt.nbfeat.to_numpy()
    assert set(arrays) == {
        "timm:resnet18/layer3", "timm:resnet18/layer4",
        "torchvision:alexnet/features.10/features.10", "torchvision:alexnet/classifier.4/classifier.4",
    }
    assert dt.nbfeat.compare(method="cka").matrix.shape == (4, 4)


def test_chained_calls_keep_labels_and_attrs():
    ds = conv_dataset()
    out = ds["layer3"].nbfeat.pool("mean").nbfeat.normalize("l2").nbfeat.center()
    assert out.attrs["pool"] == "mean" and out.attrs["normalized"] == "l2" and out.attrs["module"] == "layer3"
    assert list(out["label"].values) == list(ds["label"].values)
    assert isinstance(out.nbfeat.to_numpy(), np.ndarray)


def test_accessor_survives_a_find_spec_probe_before_the_import():
    # timm/transformers probe `importlib.util.find_spec("xarray")` to see whether it is
    # installed; the accessor must still be registered when xarray is imported afterwards
    code = (
        "import importlib.util, nbfeat\n"
        "importlib.util.find_spec('xarray')\n"
        "import xarray as xr\n"
        "assert hasattr(xr.DataArray, 'nbfeat')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
