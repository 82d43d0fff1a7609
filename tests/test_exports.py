"""The public API: what ``bufkit`` exports, and that it is documented."""

from __future__ import annotations

import importlib
import inspect
import subprocess
import sys

import pytest

import bufkit

PUBLIC_MODULES = [
    "bufkit",
    "bufkit.adapters.asyncio",
    "bufkit.adapters.selectors",
    "bufkit.adapters.twisted",
    "bufkit.errors",
    "bufkit.framing",
    "bufkit.servers",
    "bufkit.testing",
    "bufkit.testing.stateful",
    "bufkit.testing.strategies",
]


def test_all_is_sorted_and_unique() -> None:
    """``bufkit.__all__`` is sorted and has no repeats."""
    assert list(bufkit.__all__) == sorted(set(bufkit.__all__))


@pytest.mark.parametrize("module_name", PUBLIC_MODULES)
def test_every_public_name_is_documented(module_name: str) -> None:
    """Every name in a public module's ``__all__`` exists and has a docstring."""
    module = importlib.import_module(module_name)
    for name in module.__all__:
        obj = getattr(module, name)
        if name == "__version__" or not (
            inspect.isclass(obj) or inspect.isfunction(obj)
        ):
            continue
        # mypyc drops the docstrings of the classes it compiles; the
        # pure-Python run checks the same source.
        compiled = hasattr(obj, "__mypyc_attrs__")
        assert compiled or inspect.getdoc(obj), f"{module_name}.{name} has no docstring"
        assert not obj.__module__.split(".")[-1].startswith("_") or (
            obj.__module__ == "bufkit"
        ), f"{module_name}.{name} has private __module__ {obj.__module__}"


def test_import_needs_only_attrs() -> None:
    """``import bufkit`` loads no adapter, no testing toolkit, no optional package."""
    code = (
        "import sys, bufkit; "
        "bad = [m for m in sys.modules if m.split('.')[0] in "
        "('hypothesis', 'twisted', 'uvloop', 'rich', 'matplotlib', 'psutil', "
        "'asyncio', 'selectors') or m.startswith('bufkit.adapters') "
        "or m.startswith('bufkit.testing') or m.startswith('bufkit.bench')]; "
        "print(','.join(bad))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == ""


def test_version_is_a_string() -> None:
    """``bufkit.__version__`` is a version string."""
    assert isinstance(bufkit.__version__, str)
    assert bufkit.__version__[0].isdigit()
