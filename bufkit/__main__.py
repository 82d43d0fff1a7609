"""``python -m bufkit``: the same as the ``bufkit`` command."""

from __future__ import annotations

import sys

from bufkit._cli import main

if __name__ == "__main__":
    sys.exit(main())
