"""BufferPool and PooledBuffer: lending, limits, errors, stats, trim, debug modes."""

from __future__ import annotations

import gc
import pickle
import socket
import sys
import warnings
from typing import Any

import pytest

from bufkit import (
    BufferLeakWarning,
    BufferPool,
    BufferReleasedError,
    BufferTooLarge,
    BufkitError,
    ClassStats,
    ForeignBufferError,
    PooledBuffer,
    PoolExhausted,
    PoolStats,
)
from bufkit._pool import POISON_BYTE

KIB = 1024


# --- construction --------------------------------------------------------------


def test_defaults() -> None:
    """The default pool has three classes, no limit and raises when it cannot lend."""
    pool = BufferPool()
    assert pool.size_classes == (2048, 16384, 65536)
    assert pool.largest_class == 65536
    assert pool.max_bytes is None
    assert pool.slab_size == 1 << 20
    assert pool.fallback == "raise"


def test_size_classes_are_sorted() -> None:
    """Size classes given in any order are kept ascending."""
    pool = BufferPool(size_classes=[4096, 512, 1024])
    assert pool.size_classes == (512, 1024, 4096)
    assert pool.largest_class == 4096


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"size_classes": []}, ValueError, "non-empty"),
        ({"size_classes": [512, 512]}, ValueError, "distinct"),
        ({"size_classes": [0]}, ValueError, "size class must be positive, got 0"),
        ({"size_classes": [-1]}, ValueError, "positive"),
        ({"size_classes": [1.5]}, TypeError, "size class must be an int, not float"),
        ({"size_classes": [True]}, TypeError, "not bool"),
        ({"slab_size": 0}, ValueError, "slab_size must be positive"),
        ({"slab_size": "1"}, TypeError, "slab_size must be an int, not str"),
        ({"max_bytes": -1}, ValueError, "max_bytes must be >= 0, got -1"),
        ({"max_bytes": 1.0}, TypeError, "max_bytes must be an int"),
        ({"fallback": "drop"}, ValueError, "fallback must be 'raise' or 'heap'"),
        ({"backing": "shm"}, ValueError, "backing must be 'bytearray' or 'mmap'"),
    ],
)
def test_bad_construction(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    """Bad arguments raise TypeError or ValueError naming the value."""
    with pytest.raises(error, match=message):
        BufferPool(**kwargs)


def test_max_bytes_zero_lends_nothing() -> None:
    """``max_bytes=0`` is allowed: every request takes the fallback."""
    pool = BufferPool(max_bytes=0, fallback="heap")
    with pool.acquire(1) as buf:
        assert buf.is_heap
    assert pool.stats().bytes_reserved == 0


# --- acquire ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("min_size", "size"),
    [(1, 2048), (2048, 2048), (2049, 16384), (16384, 16384), (16385, 65536)],
)
def test_acquire_picks_smallest_class(min_size: int, size: int) -> None:
    """acquire() lends from the smallest class that holds min_size."""
    pool = BufferPool()
    buf = pool.acquire(min_size)
    assert buf.size == size
    assert len(buf.view) == size
    assert buf.pool is pool
    assert not buf.released
    assert not buf.is_heap
    buf.release()


def test_view_is_writable_bytes() -> None:
    """The view is a writable, contiguous, format 'B' memoryview of the chunk."""
    pool = BufferPool()
    with pool.acquire(100) as buf:
        view = buf.view
        assert view.format == "B"
        assert view.itemsize == 1
        assert not view.readonly
        assert view.contiguous
        view[:5] = b"hello"
        assert bytes(buf.view[:5]) == b"hello"


def test_int_subclass_is_accepted() -> None:
    """An int subclass (not bool) is a valid size."""

    class Size(int):
        pass

    pool = BufferPool()
    with pool.acquire(Size(3000)) as buf:
        assert buf.size == 16384


