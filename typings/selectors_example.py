"""The selectors adapter as a user types it: protocols, sockets, the loop."""

from __future__ import annotations

import selectors
import signal
import socket
from typing import assert_type

from bufkit import BufferPool, PooledBuffer
from bufkit.adapters.selectors import (
    Connection,
    ConnectionProtocol,
    ConnectionState,
    Handle,
    Interest,
    Listener,
    Loop,
    SelectableSocket,
    StreamSocket,
)
from bufkit.servers import Echo, LineEcho
from bufkit.testing import FakeSelector, FakeSocket


class Upper:
    """A structural protocol: no base class, every callback spelled out."""

    conn: Connection

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Answer in upper case."""
        self.conn.write(bytes(view).upper())

    def eof_received(self) -> bool | None:
        """Keep writing after the peer's EOF."""
        return True

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Nothing to clean up."""

    def pause_writing(self) -> None:
        """Stop reading while the peer is slow."""
        self.conn.pause_reading()

    def resume_writing(self) -> None:
        """Read again."""
        self.conn.resume_reading()


class Quiet(ConnectionProtocol):
    """A protocol that subclasses the Protocol for its do-nothing defaults."""


class Incomplete:
    """Lacks most callbacks, so it is not a protocol."""

    def data_received(self, view: memoryview, /) -> None:
        """Drop."""


def protocols() -> list[ConnectionProtocol]:
    """Structural and nominal protocols both fit; an incomplete one does not."""
    bad: ConnectionProtocol = Incomplete()  # type: ignore[assignment]
    return [Upper(), Quiet(), Echo(), LineEcho(BufferPool()), bad]


def sockets(real: socket.socket, fake: FakeSocket) -> list[SelectableSocket]:
    """A real socket and the fake one are both selectable stream sockets."""
    streams: list[StreamSocket] = [real, fake]
    assert_type(streams[0], StreamSocket)
    return [real, fake]


def driving(conn: Connection, pool: BufferPool) -> None:
    """What a loop and a protocol call on a connection."""
    conn.on_readable()
    conn.on_writable()
    assert_type(conn.interest, Interest)
    assert_type(conn.state, ConnectionState)
    assert_type(conn.pending_bytes, int)
    assert_type(conn.take_buffer(), PooledBuffer)
    conn.write(b"bytes")
    conn.write(bytearray(b"copied"), lambda exc: None)
    conn.write(pool.acquire(10), nbytes=5)
    conn.writelines([b"a", memoryview(b"b")])
    conn.write("text")  # type: ignore[arg-type]
    conn.close()


def looping() -> None:
    """The ready loop on any selector."""
    loop = Loop(selector=selectors.SelectSelector())
    listener = loop.listen(Echo, "127.0.0.1", 0)
    assert_type(listener, Listener)
    assert_type(listener.address, tuple[str, int])
    assert_type(loop.call_later(1.0, print, "tick"), Handle)
    assert_type(loop.run_until(lambda: True, timeout=1.0), bool)
    assert_type(loop.call_soon_threadsafe(print, "woken"), Handle)
    assert_type(loop.add_signal_handler(signal.SIGTERM, loop.stop), None)
    assert_type(loop.remove_signal_handler(signal.SIGTERM), bool)
    loop.add_signal_handler("SIGTERM", loop.stop)  # type: ignore[arg-type]
    loop.listen(Incomplete, "127.0.0.1", 0)  # type: ignore[arg-type]
    loop.close()
    fake_loop = Loop(selector=FakeSelector())
    assert_type(fake_loop.add_socket(FakeSocket(), Quiet()), Connection)
    fake_loop.close()
