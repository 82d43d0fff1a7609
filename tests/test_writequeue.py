"""WriteQueue: the write/advance/flush/close/fail contract, one behaviour each."""

from __future__ import annotations

import array
import ctypes
import errno
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING

import pytest

from bufkit import (
    BufferPool,
    BufferReleasedError,
    PooledBuffer,
    QueueClosedError,
    QueueFailedError,
    QueueState,
    WriteQueue,
)
from bufkit._gather import IOV_MAX
from bufkit._writequeue import COALESCE_BELOW, TAIL_LIMIT
from bufkit.testing import Accept, AcceptAll, Fail, FakeSocket, Interrupt, WouldBlock

if TYPE_CHECKING:
    from typing_extensions import Buffer

BIG = COALESCE_BELOW  # the shortest write that gets an entry of its own


class Recorder:
    """Collects completion results in call order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, BaseException | None]] = []

    def cb(self, tag: str) -> Callable[[BaseException | None], None]:
        """A completion callback that records ``tag``."""

        def on_done(exc: BaseException | None) -> None:
            self.seen.append((tag, exc))

        return on_done

    @property
    def tags(self) -> list[str]:
        """The tags, in the order they fired."""
        return [tag for tag, _ in self.seen]


def state_of(queue: WriteQueue) -> QueueState:
    """The queue's state, read afresh (defeats mypy's narrowing)."""
    return queue.state


def entries(queue: WriteQueue) -> int:
    """The buffers pending: what a full gather list would hold."""
    segs = queue._segs
    solo = 1 if queue._solo is not None else 0
    return (
        (0 if segs is None else len(segs) - queue._first)
        + (1 if queue._tail else 0)
        + solo
    )


def drain(queue: WriteQueue, sock: FakeSocket | None = None) -> bytes:
    """Flush ``queue`` to an accept-everything fake and return the wire."""
    sock = sock or FakeSocket()
    assert queue.flush(sock)
    return sock.wire


# -- construction -----------------------------------------------------------
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"high_water": 10, "low_water": 11}, "low_water <= high_water"),
        ({"high_water": 10, "low_water": -1}, "low_water must be >= 0, got -1"),
        ({"high_water": -1, "low_water": 0}, "high_water must be >= 0, got -1"),
        ({"max_gather_bytes": 0}, "max_gather_bytes"),
        ({"coalesce_below": -1}, "coalesce_below"),
    ],
)
def test_bad_settings_are_rejected(kwargs: dict[str, int], match: str) -> None:
    """Watermarks and caps are validated at construction."""
    with pytest.raises(ValueError, match=match):
        WriteQueue(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"high_water": "64"}, "high_water must be an int, not str"),
        ({"low_water": 1.5}, "low_water must be an int, not float"),
        ({"max_gather_bytes": None}, "max_gather_bytes must be an int, not NoneType"),
        ({"coalesce_below": True}, "coalesce_below must be an int, not bool"),
        ({"on_pause": 3}, "on_pause must be callable or None, not 3"),
        ({"on_resume": "x"}, "on_resume must be callable or None"),
    ],
)
def test_settings_of_the_wrong_type_are_named(
    kwargs: dict[str, object], match: str
) -> None:
    """A setting of the wrong type is a TypeError naming the setting."""
    with pytest.raises(TypeError, match=match):
        WriteQueue(**kwargs)  # type: ignore[arg-type]


def test_defaults_and_repr() -> None:
    """A new queue is open, empty, unpaused and says so in its repr."""
    queue = WriteQueue(name="conn-1")
    assert (queue.high_water, queue.low_water) == (65536, 16384)
    assert queue.state is QueueState.OPEN
    assert (queue.pending, entries(queue), bool(queue), queue.paused) == (
        0,
        0,
        False,
        False,
    )
    assert repr(queue) == "<WriteQueue 'conn-1' open pending=0 held=0>"


# -- what write() accepts ---------------------------------------------------
@pytest.mark.parametrize(
    "data",
    [
        b"bytes",
        bytearray(b"bytearray"),
        memoryview(b"view"),
        array.array("i", [1, -2, 3]),
        array.array("d", [1.5, -2.25]),
        memoryview(bytes(range(24))).cast("B", (2, 3, 4)),
    ],
    ids=["bytes", "bytearray", "memoryview", "array-i", "array-d", "3d"],
)
def test_write_sends_raw_bytes(data: Buffer) -> None:
    """Any contiguous buffer is sent as its raw bytes."""
    queue = WriteQueue()
    queue.write(data)
    assert queue.pending == memoryview(data).nbytes
    assert drain(queue) == memoryview(data).tobytes()


def test_non_contiguous_view_is_copied_in_order() -> None:
    """A strided view is sent as its elements, in logical order."""
    queue = WriteQueue()
    queue.write(memoryview(bytes(range(10)))[::2])
    assert drain(queue) == bytes([0, 2, 4, 6, 8])


@pytest.mark.parametrize("bad", ["text", 42, None, [b"a"]])
def test_write_rejects_non_buffers_by_type_name(bad: object) -> None:
    """A non-buffer raises TypeError naming its type; nothing is enqueued."""
    queue = WriteQueue()
    queue.write(b"kept")
    with pytest.raises(TypeError, match=repr(type(bad).__name__)):
        queue.write(bad)  # type: ignore[arg-type]
    assert queue.pending == 4
    assert drain(queue) == b"kept"


def test_nbytes_sends_a_prefix() -> None:
    """``nbytes`` limits a write to its first bytes."""
    queue = WriteQueue()
    queue.write(b"abcdef", nbytes=3)
    queue.write(bytearray(b"x" * BIG * 2), nbytes=BIG + 1)
    assert drain(queue) == b"abc" + b"x" * (BIG + 1)


@pytest.mark.parametrize("nbytes", [-1, 7])
def test_bad_nbytes_is_rejected_unchanged(nbytes: int) -> None:
    """``nbytes`` outside the data raises ValueError; nothing is enqueued."""
    queue = WriteQueue()
    with pytest.raises(ValueError, match=r"outside 0\.\.6"):
        queue.write(bytearray(b"abcdef"), nbytes=nbytes)
    assert queue.pending == 0


def test_large_bytes_are_kept_by_reference() -> None:
    """A long ``bytes`` is never copied: the gather list views the object."""
    data = b"z" * (BIG * 4)
    queue = WriteQueue()
    queue.write(data)
    (view,) = queue.buffers()
    assert view.obj is data


def test_short_writes_share_one_buffer() -> None:
    """Writes shorter than the threshold are coalesced into one iovec."""
    queue = WriteQueue()
    for i in range(100):
        queue.write(bytes([i]) * 10)
    assert entries(queue) == 1
    assert len(queue.buffers()) == 1
    assert queue.pending == 1000


def test_coalescing_can_be_turned_off() -> None:
    """``coalesce_below=0`` gives every write an entry of its own."""
    queue = WriteQueue(coalesce_below=0)
    for _ in range(5):
        queue.write(b"ab")
        queue.write(b"")
        queue.write(bytearray())
    assert len(queue.buffers()) == 5


def test_tail_is_sealed_at_its_limit() -> None:
    """A long burst of short writes becomes several buffers, not one huge one."""
    queue = WriteQueue(high_water=1 << 30)
    chunk = b"q" * (BIG - 1)
    for _ in range(TAIL_LIMIT // len(chunk) + 2):
        queue.write(chunk)
    assert entries(queue) >= 2
    assert drain(queue) == chunk * (TAIL_LIMIT // len(chunk) + 2)


def test_copy_false_hands_over_mutable_data() -> None:
    """With ``copy=False`` a long bytearray is sent as it is at send time."""
    data = bytearray(b"a" * BIG)
    queue = WriteQueue()
    queue.write(data, copy=False)
    data[0:1] = b"b"
    assert drain(queue)[:2] == b"ba"


def test_readonly_view_of_mutable_data_is_copied() -> None:
    """A read-only view of a bytearray is copied: only bytes are referenced."""
    data = bytearray(b"a" * BIG)
    queue = WriteQueue()
    queue.write(memoryview(data).toreadonly())
    data[0:1] = b"b"
    assert drain(queue)[:1] == b"a"


# -- pooled buffers -----------------------------------------------------------
def test_pooled_buffer_is_released_once_sent() -> None:
    """A pooled buffer is owned by the queue and released after its last byte."""
    pool = BufferPool()
    buf = pool.acquire(4096)
    buf.view[:4096] = b"p" * 4096
    queue = WriteQueue()
    queue.write(buf, nbytes=4000)
    sock = FakeSocket(send=[Accept(3999)])
    assert not queue.flush(sock)
    assert pool.stats().buffers_in_use == 1
    assert queue.flush(sock)
    assert pool.stats().buffers_in_use == 0
    assert sock.wire == b"p" * 4000


def test_short_pooled_buffer_is_copied_and_released_at_once() -> None:
    """A pooled buffer shorter than the threshold goes back to the pool at once."""
    pool = BufferPool()
    buf = pool.acquire(100)
    buf.view[:5] = b"hello"
    queue = WriteQueue()
    queue.write(buf, nbytes=5)
    assert buf.released
    assert drain(queue) == b"hello"


def test_released_pooled_buffer_is_rejected_unchanged() -> None:
    """Writing a released pooled buffer raises; nothing is enqueued."""
    buf = BufferPool().acquire(10)
    buf.release()
    queue = WriteQueue()
    with pytest.raises(BufferReleasedError):
        queue.write(buf)
    with pytest.raises(BufferReleasedError):
        queue.writelines([b"a", buf])
    assert queue.pending == 0


def test_buffer_released_behind_the_queue_surfaces_from_flush() -> None:
    """A double release of an owned buffer is reported, after all sends."""
    pool = BufferPool()
    buf = pool.acquire(BIG)
    queue = WriteQueue()
    queue.write(buf, nbytes=BIG)
    buf.release()  # misuse: the queue owns it
    with pytest.raises(BufferReleasedError):
        queue.flush(FakeSocket())
    assert not queue


# -- empty writes -------------------------------------------------------------
def test_empty_write_with_nothing_pending_completes_at_once() -> None:
    """An empty write completes inside write() when nothing is pending."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"", rec.cb("empty"))
    assert rec.seen == [("empty", None)]
    assert not queue


