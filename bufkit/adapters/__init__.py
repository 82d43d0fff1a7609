"""Glue between bufkit's primitives and event loops.

Each adapter is imported on its own (``import bufkit.adapters.selectors``);
``import bufkit`` imports none of them, and this package imports nothing.
"""

from __future__ import annotations

__all__: list[str] = []
