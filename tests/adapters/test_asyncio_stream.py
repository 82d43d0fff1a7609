"""The readiness stream's logic, driven by the fake socket and a fake of add_reader."""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
from collections.abc import Callable, Coroutine
from typing import Any, TypeVarTuple

import pytest

import bufkit
from bufkit.adapters.asyncio import (
    StreamProtocol,
    StreamServer,
    open_connection,
    start_protocol_server,
)
from bufkit.adapters.asyncio._stream import Connection
from bufkit.testing import Accept, Deliver, Eof, Fail, FakeSocket, WouldBlock

pytestmark = pytest.mark.timeout(30)

Callback = tuple[Callable[..., object], tuple[object, ...]]
Ts = TypeVarTuple("Ts")


class ReadinessFake(asyncio.SelectorEventLoop):
    """A real loop whose add_reader/add_writer only record: tests fire events."""

    def __init__(self) -> None:
        super().__init__()
        self.readers: dict[int, Callback] = {}
        self.writers: dict[int, Callback] = {}

    def add_reader(
        self, fd: Any, callback: Callable[[*Ts], object], *args: *Ts
    ) -> None:
        """Record read interest."""
        self.readers[fd] = (callback, args)

    def remove_reader(self, fd: Any) -> bool:
        """Drop read interest."""
        return self.readers.pop(fd, None) is not None

    def add_writer(
        self, fd: Any, callback: Callable[[*Ts], object], *args: *Ts
    ) -> None:
        """Record write interest."""
        self.writers[fd] = (callback, args)

    def remove_writer(self, fd: Any) -> bool:
        """Drop write interest."""
        return self.writers.pop(fd, None) is not None

    def readable(self, fd: int) -> None:
        """Fire the reader of ``fd``."""
        callback, args = self.readers[fd]
        callback(*args)

    def writable(self, fd: int) -> None:
        """Fire the writer of ``fd``."""
        callback, args = self.writers[fd]
        callback(*args)


class Recorder(StreamProtocol):
    """Records every callback."""

    def __init__(self, keep_open: bool = False) -> None:
        self.events: list[str] = []
        self.data = bytearray()
        self.lost: BaseException | None = None
        self.keep_open = keep_open

    def connection_made(self, conn: Connection) -> None:
        """Record."""
        self.events.append("made")

    def data_received(self, view: memoryview) -> None:
        """Record."""
        self.data += view

    def eof_received(self) -> bool | None:
        """Record."""
        self.events.append("eof")
        return self.keep_open

    def connection_lost(self, exc: BaseException | None) -> None:
        """Record."""
        self.events.append("lost")
        self.lost = exc

    def pause_writing(self) -> None:
        """Record."""
        self.events.append("pause")

    def resume_writing(self) -> None:
        """Record."""
        self.events.append("resume")


Body = Callable[[ReadinessFake, bufkit.BufferPool], Coroutine[Any, Any, None]]


def run(body: Body) -> None:
    """Run ``body`` on a fresh fake-readiness loop; the pool must end empty."""
    pool = bufkit.BufferPool()
    with asyncio.Runner(loop_factory=ReadinessFake) as runner:
        loop = runner.get_loop()
        assert isinstance(loop, ReadinessFake)
        runner.run(body(loop, pool))
    assert pool.stats().buffers_in_use == 0


def connect(
    loop: ReadinessFake,
    pool: bufkit.BufferPool,
    sock: FakeSocket,
    protocol: StreamProtocol | None = None,
    **options: Any,
) -> Connection:
    """A started connection over ``sock``."""
    conn = Connection(pool, sock, protocol, loop=loop, **options)
    conn._start()
    return conn


def drain_reads(loop: ReadinessFake, fd: int) -> None:
    """Fire readable events until the connection stops reading."""
    for _ in range(100):
        if fd not in loop.readers:
            return
        loop.readable(fd)
    raise AssertionError("the connection never stopped reading")


