"""Which build of bufkit is running: the pure-Python one or the compiled one.

The compiled build (``BUFKIT_COMPILE=1 pip install .``) ships the same sources
with some of them compiled by mypyc into extension modules, which Python
imports in preference to the ``.py`` files beside them. The pool is always in
the compiled set, so whether its module is an extension tells the builds apart.
"""

from __future__ import annotations

from importlib.machinery import EXTENSION_SUFFIXES
from typing import Final

import bufkit._pool

__all__ = ["COMPILED", "PURE", "build", "is_compiled"]

PURE: Final = "pure Python"
"""What :func:`build` returns for the pure-Python build (the default)."""
COMPILED: Final = "compiled (mypyc)"
"""What :func:`build` returns for the build compiled with mypyc."""


def is_compiled(module_file: str | None) -> bool:
    """Whether a module loaded from ``module_file`` is an extension module."""
    return module_file is not None and module_file.endswith(tuple(EXTENSION_SUFFIXES))


def build() -> str:
    """Name the running build: :data:`PURE` or :data:`COMPILED`."""
    return COMPILED if is_compiled(bufkit._pool.__file__) else PURE
