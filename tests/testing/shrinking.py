"""Find the minimal example of a strategy (a small helper for shrink tests)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from hypothesis import HealthCheck, find, settings
from hypothesis import strategies as st

T = TypeVar("T")


def minimal(strategy: st.SearchStrategy[T], condition: Callable[[T], bool]) -> T:
    """Return the shrunk example of ``strategy`` that satisfies ``condition``."""
    return find(
        strategy,
        condition,
        settings=settings(
            max_examples=500,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        ),
    )
