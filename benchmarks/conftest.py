"""Micro-benchmarks, kept out of the test run.

Run them with ``pytest benchmarks --benchmark-enable`` (they are timed by
pytest-benchmark; nothing here asserts a speed).
"""

from __future__ import annotations
