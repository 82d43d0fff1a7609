"""``python -m bufkit.soak``: the same as ``bufkit soak``."""

from __future__ import annotations

import sys

from bufkit.soak._command import main

if __name__ == "__main__":
    sys.exit(main())
