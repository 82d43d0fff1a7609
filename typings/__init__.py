"""Type-level tests of bufkit's public API: checked by mypy, never run."""
