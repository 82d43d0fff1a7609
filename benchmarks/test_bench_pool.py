"""A pool round trip (acquire + release) against allocating a fresh bytearray.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_pool.py --benchmark-enable``.
Compare each ``pool`` row with the ``bytearray`` row of the same size.
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