@pytest.mark.parametrize(
    ("min_size", "error", "message"),
    [
        (0, ValueError, "min_size must be positive, got 0"),
        (-5, ValueError, "min_size must be positive, got -5"),
        (True, TypeError, "min_size must be an int, not bool"),
        (False, TypeError, "min_size must be an int, not bool"),
        (2.0, TypeError, "min_size must be an int, not float"),
        ("10", TypeError, "min_size must be an int, not str"),
        (None, TypeError, "min_size must be an int, not NoneType"),
    ],
)
def test_acquire_rejects_bad_sizes(
    min_size: Any, error: type[Exception], message: str
) -> None:
    """Bad sizes raise, and the rejected call leaves the pool unchanged."""
    pool = BufferPool()
    before = pool.stats()
    with pytest.raises(error, match=message):
        pool.acquire(min_size)
    assert pool.stats() == before


@pytest.mark.parametrize(
    ("bad", "name"), [(2048.0, "float"), (True, "bool"), (1, "bool"), (2048, "float")]
)
@pytest.mark.parametrize("debug", [False, True])
def test_warm_pool_rejects_non_int_sizes(bad: object, name: str, debug: bool) -> None:
    """A float or bool is refused by a warm pool too, even one equal to a size used."""
    pool = BufferPool(poison=debug)
    for size in (2048, 1, 2048):  # the pool has lent these sizes, warm
        pool.acquire(size).release()
    before = pool.stats()
    value = float(bad) if name == "float" else bool(bad)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=f"min_size must be an int, not {name}"):
        pool.acquire(value)  # type: ignore[arg-type]
    assert pool.stats() == before


def test_lifo_reuses_the_hot_chunk() -> None:
    """The chunk released last is the one lent next."""
    pool = BufferPool()
    first = pool.acquire(10)
    second = pool.acquire(10)
    second.view[0] = 42
    second.release()
    third = pool.acquire(10)
    assert third.view[0] == 42
    third.view[0] = 7
    assert first.view[0] != 7
    first.release()
    third.release()


def test_slabs_are_lazy() -> None:
    """No memory is reserved until a class is first used, then one slab at a time."""
    pool = BufferPool(slab_size=8 * KIB, size_classes=[2 * KIB, 8 * KIB])
    assert pool.stats().bytes_reserved == 0
    bufs = [pool.acquire(1) for _ in range(4)]
    assert pool.stats().slabs == 1
    bufs.append(pool.acquire(1))
    stats = pool.stats()
    assert (stats.slabs, stats.bytes_reserved) == (2, 16 * KIB)
    assert stats.per_class[1].slabs == 0
    for buf in bufs:
        buf.release()


def test_class_larger_than_slab_gets_one_chunk_slabs() -> None:
    """A class bigger than slab_size is carved one chunk per slab."""
    pool = BufferPool(slab_size=1024, size_classes=[4096])
    with pool.acquire(4096), pool.acquire(4096):
        stats = pool.stats()
        assert (stats.slabs, stats.bytes_reserved) == (2, 8192)


def test_lent_chunks_do_not_overlap() -> None:
    """Every chunk lent at once is a distinct, disjoint region."""
    pool = BufferPool(size_classes=[256], slab_size=1024)
    bufs = [pool.acquire(256) for _ in range(10)]
    for i, buf in enumerate(bufs):
        buf.view[:] = bytes([i]) * 256
    for i, buf in enumerate(bufs):
        assert bytes(buf.view) == bytes([i]) * 256
    for buf in bufs:
        buf.release()


@pytest.mark.parametrize("backing", ["bytearray", "mmap"])
def test_backings(backing: Any) -> None:
    """Both backings lend writable chunks and give slabs back on trim."""
    pool = BufferPool(backing=backing, slab_size=64 * KIB)
    with pool.acquire(2048) as buf:
        buf.view[:3] = b"abc"
        assert bytes(buf.view[:3]) == b"abc"
    assert pool.trim() == 64 * KIB


# --- limits and fallback ----------------------------------------------------------


def test_oversize_raises_a_value_error() -> None:
    """A request past the largest class raises BufferTooLarge naming both sizes."""
    pool = BufferPool()
    before = pool.stats()
    with pytest.raises(
        BufferTooLarge, match="size 70000 exceeds the largest class 65536"
    ) as caught:
        pool.acquire(70000)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, BufkitError)
    assert not isinstance(caught.value, (PoolExhausted, MemoryError))
    assert pool.stats() == before  # a rejected call changes nothing


