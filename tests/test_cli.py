"""The ``bufkit`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bufkit
from bufkit._cli import main


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """``bufkit --version`` prints the package version and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bufkit {bufkit.__version__}"


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``bufkit`` alone prints usage and returns 2."""
    assert main([]) == 2
    assert "usage: bufkit" in capsys.readouterr().err


def test_python_dash_m() -> None:
    """``python -m bufkit --version`` runs the same command."""
    out = subprocess.run(
        [sys.executable, "-m", "bufkit", "--version"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == f"bufkit {bufkit.__version__}"