def test_empty_write_completes_in_order() -> None:
    """An empty write completes right after the writes before it."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"abc", rec.cb("a"))
    queue.write(b"", rec.cb("empty"))
    queue.write(b"def", rec.cb("d"))
    queue.advance(3)
    assert rec.tags == ["a", "empty"]
    queue.advance(3)
    assert rec.tags == ["a", "empty", "d"]


# -- buffers() and advance() ----------------------------------------------------
def test_buffers_start_past_the_cursor_without_copying() -> None:
    """The first view starts at the cursor and still views the written object."""
    data = b"0123456789" * BIG
    queue = WriteQueue()
    queue.write(data)
    queue.advance(7)
    (view,) = queue.buffers()
    assert view.obj is data
    assert bytes(view[:3]) == b"789"


def test_buffers_are_capped_by_count() -> None:
    """At most IOV_MAX views, or fewer when asked."""
    queue = WriteQueue(coalesce_below=0, high_water=1 << 30)
    for _ in range(IOV_MAX + 5):
        queue.write(b"ab")
    assert len(queue.buffers()) == IOV_MAX
    assert len(queue.buffers(max_count=IOV_MAX * 2)) == IOV_MAX
    assert len(queue.buffers(max_count=3)) == 3
    with pytest.raises(ValueError, match="at least 1"):
        queue.buffers(max_count=0)


def test_buffers_are_capped_by_bytes() -> None:
    """The byte cap cuts the last view so the list holds exactly the cap."""
    queue = WriteQueue(max_gather_bytes=BIG * 2 + 10)
    for _ in range(4):
        queue.write(b"x" * BIG)
    views = queue.buffers()
    assert [len(v) for v in views] == [BIG, BIG, 10]


def test_byte_cap_exactly_on_a_boundary() -> None:
    """A cap that ends on a buffer boundary cuts nothing."""
    queue = WriteQueue(max_gather_bytes=BIG * 2, coalesce_below=0)
    for _ in range(3):
        queue.write(b"x" * BIG)
    assert [len(v) for v in queue.buffers(max_count=2)] == [BIG, BIG]
    assert [len(v) for v in queue.buffers(max_count=1)] == [BIG]


def test_count_cap_with_an_advanced_head() -> None:
    """Capped gathers still start past the cursor."""
    queue = WriteQueue(coalesce_below=0)
    queue.write(b"abc")
    queue.write(b"def")
    queue.advance(1)
    assert [bytes(v) for v in queue.buffers(max_count=1)] == [b"bc"]


def test_empty_queue_gathers_nothing() -> None:
    """An empty queue gives an empty gather list."""
    assert WriteQueue().buffers() == []


@pytest.mark.parametrize("n", [-1, 4])
def test_bad_advance_is_rejected_unchanged(n: int) -> None:
    """Advancing past what is pending, or backwards, raises; nothing moves."""
    queue = WriteQueue()
    queue.write(b"abc")
    with pytest.raises(ValueError, match="3 pending"):
        queue.advance(n)
    assert drain(queue) == b"abc"


@pytest.mark.parametrize("n", [1.0, True, "1", None])
def test_advance_of_a_non_int_is_rejected_unchanged(n: object) -> None:
    """advance() refuses a non-int count by type name; nothing moves."""
    queue = WriteQueue()
    done = Recorder()
    queue.write(b"abc", done.cb("a"))
    with pytest.raises(TypeError, match=f"n must be an int, not {type(n).__name__}"):
        queue.advance(n)  # type: ignore[arg-type]
    assert (queue.pending, done.tags) == (3, [])
    queue.advance(3)
    assert (queue.pending, done.tags) == (0, ["a"])


@pytest.mark.parametrize("max_count", [1.5, "2", True])
def test_buffers_refuses_a_non_int_count(max_count: object) -> None:
    """buffers() names a max_count that is not an int."""
    queue = WriteQueue()
    queue.write(b"abc")
    with pytest.raises(TypeError, match="max_count must be an int"):
        queue.buffers(max_count)  # type: ignore[arg-type]
    assert queue.pending == 3


def test_non_callable_on_done_is_rejected_unchanged() -> None:
    """write() and writelines() refuse an on_done that cannot be called."""
    queue = WriteQueue()
    with pytest.raises(TypeError, match="on_done must be callable or None, not 5"):
        queue.write(b"abc", 5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="on_done must be callable"):
        queue.writelines([b"abc"], "later")  # type: ignore[arg-type]
    assert (queue.pending, entries(queue)) == (0, 0)
    assert drain(queue) == b""


@pytest.mark.parametrize("nbytes", [1.0, "2", True])
def test_nbytes_of_the_wrong_type_is_rejected_unchanged(nbytes: object) -> None:
    """A non-int nbytes is a TypeError; nothing is enqueued, the buffer consumed."""
    pool = BufferPool()
    buf = pool.acquire(BIG)
    queue = WriteQueue()
    with pytest.raises(TypeError, match="nbytes must be an int"):
        queue.write(buf, nbytes=nbytes)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="nbytes must be an int"):
        queue.write(b"x" * BIG, nbytes=nbytes)  # type: ignore[arg-type]
    assert (queue.pending, buf.released) == (0, True)


@pytest.mark.parametrize("coalesce_below", [0, COALESCE_BELOW])
def test_empty_pooled_write_is_released_at_once(coalesce_below: int) -> None:
    """A pooled buffer written with nbytes=0 adds no entry and goes straight back."""
    pool = BufferPool()
    queue = WriteQueue(coalesce_below=coalesce_below)
    done = Recorder()
    queue.write(pool.acquire(BIG), done.cb("empty"), nbytes=0)
    assert (entries(queue), queue.buffers(), done.tags) == (0, [], ["empty"])
    assert pool.stats().buffers_in_use == 0
    queue.close()
    assert queue.state is QueueState.CLOSED


class Liar:
    """A socket whose sendmsg claims more (or less) than it was offered."""

    def __init__(self, result: int) -> None:
        self.result = result

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        return self.result


@pytest.mark.parametrize("result", [4, -1])
def test_send_count_outside_what_was_offered_is_refused(result: int) -> None:
    """flush() refuses an impossible send count instead of looping; nothing moves."""
    queue = WriteQueue()
    done = Recorder()
    queue.write(b"abc", done.cb("a"))
    with pytest.raises(ValueError, match=f"reported {result} bytes sent of 3"):
        queue.flush(Liar(result))
    assert (queue.pending, queue.state, done.tags) == (3, QueueState.OPEN, [])
    assert drain(queue) == b"abc"


def test_advance_without_buffers_reaches_into_the_tail() -> None:
    """``advance`` works whether or not ``buffers`` sealed the tail."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"x" * BIG, rec.cb("big"))
    queue.write(b"tiny", rec.cb("tiny"))
    queue.advance(BIG + 2)
    assert rec.tags == ["big"]
    assert bytes(queue.buffers()[0]) == b"ny"
    queue.advance(0)
    queue.advance(2)
    assert rec.tags == ["big", "tiny"]


