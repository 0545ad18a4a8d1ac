"""``python -m mmio``: the mmio command line."""

import sys

from .cli import main

sys.exit(main())
