"""WriteQueue and pooled buffers: fill lengths, ownership, pinned memory.

A pooled buffer handed to the queue sends its filled bytes (never the stale
rest of the chunk), is always consumed (released even when the write is
refused), counts its whole chunk against the watermarks, and goes back to the
pool the moment its last byte is accepted.
"""

from __future__ import annotations

import errno
import gc
import weakref
from array import array
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest

from bufkit import (
    BufferPool,
    BufferReleasedError,
    PooledBuffer,
    QueueClosedError,
    QueueFailedError,
    ReadinessReader,
    WriteQueue,
)
from bufkit.testing import Accept, Deliver, Fail, FakeSocket

SECRET = b"another connection's secret "


def stale_buffer(pool: BufferPool) -> PooledBuffer:
    """A buffer whose chunk still holds an earlier lease's secret."""
    first = pool.acquire(2048)
    first.view[:] = (SECRET * 100)[: first.size]
    first.release()
    buf = pool.acquire(2048)
    assert bytes(buf.view[: len(SECRET)]) == SECRET  # same chunk: LIFO
    return buf


class Witness:
    """A pause hook that only its queue holds, so it lives exactly as long.

    Its weak reference tells whether the queue was freed, in both builds: a
    compiled :class:`~bufkit.WriteQueue` cannot be weakly referenced itself.
    """

    def __call__(self) -> None:
        """Nothing to do at a pause."""


def watched_queue(
    high_water: int = 65536, coalesce_below: int = 2048
) -> tuple[WriteQueue, weakref.ref[Witness]]:
    """A queue, and a weak reference that dies when the queue is freed."""
    witness = Witness()
    queue = WriteQueue(
        high_water=high_water, coalesce_below=coalesce_below, on_pause=witness
    )
    return queue, weakref.ref(witness)


def watch(obj: object) -> Callable[[], object]:
    """What returns ``obj`` while it lives and ``None`` once it is freed.

    A weak reference where ``obj`` has them. Otherwise (a compiled class such
    as the compiled :class:`~bufkit.WriteQueue`) a search of the cyclic
    collector's tracked objects for that identity and type: nothing else of
    the type made in between, it can only err towards "alive".
    """
    try:
        return weakref.ref(obj)
    except TypeError:
        pass
    key, kind = id(obj), type(obj)
    assert gc.is_tracked(obj), f"{kind.__name__} is not tracked by the collector"

    def find() -> object:
        for candidate in gc.get_objects():
            if id(candidate) == key and type(candidate) is kind:
                return candidate
        return None

    return find


def filled(pool: BufferPool, data: bytes, size: int = 2048) -> PooledBuffer:
    """A pooled buffer holding ``data``, its fill set."""
    buf = pool.acquire(max(size, len(data)))
    buf.view[: len(data)] = data
    buf.filled = len(data)
    return buf


# -- the fill length ------------------------------------------------------------
@pytest.mark.parametrize("coalesce", [0, 2048])
def test_pooled_write_sends_its_fill_not_the_stale_rest(coalesce: int) -> None:
    """A 2-byte echo written without nbytes sends 2 bytes, not the chunk."""
    pool = BufferPool()
    buf = stale_buffer(pool)
    buf.view[:2] = b"hi"
    buf.filled = 2
    queue = WriteQueue(coalesce_below=coalesce)
    queue.write(buf)
    sock = FakeSocket()
    assert queue.flush(sock)
    assert sock.wire == b"hi"
    assert pool.stats().buffers_in_use == 0


def test_writelines_sends_each_pooled_buffer_with_its_fill() -> None:
    """Pooled items of writelines send their filled bytes, in order."""
    pool = BufferPool()
    stale = stale_buffer(pool)
    stale.view[:3] = b"abc"
    stale.filled = 3
    big = filled(pool, b"B" * 5000, 16384)
    queue = WriteQueue()
    queue.writelines([b"<", stale, big, b">"])
    sock = FakeSocket()
    assert queue.flush(sock)
    assert sock.wire == b"<abc" + b"B" * 5000 + b">"
    assert SECRET not in sock.wire
    assert pool.stats().buffers_in_use == 0


