"""WriteQueue: what an idle queue holds, and what a gather list looks at."""

from __future__ import annotations

import tracemalloc
from typing import SupportsIndex, overload

from bufkit import BufferPool, WriteQueue
from bufkit._gather import gather
from tests.test_writequeue import entries

CHUNK = 1 << 16  # 64 KiB: a write that takes an entry of its own


def containers(queue: WriteQueue) -> tuple[object, object, object]:
    """The lazily created containers: views, completions, owned buffers."""
    return queue._segs, queue._comps, queue._owned


def test_new_queue_holds_no_containers() -> None:
    """A new queue has created no list or deque yet."""
    assert containers(WriteQueue()) == (None, None, None)


def test_drained_queue_drops_its_containers() -> None:
    """Once drained, views, completions and owned buffers are all let go."""
    pool = BufferPool()
    queue = WriteQueue(high_water=1 << 30)
    buf = pool.acquire(CHUNK)
    queue.write(buf, nbytes=CHUNK)
    queue.write(b"x" * CHUNK, lambda exc: None)
    queue.write(b"tiny")
    assert all(c is not None for c in containers(queue))
    queue.advance(queue.pending)
    assert containers(queue) == (None, None, None)
    assert pool.stats().buffers_in_use == 0


def test_failed_queue_drops_its_containers() -> None:
    """A failure lets go of every container too."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.write(pool.acquire(CHUNK), lambda exc: None, nbytes=CHUNK)
    queue.fail(ConnectionResetError())
    assert containers(queue) == (None, None, None)
    assert pool.stats().buffers_in_use == 0


def test_idle_queue_allocates_under_half_a_kilobyte() -> None:
    """An idle queue is its slots and an empty tail: well under 1 KB."""
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        queues = [WriteQueue() for _ in range(100)]
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert len(queues) == 100
    assert (after - before) / 100 < 512


def test_sent_views_are_let_go_at_once() -> None:
    """A buffer handed over is no longer exported once its bytes were sent."""
    queue = WriteQueue(high_water=1 << 30)
    handed = bytearray(CHUNK)
    queue.write(handed, copy=False)
    queue.write(b"y" * CHUNK)
    queue.advance(CHUNK)
    handed.extend(b"z")  # BufferError if the queue still held a view of it
    assert queue.pending == CHUNK


def test_sent_prefix_is_cut_from_the_list() -> None:
    """Sent slots do not pile up: the list stays within twice the live views."""
    queue = WriteQueue(high_water=1 << 30)
    data = bytes(CHUNK)
    for _ in range(100):
        queue.write(data)
        queue.write(data)
        queue.advance(CHUNK)
        segs = queue._segs
        assert segs is not None
        assert len(segs) <= 2 * entries(queue) + 32
    assert entries(queue) == 100


class Recording(list[memoryview]):
    """A list that remembers the highest index any read reached."""

    reached = -1

    @overload
    def __getitem__(self, i: SupportsIndex) -> memoryview: ...
    @overload
    def __getitem__(self, i: slice) -> list[memoryview]: ...
    def __getitem__(self, i: SupportsIndex | slice) -> memoryview | list[memoryview]:
        """Record how far the read reached, then read."""
        if isinstance(i, slice):
            last = min(len(self), len(self) if i.stop is None else i.stop) - 1
        else:
            last = int(i)
        self.reached = max(self.reached, last)
        return super().__getitem__(i)


def test_gather_looks_only_at_the_views_it_returns() -> None:
    """1,024 pending views of 64 KiB: a 1 MiB gather reads 16 of them."""
    data = memoryview(bytes(CHUNK))
    segs = Recording([data] * 1024)
    views, size = gather(segs, 0, 0, 1024 * CHUNK, 1024, 1 << 20)
    assert (len(views), size, segs.reached) == (16, 1 << 20, 15)


def test_gather_from_the_middle_with_an_offset() -> None:
    """Past ``first`` and an offset, the cap still bounds what is read."""
    data = memoryview(bytes(range(256)) * 4)
    segs = Recording([data] * 100)
    views, size = gather(segs, 10, 1000, 90 * 1024 - 1000, 1024, 2048)
    assert size == 2048
    assert [len(v) for v in views] == [24, 1024, 1000]
    assert segs.reached == 12


def test_gather_count_cap_reads_only_what_it_returns() -> None:
    """When the count binds first, the views past it are not read."""
    segs = Recording([memoryview(b"abc")] * 50)
    views, size = gather(segs, 5, 1, 45 * 3 - 1, 4, 1 << 20)
    assert (b"".join(views), size, segs.reached) == (b"bcabcabcabc", 11, 8)
