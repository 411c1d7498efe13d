"""One real IPython shell for the magic tests, with the extension loaded."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def shell():
    from IPython.testing import globalipapp

    globalipapp.start_ipython()  # returns None when something already started it
    ip = globalipapp.get_ipython()  # the module attribute is rebound to the shell's
    ip.run_line_magic("load_ext", "nbfeat")
    ip.run_line_magic("config", "NbfeatMagics.progress = False")
    return ip