def test_pending_does_not_walk_the_queue() -> None:
    """``pending`` is O(1): reading it never touches the buffers."""

    class NoWalk(list[memoryview]):
        def __iter__(self) -> None:  # type: ignore[override]
            raise AssertionError("pending walked the queue")

    queue = WriteQueue(coalesce_below=0, high_water=1 << 30)
    for _ in range(1000):
        queue.write(b"sixteen bytes...")
    assert queue._segs is not None
    queue._segs = NoWalk(queue._segs[queue._first :])
    queue._first = 0
    assert queue.pending == 16000
    assert entries(queue) == 1000


# -- flush() ----------------------------------------------------------------
def test_flush_gathers_many_writes_into_one_sendmsg() -> None:
    """32 writes then one flush make exactly one sendmsg."""
    queue = WriteQueue()
    for i in range(32):
        queue.write(bytes([i]) * 100)
    sock = FakeSocket()
    assert queue.flush(sock)
    assert [c.op for c in sock.calls] == ["sendmsg"]
    assert len(sock.wire) == 3200


def test_flush_stops_at_a_short_send() -> None:
    """A send that accepts less than offered ends the flush: no EAGAIN call."""
    queue = WriteQueue()
    queue.write(b"x" * 100)
    sock = FakeSocket(send=[Accept(60)])
    assert not queue.flush(sock)
    assert len(sock.calls) == 1
    assert queue.pending == 40