async def tick(n: int = 1) -> None:
    """Let ``n`` loop iterations run."""
    for _ in range(n):
        await asyncio.sleep(0)


def test_writes_of_one_iteration_leave_in_one_sendmsg() -> None:
    """Many writes made in one iteration are flushed by a single sendmsg."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket()
        conn = connect(loop, pool, sock, Recorder())
        chunks = [bytes([i]) * 3000 for i in range(10)]
        for chunk in chunks:
            conn.write(chunk)
        assert sock.calls == []
        await tick()
        sends = [c for c in sock.calls if c.op in ("sendmsg", "send")]
        assert len(sends) == 1
        assert sock.wire == b"".join(chunks)
        assert not loop.writers
        conn.abort()

    run(body)


class Fanout(Recorder):
    """Answers each read with the read itself (zero-copy) and 32 small writes."""

    def connection_made(self, conn: Connection) -> None:
        """Keep the connection."""
        super().connection_made(conn)
        self.conn = conn

    def data_received(self, view: memoryview) -> None:
        """Echo by ownership, then write many small chunks."""
        self.conn.write(self.conn.take_buffer(), nbytes=len(view))
        for _ in range(32):
            self.conn.write(b"z" * 100)

    def eof_received(self) -> bool | None:
        """Say goodbye; the connection then closes."""
        self.conn.write(b"bye")
        return super().eof_received()


def test_writes_in_data_received_leave_when_the_read_event_ends() -> None:
    """Writes of one read event, over several reads, leave in one sendmsg at once."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        first = b"a" * 2048  # fills the first read buffer: the reader reads again
        sock = FakeSocket(recv=[Deliver(first), Deliver(b"b"), WouldBlock()])
        conn = connect(loop, pool, sock, Fanout())
        loop.readable(sock.fileno())  # no loop iteration runs in between
        sends = [c for c in sock.calls if c.op in ("sendmsg", "send")]
        assert len(sends) == 1
        assert sock.wire == first + b"z" * 3200 + b"b" + b"z" * 3200
        assert not loop.writers
        await tick()
        assert len([c for c in sock.calls if c.op in ("sendmsg", "send")]) == 1
        conn.abort()

    run(body)


def test_eof_reply_is_flushed_and_closed_within_the_read_event() -> None:
    """A reply written in eof_received is sent, then the socket closes."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"q"), Eof()])
        proto = Fanout()
        conn = connect(loop, pool, sock, proto)
        loop.readable(sock.fileno())  # a short read ends the first event
        assert sock.wire == b"q" + b"z" * 3200
        loop.readable(sock.fileno())  # end of file: the reply, then close
        assert sock.wire == b"q" + b"z" * 3200 + b"bye"
        assert conn.is_closing()
        assert not loop.readers
        assert not loop.writers
        await conn.wait_closed()
        assert proto.events == ["made", "eof", "lost"]
        await conn.wait_closed()  # after connection_lost: returns at once

    run(body)


def test_write_to_another_connection_from_a_read_event_is_scheduled() -> None:
    """A write to a connection outside its own read event waits for the loop."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        other_sock = FakeSocket()
        other = connect(loop, pool, other_sock, Recorder())

        class Relay(Recorder):
            def data_received(self, view: memoryview) -> None:
                """Forward to the other connection."""
                other.write(bytes(view))

        sock = FakeSocket(recv=[Deliver(b"hop"), WouldBlock()])
        conn = connect(loop, pool, sock, Relay())
        loop.readable(sock.fileno())
        assert other_sock.calls == []
        await tick()
        assert other_sock.wire == b"hop"
        conn.abort()
        other.abort()

    run(body)


