"""`python -m nbfeat ...`: the same as the `nbfeat` command."""

import sys

from nbfeat.cli import main

sys.exit(main())
