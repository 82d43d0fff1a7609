"""Regression tests of the connection core: pool pressure, bursts, TLS EOF, resets."""

from __future__ import annotations

import errno
import gc
import logging
import socket
import ssl
import weakref
from collections.abc import Callable

import pytest

from bufkit import (
    BufferPool,
    Connection,
    ConnectionProtocol,
    ConnectionState,
    FrameTooLarge,
    Interest,
    LengthPrefixedFramer,
    QueueClosedError,
    _connection,
)
from bufkit.testing import Accept, Deliver, Eof, Fail, FakeSocket, WouldBlock
from tests._tls import handshake, wrap_pair
from tests.adapters._selectors_support import Driver, Recorder
from tests.test_writequeue_ownership import watch


def _reading(conn: Connection) -> bool:
    return conn.reading  # a call: the type checker does not narrow it


def _one_buffer_pool() -> BufferPool:
    return BufferPool(size_classes=[2048], slab_size=2048, max_bytes=2048)


def test_pool_pressure_stops_reading_and_resumes_when_a_buffer_returns(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PoolExhausted while reading pauses reading, one line, then resumes by itself."""
    pool = _one_buffer_pool()
    held = pool.acquire(100)  # the only buffer: the next read cannot borrow
    sock = FakeSocket(recv=[Deliver(b"ping")])
    proto = Recorder()
    driver = Driver(sock, proto, pool)
    driver.conn.start()
    with caplog.at_level(logging.DEBUG):
        driver.conn.on_readable()
        driver.end_iteration()
        driver.conn.on_readable()  # a spurious event while starved reads nothing
    assert not driver.conn.closed
    assert proto.lost == []
    assert not driver.conn.reading
    assert driver.interests[-1:] == [Interest.NONE]
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert warnings[0].exc_info is None
    held.release()  # a buffer comes back: reading resumes at the iteration's end
    driver.end_iteration()
    assert _reading(driver.conn)
    assert driver.interests[-1:] == [Interest.READ]
    driver.step()
    assert proto.data == b"ping"
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def test_a_closed_starving_connection_leaves_no_callback_in_the_pool() -> None:
    """Closing while starved removes the release callback: nothing pins it."""
    pool = _one_buffer_pool()
    held = pool.acquire(100)
    sock = FakeSocket(recv=[Deliver(b"x")])
    proto = Recorder()
    driver = Driver(sock, proto, pool)
    driver.conn.start()
    driver.conn.on_readable()
    driver.conn.abort()
    ref = weakref.ref(driver.conn)
    proto.conn = None
    del driver
    gc.collect()
    held.release()  # must call nothing on the dead connection
    assert ref() is None
    assert proto.lost == [None]


class _Subscriber(ConnectionProtocol):
    """Counts pauses; never writes by itself."""

    def __init__(self) -> None:
        self.pauses = 0
        self.resumes = 0

    def pause_writing(self) -> None:
        """Count."""
        self.pauses += 1

    def resume_writing(self) -> None:
        """Count."""
        self.resumes += 1


def _publish_driver(sock: FakeSocket) -> tuple[Connection, _Subscriber, list[object]]:
    deferred: list[Callable[[], object]] = []
    sub = _Subscriber()
    conn = Connection(
        BufferPool(), sock, sub, on_interest=lambda c, i: None, defer=deferred.append
    )
    conn.start()
    return conn, sub, list(deferred)


def test_a_burst_to_a_fast_reader_is_sent_not_paused() -> None:
    """A 200 KB write outside the event is sent at once; no pause_writing."""
    sock = FakeSocket(after_send="accept")
    conn, sub, _ = _publish_driver(sock)
    burst = bytes(200_000)
    conn.write(burst)  # from another connection's event, say
    assert sub.pauses == 0
    assert sock.wire == burst
    assert conn.pending_bytes == 0
    conn.abort()


def test_a_burst_the_kernel_refuses_pauses_after_a_send() -> None:
    """pause_writing comes only once a send was tried and bytes remain."""
    sock = FakeSocket(send=[Accept(1000)], after_send="block")
    conn, sub, _ = _publish_driver(sock)
    conn.write(bytes(200_000))
    assert sub.pauses == 1
    assert len(sock.wire) == 1000
    assert conn.writing_paused
    assert conn.interest & Interest.WRITE
    assert not conn.reading
    sock.after_send = "accept"
    conn.on_writable()
    assert sub.resumes == 1
    assert _reading(conn)
    conn.abort()


class _Amplify(ConnectionProtocol):
    """Write 32 times each read."""

    conn: Connection

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Amplify."""
        chunk = bytes(view)
        for _ in range(32):
            self.conn.write(chunk)


def test_an_amplifying_protocol_stays_bounded_by_the_watermarks() -> None:
    """Writing 32x the input to a peer that does not read stays bounded."""
    pool = BufferPool()
    sock = FakeSocket(after_send="block")
    for _ in range(200):
        sock.feed(bytes(1000))
    driver = Driver(sock, _Amplify(), pool, high_water=65536, low_water=16384)
    driver.conn.start()
    for _ in range(50):
        driver.step()
    # One read's worth of output past the high watermark, no more.
    assert driver.conn.pending_bytes <= 65536 + 32 * 65536
    assert driver.conn.bytes_received < 200 * 1000
    assert not driver.conn.reading
    sock.after_send = "accept"
    driver.run(lambda: driver.conn.bytes_received == 200 * 1000, max_steps=5000)
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


@pytest.mark.slow
def test_write_eof_on_a_tls_socket_is_refused(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """write_eof on an SSLSocket raises and leaves the connection as it was."""
    client, server = wrap_pair(tls_contexts, *socket.socketpair())
    try:
        client.setblocking(False)
        server.setblocking(False)
        handshake(client, server)
        conn = Connection(
            BufferPool(), server, Recorder(), on_interest=lambda c, i: None
        )
        conn.start()
        with pytest.raises(NotImplementedError, match="TLS"):
            conn.write_eof()
        assert conn.state is ConnectionState.OPEN
        conn.write(b"still open")
        conn.abort()
    finally:
        client.close()
        server.close()


def test_writes_after_write_eof_are_refused() -> None:
    """write_eof closes the queue: a later write raises QueueClosedError."""
    sock = FakeSocket()
    driver = Driver(sock, Recorder(), BufferPool())
    driver.conn.start()
    driver.conn.write_eof()
    with pytest.raises(QueueClosedError):
        driver.conn.write(b"late")
    driver.conn.abort()


def test_close_stops_reading_at_once() -> None:
    """close() reports an interest without READ before the queue drained."""
    sock = FakeSocket(after_send="block")
    driver = Driver(sock, Recorder(), BufferPool())
    driver.conn.start()
    driver.conn.write(b"pending")
    driver.end_iteration()
    driver.conn.close()
    assert not driver.conn.interest & Interest.READ
    assert driver.conn.interest & Interest.WRITE
    driver.conn.abort()


@pytest.mark.parametrize(
    ("recv", "send"),
    [
        ([Fail(errno.ECONNRESET)], []),
        ([Fail(errno.ETIMEDOUT)], []),
        ([Deliver(b"x" * 10)], [Fail(errno.ECONNRESET)]),
        ([Deliver(b"x" * 10)], [Fail(errno.EPIPE)]),
        ([Deliver(b"x" * 10)], [Accept(3), WouldBlock(), Fail(errno.ECONNABORTED)]),
    ],
)
def test_peer_resets_are_quiet(
    recv: list[Deliver | Fail],
    send: list[Accept | WouldBlock | Fail],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A peer's reset ends the connection with DEBUG lines at most."""
    sock = FakeSocket(recv=[*recv, Eof()], send=send)
    proto = Recorder()
    proto.on_data = lambda conn, view: conn.write(bytes(view))
    driver = Driver(sock, proto, BufferPool())
    with caplog.at_level(logging.DEBUG):
        driver.conn.start()
        driver.run(lambda: driver.conn.closed)
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []
    assert isinstance(proto.lost[0], OSError)


def test_a_framing_error_is_one_quiet_line(caplog: pytest.LogCaptureFixture) -> None:
    """FrameTooLarge from data_received: INFO, no traceback, connection aborted."""
    pool = BufferPool()

    class Framed(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.frames: list[memoryview] = []
            self.framer = LengthPrefixedFramer(pool, self.frames.append, max_frame=10)

        def data_received(self, view: memoryview, /) -> None:
            self.framer.data_received(view)

    sock = FakeSocket(recv=[Deliver(b"\x00\x00\x10\x00" + bytes(20))])
    proto = Framed()
    driver = Driver(sock, proto, pool)
    with caplog.at_level(logging.DEBUG):
        driver.conn.start()
        driver.step()
    assert driver.conn.closed
    assert isinstance(proto.lost[0], FrameTooLarge)
    loud = [r for r in caplog.records if r.levelno > logging.DEBUG]
    assert len(loud) == 1
    assert loud[0].levelno == logging.INFO
    assert loud[0].exc_info is None
    proto.framer.close()
    assert pool.stats().buffers_in_use == 0


def test_a_protocol_bug_is_logged_once_with_its_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception from data_received: one ERROR with traceback, then aborted."""
    sock = FakeSocket(recv=[Deliver(b"boom")])
    proto = Recorder()

    def explode(conn: Connection, view: memoryview) -> None:
        raise KeyError("bug")

    proto.on_data = explode
    driver = Driver(sock, proto, BufferPool())
    with caplog.at_level(logging.DEBUG):
        driver.conn.start()
        driver.step()
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1
    assert errors[0].exc_info is not None
    assert driver.conn.closed
    assert isinstance(proto.lost[0], KeyError)


@pytest.mark.parametrize("ending", ["close", "abort", "reset", "bug", "framing"])
def test_an_ended_connection_is_freed_by_reference_counting(
    ending: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the cyclic GC off, connection, protocol and queue die with the owner."""
    # A capturing log handler keeps each record's traceback, hence its frames.
    monkeypatch.setattr(logging.getLogger("bufkit.connection"), "disabled", True)
    pool = BufferPool()
    recv: list[Deliver | Fail | Eof] = [Deliver(b"abc")]
    if ending == "reset":
        recv = [Fail(errno.ECONNRESET)]
    elif ending == "framing":
        recv = [Deliver(b"\xff\xff\xff\xff")]
    sock = FakeSocket(recv=recv, after_send="accept")

    class Keeper(Recorder):
        def __init__(self) -> None:
            super().__init__()
            self.framer = LengthPrefixedFramer(pool, lambda f: None, max_frame=10)

        def data_received(self, view: memoryview, /) -> None:
            super().data_received(view)
            if ending == "bug":
                raise RuntimeError("bug")
            if ending == "framing":
                self.framer.data_received(view)
            conn = self.conn
            assert conn is not None
            conn.write(bytes(view), lambda exc: None)

    gc.collect()
    gc.disable()
    try:
        proto = Keeper()
        conn = Connection(pool, sock, proto, on_interest=lambda c, i: None)
        conn.start()
        conn.on_readable()
        if ending == "close":
            conn.close()
        elif ending == "abort":
            conn.abort()
        assert conn.closed
        refs: list[Callable[[], object]] = [weakref.ref(conn), weakref.ref(proto)]
        if conn._queue is not None:  # made by the first write
            refs.append(watch(conn._queue))  # compiled: no weak references
        proto.framer.close()
        del conn, proto
        assert [r() for r in refs] == [None] * len(refs)
    finally:
        gc.enable()


def _break_framing(pool: BufferPool) -> Connection:
    """One connection whose peer sends a frame header past ``max_frame``."""
    sock = FakeSocket(recv=[Deliver(b"\xff\xff\xff\xff")])
    framer = LengthPrefixedFramer(pool, lambda frame: None, max_frame=10)
    proto = Recorder()
    proto.on_data = lambda conn, view: framer.data_received(view)
    driver = Driver(sock, proto, pool)
    driver.conn.start()
    driver.step()
    return driver.conn


def test_peer_lines_are_rate_limited_with_a_count_of_the_rest(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Thirty framing errors in one second: ten lines, then one count of the rest."""
    now = [100.0]
    limit = _connection._RateLimit(10, lambda: now[0])
    monkeypatch.setattr(_connection, "_PEER_LOG", limit)
    pool = BufferPool()
    with caplog.at_level(logging.INFO, logger="bufkit.connection"):
        for _ in range(30):
            assert _break_framing(pool).closed
        assert len(caplog.records) == 10
        now[0] += 1.0
        assert _break_framing(pool).closed
    messages = [r.getMessage() for r in caplog.records]
    assert messages[10] == "20 similar lines suppressed"
    assert len(messages) == 12
    assert pool.stats().buffers_in_use == 0


def test_a_reset_found_by_an_early_send_mid_callback_is_quiet(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Writes that meet a reset in the middle of data_received log no traceback.

    Fanout's many writes cross the high watermark; the early send meets a
    reset, and the next write finds the queue failed. That is the peer
    leaving, not a bug: the connection ends with the reset, quietly.
    """
    from bufkit.servers import Fanout

    pool = BufferPool()
    sock = FakeSocket(
        recv=[Deliver(b"?" * 3000)], send=[Accept(70000), Fail(errno.ECONNRESET)]
    )
    driver = Driver(sock, Fanout(), pool)
    driver.conn.start()
    with caplog.at_level(logging.DEBUG, logger="bufkit.connection"):
        driver.step()
    assert driver.conn.closed
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)
    assert pool.stats().buffers_in_use == 0


def test_a_subscriber_reset_is_no_protocol_error_of_the_publisher(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A publisher writing to a subscriber the peer reset logs no traceback.

    The subscriber's connection failed with ECONNRESET; the publisher's
    data_received then writes to it and the write raises QueueFailedError.
    The cause is the subscriber's peer leaving: one INFO line, no ERROR, no
    traceback (the publisher's handler did raise, so it is still aborted).
    """
    pool = BufferPool()
    sub_sock = FakeSocket(send=[Fail(errno.ECONNRESET)])
    subscriber = Driver(sub_sock, Recorder(), pool)
    subscriber.conn.start()
    subscriber.conn.write(b"first")
    subscriber.end_iteration()  # the send meets the reset
    assert subscriber.conn.closed

    class Publisher(Recorder):
        def data_received(self, view: memoryview, /) -> None:
            subscriber.conn.write(bytes(view))

    pub_sock = FakeSocket(recv=[Deliver(b"news")])
    publisher = Driver(pub_sock, Publisher(), pool)
    publisher.conn.start()
    with caplog.at_level(logging.DEBUG):
        publisher.step()
    assert [r for r in caplog.records if r.levelno >= logging.WARNING] == []
    assert all(r.exc_info is None for r in caplog.records)
    assert publisher.conn.closed
    assert pool.stats().buffers_in_use == 0
