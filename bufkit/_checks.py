"""Argument checks shared by the core modules: a clear error naming the value."""

from __future__ import annotations

__all__ = ["positive_int", "require_int"]


def require_int(name: str, value: object) -> None:
    """Raise TypeError, naming ``name``, unless ``value`` is an int (not bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value}")
    return int(value)
