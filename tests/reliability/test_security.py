"""Untrusted files run no code; tokens never reach attrs, outputs or files."""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch

import nbfeat
from nbfeat.errors import NbfeatError


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_malicious_pickle_checkpoint_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil(marker)}, f)
    torch.save({"model": _Evil(marker)}, tmp_path / "evil2.pt")
    for p in (path, tmp_path / "evil2.pt"):
        with pytest.raises(NbfeatError, match=r"Refused to load .*never unpickles code"):
            nbfeat.load("torchvision:resnet18", weights=str(p))
    assert not marker.exists(), "the pickle ran code"


def _remote_code_dir(root, marker):
    root.mkdir()
    (root / "config.json").write_text(json.dumps({
        "model_type": "evil", "auto_map": {"AutoConfig": "configuration_evil.EvilConfig", "AutoModel": "modeling_evil.EvilModel"},
    }))
    code = f"import pathlib; pathlib.Path({str(marker)!r}).touch()\nfrom transformers import PretrainedConfig\nclass EvilConfig(PretrainedConfig):\n    model_type = 'evil'\n"
    (root / "configuration_evil.py").write_text(code)
    (root / "modeling_evil.py").write_text(code)
    return root


def test_remote_code_does_not_run_unless_asked(tmp_path):
    marker = tmp_path / "ran"
    repo = _remote_code_dir(tmp_path / "repo", marker)
    with pytest.raises(NbfeatError, match=r"trust_remote_code=True"):
        nbfeat.load(f"hf:{repo}", pretrained=False)
    assert not marker.exists()


def test_tokens_never_reach_attrs_outputs_or_files(tmp_path, monkeypatch, capsys, image_dir):
    secret = "hf_SECRETtoken1234567890"
    monkeypatch.setenv("HF_TOKEN", secret)
    monkeypatch.setenv("HF_ACCESS_TOKEN", secret + "2")
    from nbfeat.examples import save_tiny_vit as save_vit

    bb = nbfeat.load(f"hf:{save_vit(tmp_path / 'vit')}")
    ds = bb.extract(image_dir, layers=[-1], pool="cls")
    out = tmp_path / "out.nc"
    ds.to_netcdf(out)
    printed = capsys.readouterr()
    blobs = [repr(ds), json.dumps(ds.attrs), json.dumps(bb.load_kwargs()), repr(bb), printed.out, printed.err]
    blobs += [p.read_bytes().decode("latin-1") for p in tmp_path.rglob("*") if p.is_file()]
    assert not any(secret in b for b in blobs)
