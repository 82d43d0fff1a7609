"""The one write of an event, kept by the connection and sent at the event's end."""

from __future__ import annotations

import errno
import logging
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import (
    BufferPool,
    BufferReleasedError,
    Connection,
    ConnectionProtocol,
    QueueClosedError,
    QueueFailedError,
)
from bufkit.testing import Accept, Deliver, Fail, FakeSocket, Short, WouldBlock


class _Reply(ConnectionProtocol):
    """Answer each read with ``reply(conn, view)``; record the callbacks."""

    def __init__(self, reply: Callable[[Connection, memoryview], object]) -> None:
        self.conn: Connection | None = None
        self.reply = reply
        self.calls: list[str] = []
        self.lost: list[Exception | None] = []
        self.seen_pending: list[int] = []

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Reply, and note the pending bytes right after."""
        assert self.conn is not None
        self.reply(self.conn, view)
        self.seen_pending.append(self.conn.pending_bytes)

    def pause_writing(self) -> None:
        """Record."""
        self.calls.append("pause")

    def resume_writing(self) -> None:
        """Record."""
        self.calls.append("resume")

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record."""
        self.lost.append(exc)


def _echo(conn: Connection, view: memoryview) -> None:
    conn.write(conn.take_buffer(), nbytes=len(view))


def _copy(conn: Connection, view: memoryview) -> None:
    conn.write(bytes(view))


def _sends(sock: FakeSocket) -> list[str]:
    return [c.op for c in sock.calls if c.op in ("send", "sendmsg")]


def _open(
    sock: FakeSocket,
    reply: Callable[[Connection, memoryview], object],
    high_water: int = 65536,
    low_water: int = 16384,
) -> tuple[Connection, _Reply, BufferPool]:
    pool = BufferPool()
    proto = _Reply(reply)
    conn = Connection(
        pool,
        sock,
        proto,
        on_interest=lambda c, i: None,
        high_water=high_water,
        low_water=low_water,
    )
    conn.start()
    return conn, proto, pool


@pytest.mark.parametrize("reply", [_echo, _copy])
def test_one_reply_is_one_send_and_holds_nothing(
    reply: Callable[[Connection, memoryview], object],
) -> None:
    """A read answered by one write: one send, and no buffer held after."""
    sock = FakeSocket(recv=[Deliver(b"hello")], after_send="accept")
    conn, proto, pool = _open(sock, reply)
    conn.on_readable()
    assert sock.wire == b"hello"
    assert _sends(sock) == ["send"]
    assert proto.seen_pending == [5]  # counted while it waits for the end
    assert conn.pending_bytes == 0
    assert conn.bytes_written == 5
    assert conn.flushes == 1
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("reply", [_echo, _copy])
@pytest.mark.parametrize("taken", [0, 1, 3])
def test_the_rest_of_a_short_send_follows_in_order(
    reply: Callable[[Connection, memoryview], object], taken: int
) -> None:
    """What the kernel did not take waits with write interest, then goes out."""
    sock = FakeSocket(
        recv=[Deliver(b"abcdef"), Deliver(b"gh")],
        send=[Accept(taken) if taken else WouldBlock()],
        after_send="accept",
    )
    conn, proto, pool = _open(sock, reply)
    conn.on_readable()
    assert sock.wire == b"abcdef"[:taken]
    assert conn.pending_bytes == 6 - taken
    assert conn.interest.name == "BOTH"
    conn.on_readable()  # a second read, written behind the rest
    conn.on_writable()
    assert sock.wire == b"abcdefgh"
    assert conn.pending_bytes == 0
    assert conn.interest.name == "READ"
    assert pool.stats().buffers_in_use == 0
    assert proto.calls == []


def test_a_big_one_write_the_kernel_refuses_pauses() -> None:
    """A one write above high water that the kernel refuses pauses the writer."""
    sock = FakeSocket(recv=[Deliver(b"x" * 100)], send=[Accept(10)])
    sock.after_send = "block"
    conn, proto, _ = _open(sock, _copy, high_water=50, low_water=20)
    conn.on_readable()
    assert proto.calls == ["pause"]
    assert not conn.reading
    sock.after_send = "accept"
    conn.on_writable()
    assert proto.calls == ["pause", "resume"]
    assert sock.wire == b"x" * 100