def test_pool_exhausted_is_memory_and_bufkit_error() -> None:
    """PoolExhausted is both a BufkitError and a MemoryError."""
    pool = BufferPool(max_bytes=0)
    with pytest.raises(MemoryError):
        pool.acquire(1)
    with pytest.raises(BufkitError):
        pool.acquire(1)


def test_max_bytes_cuts_the_last_slab() -> None:
    """The last slab is cut down to the chunks that fit under max_bytes."""
    pool = BufferPool(size_classes=[1024], slab_size=4096, max_bytes=6144)
    bufs = [pool.acquire(1) for _ in range(6)]
    stats = pool.stats()
    assert (stats.slabs, stats.bytes_reserved) == (2, 6144)
    with pytest.raises(PoolExhausted, match=r"class 1024\) would take the pool past"):
        pool.acquire(1)
    assert pool.stats().exhausted == 1
    assert pool.stats().bytes_reserved == 6144
    for buf in bufs:
        buf.release()


def test_exhaustion_waits_for_a_release() -> None:
    """A full pool lends again once a chunk comes back, without a new slab."""
    pool = BufferPool(size_classes=[1024], slab_size=1024, max_bytes=1024)
    buf = pool.acquire(1)
    with pytest.raises(PoolExhausted):
        pool.acquire(1)
    buf.release()
    with pool.acquire(1):
        assert pool.stats().slabs == 1


def test_heap_fallback_for_oversize() -> None:
    """With fallback='heap' an oversize request gets exactly its size, counted."""
    pool = BufferPool(fallback="heap")
    buf = pool.acquire(70000)
    assert buf.is_heap
    assert buf.size == len(buf.view) == 70000
    stats = pool.stats()
    assert (stats.heap_fallbacks, stats.heap_buffers_in_use) == (1, 1)
    assert (stats.heap_bytes_in_use, stats.bytes_in_use) == (70000, 70000)
    assert (stats.buffers_in_use, stats.bytes_reserved) == (1, 0)
    view = buf.view
    buf.release()
    with pytest.raises(ValueError, match="released"):
        view[0]
    stats = pool.stats()
    assert (stats.heap_buffers_in_use, stats.heap_bytes_in_use) == (0, 0)
    assert (stats.acquires, stats.releases, stats.heap_fallbacks) == (1, 1, 1)
    with pool.acquire(66000):  # below the peak: the peak stays
        assert pool.stats().peak_bytes_in_use == 70000


def test_heap_fallback_when_full() -> None:
    """With fallback='heap' a full pool lends a heap buffer of the class size."""
    pool = BufferPool(size_classes=[1024], slab_size=1024, max_bytes=1024)
    pool = BufferPool(
        size_classes=[1024], slab_size=1024, max_bytes=1024, fallback="heap"
    )
    pooled = pool.acquire(10)
    heap = pool.acquire(10)
    assert heap.is_heap
    assert not pooled.is_heap
    assert heap.size == 1024
    assert pool.stats().bytes_reserved == 1024
    assert pool.stats().peak_bytes_in_use == 2048
    heap.release()
    pooled.release()
    assert pool.stats().bytes_in_use == 0


# --- release and its errors -----------------------------------------------------


def test_context_manager_releases() -> None:
    """Leaving the with block gives the chunk back, even on an exception."""
    pool = BufferPool()
    with pytest.raises(KeyError), pool.acquire(10) as buf:
        raise KeyError
    assert buf.released
    assert pool.stats().buffers_in_use == 0


def test_double_release_raises() -> None:
    """A second release raises BufferReleasedError naming the buffer."""
    pool = BufferPool()
    buf = pool.acquire(10)
    buf.release()
    with pytest.raises(BufferReleasedError, match=r"<PooledBuffer 2048 bytes .*"):
        buf.release()
    with pytest.raises(ValueError, match="already released"):
        pool.release(buf)
    stats = pool.stats()
    assert (stats.releases, stats.per_class[0].chunks) == (1, 512)