def test_flush_loops_while_the_socket_takes_everything_offered() -> None:
    """With a byte cap, flush makes as many full sends as it needs."""
    queue = WriteQueue(max_gather_bytes=BIG)
    queue.write(b"y" * BIG * 3)
    sock = FakeSocket()
    assert queue.flush(sock)
    assert [c.result for c in sock.calls] == [BIG, BIG, BIG]


def test_flush_retries_after_eintr() -> None:
    """InterruptedError is retried, not fatal."""
    queue = WriteQueue()
    queue.write(b"abc")
    sock = FakeSocket(send=[Interrupt(), AcceptAll()])
    assert queue.flush(sock)
    assert sock.wire == b"abc"


def test_flush_of_an_empty_queue_sends_nothing() -> None:
    """Flushing an empty queue is True and makes no call."""
    sock = FakeSocket()
    assert WriteQueue().flush(sock)
    assert sock.calls == []


def test_zero_byte_send_counts_as_would_block() -> None:
    """A send that returns 0 ends the flush instead of spinning."""

    class Zero:
        def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
            return 0

    queue = WriteQueue()
    queue.write(b"abc")
    assert not queue.flush(Zero())
    assert queue.pending == 3


class SendOnly:
    """A socket with ``send`` only (no ``sendmsg``), recording each call."""

    def __init__(self, accept: Iterable[int | type[OSError] | OSError] = ()) -> None:
        self.plan = list(accept)
        self.sent: list[bytes] = []

    def send(self, data: Buffer, /) -> int:
        """Accept what the plan says (everything once it is used up)."""
        step = self.plan.pop(0) if self.plan else None
        if isinstance(step, OSError) or (
            isinstance(step, type) and issubclass(step, OSError)
        ):
            raise step
        chunk = bytes(data)[:step] if isinstance(step, int) else bytes(data)
        self.sent.append(chunk)
        return len(chunk)


def test_send_fallback_joins_small_buffers() -> None:
    """Without sendmsg, small buffers go out joined, up to one TLS record."""
    queue = WriteQueue(coalesce_below=0)
    for i in range(100):
        queue.write(bytes([i]) * 10)
    sock = SendOnly()
    assert queue.flush(sock)
    assert [len(c) for c in sock.sent] == [1000]


def test_send_fallback_sends_a_large_head_alone() -> None:
    """Without sendmsg, a head of at least 16 KiB is sent by itself."""
    queue = WriteQueue()
    queue.write(b"a" * 20000)
    queue.write(b"b" * 10)
    sock = SendOnly()
    assert queue.flush(sock)
    assert [len(c) for c in sock.sent] == [20000, 10]


def test_send_fallback_record_cap() -> None:
    """Joined sends never exceed 16 KiB."""
    queue = WriteQueue(coalesce_below=0, high_water=1 << 30)
    for _ in range(40):
        queue.write(b"c" * 1000)
    sock = SendOnly()
    assert queue.flush(sock)
    assert [len(c) for c in sock.sent] == [16384, 16384, 7232]


def test_sendmsg_not_implemented_falls_back_to_send() -> None:
    """A sendmsg that raises NotImplementedError (SSLSocket) means use send."""

    class TLSLike(SendOnly):
        calls = 0

        def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
            type(self).calls += 1
            raise NotImplementedError("sendmsg not allowed")

    queue = WriteQueue()
    queue.write(b"abc")
    sock = TLSLike()
    assert queue.flush(sock)
    queue.write(b"def")
    assert queue.flush(sock)
    assert sock.sent == [b"abc", b"def"]
    assert TLSLike.calls == 1  # remembered per type


@pytest.mark.parametrize("name", ["SSLWantWriteError", "SSLWantReadError"])
def test_ssl_want_errors_are_would_block(name: str) -> None:
    """The TLS layer's want-write/want-read errors mean "try again later"."""
    import ssl

    err: OSError = getattr(ssl, name)()
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"abc", rec.cb("w"))
    sock = SendOnly([err, 2])
    assert not queue.flush(sock)
    assert queue.state is QueueState.OPEN
    assert not queue.flush(sock)
    assert queue.flush(sock)
    assert b"".join(sock.sent) == b"abc"
    assert rec.seen == [("w", None)]