def test_nbytes_still_asks_for_any_count_up_to_the_size() -> None:
    """An explicit nbytes overrides the fill, up to the chunk size."""
    pool = BufferPool()
    buf = filled(pool, b"xy")
    queue = WriteQueue()
    queue.write(buf, nbytes=buf.size)
    assert queue.pending == buf.size


def test_unfilled_pooled_buffer_is_refused_and_released() -> None:
    """filled == 0 and no nbytes: ValueError naming the buffer; it is released."""
    pool = BufferPool()
    buf = pool.acquire(2048)
    queue = WriteQueue()
    with pytest.raises(ValueError, match=r"PooledBuffer 2048 bytes .* filled is 0"):
        queue.write(buf)
    assert buf.released
    assert queue.pending == 0
    other = pool.acquire(2048)
    with pytest.raises(ValueError, match="filled is 0"):
        queue.writelines([b"a", other])
    assert (other.released, queue.pending) == (True, 0)


# -- ownership is always consumed -------------------------------------------------
def test_write_refused_by_a_closed_queue_releases_the_buffer() -> None:
    """QueueClosedError: the pooled buffer goes back to the pool first."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.close()
    buf = filled(pool, b"x" * 3000, 16384)
    with pytest.raises(QueueClosedError):
        queue.write(buf)
    assert buf.released
    assert pool.stats().bytes_in_use == 0


def test_write_refused_by_a_failed_queue_releases_the_buffer() -> None:
    """QueueFailedError: the pooled buffer goes back to the pool first."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.fail(ConnectionResetError())
    with pytest.raises(QueueFailedError):
        queue.write(filled(pool, b"x"))
    with pytest.raises(QueueFailedError):
        queue.writelines([b"a", filled(pool, b"y"), filled(pool, b"z" * 3000)])
    assert pool.stats().bytes_in_use == 0


@pytest.mark.parametrize(
    ("kwargs", "error"),
    [
        ({"nbytes": -1}, ValueError),
        ({"nbytes": 1 << 20}, ValueError),
        ({"nbytes": 1.5}, TypeError),
        ({"on_done": "not callable"}, TypeError),
    ],
)
def test_write_with_a_bad_argument_releases_the_buffer(
    kwargs: dict[str, object], error: type[Exception]
) -> None:
    """A bad nbytes or on_done is refused, and the buffer is consumed anyway."""
    pool = BufferPool()
    queue = WriteQueue()
    buf = filled(pool, b"x" * 3000)
    with pytest.raises(error):
        queue.write(buf, **kwargs)  # type: ignore[arg-type]
    assert buf.released
    assert (queue.pending, pool.stats().bytes_in_use) == (0, 0)


def test_writelines_with_a_bad_item_releases_every_pooled_item() -> None:
    """One item that is not bytes-like: every pooled item is released, none sent."""
    pool = BufferPool()
    queue = WriteQueue()
    items = [filled(pool, b"a" * 3000), "text", filled(pool, b"b")]
    with pytest.raises(TypeError, match="'str'"):
        queue.writelines(items)  # type: ignore[arg-type]
    assert (queue.pending, pool.stats().bytes_in_use) == (0, 0)


def test_writelines_with_a_released_item_releases_the_others() -> None:
    """A released pooled item raises BufferReleasedError; the rest go back."""
    pool = BufferPool()
    queue = WriteQueue()
    gone = filled(pool, b"g")
    gone.release()
    keep = filled(pool, b"k" * 3000)
    with pytest.raises(BufferReleasedError):
        queue.writelines([keep, gone])
    assert keep.released
    assert (queue.pending, pool.stats().bytes_in_use) == (0, 0)


class EchoInto:
    """A read handler that takes each buffer and writes it to a queue."""

    def __init__(self, queue: WriteQueue) -> None:
        self.queue = queue
        self.reader: ReadinessReader | None = None
        self.refused: list[Exception] = []

    def data_received(self, view: memoryview) -> None:
        assert self.reader is not None
        try:
            self.queue.write(self.reader.take_buffer())
        except QueueClosedError as exc:
            self.refused.append(exc)

    def eof_received(self) -> None:
        return None