def test_double_release_does_not_lend_twice() -> None:
    """After a rejected double release, two acquires get two different chunks."""
    pool = BufferPool(size_classes=[16], slab_size=32)
    buf = pool.acquire(1)
    buf.release()
    with pytest.raises(BufferReleasedError):
        buf.release()
    a, b = pool.acquire(1), pool.acquire(1)
    a.view[:] = b"a" * 16
    b.view[:] = b"b" * 16
    assert bytes(a.view) == b"a" * 16
    a.release()
    b.release()


def test_exit_after_release_raises() -> None:
    """Releasing inside a with block makes the exit a double release."""
    pool = BufferPool()
    with pytest.raises(BufferReleasedError), pool.acquire(1) as buf:
        buf.release()


def test_view_after_release_raises() -> None:
    """A released buffer's view cannot be read."""
    pool = BufferPool()
    buf = pool.acquire(10)
    buf.release()
    assert buf.released
    with pytest.raises(BufferReleasedError, match=r"view of a released buffer"):
        buf.view  # noqa: B018
    assert buf.size == 2048  # still describable
    assert "released" in repr(buf)


def test_pool_release() -> None:
    """pool.release(buf) gives a buffer back like buf.release()."""
    pool = BufferPool()
    buf = pool.acquire(10)
    pool.release(buf)
    assert buf.released


def test_foreign_release_raises() -> None:
    """Releasing into another pool raises ForeignBufferError; nothing changes."""
    pool, other = BufferPool(), BufferPool()
    buf = pool.acquire(10)
    before = (pool.stats(), other.stats())
    with pytest.raises(ForeignBufferError, match=r"<PooledBuffer .* another pool"):
        other.release(buf)
    with pytest.raises(BufkitError):
        other.release(buf)
    assert (pool.stats(), other.stats()) == before
    assert not buf.released
    buf.release()


@pytest.mark.parametrize("thing", [bytearray(10), memoryview(b"x"), None])
def test_pool_release_of_a_non_buffer_is_a_type_error(thing: object) -> None:
    """BufferPool.release() names what it was given instead of failing inside."""
    pool = BufferPool()
    buf = pool.acquire(10)
    before = pool.stats()
    with pytest.raises(TypeError, match=r"release\(\) needs a PooledBuffer"):
        pool.release(thing)  # type: ignore[arg-type]
    assert pool.stats() == before
    pool.release(buf)


def test_reprs() -> None:
    """Reprs name the buffer's size, class and state, and the pool's classes."""
    pool = BufferPool(fallback="heap")
    buf = pool.acquire(10)
    assert repr(buf).startswith("<PooledBuffer 2048 bytes (class 2048) lent at 0x")
    heap = pool.acquire(100000)
    assert "(heap) lent" in repr(heap)
    assert "classes=(2048, 16384, 65536)" in repr(pool)
    buf.release()
    heap.release()


# --- stats and trim ---------------------------------------------------------------


def test_stats_count_everything() -> None:
    """stats() reports in-use, reserved, peak, acquires and releases per class."""
    pool = BufferPool(slab_size=64 * KIB)
    a, b, c = pool.acquire(1), pool.acquire(2048), pool.acquire(3000)
    b.release()
    stats = pool.stats()
    assert isinstance(stats, PoolStats)
    assert stats.buffers_in_use == 2
    assert stats.bytes_in_use == 2048 + 16384
    assert stats.peak_bytes_in_use == 2048 * 2 + 16384
    assert stats.bytes_reserved == 2 * 64 * KIB
    assert (stats.slabs, stats.acquires, stats.releases) == (2, 3, 1)
    assert stats.per_class == (
        ClassStats(
            size=2048, slabs=1, chunks=32, buffers_in_use=1, acquires=2, releases=1
        ),
        ClassStats(
            size=16384, slabs=1, chunks=4, buffers_in_use=1, acquires=1, releases=0
        ),
        ClassStats(
            size=65536, slabs=0, chunks=0, buffers_in_use=0, acquires=0, releases=0
        ),
    )
    assert stats.per_class[1].bytes_in_use == 16384
    assert stats.per_class[1].bytes_reserved == 64 * KIB
    a.release()
    c.release()


