"""A pool round trip (acquire + release) against allocating a fresh bytearray.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_pool.py --benchmark-enable``.
Compare each ``pool`` row with the ``bytearray`` row of the same size. The
``cold`` rows pass a different int object each call (as computed sizes do);
the ``debug`` rows lend a fresh handle per lease (``track=True`` is slower
still: it records a stack).
"""

from __future__ import annotations

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bufkit import BufferPool

SIZES = [2048, 16384, 65536]
ROUNDS = 1000  # operations per timed call, to drown the timer's own overhead


def _pool_round_trips(pool: BufferPool, size: int) -> None:
    """ROUNDS warm acquire + release pairs."""
    acquire = pool.acquire
    for _ in range(ROUNDS):
        acquire(size).release()


def _cold_round_trips(pool: BufferPool, sizes: list[int]) -> None:
    """ROUNDS warm acquire + release pairs, each with a fresh int object."""
    acquire = pool.acquire
    for i in range(ROUNDS):
        acquire(sizes[i & 1]).release()


def _bytearray_allocations(size: int) -> None:
    """ROUNDS fresh zeroed buffers, each dropped at once."""
    for _ in range(ROUNDS):
        bytearray(size)


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="pool round trip")
@pytest.mark.parametrize("size", SIZES)
def test_pool_round_trip(benchmark: BenchmarkFixture, size: int) -> None:
    """acquire + release of a warm pool (per call: ROUNDS round trips)."""
    pool = BufferPool()
    pool.acquire(size).release()  # carve the slab outside the timing
    benchmark(_pool_round_trips, pool, size)
    assert pool.stats().buffers_in_use == 0


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="pool round trip")
@pytest.mark.parametrize("size", SIZES)
def test_bytearray_allocation(benchmark: BenchmarkFixture, size: int) -> None:
    """bytearray(size), the allocation a pool replaces (per call: ROUNDS)."""
    benchmark(_bytearray_allocations, size)


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="pool round trip")
@pytest.mark.parametrize("size", SIZES)
def test_pool_round_trip_cold(benchmark: BenchmarkFixture, size: int) -> None:
    """acquire + release with sizes the pool did not see last (ROUNDS per call)."""
    pool = BufferPool()
    pool.acquire(size).release()
    sizes = [int(str(size)), int(str(size - 1))]  # two distinct objects
    benchmark(_cold_round_trips, pool, sizes)
    assert pool.stats().buffers_in_use == 0


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="pool round trip")
@pytest.mark.parametrize("size", SIZES)
def test_pool_round_trip_debug(benchmark: BenchmarkFixture, size: int) -> None:
    """acquire + release of a poisoning pool: a lease per acquire (ROUNDS per call)."""
    pool = BufferPool(poison=True)
    pool.acquire(size).release()
    benchmark(_pool_round_trips, pool, size)
    assert pool.stats().buffers_in_use == 0
