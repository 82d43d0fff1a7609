"""The one-line summary of the machine, Python and package versions."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from typing import Any, Final

from bufkit._build import build

__all__ = ["describe", "summary_line"]

_PACKAGES: Final = ("bufkit", "uvloop", "twisted", "rich", "matplotlib", "psutil")


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _version(package: str) -> str | None:
    try:
        return importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:
        return None


def _strace_version() -> str | None:
    strace = shutil.which("strace")
    if strace is None:
        return None
    try:
        out = subprocess.run(
            [strace, "-V"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    words = out.split()
    return words[3] if len(words) > 3 else None


def _cc_version() -> str | None:
    cc = shutil.which("cc")
    if cc is None:
        return None
    try:
        out = subprocess.run(
            [cc, "--version"], capture_output=True, text=True, timeout=5, check=False
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    return out.splitlines()[0].strip() if out.strip() else None


def describe() -> dict[str, Any]:
    """Return the machine, OS, Python and package versions (JSON-ready)."""
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    return {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "os": f"{platform.system()} {platform.release()}",
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "bufkit_build": build(),
        "packages": {name: _version(name) for name in _PACKAGES},
        "strace": _strace_version(),
        "cc": _cc_version(),
        "load_average": list(load) if load else None,
    }


def summary_line(env: dict[str, Any]) -> str:
    """Return the environment as one line."""
    packages = ", ".join(
        f"{name} {version}" for name, version in env["packages"].items() if version
    )
    return (
        f"{env['date']} | {env['cpu']} x{env['cores']} | {env['os']} | "
        f"{env['python']} | {packages} | {env.get('bufkit_build', '?')} build"
    )
