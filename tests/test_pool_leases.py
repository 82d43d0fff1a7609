"""How a BufferPool lends: reused handles, leases, the exact peak."""

from __future__ import annotations

import pytest

from bufkit import BufferPool, BufferReleasedError, PooledBuffer, PoolExhausted


def test_plain_pool_lends_the_same_handle_again() -> None:
    """A plain pool re-lends a chunk's handle: a kept reference is the new lease."""
    pool = BufferPool()
    first = pool.acquire(100)
    first.release()
    with pytest.raises(BufferReleasedError):
        first.release()  # not lent again yet: detected
    again = pool.acquire(100)
    assert again is first
    assert not first.released
    again.release()


@pytest.mark.parametrize("mode", ["poison", "scrub", "track"])
def test_lease_pools_lend_a_fresh_handle(mode: str) -> None:
    """Debug pools give each lease its own handle."""
    pool = BufferPool(**{mode: True})  # type: ignore[arg-type]
    first = pool.acquire(100)
    first.release()
    again = pool.acquire(100)
    assert again is not first
    with pytest.raises(BufferReleasedError, match="already released"):
        first.release()  # the stale handle is told apart from the new lease
    with pytest.raises(BufferReleasedError):
        first.view  # noqa: B018
    assert not again.released
    again.release()
    stats = pool.stats()
    assert (stats.acquires, stats.releases, stats.buffers_in_use) == (2, 2, 0)


def test_lease_pool_limits_and_fallback() -> None:
    """A lease pool keeps max_bytes and falls back to the heap like a plain one."""
    pool = BufferPool(
        size_classes=[64], slab_size=64, max_bytes=64, fallback="heap", scrub=True
    )
    pooled = pool.acquire(10)
    heap = pool.acquire(10)
    assert (pooled.is_heap, heap.is_heap) == (False, True)
    heap.release()
    pooled.release()
    strict = BufferPool(size_classes=[64], slab_size=64, max_bytes=64, scrub=True)
    with strict.acquire(1), pytest.raises(PoolExhausted):
        strict.acquire(1)


def test_peak_is_exact_across_classes() -> None:
    """The peak counts bytes in use at once, whichever classes take turns."""
    pool = BufferPool(size_classes=[1024, 4096], slab_size=16384)
    big = [pool.acquire(4096) for _ in range(2)]
    for buf in big:
        buf.release()
    assert pool.stats().peak_bytes_in_use == 8192
    for _ in range(3):  # small and big in turn, always below the peak
        small = [pool.acquire(1024) for _ in range(8)]
        for buf in small:
            buf.release()
        with pool.acquire(4096), pool.acquire(4096):
            pass
    assert pool.stats().peak_bytes_in_use == 8192
    held = [pool.acquire(4096), pool.acquire(4096), pool.acquire(1024)]
    assert pool.stats().peak_bytes_in_use == 9216
    for buf in held:
        buf.release()
    stats = pool.stats()
    assert (stats.buffers_in_use, stats.acquires, stats.releases) == (0, 35, 35)


def test_carriers_and_leases_are_pooled_buffers() -> None:
    """Plain and debug pools both lend the public PooledBuffer type."""
    for pool in (BufferPool(), BufferPool(poison=True)):
        with pool.acquire(1) as buf:
            assert type(buf) is PooledBuffer