# -- fatal errors and fail() ------------------------------------------------
def test_fatal_error_fails_everything_with_the_same_object() -> None:
    """Every pending completion gets the very exception flush re-raises."""
    pool = BufferPool()
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"a" * 10, rec.cb("a"))
    buf = pool.acquire(BIG)
    queue.write(buf, rec.cb("pooled"), nbytes=BIG)
    queue.write(b"c" * 10, rec.cb("c"))
    sock = FakeSocket(send=[Accept(10), Fail(errno.ECONNRESET)])
    assert not queue.flush(sock)
    with pytest.raises(ConnectionResetError) as info:
        queue.flush(sock)
    assert rec.seen[0] == ("a", None)
    assert [exc for _, exc in rec.seen[1:]] == [info.value, info.value]
    assert pool.stats().buffers_in_use == 0
    assert queue.state is QueueState.FAILED
    assert (queue.pending, entries(queue), bool(queue)) == (0, 0, False)
    assert queue.flush(sock)  # nothing left to do
    assert queue.buffers() == []


def test_fail_drops_data_and_reports_the_exception() -> None:
    """``fail(exc)`` fails every pending completion with ``exc``, in order."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"abc", rec.cb("a"))
    queue.write(b"", rec.cb("b"))
    exc = EOFError("gone")
    queue.fail(exc)
    assert rec.seen == [("a", exc), ("b", exc)]
    assert queue.state is QueueState.FAILED
    with pytest.raises(QueueFailedError) as info:
        queue.write(b"more")
    assert info.value.__cause__ is exc
    with pytest.raises(QueueFailedError):
        queue.writelines([b"more"])


def test_fail_needs_an_exception() -> None:
    """``fail`` with a non-exception raises TypeError; the queue is unchanged."""
    pool = BufferPool()
    queue = WriteQueue()
    done = Recorder()
    queue.write(pool.acquire(BIG), done.cb("a"), nbytes=BIG)
    with pytest.raises(TypeError, match="'str'"):
        queue.fail("boom")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="'type'"):
        queue.fail(ConnectionResetError)  # type: ignore[arg-type]
    assert (queue.state, queue.pending, done.tags) == (QueueState.OPEN, BIG, [])
    assert pool.stats().buffers_in_use == 1
    assert len(drain(queue)) == BIG
    assert (done.tags, pool.stats().buffers_in_use) == (["a"], 0)


def test_fail_twice_keeps_the_first_error() -> None:
    """A second fail neither changes the error nor fires anything again."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"abc", rec.cb("a"))
    first = OSError("first")
    queue.fail(first)
    queue.fail(OSError("second"))
    assert rec.seen == [("a", first)]
    with pytest.raises(QueueFailedError, match="first"):
        queue.write(b"x")


# -- close() ---------------------------------------------------------------
def test_close_keeps_pending_data_for_a_graceful_flush() -> None:
    """A closed queue refuses writes but still drains, then is CLOSED."""
    rec = Recorder()
    queue = WriteQueue(name="client")
    queue.write(b"bye", rec.cb("bye"))
    queue.close()
    assert queue.state is QueueState.CLOSING
    with pytest.raises(QueueClosedError, match="'client'"):
        queue.write(b"more")
    with pytest.raises(QueueClosedError):
        queue.writelines([b"more"])
    assert drain(queue) == b"bye"
    assert state_of(queue) is QueueState.CLOSED
    assert rec.seen == [("bye", None)]


def test_close_of_an_empty_queue_is_closed_at_once() -> None:
    """Closing with nothing pending goes straight to CLOSED."""
    queue = WriteQueue()
    queue.close()
    queue.close()
    assert queue.state is QueueState.CLOSED


def test_fail_after_close_and_drain_changes_nothing() -> None:
    """A drained, closed queue stays CLOSED when the connection later breaks."""
    queue = WriteQueue()
    queue.close()
    queue.fail(ConnectionResetError())
    assert queue.state is QueueState.CLOSED


def test_close_of_a_failed_queue_changes_nothing() -> None:
    """Closing a failed queue leaves it FAILED."""
    queue = WriteQueue()
    queue.fail(OSError())
    queue.close()
    assert queue.state is QueueState.FAILED


# -- watermarks ---------------------------------------------------------------
def test_pause_and_resume_at_the_crossings() -> None:
    """``on_pause`` above high water, ``on_resume`` at low water, once each."""
    calls: list[str] = []
    queue = WriteQueue(
        high_water=100,
        low_water=20,
        on_pause=lambda: calls.append("pause"),
        on_resume=lambda: calls.append("resume"),
    )
    queue.write(b"x" * 100)
    assert calls == []
    queue.write(b"x")
    queue.write(b"x" * 50)
    assert (calls, queue.paused) == (["pause"], True)
    queue.advance(130)
    assert calls == ["pause"]
    queue.advance(1)
    assert (calls, queue.paused) == (["pause", "resume"], False)
    queue.advance(20)
    assert calls == ["pause", "resume"]


def test_watermarks_of_zero() -> None:
    """With both marks at 0, any pending byte pauses and an empty queue resumes."""
    calls: list[str] = []
    queue = WriteQueue(
        high_water=0,
        low_water=0,
        on_pause=lambda: calls.append("pause"),
        on_resume=lambda: calls.append("resume"),
    )
    queue.write(b"")
    assert calls == []
    queue.write(b"a")
    queue.advance(1)
    assert calls == ["pause", "resume"]


