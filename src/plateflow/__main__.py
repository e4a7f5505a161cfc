"""``python -m plateflow``: the ``plateflow`` command."""

from __future__ import annotations

import sys

from .cli import main

# Guarded: worker processes started with "spawn" import this module again as __mp_main__.
if __name__ == "__main__":
    sys.exit(main())
