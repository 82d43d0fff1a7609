"""The core's public methods document Args, Returns and Raises (Google style)."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable, Iterator

import pytest

import bufkit

CORE = [
    bufkit.BufferPool,
    bufkit.PooledBuffer,
    bufkit.WriteQueue,
    bufkit.ReadinessReader,
    bufkit.LengthPrefixedFramer,
    bufkit.DelimiterFramer,
]


def public_callables(cls: type) -> Iterator[tuple[str, Callable[..., object]]]:
    """Each public method of ``cls`` (inherited ones too), with its name."""
    for name, member in inspect.getmembers(cls):
        if not name.startswith("_") and inspect.isfunction(member):
            yield name, member


def cases() -> list[tuple[str, Callable[..., object]]]:
    """Every public method of the core classes, named ``Class.method``."""
    return [
        (f"{cls.__name__}.{name}", member)
        for cls in CORE
        for name, member in public_callables(cls)
    ]


@pytest.mark.parametrize(("name", "method"), cases(), ids=[n for n, _ in cases()])
def test_public_methods_document_their_contract(
    name: str, method: Callable[..., object]
) -> None:
    """Parameters have Args, results have Returns, raised errors are listed."""
    doc = inspect.getdoc(method) or ""
    assert doc, f"{name} has no docstring"
    signature = inspect.signature(method)
    params = [p for p in signature.parameters if p != "self"]
    if params:
        assert "Args:" in doc, f"{name} does not document {params}"
        for param in params:
            assert f"{param}:" in doc, f"{name} does not document {param!r}"
    if signature.return_annotation not in ("None", inspect.Signature.empty):
        assert "Returns:" in doc, f"{name} does not document what it returns"
    raised = set(re.findall(r"raise ([A-Z]\w+)\(", inspect.getsource(method)))
    for error in raised:
        assert f"{error}:" in doc, f"{name} raises {error} but does not say so"


@pytest.mark.parametrize("cls", CORE, ids=[c.__name__ for c in CORE])
def test_public_properties_have_docstrings(cls: type) -> None:
    """Every public property of a core class says what it is."""
    for name, member in inspect.getmembers(cls):
        if not name.startswith("_") and isinstance(member, property):
            assert inspect.getdoc(member), f"{cls.__name__}.{name} has no docstring"


@pytest.mark.parametrize(
    "cls", [c for c in CORE if c is not bufkit.PooledBuffer], ids=lambda c: c.__name__
)
def test_constructor_arguments_are_documented(cls: type) -> None:
    """The class docstring documents every constructor argument and its errors."""
    if hasattr(cls, "__mypyc_attrs__"):
        pytest.skip("compiled by mypyc, which drops docstrings; the pure run checks")
    doc = inspect.getdoc(cls) or ""
    params = list(inspect.signature(cls).parameters)
    assert "Args:" in doc
    for param in params:
        assert f"{param}:" in doc, f"{cls.__name__} does not document {param!r}"
    assert "Raises:" in doc
    assert "TypeError:" in doc
    assert "ValueError:" in doc
