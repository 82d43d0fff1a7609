"""Micro-benchmarks of bufkit (run with pytest benchmarks --benchmark-enable)."""