def test_failure_does_not_resume() -> None:
    """A failed queue stays paused: the producer learns of it from on_done."""
    calls: list[str] = []
    queue = WriteQueue(high_water=1, low_water=0, on_resume=lambda: calls.append("r"))
    queue.write(b"abc")
    queue.fail(OSError())
    assert (calls, queue.paused) == ([], True)


# -- callbacks that re-enter or raise ---------------------------------------
def test_callback_may_write_more() -> None:
    """A completion that writes again: the data goes out in the same flush."""
    queue = WriteQueue()
    rec = Recorder()

    def again(exc: BaseException | None) -> None:
        rec.seen.append(("first", exc))
        queue.write(b"second", rec.cb("second"))
        queue.write(b"", rec.cb("empty"))

    queue.write(b"first", again)
    sock = FakeSocket()
    assert queue.flush(sock)
    assert sock.wire == b"firstsecond"
    assert rec.tags == ["first", "second", "empty"]


def test_empty_write_inside_a_callback_fires_after_due_completions() -> None:
    """Completions stay in write order when a callback writes an empty buffer."""
    queue = WriteQueue()
    rec = Recorder()

    def nested(exc: BaseException | None) -> None:
        rec.seen.append(("a", exc))
        queue.write(b"", rec.cb("nested-empty"))

    queue.write(b"aa", nested)
    queue.write(b"bb", rec.cb("b"))
    queue.advance(4)
    assert rec.tags == ["a", "b", "nested-empty"]


def test_callback_may_close_the_queue() -> None:
    """A completion that closes: the rest still drains, then CLOSED."""
    queue = WriteQueue()
    queue.write(b"a", lambda exc: queue.close())
    queue.write(b"b")
    assert drain(queue) == b"ab"
    assert queue.state is QueueState.CLOSED


def test_callback_may_fail_the_queue() -> None:
    """A completion that fails the queue: accepted writes still get None."""
    queue = WriteQueue(coalesce_below=0)
    rec = Recorder()
    boom = RuntimeError("app says stop")

    def stop(exc: BaseException | None) -> None:
        rec.seen.append(("a", exc))
        queue.fail(boom)

    queue.write(b"a", stop)
    queue.write(b"b", rec.cb("b"))
    queue.write(b"c", rec.cb("c"))
    sock = FakeSocket(send=[Accept(2)])
    assert queue.flush(sock)  # nothing left: the queue failed
    assert rec.seen == [("a", None), ("b", None), ("c", boom)]
    assert queue.state is QueueState.FAILED


def test_raising_callback_does_not_starve_the_others() -> None:
    """Every due completion fires; the error surfaces from the call after."""
    queue = WriteQueue()
    rec = Recorder()

    def bad(exc: BaseException | None) -> None:
        raise KeyError("bad callback")

    queue.write(b"a", bad)
    queue.write(b"b", rec.cb("b"))
    with pytest.raises(KeyError, match="bad callback"):
        queue.flush(FakeSocket())
    assert rec.tags == ["b"]
    assert not queue
    queue.write(b"c", rec.cb("c"))
    assert drain(queue) == b"c"


def test_several_raising_callbacks_raise_a_group() -> None:
    """Two failing callbacks in one call surface as an ExceptionGroup."""
    queue = WriteQueue()

    def bad(exc: BaseException | None) -> None:
        raise ValueError("bad")

    queue.write(b"a", bad)
    queue.write(b"b", bad)
    with pytest.raises(ExceptionGroup) as info:
        queue.advance(2)
    assert len(info.value.exceptions) == 2


def test_raising_on_pause_still_enqueues() -> None:
    """A raising ``on_pause`` surfaces from write(); the data was enqueued."""

    def pause() -> None:
        raise RuntimeError("pause failed")

    queue = WriteQueue(high_water=1, low_water=0, on_pause=pause)
    with pytest.raises(RuntimeError, match="pause failed"):
        queue.write(b"abc")
    assert queue.paused
    assert drain(queue) == b"abc"


def test_raising_on_resume_still_completes() -> None:
    """A raising ``on_resume`` surfaces from advance(); completions still fire."""

    def resume() -> None:
        raise RuntimeError("resume failed")

    rec = Recorder()
    queue = WriteQueue(high_water=1, low_water=0, on_resume=resume)
    queue.write(b"abc", rec.cb("abc"))
    with pytest.raises(RuntimeError, match="resume failed"):
        queue.advance(3)
    assert rec.tags == ["abc"]
    assert not queue.paused


def test_raising_callback_on_fail() -> None:
    """Callbacks failing during fail() raise from fail(), all having fired."""
    rec = Recorder()
    queue = WriteQueue()

    def bad(exc: BaseException | None) -> None:
        raise ValueError("bad")

    queue.write(b"a", bad)
    queue.write(b"b", rec.cb("b"))
    with pytest.raises(ValueError, match="bad"):
        queue.fail(OSError("x"))
    assert rec.tags == ["b"]


def test_raising_callback_during_a_socket_failure() -> None:
    """The socket's OSError reaches the caller, callback errors as context."""
    queue = WriteQueue()

    def bad(exc: BaseException | None) -> None:
        raise ValueError("bad")

    queue.write(b"a", bad)
    sock = FakeSocket(send=[Fail(errno.EPIPE)])
    with pytest.raises(BrokenPipeError) as info:
        queue.flush(sock)
    assert isinstance(info.value.__context__, ValueError)


def test_base_exception_in_a_callback_leaves_the_rest_due() -> None:
    """A KeyboardInterrupt escapes at once; the rest fire on the next call."""
    rec = Recorder()
    queue = WriteQueue()

    def interrupt(exc: BaseException | None) -> None:
        raise KeyboardInterrupt

    queue.write(b"a", interrupt)
    queue.write(b"b", rec.cb("b"))
    with pytest.raises(KeyboardInterrupt):
        queue.advance(2)
    assert rec.tags == []
    assert queue.flush(FakeSocket())
    assert rec.tags == ["b"]


