"""The compiled bufkit build as a contender of its own: ``bufkit-compiled``.

It serves what ``bufkit-selectors`` serves (the reference servers on the
selectors ``Loop``), from the compiled (mypyc) build. When the bench itself
runs the compiled build, that is this interpreter. Otherwise the server
process replaces itself (``os.execve``: same pid, same pipes, so the bench
measures it like any other) with a Python where bufkit is the compiled build:
the one named by ``BUFKIT_BENCH_COMPILED_PYTHON``, else the ``.venv-compiled``
of the current directory that ``scripts/test.sh --compiled`` makes. With
neither, the contender is skipped with a one-line reason.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Final

from bufkit._build import COMPILED, build
from bufkit.bench._wire import ContenderUnavailable

if TYPE_CHECKING:
    from bufkit.bench._certs import CertFiles
    from bufkit.bench._wire import Served

__all__ = ["ENV_PYTHON", "serve"]

ENV_PYTHON: Final = "BUFKIT_BENCH_COMPILED_PYTHON"
"""Names a Python interpreter whose bufkit is the compiled build."""
_DEFAULT: Final = Path(".venv-compiled") / "bin" / "python"


def serve(host: str, tls: CertFiles | None = None) -> Served:  # noqa: RET503 (execve)
    """Serve ``bufkit-selectors`` from the compiled build.

    Raises:
        ContenderUnavailable: no Python with the compiled build was found.
    """
    if build() == COMPILED:
        from bufkit.bench._ours import serve_selectors

        return serve_selectors(host, tls)
    python = os.environ.get(ENV_PYTHON) or (str(_DEFAULT) if _DEFAULT.exists() else "")
    if not python:
        raise ContenderUnavailable(
            f"no compiled build: set {ENV_PYTHON} to a Python where "
            "`BUFKIT_COMPILE=1 pip install .` was run"
        )
    # Its own install only: neither PYTHONPATH nor the current directory
    # (-P), which may hold the pure sources, comes first on its path.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    theirs = _build_of(python, env)
    if theirs != COMPILED:
        raise ContenderUnavailable(f"{python} runs the {theirs} build")
    args = sys.argv[1:]
    args[args.index("bufkit-compiled")] = "bufkit-selectors"
    sys.stdout.flush()
    os.execve(python, [python, "-P", "-m", "bufkit.bench._server", *args], env)


def _build_of(python: str, env: dict[str, str]) -> str:
    """The build of bufkit that ``python`` imports, or why it cannot tell."""
    try:
        out = subprocess.run(
            [python, "-P", "-c", "from bufkit._build import build; print(build())"],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"unknown ({exc})"
    return out.stdout.strip() or f"unknown ({out.stderr.strip()[-200:]})"