def test_blocked_flush_arms_the_writer_until_drained() -> None:
    """Writable interest is armed iff data is left after a blocked flush."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(10), WouldBlock()])
        conn = connect(loop, pool, sock, Recorder())
        fd = sock.fileno()
        conn.write(b"x" * 40)
        await tick()
        assert fd in loop.writers
        assert conn.pending_bytes == 30
        conn.write(b"y" * 10)  # armed: no extra flush is scheduled
        await tick()
        assert sock.wire == b"x" * 10
        loop.writable(fd)
        assert fd in loop.writers
        loop.writable(fd)
        assert fd not in loop.writers
        assert sock.wire == b"x" * 40 + b"y" * 10
        conn.abort()

    run(body)


def test_send_resolves_when_the_kernel_accepted_it() -> None:
    """``send`` waits for the last byte to be accepted, not just queued."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(3)])
        conn = connect(loop, pool, sock, Recorder())
        task = asyncio.ensure_future(conn.send(b"abcdef"))
        await tick(2)
        assert not task.done()
        loop.writable(sock.fileno())
        await tick()
        assert task.done()
        assert task.result() is None
        assert sock.wire == b"abcdef"
        conn.abort()

    run(body)


def test_cancelled_send_still_sends_and_queue_stays_usable() -> None:
    """Cancelling a waiting send drops the waiter, not the data."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(2)])
        conn = connect(loop, pool, sock, Recorder())
        task = asyncio.ensure_future(conn.send(b"first"))
        await tick(2)
        task.cancel()
        await tick()
        assert task.cancelled()
        second = asyncio.ensure_future(conn.send(b"second"))
        await tick()
        loop.writable(sock.fileno())
        await second
        assert sock.wire == b"firstsecond"
        assert conn.pending_bytes == 0
        conn.abort()

    run(body)


def test_drain_waits_for_the_low_water_mark_and_survives_cancel() -> None:
    """``drain`` blocks above high water; a cancelled waiter leaves others intact."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock(), Accept(60)])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto, high_water=50, low_water=20)
        conn.write(b"z" * 100)
        assert proto.events == ["made", "pause"]
        first = asyncio.ensure_future(conn.drain())
        second = asyncio.ensure_future(conn.drain())
        await tick(2)
        first.cancel()
        await tick()
        assert first.cancelled()
        assert not second.done()
        loop.writable(sock.fileno())  # 40 left: still above low water
        await tick()
        assert not second.done()
        loop.writable(sock.fileno())
        await second
        assert proto.events == ["made", "pause", "resume"]
        await conn.drain()  # below the mark: returns at once
        conn.abort()

    run(body)


def test_reset_mid_write_fails_every_awaitable_with_the_oserror() -> None:
    """The socket's error object fails send and drain, and reaches connection_lost."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(10), Fail(errno.ECONNRESET)])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto, high_water=20, low_water=5)
        sent = asyncio.ensure_future(conn.send(b"q" * 100))
        drained = asyncio.ensure_future(conn.drain())
        await tick(2)
        loop.writable(sock.fileno())
        with pytest.raises(ConnectionResetError) as info:
            await sent
        with pytest.raises(ConnectionResetError) as info2:
            await drained
        assert info.value is info2.value
        await conn.wait_closed()
        assert proto.lost is info.value
        assert proto.events[-1] == "lost"
        assert not loop.readers
        assert not loop.writers
        assert sock.closed
        with pytest.raises(bufkit.QueueFailedError):
            conn.write(b"late")

    run(body)


def test_received_bytes_reach_the_protocol_and_eof_closes() -> None:
    """Reads reach data_received; EOF without keep-open closes after the flush."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"hello "), Deliver(b"world"), Eof()])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        conn.write(b"bye")
        drain_reads(loop, sock.fileno())
        assert bytes(proto.data) == b"hello world"
        assert proto.events == ["made", "eof"]
        await conn.wait_closed()
        assert sock.wire == b"bye"
        assert proto.lost is None
        assert sock.closed

    run(body)