def test_base_exception_during_fail_leaves_the_rest_due() -> None:
    """After an interrupted fail(), a second fail() fires what is left."""
    rec = Recorder()
    queue = WriteQueue()

    def interrupt(exc: BaseException | None) -> None:
        raise KeyboardInterrupt

    queue.write(b"a", interrupt)
    queue.write(b"b", rec.cb("b"))
    err = OSError("x")
    with pytest.raises(KeyboardInterrupt):
        queue.fail(err)
    queue.fail(OSError("later"))
    assert rec.seen == [("b", err)]


# -- writelines() -------------------------------------------------------------
def test_writelines_is_one_write() -> None:
    """All items go out in order; ``on_done`` fires once, after the last."""
    pool = BufferPool()
    buf = pool.acquire(BIG)
    buf.view[:] = b"P" * buf.size
    buf.filled = buf.size
    rec = Recorder()
    queue = WriteQueue(high_water=1 << 30)
    items: list[Buffer | PooledBuffer] = [
        b"a",
        bytearray(b"b" * BIG),
        buf,
        array.array("h", [1]),
        b"",
    ]
    queue.writelines(items, rec.cb("all"))
    sock = FakeSocket(send=[Accept(BIG)])
    assert not queue.flush(sock)
    assert rec.seen == []
    assert queue.flush(sock)
    assert rec.seen == [("all", None)]
    assert sock.wire == b"a" + b"b" * BIG + b"P" * buf.size + b"\x01\x00"
    assert pool.stats().buffers_in_use == 0


def test_writelines_is_all_or_nothing() -> None:
    """A bad item rejects the whole call: nothing is enqueued."""
    queue = WriteQueue()
    with pytest.raises(TypeError, match="'str'"):
        queue.writelines([b"ok", "bad"])  # type: ignore[list-item]
    assert queue.pending == 0


def test_writelines_coalesces_and_seals_like_write() -> None:
    """Short items share the tail, which is sealed at its limit."""
    queue = WriteQueue(high_water=1 << 30)
    item = memoryview(b"m" * (BIG - 1))
    count = TAIL_LIMIT // len(item) + 2
    queue.writelines([item] * count)
    assert 2 <= entries(queue) < count
    assert drain(queue) == bytes(item) * count


# -- regressions from other write queues -----------------------------------------
def test_gh103462_payload_larger_than_one_send_is_not_stranded() -> None:
    """A payload larger than one send: flush says "not drained" until it is."""
    data = bytes(range(256)) * 4096  # 1 MiB
    queue = WriteQueue()
    queue.write(data)
    sock = FakeSocket(send=[Accept(65536)] * 16)
    rounds = 0
    while not queue.flush(sock):
        rounds += 1
    assert rounds == 15
    assert sock.wire == data


def test_gh146507_eagain_after_gathering_loses_nothing() -> None:
    """EAGAIN after the gather list was built leaves every byte queued."""
    rec = Recorder()
    queue = WriteQueue(coalesce_below=0)
    for i in range(10):
        queue.write(bytes([i]) * 7, rec.cb(str(i)))
    sock = FakeSocket(send=[Accept(5), WouldBlock(), WouldBlock(), Accept(20)])
    results = [queue.flush(sock) for _ in range(5)]
    assert results == [False, False, False, False, True]
    assert sock.wire == b"".join(bytes([i]) * 7 for i in range(10))
    assert rec.tags == [str(i) for i in range(10)]


def test_gh146507_many_small_writes_keep_pending_cheap() -> None:
    """40,000 queued 16-byte writes: exact ``pending``, few buffers, no walk."""
    queue = WriteQueue(high_water=1 << 30)
    for i in range(40_000):
        queue.write(b"0123456789abcdef")
        assert queue.pending == 16 * (i + 1)
    assert entries(queue) <= 16
    assert len(drain(queue)) == 640_000


def test_gh127655_writelines_respects_the_high_watermark() -> None:
    """``writelines`` pauses the producer like ``write`` does."""
    calls: list[str] = []
    queue = WriteQueue(high_water=100, low_water=0, on_pause=lambda: calls.append("p"))
    queue.writelines([b"x" * 60, b"y" * 60])
    assert calls == ["p"]
    assert queue.paused


@pytest.mark.parametrize(("fmt", "values"), [("i", [1, -2, 3, 4]), ("d", [0.5, -1e9])])
def test_gh135862_partial_writes_of_typed_views_are_exact(
    fmt: str, values: list[float]
) -> None:
    """Non-byte views are cast to 'B': partial writes cut bytes, not items."""
    data = array.array(fmt, values)
    queue = WriteQueue(coalesce_below=0)
    queue.write(memoryview(data))
    sock = FakeSocket(send=[Accept(3)] * 20)
    while not queue.flush(sock):
        pass
    assert sock.wire == data.tobytes()


def test_gh155888_empty_writes_do_not_hang_close() -> None:
    """Empty writes make no buffer: a closing queue still reaches CLOSED."""
    queue = WriteQueue()
    queue.write(b"")
    queue.write(b"data")
    queue.write(memoryview(b""))
    queue.write(b"", lambda exc: None)
    queue.close()
    assert entries(queue) == 1
    assert drain(queue) == b"data"
    assert queue.state is QueueState.CLOSED


