"""Hypothesis strategies for TLS tests: memory stream pairs with drawn hostility.

Theory of operation: :func:`memory_socketpairs` draws a seed, the largest
send and receive (down to one byte) and a would-block rate, and builds a
:func:`~bufkit.testing.memory_socketpair` from them; Hypothesis shrinks
towards whole writes and reads without would-blocks, so a failure prints
the simplest hostile stream that breaks the code under test.
"""

from __future__ import annotations

from hypothesis import strategies as st

from bufkit.testing._tls_fake import MemorySocket, memory_socketpair

__all__ = ["memory_socketpairs"]


@st.composite
def memory_socketpairs(
    draw: st.DrawFn, *, max_chunk: int = 65536
) -> tuple[MemorySocket, MemorySocket]:
    """Draw a connected :class:`~bufkit.testing.MemorySocket` pair.

    Args:
        draw: Supplied by Hypothesis.
        max_chunk: The largest send or receive drawn.

    Returns:
        The pair ``(a, b)``; TLS records through it arrive cut anywhere.
    """
    seed = draw(st.integers(0, 2**32 - 1))
    max_send = draw(st.integers(1, max_chunk).map(lambda n: max_chunk + 1 - n))
    max_recv = draw(st.integers(1, max_chunk).map(lambda n: max_chunk + 1 - n))
    block_rate = draw(st.sampled_from([0.0, 0.1, 0.5]))
    return memory_socketpair(
        seed, max_send=max_send, max_recv=max_recv, block_rate=block_rate
    )
