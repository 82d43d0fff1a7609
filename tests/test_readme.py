"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_python_examples_run() -> None:
    """Every ```python block of the README runs and prints what its comments say."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README has no Python example"
    for block in blocks:
        out = subprocess.run(
            [sys.executable, "-W", "error", "-c", block],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        expected = [
            word.rstrip(":") for word in re.findall(r"print\(.*\)\s+# (\S+)", block)
        ]
        printed = iter(out.stdout.split())
        missing = [word for word in expected if word not in printed]
        assert not missing, f"{missing} not printed in order: {out.stdout!r}"