def test_after_a_pause_one_write_is_one_send_again() -> None:
    """Once a pause ended, an event's one write skips the queue again: one send."""
    sock = FakeSocket(recv=[Deliver(b"x" * 100), Deliver(b"abc")], send=[Accept(10)])
    sock.after_send = "block"
    conn, proto, pool = _open(sock, _copy, high_water=50, low_water=20)
    conn.on_readable()
    sock.after_send = "accept"
    conn.on_writable()
    assert proto.calls == ["pause", "resume"]
    before = len(_sends(sock))
    conn.on_readable()
    assert _sends(sock)[before:] == ["send"]
    assert sock.wire == b"x" * 100 + b"abc"
    assert conn.pending_bytes == 0
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("reply", [_echo, _copy])
def test_new_watermarks_keep_one_write_one_send(
    reply: Callable[[Connection, memoryview], object],
) -> None:
    """Watermarks other than the defaults do not send one write through the queue."""
    sock = FakeSocket(recv=[Deliver(b"hello")], after_send="accept")
    conn, proto, pool = _open(sock, reply, high_water=1000, low_water=100)
    conn.on_readable()
    assert _sends(sock) == ["send"]
    assert sock.wire == b"hello"
    assert proto.calls == []
    assert pool.stats().buffers_in_use == 0


def test_a_reset_on_the_one_send_loses_the_connection_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """ECONNRESET on the send: connection_lost(exc), buffer back, DEBUG only."""
    sock = FakeSocket(recv=[Deliver(b"boom")], send=[Fail(errno.ECONNRESET)])
    conn, proto, pool = _open(sock, _echo)
    with caplog.at_level(logging.DEBUG, "bufkit.connection"):
        conn.on_readable()
    assert conn.closed
    (exc,) = proto.lost
    assert isinstance(exc, ConnectionResetError)
    assert pool.stats().buffers_in_use == 0
    assert all(r.levelno == logging.DEBUG for r in caplog.records)
    with pytest.raises(QueueFailedError) as info:
        conn.write(b"late")
    assert info.value.__cause__ is exc


def test_two_writes_in_one_event_are_one_gathered_send() -> None:
    """The second write of an event joins the first: still one send call."""

    def twice(conn: Connection, view: memoryview) -> None:
        conn.write(conn.take_buffer(), nbytes=len(view))
        conn.write(b"!" * 3000)  # long enough for an entry of its own

    sock = FakeSocket(recv=[Deliver(b"ab")], after_send="accept")
    conn, proto, pool = _open(sock, twice)
    conn.on_readable()
    assert sock.wire == b"ab" + b"!" * 3000
    assert len(_sends(sock)) == 1
    assert proto.seen_pending == [3002]
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("ending", ["close", "write_eof"])
def test_a_close_after_the_one_write_sends_it_first(ending: str) -> None:
    """close() or write_eof() in the same event: the write still goes out."""

    def then_end(conn: Connection, view: memoryview) -> None:
        _echo(conn, view)
        getattr(conn, ending)()
        with pytest.raises(QueueClosedError):
            conn.write(b"refused")

    sock = FakeSocket(recv=[Deliver(b"last words")], after_send="accept")
    conn, _, pool = _open(sock, then_end)
    conn.on_readable()
    assert sock.wire == b"last words"
    assert conn.closed == (ending == "close")
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("ending", ["close", "write_eof"])
@pytest.mark.parametrize("reply", [_echo, _copy])
def test_a_close_after_the_one_write_the_kernel_refuses_still_sends_it(
    ending: str, reply: Callable[[Connection, memoryview], object]
) -> None:
    """close() or write_eof() after the write, then a short send: all goes out."""

    def then_end(conn: Connection, view: memoryview) -> None:
        reply(conn, view)
        getattr(conn, ending)()

    sock = FakeSocket(recv=[Deliver(b"0123456789")], send=[Accept(3), WouldBlock()])
    sock.after_send = "accept"
    conn, proto, pool = _open(sock, then_end)
    conn.on_readable()
    assert sock.wire == b"012"
    assert conn.pending_bytes == 7
    for _ in range(3):
        conn.on_writable()
    assert sock.wire == b"0123456789"
    assert conn.closed == (ending == "close")
    assert proto.lost == ([None] if ending == "close" else [])
    assert pool.stats().buffers_in_use == 0