def test_zero_copy_echo_into_a_closed_queue_leaks_nothing() -> None:
    """take_buffer() then write() to a closed queue: the pool is back to 0."""
    pool = BufferPool()
    queue = WriteQueue()
    echo = EchoInto(queue)
    echo.reader = ReadinessReader(pool, echo)
    queue.close()
    echo.reader.on_readable(FakeSocket(recv=[Deliver(b"ping")]))
    assert len(echo.refused) == 1
    assert pool.stats().bytes_in_use == 0


def test_zero_copy_echo_sends_what_was_read() -> None:
    """take_buffer() then write() without nbytes: the wire is the input."""
    pool = BufferPool()
    queue = WriteQueue()
    echo = EchoInto(queue)
    echo.reader = ReadinessReader(pool, echo)
    peer = FakeSocket(recv=[Deliver(b"ping"), Deliver(b"x" * 3000)])
    echo.reader.on_readable(peer)
    echo.reader.on_readable(peer)
    sock = FakeSocket()
    assert queue.flush(sock)
    assert sock.wire == b"ping" + b"x" * 3000
    assert pool.stats().bytes_in_use == 0


# -- pinned memory counts against the watermarks -----------------------------------
def test_owned_chunk_counts_whole_against_the_watermarks() -> None:
    """3000 bytes in a 64 KiB chunk pin 64 KiB: that is what pauses the writer."""
    pool = BufferPool()
    events: list[str] = []
    queue = WriteQueue(
        high_water=10_000,
        low_water=1000,
        on_pause=lambda: events.append("pause"),
        on_resume=lambda: events.append("resume"),
    )
    buf = filled(pool, b"p" * 3000, 65536)
    queue.write(buf)
    assert (queue.pending, queue.held_bytes) == (3000, 65536)
    assert (events, queue.paused) == (["pause"], True)
    queue.advance(2999)  # the chunk stays lent until its last byte is sent
    assert (queue.pending, queue.held_bytes, events) == (1, 65536, ["pause"])
    queue.advance(1)
    assert (queue.pending, queue.held_bytes) == (0, 0)
    assert events == ["pause", "resume"]


def test_held_bytes_is_pending_without_owned_buffers() -> None:
    """Bytes and copies hold exactly what they will send."""
    queue = WriteQueue(high_water=1 << 30)
    queue.write(b"a" * 5000)
    queue.write(bytearray(100))
    queue.advance(1000)
    assert queue.held_bytes == queue.pending == 4100


def test_resume_waits_for_the_chunk_to_go_back() -> None:
    """Sending the bytes after an owned chunk resumes only once it is released."""
    pool = BufferPool()
    events: list[str] = []
    queue = WriteQueue(
        high_water=20_000,
        low_water=16_384,
        on_pause=lambda: events.append("pause"),
        on_resume=lambda: events.append("resume"),
    )
    queue.write(filled(pool, b"p" * 4000, 16384))
    queue.write(b"b" * 5000)
    assert (queue.held_bytes, events) == (21384, ["pause"])
    queue.advance(3999)  # 1 byte of the chunk left: 16384 + 5000 held
    assert (queue.held_bytes, events) == (21384, ["pause"])
    queue.advance(1)  # released: 5000 held
    assert (queue.held_bytes, events) == (5000, ["pause", "resume"])


# -- releases happen as early as promised -------------------------------------------
def test_pooled_buffer_goes_back_the_moment_its_last_byte_is_sent() -> None:
    """Not at the next flush: within the advance that sent its last byte."""
    pool = BufferPool()
    queue = WriteQueue()
    buf = filled(pool, b"p" * 3000, 16384)
    queue.write(buf)
    queue.write(b"after" * 1000)
    queue.advance(3000)
    assert buf.released
    assert pool.stats().bytes_in_use == 0
    assert queue.pending == 5000