def test_stats_are_frozen_snapshots() -> None:
    """A snapshot does not change afterwards, and cannot be changed."""
    pool = BufferPool()
    before = pool.stats()
    with pool.acquire(1):
        pass
    assert before.acquires == 0
    with pytest.raises(AttributeError):
        before.acquires = 5  # type: ignore[misc]


def test_trim_gives_back_idle_slabs_only() -> None:
    """trim() drops slabs with nothing lent and returns the bytes dropped."""
    pool = BufferPool(size_classes=[1024], slab_size=2048)
    bufs = [pool.acquire(1) for _ in range(6)]  # three slabs
    bufs[0].release()
    bufs[1].release()  # slab 1 idle
    bufs[2].release()  # slab 2 half idle
    assert pool.trim() == 2048
    stats = pool.stats()
    assert (stats.slabs, stats.bytes_reserved, stats.buffers_in_use) == (2, 4096, 3)
    assert stats.per_class[0].chunks == 4
    again = pool.acquire(1)  # the free chunk of slab 2, no new slab
    assert pool.stats().slabs == 2
    for buf in [*bufs[3:], again]:
        buf.release()
    assert pool.trim() == 4096
    assert pool.trim() == 0
    assert pool.stats().bytes_reserved == 0
    with pool.acquire(1) as buf:  # the pool grows again after a trim
        buf.view[0] = 1


def test_trim_survives_stale_slices() -> None:
    """A stale slice of a released buffer keeps its memory alive, safely."""
    for backing in ("bytearray", "mmap"):
        pool = BufferPool(size_classes=[1024], slab_size=1024, backing=backing)
        buf = pool.acquire(1)
        stale = buf.view[:10]
        buf.release()
        assert pool.trim() == 1024
        stale[0] = 1  # still valid memory: the slab outlived the pool's use of it
        stale.release()


def test_peak_tracks_the_high_water_mark() -> None:
    """peak_bytes_in_use keeps the largest in-use total ever seen."""
    pool = BufferPool()
    bufs = [pool.acquire(2048) for _ in range(3)]
    for buf in bufs:
        buf.release()
    with pool.acquire(1):
        pass
    assert pool.stats().peak_bytes_in_use == 3 * 2048


def test_readme_example() -> None:
    """The README's ten-line example works with a socketpair."""
    pool = BufferPool(max_bytes=64 * 1024 * 1024)
    a, b = socket.socketpair()
    try:
        a.sendall(b"hello")
        with pool.acquire(2048) as buf:
            n = b.recv_into(buf.view)
            assert bytes(buf.view[:n]) == b"hello"
        assert pool.stats().bytes_in_use == 0
    finally:
        a.close()
        b.close()


# --- allocations on the hot path -------------------------------------------------


def test_warm_round_trip_reuses_the_handle_and_does_not_grow() -> None:
    """A warm acquire re-lends the chunk's handle; round trips leave nothing behind."""
    pool = BufferPool()
    held = [pool.acquire(65536) for _ in range(64)]
    for buf in held:
        buf.release()
    again = [pool.acquire(65536) for _ in range(64)]
    assert {id(buf) for buf in again} == {id(buf) for buf in held}
    for buf in again:
        buf.release()
    held.clear()
    again.clear()
    for _ in range(100):
        pool.acquire(65536).release()
    start = sys.getallocatedblocks()
    for _ in range(1000):
        pool.acquire(65536).release()
    assert sys.getallocatedblocks() - start < 10


# --- debug modes ------------------------------------------------------------------


def test_poison_fills_released_chunks() -> None:
    """A poisoning pool fills released chunks with the marker byte."""
    pool = BufferPool(poison=True, size_classes=[64], slab_size=64)
    buf = pool.acquire(1)
    buf.view[:] = b"x" * 64
    buf.release()
    with pool.acquire(1) as again:
        assert bytes(again.view) == bytes([POISON_BYTE]) * 64


def test_poison_revokes_the_view() -> None:
    """A view kept past release raises once its buffer was released."""
    pool = BufferPool(poison=True)
    buf = pool.acquire(1)
    view = buf.view
    view[0] = 1
    buf.release()
    with pytest.raises(ValueError, match="released memoryview"):
        view[0] = 2
    heap_pool = BufferPool(poison=True, fallback="heap", size_classes=[4])
    heap = heap_pool.acquire(8)
    heap.view[:] = b"12345678"
    heap_view = heap.view
    heap.release()
    with pytest.raises(ValueError, match="released memoryview"):
        heap_view[0]


