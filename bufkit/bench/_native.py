"""The C contender: build the small epoll server that ships as source.

``bufkit/bench/c/epoll_server.c`` is package data. The bench compiles it with
the machine's ``cc`` into a cache directory (``$XDG_CACHE_HOME/bufkit``, else
``~/.cache/bufkit``, else a directory of the system's temporary directory),
named by a digest of the source and the compiler, so a later run reuses the
binary. Without a compiler, or off Linux (epoll), the contender is skipped
with the reason.
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.resources
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Final

from bufkit.bench._wire import ContenderUnavailable

__all__ = ["COMPILER", "build", "unavailable"]

COMPILER: Final = "cc"
_FLAGS: Final = ("-O2", "-std=c11", "-Wall")
_BUILD_TIMEOUT: Final = 120.0


def unavailable() -> str | None:
    """Return why the C server cannot be built here, or None if it can."""
    if not sys.platform.startswith("linux"):
        return f"the C server uses epoll, which {sys.platform} lacks"
    if shutil.which(COMPILER) is None:
        return f"no C compiler ({COMPILER}) on PATH"
    return None


def _source() -> bytes:
    return (
        importlib.resources.files("bufkit.bench") / "c" / "epoll_server.c"
    ).read_bytes()


def _cache_dirs() -> list[Path]:
    dirs = []
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        dirs.append(Path(xdg) / "bufkit")
    with contextlib.suppress(RuntimeError):
        dirs.append(Path.home() / ".cache" / "bufkit")
    dirs.append(Path(tempfile.gettempdir()) / f"bufkit-{os.getuid()}")
    return dirs


def _writable(directory: Path) -> bool:
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError:
        return False
    return os.access(directory, os.W_OK | os.X_OK)


def build() -> str:
    """Return the path of the built C server, compiling it if needed.

    Raises:
        ContenderUnavailable: no compiler, no epoll, or the build failed.
    """
    reason = unavailable()
    if reason is not None:
        raise ContenderUnavailable(reason)
    compiler = shutil.which(COMPILER)
    assert compiler is not None
    source = _source()
    digest = hashlib.sha256(source + compiler.encode()).hexdigest()[:16]
    for directory in _cache_dirs():
        if not _writable(directory):
            continue
        binary = directory / f"epoll_server-{digest}"
        if binary.exists():
            return str(binary)
        return _compile(compiler, source, binary)
    raise ContenderUnavailable("no writable cache directory for the C server")


def _compile(compiler: str, source: bytes, binary: Path) -> str:
    with tempfile.TemporaryDirectory(prefix="bufkit-cc-") as tmp:
        src = Path(tmp) / "epoll_server.c"
        src.write_bytes(source)
        out = Path(tmp) / "epoll_server"
        try:
            done = subprocess.run(
                [compiler, *_FLAGS, "-o", str(out), str(src)],
                capture_output=True,
                text=True,
                timeout=_BUILD_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError) as exc:
            raise ContenderUnavailable(f"{COMPILER} could not run: {exc}") from exc
        if done.returncode != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-2:])
            raise ContenderUnavailable(f"{COMPILER} failed: {tail[:200]}")
        # Atomic: two benches building at once both end with a whole binary.
        staged = binary.with_name(f"{binary.name}.{os.getpid()}")
        shutil.copy2(out, staged)
        os.replace(staged, binary)
    return str(binary)