def test_pooled_buffer_goes_back_within_the_flush_that_sent_it() -> None:
    """A flush that sends the last byte of an owned chunk then blocks released it."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.write(filled(pool, b"p" * 3000, 16384))
    queue.write(b"after" * 1000)
    assert not queue.flush(FakeSocket(send=[Accept(3500)], after_send="block"))
    assert pool.stats().bytes_in_use == 0


def test_owned_buffers_are_released_before_completions_learn_of_a_failure() -> None:
    """A completion failed by the queue already sees the pool emptied."""
    pool = BufferPool()
    queue = WriteQueue()
    seen: list[int] = []
    queue.write(filled(pool, b"p" * 3000, 16384), lambda exc: None)
    queue.write(b"tail", lambda exc: seen.append(pool.stats().bytes_in_use))
    with pytest.raises(ConnectionResetError):
        queue.flush(FakeSocket(send=[Fail(errno.ECONNRESET)]))
    assert seen == [0]


def test_advance_ending_at_the_sealed_views_leaves_the_open_tail_whole() -> None:
    """All sealed views sent, short writes still in the open tail: exact."""
    done: list[str] = []
    queue = WriteQueue(high_water=1 << 30)
    queue.write(b"A" * 5000, lambda exc: done.append("A"))
    assert [len(v) for v in queue.buffers()] == [5000]
    queue.write(b"xy", lambda exc: done.append("xy"))  # into the open tail
    queue.advance(5000)
    assert (done, queue.pending) == (["A"], 2)
    assert [bytes(v) for v in queue.buffers()] == [b"xy"]
    queue.advance(2)
    assert (done, queue.pending, queue.buffers()) == (["A", "xy"], 0, [])


# -- a failed queue is freed by reference counting ---------------------------------
class Payload(array):  # type: ignore[type-arg]
    """An array of bytes that a weak reference can watch."""


@contextmanager
def gc_disabled() -> Iterator[None]:
    """Run the block with the cyclic garbage collector off."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def test_the_liveness_probes_see_a_queue_until_it_is_freed() -> None:
    """``watch`` and ``watched_queue`` report a live queue, then a freed one."""
    with gc_disabled():
        queue, witness = watched_queue()
        probe = watch(queue)
        keep = [queue]
        del queue
        assert (probe() is keep[0], witness() is not None) == (True, True)
        keep.clear()
        assert (probe(), witness()) == (None, None)


@pytest.mark.parametrize("code", [errno.ECONNRESET, errno.EPIPE])
def test_failed_queue_and_its_data_are_freed_without_the_cycle_collector(
    code: int,
) -> None:
    """No cycle through the socket error: dropping the queue frees its data."""
    with gc_disabled():
        payload = Payload("B", bytes(4 << 20))
        watch = weakref.ref(payload)
        queue, queue_ref = watched_queue(high_water=1 << 30, coalesce_below=0)
        queue.write(payload, copy=False)
        queue.write(b"z" * 5000)
        del payload
        errors: list[BaseException | None] = []
        queue.write(b"", errors.append)
        sock = FakeSocket(send=[Accept(100), Fail(code)])
        assert not queue.flush(sock)
        with pytest.raises((ConnectionResetError, BrokenPipeError)) as info:
            queue.flush(sock)
        assert errors == [info.value]
        del queue, info, errors, sock
        alive = (watch() is not None, queue_ref() is not None)
        assert alive == (False, False)


def test_failed_queue_is_freed_when_a_completion_raised_during_the_failure() -> None:
    """Callback errors attached to the socket error hold no cycle either."""
    with gc_disabled():
        queue, queue_ref = watched_queue(high_water=1 << 30)
        payload = Payload("B", bytes(1 << 20))
        watch = weakref.ref(payload)
        queue.write(payload, copy=False)

        def boom(exc: BaseException | None) -> None:
            raise RuntimeError(f"completion saw {exc!r}")

        queue.write(b"", boom)
        del payload
        with pytest.raises(ConnectionResetError) as info:
            queue.flush(FakeSocket(send=[Fail(errno.ECONNRESET)]))
        assert isinstance(info.value.__context__, RuntimeError)
        del queue, info
        alive = (watch() is not None, queue_ref() is not None)
        assert alive == (False, False)
