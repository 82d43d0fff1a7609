"""Teardown and re-entrancy of the readiness stream: callbacks that raise or stop it."""

from __future__ import annotations

import asyncio
import errno
from typing import Any

import pytest

import bufkit
from bufkit.adapters.asyncio import Connection
from bufkit.testing import Accept, Deliver, Fail, FakeSocket, WouldBlock

from .test_asyncio_stream import ReadinessFake, Recorder, connect, run, tick

pytestmark = pytest.mark.timeout(30)

FULL = b"r" * 2048  # fills the reader's first buffer: without a stop it reads again


def reporting(loop: ReadinessFake) -> list[dict[str, Any]]:
    """Collect what reaches the loop's exception handler."""
    reported: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
    return reported


def raise_lookup(exc: BaseException | None) -> None:
    """A completion callback with a bug."""
    raise LookupError("completion bug")


def logged(caplog: pytest.LogCaptureFixture, kind: type[BaseException]) -> int:
    """Log records that carry an exception of ``kind``."""
    return sum(
        1
        for record in caplog.records
        if record.exc_info and isinstance(record.exc_info[1], kind)
    )


def test_on_done_raising_at_abort_still_closes_and_tells_the_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A completion that raises while abort fails it: socket closed, lost called."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock()])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        conn.write(b"never sent", raise_lookup)
        await tick()
        conn.abort()
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert sock.closed
        assert proto.events == ["made", "lost"]
        assert not loop.readers
        assert not loop.writers

    run(body)
    assert logged(caplog, LookupError) == 1


def test_on_done_raising_at_reset_still_closes_and_tells_the_protocol(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A completion that raises while a reset fails it: the reset still tears down."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[WouldBlock()], recv=[Fail(errno.EPIPE)])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        conn.write(b"never sent", raise_lookup)
        await tick()
        loop.readable(sock.fileno())
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert sock.closed
        assert proto.events == ["made", "lost"]
        assert isinstance(proto.lost, BrokenPipeError)

    run(body)
    assert logged(caplog, LookupError) == 1


def test_completion_raising_in_a_flush_ends_the_connection_instead_of_stalling(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A completion that raises mid-flush aborts with it: nothing stays queued."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(send=[Accept(10), WouldBlock()])
        proto = Recorder()
        conn = connect(loop, pool, sock, proto)
        conn.write(b"a" * 10, raise_lookup)
        rest = conn.send(b"b" * 100)
        await tick()
        with pytest.raises(LookupError):
            await rest
        await asyncio.wait_for(conn.wait_closed(), 5)
        assert isinstance(proto.lost, LookupError)
        assert sock.closed
        assert sock.wire == b"a" * 10
        assert not loop.writers

    run(body)
    assert logged(caplog, LookupError) == 1


class PauseBug(Recorder):
    """pause_writing has a bug."""

    def pause_writing(self) -> None:
        """Raise."""
        super().pause_writing()
        raise LookupError("pause_writing bug")


def test_pause_writing_raising_in_write_still_sends_everything() -> None:
    """A pause_writing that raises is reported once; the data still leaves."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        reported = reporting(loop)
        sock = FakeSocket(send=[Accept(50), WouldBlock()])
        proto = PauseBug()
        conn = connect(loop, pool, sock, proto, high_water=100, low_water=10)
        conn.write(b"p" * 1000)
        assert proto.events == ["made", "pause"]
        for _ in range(5):
            await tick()
            if sock.fileno() in loop.writers:
                loop.writable(sock.fileno())
        assert sock.wire == b"p" * 1000
        assert proto.events == ["made", "pause", "resume"]
        assert [type(ctx["exception"]) for ctx in reported] == [LookupError]
        assert not conn.is_closing()
        conn.abort()

    run(body)


class Stopper(Recorder):
    """Calls ``how`` on its connection from the first data_received."""

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how
        self.reads = 0

    def connection_made(self, conn: Connection) -> None:
        """Keep the connection."""
        super().connection_made(conn)
        self.conn = conn

    def data_received(self, view: memoryview) -> None:
        """Count, and stop the connection the first time."""
        super().data_received(view)
        self.reads += 1
        if self.reads == 1:
            getattr(self.conn, self.how)()


@pytest.mark.parametrize("how", ["pause_reading", "close", "abort"])
def test_stopping_inside_data_received_ends_the_read_event(how: str) -> None:
    """pause_reading, close or abort in data_received: no further read this event."""

    async def body(loop: ReadinessFake, pool: bufkit.BufferPool) -> None:
        sock = FakeSocket(recv=[Deliver(FULL)] * 6)
        proto = Stopper(how)
        conn = connect(loop, pool, sock, proto)
        loop.readable(sock.fileno())
        assert proto.reads == 1
        assert bytes(proto.data) == FULL
        assert sock.fileno() not in loop.readers
        assert len([c for c in sock.calls if c.op == "recv_into"]) == 1
        conn.abort()
        await conn.wait_closed()

    run(body)
