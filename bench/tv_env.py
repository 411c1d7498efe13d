"""The THINGSvision virtual environment (bench/.venv-thingsvision, git-ignored), made on demand.

THINGSvision 2.7.3 pins an old torch (2.0.x with torchvision 0.15.2) and TensorFlow, so it
lives apart from nbfeat's environment. Creating it downloads a few GB from the registry once.

>>> python = thingsvision_python()      # doctest: +SKIP
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from bench.common import ROOT

VENV = ROOT / "bench" / ".venv-thingsvision"
PACKAGE = "thingsvision==2.7.3"


class EnvError(RuntimeError):
    """THINGSvision could not be installed; the message says why."""


def thingsvision_python(install: bool = True) -> Path:
    """Path of the venv's python with THINGSvision importable (installing it if asked)."""
    python = VENV / "bin" / "python"
    if _importable(python):
        (VENV / ".gitignore").write_text("*\n")
        return python
    if not install:
        raise EnvError(f"{VENV} has no working THINGSvision (run `python -m bench.run --only e2e` to install it)")
    base = getattr(sys, "_base_executable", sys.executable)
    steps = [[base, "-m", "venv", str(VENV)], [str(python), "-m", "pip", "install", "-q", PACKAGE]]
    for argv in steps:
        if argv[0] == base and python.exists():
            continue
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=3600)
        if proc.returncode != 0:
            tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-4:])
            raise EnvError(f"`{' '.join(argv[-3:])}` failed: {tail[-600:]}")
    (VENV / ".gitignore").write_text("*\n")  # git and ruff leave the venv alone (as venv does from 3.13)
    if not _importable(python):
        raise EnvError(f"{PACKAGE} installed but `import thingsvision` fails in {VENV}")
    return python


def _importable(python: Path) -> bool:
    if not python.exists():
        return False
    proc = subprocess.run([str(python), "-c", "import thingsvision"], capture_output=True, timeout=600, env={"TF_CPP_MIN_LOG_LEVEL": "3", "PATH": "/usr/bin:/bin"})
    return proc.returncode == 0