def test_keep_open_at_eof_lets_the_protocol_answer() -> None:
    """``eof_received`` returning true stops reading but keeps writing."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"ask"), Eof()])
        proto = Recorder(keep_open=True)
        conn = connect(loop, pool, sock, proto)
        drain_reads(loop, sock.fileno())
        assert proto.events == ["made", "eof"]
        assert not conn.is_closing()
        await conn.send(b"answer")
        conn.write_eof()
        await tick()
        # Both directions are done: the connection closes after the shutdown.
        assert [call.op for call in sock.calls[-2:]] == ["shutdown", "close"]
        conn.close()
        await conn.wait_closed()
        assert sock.wire == b"answer"

    run(body)


def test_read_frame_with_a_framer_then_none_at_eof() -> None:
    """Callback mode reassembles frames split across reads."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        framer = functools.partial(bufkit.LengthPrefixedFramer, pool, max_frame=1000)
        wire = b"\x00\x00\x00\x05hello\x00\x00\x00\x03abc"
        sock = FakeSocket(recv=[Deliver(wire[:7]), Deliver(wire[7:]), Eof()])
        conn = connect(loop, pool, sock, framer=framer)
        reading = asyncio.ensure_future(conn.read_frame())
        await tick()
        drain_reads(loop, sock.fileno())
        assert await reading == b"hello"
        assert [frame async for frame in conn] == [b"abc"]
        assert await conn.read_frame() is None
        conn.close()
        await conn.wait_closed()

    run(body)


def test_frame_backlog_pauses_reading() -> None:
    """Unread frames above ``read_limit`` remove the reader until consumed."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"a" * 40), Deliver(b"b" * 40)])
        conn = connect(loop, pool, sock, read_limit=30)
        fd = sock.fileno()
        loop.readable(fd)
        assert fd not in loop.readers
        assert await conn.read_frame() == b"a" * 40
        assert fd in loop.readers
        loop.readable(fd)
        assert await conn.read_frame() == b"b" * 40
        conn.abort()

    run(body)


def test_read_error_fails_pending_send_and_read_frame() -> None:
    """A reset seen by recv fails a waiting send and read_frame with that error."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock()], recv=[Fail(errno.ECONNRESET)])
        conn = connect(loop, pool, sock)
        sent = asyncio.ensure_future(conn.send(b"data"))
        reading = asyncio.ensure_future(conn.read_frame())
        await tick(2)
        loop.readable(sock.fileno())
        with pytest.raises(ConnectionResetError) as info:
            await sent
        with pytest.raises(ConnectionResetError) as info2:
            await reading
        assert info.value is info2.value
        with pytest.raises(ConnectionResetError):
            await conn.drain()

    run(body)


def test_abort_drops_queued_data_and_fails_sends() -> None:
    """``abort`` fails pending sends, closes at once and unregisters."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock()])
        conn = connect(loop, pool, sock, Recorder())
        sent = asyncio.ensure_future(conn.send(b"never"))
        await tick(2)
        assert loop.writers
        conn.abort()
        with pytest.raises(ConnectionAbortedError):
            await sent
        assert not loop.readers
        assert not loop.writers
        assert sock.closed
        with pytest.raises(bufkit.QueueFailedError):
            conn.write(b"late")

    run(body)


def test_close_flushes_then_closes_and_refuses_writes() -> None:
    """``close`` sends what is queued first; later writes raise QueueClosedError."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(1)])
        conn = connect(loop, pool, sock, Recorder())
        conn.write(b"last words")
        conn.close()
        with pytest.raises(bufkit.QueueClosedError):
            conn.write(b"more")
        await tick()
        assert not sock.closed
        loop.writable(sock.fileno())
        await conn.wait_closed()
        assert sock.wire == b"last words"
        assert sock.closed

    run(body)


