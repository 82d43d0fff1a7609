"""Several threads share one BufferPool: no chunk is ever lent twice."""

from __future__ import annotations

import signal
import sys
import threading

import pytest

from bufkit import (
    BufferPool,
    BufferReleasedError,
    PooledBuffer,
    PoolExhausted,
    PoolStats,
)

THREADS = 8
ROUNDS = 300


@pytest.fixture(autouse=True)
def _fast_switching() -> object:
    """Switch threads often so that races have a chance to show."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(old)


def _run(workers: list[threading.Thread]) -> None:
    """Start every worker, then join them all with a bound."""
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
        assert not worker.is_alive()


@pytest.mark.parametrize("poison", [False, True])
def test_threads_never_share_a_chunk(poison: bool) -> None:
    """Each thread's pattern survives in its chunks while other threads churn."""
    pool = BufferPool(
        size_classes=[64, 256],
        slab_size=1024,
        max_bytes=16 * 1024,
        fallback="heap",
        poison=poison,
    )
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work(me: int) -> None:
        try:
            start.wait()
            held: list[PooledBuffer] = []
            for i in range(ROUNDS):
                buf = pool.acquire(1 + (i * 37 + me) % 256)
                buf.view[:] = bytes([me]) * buf.size
                held.append(buf)
                if len(held) > 4:
                    old = held.pop(i % 4)
                    assert bytes(old.view) == bytes([me]) * old.size
                    old.release()
            for buf in held:
                assert bytes(buf.view) == bytes([me]) * buf.size
                buf.release()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    _run([threading.Thread(target=work, args=(n,)) for n in range(THREADS)])
    assert errors == []
    stats = pool.stats()
    assert (stats.buffers_in_use, stats.bytes_in_use) == (0, 0)
    assert stats.acquires == stats.releases == THREADS * ROUNDS
    assert stats.bytes_reserved <= 16 * 1024
    assert sum(c.acquires for c in stats.per_class) + stats.heap_fallbacks == (
        THREADS * ROUNDS
    )


def _race_to_release(buf: PooledBuffer, racers: int) -> list[str]:
    """Let ``racers`` threads release ``buf`` at once; return their outcomes."""
    outcomes: list[str] = []
    barrier = threading.Barrier(racers)

    def release() -> None:
        barrier.wait()
        try:
            buf.release()
            outcomes.append("released")
        except BufferReleasedError:
            outcomes.append("refused")

    _run([threading.Thread(target=release) for _ in range(racers)])
    return outcomes


@pytest.mark.parametrize("poison", [False, True])
def test_concurrent_double_release_releases_once(poison: bool) -> None:
    """When threads race to release one buffer, exactly one of them wins."""
    pool = BufferPool(size_classes=[16], slab_size=16, max_bytes=16, poison=poison)
    for _ in range(200):
        outcomes = _race_to_release(pool.acquire(1), racers=4)
        assert sorted(outcomes) == ["refused"] * 3 + ["released"]
    with pool.acquire(1), pytest.raises(PoolExhausted):  # free exactly once
        pool.acquire(1)


def test_threads_respect_max_bytes() -> None:
    """Under contention the pool refuses rather than exceed max_bytes."""
    pool = BufferPool(size_classes=[128], slab_size=512, max_bytes=2048)
    refused = [0] * THREADS

    def work(me: int) -> None:
        held: list[PooledBuffer] = []
        for _ in range(ROUNDS):
            try:
                held.append(pool.acquire(100))
            except PoolExhausted:
                refused[me] += 1
                for buf in held:
                    buf.release()
                held.clear()
        for buf in held:
            buf.release()

    _run([threading.Thread(target=work, args=(n,)) for n in range(THREADS)])
    stats = pool.stats()
    assert stats.bytes_reserved == 2048
    assert stats.exhausted == sum(refused)
    assert stats.buffers_in_use == 0


@pytest.mark.timeout(20)
@pytest.mark.parametrize("poison", [False, True])
def test_stats_from_a_signal_handler_inside_a_locked_region(poison: bool) -> None:
    """A signal handler that runs while the pool's lock is held still gets stats."""
    pool = BufferPool(size_classes=[16], slab_size=64, poison=poison)
    held = pool.acquire(1)
    seen: list[PoolStats] = []
    previous = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(pool.stats()))
    try:
        with pool._lock:  # where a lend or a release would be interrupted
            signal.raise_signal(signal.SIGUSR1)
            assert len(seen) == 1  # the handler ran here, under the lock
    finally:
        signal.signal(signal.SIGUSR1, previous)
    assert seen[0].buffers_in_use == 1
    held.release()
    assert pool.stats().buffers_in_use == 0
