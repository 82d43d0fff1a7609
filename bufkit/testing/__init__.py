"""A hostile fake socket, driven by schedules, to property-test socket code."""

from __future__ import annotations

__all__: list[str] = []