def test_pooled_buffer_is_sent_without_copy_and_released() -> None:
    """A PooledBuffer handed to write goes back to the pool once sent."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket()
        conn = connect(loop, pool, sock, Recorder())
        buf = pool.acquire(100)
        buf.view[:5] = b"12345"
        conn.write(buf, nbytes=5)
        await tick()
        assert pool.stats().buffers_in_use == 0
        assert sock.wire == b"12345"
        conn.abort()

    run(body)


class NoReaderLoop(asyncio.SelectorEventLoop):
    """A loop without add_reader, like the Windows proactor loop."""

    add_reader = asyncio.AbstractEventLoop.add_reader


def test_loops_without_add_reader_are_refused_by_name() -> None:
    """start_server and open_connection raise UnsupportedLoopError naming the loop."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        with pytest.raises(bufkit.UnsupportedLoopError, match="NoReaderLoop"):
            await start_protocol_server(Recorder, "127.0.0.1", 0, pool=pool)
        with pytest.raises(bufkit.UnsupportedLoopError, match="NoReaderLoop"):
            await open_connection("127.0.0.1", 1, pool=pool)

    with asyncio.Runner(loop_factory=NoReaderLoop) as runner:
        runner.run(body())


def test_framing_error_fails_read_frame_without_logging() -> None:
    """A peer breaking the framing fails read_frame with the FramingError."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        reported: list[object] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        framer = functools.partial(bufkit.LengthPrefixedFramer, pool, max_frame=10)
        sock = FakeSocket(recv=[Deliver(b"\x00\x00\x01\x00" + b"x" * 20)])
        conn = connect(loop, pool, sock, framer=framer)
        loop.readable(sock.fileno())
        with pytest.raises(bufkit.FrameTooLarge):
            await conn.read_frame()
        await conn.wait_closed()
        assert sock.closed
        assert reported == []

    run(body)


def test_a_bug_in_the_protocol_is_reported_and_closes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception from data_received reaches the loop's exception handler."""

    class Buggy(Recorder):
        def data_received(self, view: memoryview) -> None:
            raise KeyError("oops")

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        sock = FakeSocket(recv=[Deliver(b"boom")])
        proto = Buggy()
        conn = connect(loop, pool, sock, proto)
        loop.readable(sock.fileno())
        await conn.wait_closed()
        assert isinstance(proto.lost, KeyError)
        assert [type(ctx["exception"]) for ctx in reported] == [KeyError]

    run(body)
    assert caplog.records == []  # reported once: to the loop, not logged again


def test_pause_and_resume_reading() -> None:
    """pause_reading removes the reader; resume_reading brings it back."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"later")])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        fd = sock.fileno()
        conn.pause_reading()
        assert fd not in loop.readers
        conn.resume_reading()
        loop.readable(fd)
        assert bytes(proto.data) == b"later"
        assert conn.get_extra_info("socket") is sock
        assert conn.get_extra_info("nothing", 42) == 42
        conn.abort()
        conn.resume_reading()  # closed: nothing to resume
        assert fd not in loop.readers

    run(body)


def test_read_frame_refuses_protocol_mode_and_two_waiters() -> None:
    """read_frame is for callback mode, one waiter at a time."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        proto_conn = connect(loop, pool, FakeSocket(), Recorder())
        with pytest.raises(RuntimeError, match="callback mode"):
            await proto_conn.read_frame()
        conn = connect(loop, pool, FakeSocket())
        first = asyncio.ensure_future(conn.read_frame())
        await tick()
        with pytest.raises(RuntimeError, match="already waiting"):
            await conn.read_frame()
        first.cancel()
        await tick()
        assert first.cancelled()
        conn.abort()
        assert await conn.read_frame() is None
        proto_conn.abort()

    run(body)


class FullListener:
    """A listening socket whose accept says the process is out of descriptors."""

    def __init__(self) -> None:
        self.accepts = 0

    def fileno(self) -> int:
        """A fake descriptor."""
        return 999_999

    def accept(self) -> tuple[object, object]:
        """Fail like a process at its descriptor limit."""
        self.accepts += 1
        raise OSError(errno.EMFILE, "Too many open files")

    def close(self) -> None:
        """Nothing to close."""


