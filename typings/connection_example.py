"""The connection core as an adapter author and a protocol author type it."""

from __future__ import annotations

import asyncio
import socket
import ssl
from collections.abc import Callable, Mapping
from typing import assert_type

from bufkit import (
    CONNECTION_TRANSITIONS,
    BufferPool,
    Connection,
    ConnectionEvent,
    ConnectionProtocol,
    ConnectionState,
    DeferCallback,
    Interest,
    InterestCallback,
    PooledBuffer,
    StreamSocket,
)
from bufkit.testing import FakeSocket


class Ported(asyncio.Protocol):
    """Code ported from asyncio: its connection_lost signature is typeshed's."""

    def connection_lost(self, exc: Exception | None) -> None:
        """Nothing to clean up."""


class Native(ConnectionProtocol):
    """A protocol with the same connection_lost signature type-checks."""

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Nothing to clean up."""


class Narrower(ConnectionProtocol):
    """Taking less than ``Exception | None`` breaks the contract."""

    def connection_lost(self, exc: OSError, /) -> None:  # type: ignore[override]
        """Wrong: the core may pass None or any exception."""


def build(pool: BufferPool, sock: socket.socket, tls: ssl.SSLSocket) -> Connection:
    """The pool first, then the socket and the protocol; hooks by keyword."""
    wanted: dict[Connection, Interest] = {}
    deferred: list[Callable[[], object]] = []

    def on_interest(conn: Connection, interest: Interest) -> None:
        wanted[conn] = interest

    hook: InterestCallback = on_interest
    defer: DeferCallback = deferred.append
    conn = Connection(pool, sock, Native(), on_interest=hook, defer=defer)
    Connection(pool, tls, Native(), on_interest=hook)  # an SSLSocket fits too
    Connection(pool, FakeSocket(), Native(), on_interest=hook)
    Connection(sock, pool, Native(), on_interest=hook)  # type: ignore[arg-type]
    Connection(pool, sock, Native(), hook)  # type: ignore[call-arg]
    return conn


def drive(conn: Connection, pool: BufferPool) -> None:
    """Inputs and read-only state."""
    conn.start()
    conn.on_readable()
    conn.on_writable()
    assert_type(conn.interest, Interest)
    assert_type(conn.state, ConnectionState)
    assert_type(conn.pending_bytes, int)
    assert_type(conn.reading, bool)
    assert_type(conn.writing_paused, bool)
    assert_type(conn.closed, bool)
    assert_type(conn.socket, StreamSocket)
    assert_type(conn.protocol, ConnectionProtocol | None)
    assert_type(conn.take_buffer(), PooledBuffer)
    conn.write(b"bytes", lambda exc: None)
    conn.write(pool.acquire(10), nbytes=5)
    conn.writelines([b"a", memoryview(b"b")])
    conn.write("text")  # type: ignore[arg-type]
    conn.pause_reading()
    conn.resume_reading()
    conn.write_eof()
    conn.close()
    conn.abort()


def table() -> None:
    """The lifecycle table has the package's one shape."""
    assert_type(
        CONNECTION_TRANSITIONS,
        Mapping[tuple[ConnectionState, ConnectionEvent], ConnectionState],
    )
    assert_type(Interest.READ | Interest.WRITE, Interest)