def test_poison_keeps_a_view_that_is_still_exported() -> None:
    """Release succeeds even while something holds an export of the view."""
    pool = BufferPool(poison=True)
    buf = pool.acquire(1)
    exported = pickle.PickleBuffer(buf.view)  # holds a buffer export of the view
    buf.release()
    with exported.raw() as raw:
        assert raw[0] == POISON_BYTE
    exported.release()


def test_scrub_zeroes_released_chunks() -> None:
    """A scrubbing pool zeroes released chunks, pooled and heap."""
    pool = BufferPool(scrub=True, size_classes=[64], slab_size=64, fallback="heap")
    buf = pool.acquire(1)
    buf.view[:] = b"s" * 64
    buf.release()
    with pool.acquire(1) as again:
        assert bytes(again.view) == bytes(64)
        heap = pool.acquire(100)
        keep = heap.view[:]  # a slice outlives the release
        keep[:] = b"secret" * 10 + bytes(40)
        heap.release()
        assert bytes(keep) == bytes(100)


def test_poison_wins_over_scrub() -> None:
    """With both modes, released chunks are poisoned (which also erases them)."""
    pool = BufferPool(poison=True, scrub=True, size_classes=[8], slab_size=8)
    with pool.acquire(1) as buf:
        buf.view[:] = b"12345678"
    with pool.acquire(1) as buf:
        assert bytes(buf.view) == bytes([POISON_BYTE]) * 8


def _leak(pool: BufferPool, size: int = 100) -> None:
    """Acquire a buffer and drop it unreleased."""
    pool.acquire(size)


def test_track_reports_leaks_with_the_acquiring_stack() -> None:
    """A tracked buffer collected unreleased warns with where it was acquired."""
    pool = BufferPool(track=True)
    with pytest.warns(BufferLeakWarning) as record:
        _leak(pool)
    message = str(record[0].message)
    assert "<PooledBuffer 2048 bytes (class 2048) lent" in message
    assert "garbage-collected without release()" in message
    assert "in _leak" in message
    assert "pool.acquire(size)" in message
    assert "bufkit/_pool" not in message
    assert pool.stats().buffers_in_use == 1  # the chunk stays lent: not reusable


def test_track_is_quiet_for_released_buffers() -> None:
    """A tracked buffer that was released is collected without a warning."""
    pool = BufferPool(track=True, fallback="heap")
    buf = pool.acquire(10)
    heap = pool.acquire(100000)
    buf.release()
    heap.release()
    del buf, heap
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        gc.collect()
    leaks = [w for w in caught if issubclass(w.category, BufferLeakWarning)]
    assert leaks == []
    assert pool.stats().buffers_in_use == 0
    with pytest.warns(BufferLeakWarning):  # the same pool does warn on a leak
        _leak(pool)


def test_track_reports_heap_leaks() -> None:
    """Heap fallbacks are tracked too."""
    pool = BufferPool(track=True, fallback="heap")
    with pytest.warns(BufferLeakWarning, match=r"\(heap\)"):
        _leak(pool, 100000)


def test_leak_warning_is_a_resource_warning() -> None:
    """BufferLeakWarning is a ResourceWarning, hidden by default like unclosed files."""
    assert issubclass(BufferLeakWarning, ResourceWarning)


def test_pooled_buffer_type() -> None:
    """acquire() returns a PooledBuffer documented under the public name."""
    buf = BufferPool().acquire(1)
    assert type(buf) is PooledBuffer
    assert PooledBuffer.__module__ == "bufkit"
    buf.release()
    with pytest.raises(TypeError, match=r"lent by BufferPool\.acquire\(\)"):
        PooledBuffer()


