"""The pool's public API, used as a user would: types checked, never run."""

from __future__ import annotations

import socket
from collections.abc import Callable
from typing import Literal, assert_type

import bufkit


def read_once(pool: bufkit.BufferPool, sock: socket.socket) -> bytes:
    """Borrow a buffer only while reading."""
    buf = pool.acquire(2048)
    assert_type(buf, bufkit.PooledBuffer)
    with buf as same:
        assert_type(same, bufkit.PooledBuffer)
        view = same.view
        assert_type(view, memoryview)
        n = sock.recv_into(view)
        return bytes(view[:n])


def describe(pool: bufkit.BufferPool) -> None:
    """Properties and statistics have precise types."""
    assert_type(pool.size_classes, tuple[int, ...])
    assert_type(pool.largest_class, int)
    assert_type(pool.max_bytes, int | None)
    assert_type(pool.slab_size, int)
    assert_type(pool.fallback, Literal["raise", "heap"])
    stats = pool.stats()
    assert_type(stats, bufkit.PoolStats)
    assert_type(stats.bytes_in_use, int)
    assert_type(stats.per_class, tuple[bufkit.ClassStats, ...])
    assert_type(stats.slabs_reclaimed, int)
    assert_type(stats.per_class[0].bytes_reserved, int)
    assert_type(pool.trim(), int)
    buf = pool.acquire(10)
    assert_type(buf.size, int)
    assert_type(buf.released, bool)
    assert_type(buf.is_heap, bool)
    assert_type(buf.pool, bufkit.BufferPool)
    assert_type(buf.release(), None)
    give_back: Callable[[bufkit.PooledBuffer], None] = pool.release
    give_back(buf)


class Waiter:
    """Resumes reading once the pool has room again."""

    def resume_reading(self) -> None:
        """Try to read again."""


def wait_for_room(pool: bufkit.BufferPool, waiter: Waiter) -> None:
    """Any callable of no arguments is a release callback; it is removable."""
    assert_type(pool.add_release_callback(waiter.resume_reading), None)
    pool.add_release_callback(lambda: 42)
    assert_type(pool.remove_release_callback(waiter.resume_reading), None)
    pool.add_release_callback(print)
    pool.add_release_callback(lambda buf: None)  # type: ignore[arg-type,misc]


pool = bufkit.BufferPool(
    size_classes=(4096, 65536),
    slab_size=1 << 22,
    max_bytes=64 << 20,
    fallback="heap",
    backing="mmap",
    poison=True,
    scrub=False,
    track=True,
)
bad_fallback = bufkit.BufferPool(fallback="drop")  # type: ignore[arg-type]
bad_backing = bufkit.BufferPool(backing="shm")  # type: ignore[arg-type]
positional = bufkit.BufferPool((2048,))  # type: ignore[call-arg]
bad_size = pool.acquire("2048")  # type: ignore[arg-type]
pool.release(bytearray(10))  # type: ignore[arg-type]
no_setter = pool.acquire(1)
no_setter.size = 5  # type: ignore[misc]
frozen = pool.stats()
frozen.acquires = 1  # type: ignore[misc]
leak_warning: ResourceWarning = bufkit.BufferLeakWarning("leaked")
