"""Which build is running: the test run proves it imported the one it asked for."""

from __future__ import annotations

import importlib
import os
import tomllib
from pathlib import Path

import pytest

import bufkit._pool
from bufkit._build import COMPILED, PURE, build, is_compiled

_ROOT = Path(__file__).resolve().parent.parent
_EXPECTED = {"pure": PURE, "compiled": COMPILED}


def _compiled_set() -> list[str]:
    """The modules the compiled build compiles, from pyproject.toml."""
    with open(_ROOT / "pyproject.toml", "rb") as f:
        config = tomllib.load(f)
    paths = config["tool"]["hatch"]["build"]["targets"]["wheel"]["hooks"]["custom"]
    return [p.removesuffix(".py").replace("/", ".") for p in paths["compile"]]


def test_the_build_is_the_one_the_run_asked_for() -> None:
    """``BUFKIT_EXPECT_BUILD`` (``pure`` when unset) names the build imported."""
    asked = os.environ.get("BUFKIT_EXPECT_BUILD", "pure")
    assert asked in _EXPECTED, f"BUFKIT_EXPECT_BUILD must be pure or compiled: {asked}"
    assert build() == _EXPECTED[asked], f"imported from {bufkit._pool.__file__}"


def test_the_compiled_set_is_never_mixed_with_sources() -> None:
    """Every module of the compiled set is an extension, or none is."""
    modules = _compiled_set()
    assert "bufkit._pool" in modules
    kinds = {
        name: is_compiled(importlib.import_module(name).__file__) for name in modules
    }
    assert len(set(kinds.values())) == 1, kinds
    assert kinds["bufkit._pool"] == (build() == COMPILED)


@pytest.mark.parametrize(
    ("file", "compiled"),
    [
        ("/x/bufkit/_pool.cpython-311-x86_64-linux-gnu.so", True),
        ("/x/bufkit/_pool.abi3.so", True),
        ("/x/bufkit/_pool.py", False),
        ("/x/bufkit/_pool.pyc", False),
        (None, False),
    ],
)
def test_is_compiled_tells_extensions_from_sources(
    file: str | None, compiled: bool
) -> None:
    """An extension module's file name marks the compiled build."""
    assert is_compiled(file) is compiled
