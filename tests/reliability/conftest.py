"""Fixtures for the reliability suite: one real IPython shell with the extension loaded."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shell():
    """The test IPython shell (one per session, shared with tests/magics), `%load_ext nbfeat` done."""
    from IPython.testing import globalipapp

    globalipapp.start_ipython()  # returns None when something already started it
    ip = globalipapp.get_ipython()
    ip.run_line_magic("load_ext", "nbfeat")
    ip.run_line_magic("config", "NbfeatMagics.progress = False")
    return ip