def test_gh156512_callbacks_fire_once_after_connection_loss() -> None:
    """After a socket error, a later fail() or flush fires nothing again."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"abc", rec.cb("a"))
    sock = FakeSocket(send=[Fail(errno.ECONNRESET)])
    with pytest.raises(ConnectionResetError):
        queue.flush(sock)
    queue.fail(ConnectionResetError())
    assert queue.flush(sock)
    assert len(rec.seen) == 1


def test_gh136234_writes_after_connection_loss_are_refused() -> None:
    """After a socket error, writes raise QueueFailedError chained to it."""
    queue = WriteQueue()
    queue.write(b"abc")
    sock = FakeSocket(send=[Fail(errno.EPIPE)])
    with pytest.raises(BrokenPipeError) as info:
        queue.flush(sock)
    with pytest.raises(QueueFailedError) as refused:
        queue.write(b"more")
    assert refused.value.__cause__ is info.value
    assert queue.pending == 0


def test_large_bytes_is_never_recopied_by_partial_writes() -> None:
    """32 MiB behind pending data drains through views of the one object."""
    data = bytes(32 << 20)
    queue = WriteQueue()
    queue.write(b"header")
    queue.write(data)
    queue.advance(6)
    for _ in range(8):
        (view,) = queue.buffers(max_count=1)
        assert view.obj is data
        queue.advance(65536)
    assert queue.pending == len(data) - 8 * 65536


def test_bytearray_changed_after_write_is_sent_as_written() -> None:
    """A bytearray is snapshotted by write(): later changes are not sent."""
    small, large = bytearray(b"small"), bytearray(b"L" * BIG * 2)
    queue = WriteQueue()
    queue.write(small)
    queue.write(large)
    small[:] = b"XXXXX"
    large[:1] = b"X"
    assert drain(queue) == b"small" + b"L" * BIG * 2


# -- the write-spin limit -------------------------------------------------------
def endless_writer(queue: WriteQueue, limit: int) -> list[int]:
    """Write a chunk whose completion writes the next, ``limit`` times."""
    count = [0]

    def more(exc: BaseException | None) -> None:
        if exc is None and count[0] < limit:
            count[0] += 1
            queue.write(b"m" * 100, more)

    queue.write(b"m" * 100, more)
    return count


def test_flush_makes_at_most_write_spin_sends() -> None:
    """A completion that always writes more cannot hold flush: 16 sends, then False."""
    queue = WriteQueue()
    count = endless_writer(queue, 10_000)
    sock = FakeSocket()
    assert queue.flush(sock) is False
    assert len(sock.calls) == 16
    assert (queue.pending, count[0]) == (100, 16)
    assert queue.flush(sock) is False
    assert len(sock.calls) == 32


@pytest.mark.parametrize("spin", [1, 3])
def test_write_spin_is_a_constructor_keyword(spin: int) -> None:
    """``write_spin=n`` bounds each flush to n send calls, interrupts included."""
    queue = WriteQueue(write_spin=spin)
    endless_writer(queue, 10_000)
    sock = FakeSocket(send=[Interrupt(), AcceptAll(), AcceptAll()])
    assert queue.flush(sock) is False
    assert len(sock.calls) == spin


@pytest.mark.parametrize(("spin", "match"), [(0, "write_spin"), (-1, "write_spin")])
def test_bad_write_spin_is_refused(spin: int, match: str) -> None:
    """write_spin must be a positive int, named in the error."""
    with pytest.raises(ValueError, match=match):
        WriteQueue(write_spin=spin)
    with pytest.raises(TypeError, match="write_spin must be an int"):
        WriteQueue(write_spin=1.0)  # type: ignore[arg-type]


def test_spin_limit_leaves_a_drainable_queue() -> None:
    """More data than 16 sends take: later flushes finish it, intact and in order."""
    queue = WriteQueue(coalesce_below=0, max_gather_bytes=3000)
    data = [bytes([i]) * 3000 for i in range(40)]
    for chunk in data:
        queue.write(chunk)
    sock = FakeSocket(send=[Accept(3000)] * 40)
    assert [queue.flush(sock) for _ in range(3)] == [False, False, True]
    assert sock.wire == b"".join(data)


# -- ENOBUFS ------------------------------------------------------------------
def test_enobufs_on_send_is_would_block() -> None:
    """ENOBUFS leaves the queue open with its data: flush returns False."""
    rec = Recorder()
    queue = WriteQueue()
    queue.write(b"keep me", rec.cb("w"))
    sock = FakeSocket(send=[Fail(errno.ENOBUFS)])
    assert queue.flush(sock) is False
    assert (queue.state, queue.pending, rec.seen) == (QueueState.OPEN, 7, [])
    assert queue.flush(sock) is True
    assert (sock.wire, rec.seen) == (b"keep me", [("w", None)])


# -- a failed queue, odd shapes ----------------------------------------------------
def test_failed_queue_reports_paused() -> None:
    """A failed queue tells producers to hold off: paused, and no resume ever."""
    calls: list[str] = []
    queue = WriteQueue(
        on_pause=lambda: calls.append("p"), on_resume=lambda: calls.append("r")
    )
    queue.write(b"abc")
    assert queue.paused is False
    queue.fail(ConnectionResetError())
    assert (queue.paused, calls) == (True, [])


def test_zero_size_multidimensional_view_is_an_empty_write() -> None:
    """A (0, 3)-shaped view is written like b"": nothing sent, completes at once."""
    rec = Recorder()
    queue = WriteQueue()
    empty = memoryview((ctypes.c_uint8 * 3 * 0)())
    assert empty.shape == (0, 3)
    queue.write(empty, rec.cb("empty"))
    queue.writelines([empty, b"x"], rec.cb("lines"))
    assert rec.tags == ["empty"]
    assert drain(queue) == b"x"
    assert rec.tags == ["empty", "lines"]
