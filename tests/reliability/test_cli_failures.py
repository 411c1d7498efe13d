"""Every user-facing failure of the `nbfeat` command is one line on stderr and a documented
exit status (docs/cli.md), never a traceback: a closed pipe, a read-only file system, a full
disk, a store another process is writing, bad input."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from nbfeat.cli import main
from nbfeat.store.lock import store_lock
from tests.conftest import write_images

ROOT = Path(__file__).resolve().parents[2]


def run_main(capsys, *args):
    code = main(list(args))
    err = capsys.readouterr().err.strip()
    return code, err


def extract_args(images, out):
    return ["extract", "timm:test_resnet", "--inputs", str(images), "--layers", "layer4", "--pool", "mean", "--out", str(out), "--set", "pretrained=false", "--set", "progress=false"]


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "images"
    write_images(root, n_per_class=1, size=(32, 40))
    return root


def test_a_closed_pipe_ends_quietly_with_141():
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "nbfeat", "models"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    first = proc.stdout.readline()  # `| head -1`
    proc.stdout.close()
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert first.split()[0] == b"id" and "Traceback" not in err and "Exception ignored" not in err, err


def test_a_store_being_written_exits_3(images, tmp_path, capsys):
    out = tmp_path / "f.zarr"
    with store_lock(str(out)):
        code, err = run_main(capsys, *extract_args(images, out))
    assert code == 3 and len(err.splitlines()) == 1 and "is being written by process" in err, err


def test_bad_input_exits_2(tmp_path, capsys):
    code, err = run_main(capsys, *extract_args(tmp_path / "no_such_folder", tmp_path / "f.zarr"))
    assert code == 2 and len(err.splitlines()) == 1 and "No such file or folder" in err, err


@pytest.fixture
def mount(tmp_path):
    """Mount a tmpfs with options; skips where mounts are not allowed (root only)."""
    mounted = []

    def make(options):
        d = tmp_path / f"m{len(mounted)}"
        d.mkdir()
        if shutil.which("mount") is None or os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(d)], capture_output=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.decode().strip()}")
        mounted.append(d)
        return d

    yield make
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], capture_output=True)


def test_a_read_only_file_system_exits_4(images, mount, capsys):
    ro = mount("ro,size=1m")
    code, err = run_main(capsys, *extract_args(images, ro / "f.zarr"))
    assert code == 4 and len(err.splitlines()) == 1, err
    assert err.startswith("nbfeat extract: Read-only file system") and "Traceback" not in err


def test_a_full_disk_exits_4(images, mount, capsys):
    tiny = mount("size=200k")
    (tiny / "filler").write_bytes(b"\0" * 190_000)
    code, err = run_main(capsys, *extract_args(images, tiny / "f.zarr"))
    assert code == 4 and len(err.splitlines()) == 1, err
    assert "No space left on device" in err and "Free some space" in err
    assert (tiny / "filler").stat().st_size == 190_000  # nothing of the user's touched