def test_accept_pauses_when_out_of_descriptors() -> None:
    """EMFILE stops accepting for a while, logs it, then accepting resumes."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        listener = FullListener()
        server = StreamServer(loop, [listener], None, factory=Recorder, backlog=10)  # type: ignore[list-item, arg-type]
        server._start()
        loop.readable(listener.fileno())
        assert listener.accepts == 1
        assert listener.fileno() not in loop.readers
        assert isinstance(reported[0]["exception"], OSError)
        server._resume_accepting(listener)  # type: ignore[arg-type]
        assert listener.fileno() in loop.readers
        server.close()
        server._resume_accepting(listener)  # type: ignore[arg-type]
        assert listener.fileno() not in loop.readers
        await server.wait_closed()

    run(body)


def test_take_buffer_echoes_without_a_copy() -> None:
    """A protocol can hand the read buffer itself to the write queue."""

    class ZeroCopyEcho(StreamProtocol):
        def connection_made(self, conn: Connection) -> None:
            self.conn = conn

        def data_received(self, view: memoryview) -> None:
            self.conn.write(self.conn.take_buffer(), nbytes=len(view))

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"m" * 5000)], send=[WouldBlock()])
        conn = connect(loop, pool, sock, ZeroCopyEcho())
        loop.readable(sock.fileno())
        assert pool.stats().buffers_in_use == 2  # 2048 + 2952 bytes, owned by the queue
        await tick()
        loop.writable(sock.fileno())
        assert sock.wire == b"m" * 5000
        assert pool.stats().buffers_in_use == 0
        with pytest.raises(RuntimeError):
            conn.take_buffer()
        conn.abort()

    run(body)


def test_writes_after_write_eof_are_refused_and_change_nothing() -> None:
    """write, writelines and send after write_eof raise QueueClosedError."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket()
        conn = connect(loop, pool, sock, Recorder())
        conn.write(b"last")
        conn.write_eof()
        with pytest.raises(bufkit.QueueClosedError):
            conn.write(b"more")
        with pytest.raises(bufkit.QueueClosedError):
            conn.writelines([b"more"])
        with pytest.raises(bufkit.QueueClosedError):
            conn.send(b"more")
        assert conn.pending_bytes == 4
        await tick()
        assert sock.wire == b"last"
        assert sock.calls[-1].op == "shutdown"
        assert sock.fileno() in loop.readers  # still reading
        conn.abort()

    run(body)


def test_close_removes_the_reader_at_once() -> None:
    """close stops reading immediately, even with data still to send."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock()])
        conn = connect(loop, pool, sock, Recorder())
        conn.write(b"queued")
        await tick()
        assert sock.fileno() in loop.readers
        conn.close()
        assert sock.fileno() not in loop.readers
        assert sock.fileno() in loop.writers
        loop.writable(sock.fileno())
        await conn.wait_closed()
        assert sock.wire == b"queued"

    run(body)


def test_a_peer_reset_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    """A reset reaches connection_lost; nothing above DEBUG is logged or reported."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        sock = FakeSocket(recv=[Fail(errno.ECONNRESET)])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        loop.readable(sock.fileno())
        await conn.wait_closed()
        assert isinstance(proto.lost, ConnectionResetError)
        assert reported == []

    caplog.set_level("DEBUG")
    run(body)
    assert [r for r in caplog.records if r.levelno > logging.DEBUG] == []


def test_frame_backlog_stops_the_current_read_event() -> None:
    """Over read_limit, no further read happens in the same readable event."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(b"f" * 2048)] * 4)
        conn = connect(loop, pool, sock, read_limit=1000)
        loop.readable(sock.fileno())
        assert len([c for c in sock.calls if c.op == "recv_into"]) == 1
        assert sock.fileno() not in loop.readers
        assert await conn.read_frame() == b"f" * 2048
        assert sock.fileno() in loop.readers
        conn.abort()

    run(body)
