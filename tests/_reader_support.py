"""What the reader's property tests share: the pool's classes and the options drawn."""

from __future__ import annotations

from hypothesis import strategies as st

from bufkit import BufferPool

CLASSES = (16, 64, 256, 512)


def make_pool() -> BufferPool:
    """A pool of the four small classes, so reads climb and fill quickly."""
    return BufferPool(size_classes=CLASSES, slab_size=2048)


reader_options = st.fixed_dictionaries(
    {
        "read_budget": st.integers(1, 4),
        "initial_size": st.sampled_from([1, *CLASSES]),
        "adaptive": st.booleans(),
    }
)
"""Keyword arguments for :class:`bufkit.ReadinessReader`, drawn."""
