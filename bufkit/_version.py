"""The version of bufkit, in one place for the package and its build."""

from __future__ import annotations

__version__ = "0.1.0.dev0"
