"""The ``bufkit`` command line."""

from __future__ import annotations

import subprocess
import sys

import pytest

import bufkit
import bufkit._pool
from bufkit._cli import main

_BUILD = "pure Python" if bufkit._pool.__file__.endswith(".py") else "compiled (mypyc)"
_VERSION = f"bufkit {bufkit.__version__}, {_BUILD} build"


def test_version_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """``bufkit --version`` prints the version and the build, and exits 0."""
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    assert capsys.readouterr().out.strip() == _VERSION


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
    assert out.stdout.strip() == _VERSION


# Runs the command as on a platform without these (Windows lacks them all).
_WITHOUT_PLATFORM_FEATURES = """
import os, signal, socket, sys
for module, name in (
    (signal, "SIGUSR1"), (signal, "SIGHUP"), (signal, "SIGQUIT"),
    (signal, "pthread_sigmask"), (os, "fork"), (socket, "SO_REUSEPORT"),
):
    if hasattr(module, name):
        delattr(module, name)
from bufkit._cli import main
sys.exit(main(sys.argv[1:]))
"""


def _run_without_platform_features(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _WITHOUT_PLATFORM_FEATURES, *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version_without_fork_sigusr1_or_reuseport() -> None:
    """``bufkit --version`` works where SIGUSR1, fork and SO_REUSEPORT are missing."""
    out = _run_without_platform_features("--version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == _VERSION


def test_workers_without_fork_is_refused_in_one_line() -> None:
    """``serve --workers 2`` without ``os.fork`` exits 2 with one line saying why."""
    out = _run_without_platform_features("serve", "echo", "--workers", "2")
    assert out.returncode == 2
    assert out.stderr.splitlines() == [
        "bufkit serve: --workers 2 needs os.fork, which this platform lacks"
    ]