def test_filled_starts_at_zero_and_is_validated() -> None:
    """A lent buffer's fill length starts at 0, is checked when set, resets on reuse."""
    pool = BufferPool()
    buf = pool.acquire(100)
    assert buf.filled == 0
    buf.filled = 5
    assert buf.filled == 5
    with pytest.raises(ValueError, match=r"filled 2049 is outside 0\.\.2048"):
        buf.filled = 2049
    with pytest.raises(ValueError, match="filled -1 is outside"):
        buf.filled = -1
    with pytest.raises(TypeError, match="filled must be an int, not float"):
        buf.filled = 1.0  # type: ignore[assignment]
    assert buf.filled == 5  # a rejected set changes nothing
    buf.release()
    with pytest.raises(BufferReleasedError, match="released buffer"):
        buf.filled = 1
    again = pool.acquire(100)
    assert again.filled == 0
    again.release()


# --- reclaiming idle slabs of other classes ---------------------------------------


MIB = 1024 * KIB


def test_idle_slab_of_another_class_is_reclaimed() -> None:
    """With max_bytes all reserved by one idle class, another class still lends."""
    pool = BufferPool(max_bytes=MIB)
    pool.acquire(2048).release()  # one 1 MiB slab of the 2 KiB class, idle
    assert pool.stats().bytes_reserved == MIB
    with pool.acquire(16384) as buf:
        assert buf.size == 16384
        stats = pool.stats()
        assert (stats.bytes_reserved, stats.slabs_reclaimed) == (MIB, 1)
        assert [c.slabs for c in stats.per_class] == [0, 1, 0]
    assert pool.stats().exhausted == 0


def test_burst_leftovers_are_reclaimed_for_a_large_request() -> None:
    """After a burst, 8 MiB reserved and none in use still serves a 64 KiB read."""
    pool = BufferPool(max_bytes=8 * MIB)
    burst = [pool.acquire(2048) for _ in range(4 * 512)]  # 4 slabs of 2 KiB
    burst += [pool.acquire(16384) for _ in range(4 * 64)]  # 4 slabs of 16 KiB
    assert pool.stats().bytes_reserved == 8 * MIB
    for buf in burst:
        buf.release()
    with pool.acquire(65536) as buf:
        assert buf.size == 65536
    stats = pool.stats()
    assert stats.bytes_reserved == 8 * MIB
    assert stats.slabs_reclaimed == 1  # one idle 1 MiB slab made room for one
    assert [c.slabs for c in stats.per_class] == [3, 4, 1]


def test_busy_slabs_are_not_reclaimed() -> None:
    """A slab with one chunk lent stays; the request is refused as before."""
    pool = BufferPool(max_bytes=MIB)
    held = pool.acquire(2048)
    with pytest.raises(PoolExhausted):
        pool.acquire(16384)
    stats = pool.stats()
    assert (stats.slabs_reclaimed, stats.exhausted, stats.slabs) == (0, 1, 1)
    assert not held.released
    held.release()


def test_reclaim_takes_only_what_a_slab_needs() -> None:
    """Idle slabs are given back only until a whole slab of the class fits."""
    pool = BufferPool(size_classes=[1024, 4096], slab_size=4096, max_bytes=4 * 4096)
    small = [pool.acquire(1) for _ in range(16)]  # four 4 KiB slabs of 1 KiB
    for buf in small:
        buf.release()
    with pool.acquire(4096):
        stats = pool.stats()
        assert stats.slabs_reclaimed == 1
        assert [c.slabs for c in stats.per_class] == [3, 1]
        assert stats.bytes_reserved == 4 * 4096


def test_warm_size_shortcut_lends_the_right_class_and_refuses_bad_sizes() -> None:
    """Switching sizes on a warm pool lends each its class; 0 and -1 stay refused."""
    pool = BufferPool(size_classes=[2 * KIB, 16 * KIB])
    small, large = 100, 3000
    for size, want in [(small, 2 * KIB), (large, 16 * KIB), (small, 2 * KIB)] * 2:
        buf = pool.acquire(size)
        assert buf.size == want
        buf.release()
    before = pool.stats()
    for bad in (0, -1):
        with pytest.raises(ValueError, match=f"min_size must be positive, got {bad}"):
            pool.acquire(bad)
    assert pool.stats() == before
    assert [(c.acquires, c.releases, c.buffers_in_use) for c in before.per_class] == [
        (4, 4, 0),
        (2, 2, 0),
    ]