def test_one_write_per_event_after_a_queue_was_made() -> None:
    """Once a queue exists and is empty, an event's one write is sent directly."""

    def first_twice(conn: Connection, view: memoryview) -> None:
        conn.write(bytes(view))
        if view[0] == ord("a"):
            conn.write(b"+")

    sock = FakeSocket(recv=[Deliver(b"a"), Deliver(b"b")], after_send="accept")
    conn, _, _ = _open(sock, first_twice)
    conn.on_readable()
    conn.on_readable()
    assert sock.wire == b"a+b"
    assert _sends(sock) == ["sendmsg", "send"]


def test_an_abort_after_the_one_write_drops_it_and_its_buffer() -> None:
    """abort() in the same event: nothing sent, the pooled buffer is released."""

    def then_abort(conn: Connection, view: memoryview) -> None:
        _echo(conn, view)
        conn.abort()

    sock = FakeSocket(recv=[Deliver(b"dropped")], after_send="accept")
    conn, proto, pool = _open(sock, then_abort)
    conn.on_readable()
    assert sock.wire == b""
    assert conn.closed
    assert isinstance(proto.lost[0], ConnectionAbortedError) or proto.lost == [None]
    assert pool.stats().buffers_in_use == 0


def test_a_protocol_error_after_the_one_write_releases_it() -> None:
    """A bug after the write aborts: the write is dropped, its buffer freed."""

    def then_fail(conn: Connection, view: memoryview) -> None:
        _echo(conn, view)
        raise RuntimeError("bug")

    sock = FakeSocket(recv=[Deliver(b"x")], after_send="accept")
    logging.getLogger("bufkit.connection").disabled = True
    try:
        conn, proto, pool = _open(sock, then_fail)
        conn.on_readable()
    finally:
        logging.getLogger("bufkit.connection").disabled = False
    assert sock.wire == b""
    assert isinstance(proto.lost[0], RuntimeError)
    assert pool.stats().buffers_in_use == 0


def test_limits_changed_after_the_one_write_count_it() -> None:
    """set_write_buffer_limits in the event counts the write it keeps."""

    def then_limit(conn: Connection, view: memoryview) -> None:
        _copy(conn, view)
        conn.set_write_buffer_limits(high=4)

    sock = FakeSocket(recv=[Deliver(b"0123456789")], send=[WouldBlock()])
    sock.after_send = "block"
    conn, proto, _ = _open(sock, then_limit)
    conn.on_readable()
    assert conn.pending_bytes == 10
    assert proto.calls == ["pause"]


@settings(max_examples=150, deadline=None)
@given(
    data=st.binary(min_size=1, max_size=12000),
    cuts=st.lists(st.integers(1, 5000), max_size=8),
    sends=st.lists(
        st.one_of(st.integers(1, 4000).map(Accept), st.just(WouldBlock())),
        max_size=12,
    ),
    zero_copy=st.booleans(),
)
def test_echo_is_exact_whatever_the_kernel_takes(
    data: bytes,
    cuts: list[int],
    sends: list[Accept | WouldBlock],
    zero_copy: bool,
) -> None:
    """Every byte echoed once, in order; nothing held once all was sent."""
    sock = FakeSocket(recv=[Short(n) for n in cuts], send=sends, after_send="accept")
    sock.feed(data)
    conn, proto, pool = _open(sock, _echo if zero_copy else _copy)
    for _ in range(200):
        sock.mark_waited()  # the loop waited for readiness
        if conn.reading:
            conn.on_readable()
        if conn.interest.value & 2:
            conn.on_writable()
        if sock.wire == data:
            break
    assert sock.wire == data
    assert conn.pending_bytes == 0
    assert pool.stats().buffers_in_use == 0
    assert proto.lost == []


def test_a_released_buffer_as_the_one_write_is_refused() -> None:
    """A released pooled buffer written first in an event raises; nothing is kept."""
    refused: list[Exception] = []

    def reply(conn: Connection, view: memoryview) -> None:
        buf = conn.take_buffer()
        buf.release()
        try:
            conn.write(buf, nbytes=len(view))
        except BufferReleasedError as exc:
            refused.append(exc)

    sock = FakeSocket(recv=[Deliver(b"hello")], after_send="accept")
    conn, proto, pool = _open(sock, reply)
    conn.on_readable()
    assert len(refused) == 1
    assert proto.seen_pending == [0]
    assert sock.wire == b""
    assert proto.lost == []
    assert pool.stats().buffers_in_use == 0
