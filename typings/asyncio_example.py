"""The asyncio adapter, used as a user would: types checked, never run."""

from __future__ import annotations

import asyncio
import functools
import ssl
from typing import assert_type

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    FramerFactory,
    PooledProtocol,
    StreamProtocol,
    StreamServer,
    create_connection,
    create_server,
    open_connection,
    open_protocol_connection,
    start_protocol_server,
    start_server,
)

pool = bufkit.BufferPool()


class Echo(PooledProtocol):
    """Level 1: a subclass overrides data_received and gets views."""

    def data_received(self, view: memoryview) -> None:
        transport = self.transport
        if isinstance(transport, asyncio.WriteTransport):
            transport.write(bytes(view))


def protocols() -> None:
    """PooledProtocol is a BufferedProtocol; framers are its handlers."""
    proto: asyncio.BufferedProtocol = Echo(pool)
    assert_type(Echo(pool).get_buffer(-1), memoryview)
    proto.buffer_updated(0)
    framed = PooledProtocol(
        pool, bufkit.LengthPrefixedFramer(pool, print, max_frame=1024)
    )
    assert_type(framed.lent_bytes, int)
    assert_type(framed.pool, bufkit.BufferPool)
    assert_type(framed.transport, asyncio.BaseTransport | None)
    PooledProtocol(pool, object())  # type: ignore[arg-type]
    PooledProtocol(pool, read_size="big")  # type: ignore[arg-type]


class LineServer(PooledProtocol):
    """Code ported from asyncio.Protocol: it keeps its transport itself."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)


class Greeter(StreamProtocol):
    """Level 2, protocol mode, with asyncio's callback signatures."""

    def connection_made(self, conn: Connection) -> None:
        conn.write(b"hello\n")

    def connection_lost(self, exc: Exception | None) -> None:
        assert_type(exc, Exception | None)


async def handle(conn: Connection) -> None:
    """Level 2, callback mode."""
    frame = await conn.read_frame()
    assert_type(frame, bytes | None)
    async for chunk in conn:
        assert_type(chunk, bytes)
        conn.write(chunk)
    assert_type(conn.send(b"now"), asyncio.Future[None])
    assert_type(await conn.send(b"bye"), None)
    await conn.drain()
    conn.write("text")  # type: ignore[arg-type]


async def handle_with(conn: Connection, greeting: bytes) -> None:
    """A handler taking more than the connection, bound with a lambda."""
    await conn.send(greeting)


async def servers() -> None:
    """Each mode has its entry point; the results are typed."""
    framer: FramerFactory = functools.partial(
        bufkit.LengthPrefixedFramer, pool, max_frame=4096
    )
    server = await start_server(handle, "127.0.0.1", 0, pool=pool, framer=framer)
    assert_type(server, StreamServer)
    await start_server(lambda conn: handle_with(conn, b"hi"), "127.0.0.1", 0, pool=pool)
    other = await start_protocol_server(Greeter, "127.0.0.1", 0, pool=pool)
    assert_type(other.connections, frozenset[Connection])
    conn = await open_connection("127.0.0.1", 8888, pool=pool)
    assert_type(conn, Connection)
    assert_type(conn.pending_bytes, int)
    pair = await open_protocol_connection(Greeter, "127.0.0.1", 8888, pool=pool)
    assert_type(pair, tuple[Connection, Greeter])
    await start_server(Greeter, "127.0.0.1", 0, pool=pool)  # type: ignore[arg-type]
    await start_server(lambda conn: Greeter(), "127.0.0.1", 0, pool=pool)  # type: ignore[arg-type, return-value]
    await start_protocol_server(handle, "127.0.0.1", 0, pool=pool)  # type: ignore[arg-type]
    await start_server(handle, "127.0.0.1", 0)  # type: ignore[call-arg]
    await open_connection("127.0.0.1", "80", pool=pool)  # type: ignore[arg-type]
    conn.pending  # type: ignore[attr-defined]  # noqa: B018


class Lines(asyncio.Protocol):
    """An unmodified asyncio protocol."""


async def tls(ctx: ssl.SSLContext) -> None:
    """TLS on the readiness stream and the drop-in for asyncio protocols."""
    server = await start_server(handle, "127.0.0.1", 0, pool=pool, ssl=ctx)
    assert_type(server, StreamServer)
    conn = await open_connection(
        "127.0.0.1", 443, pool=pool, ssl=ctx, server_hostname="example.org"
    )
    assert_type(conn.get_extra_info("peercert"), object)
    dropin = await create_server(Lines, "127.0.0.1", 0, ssl=ctx)
    assert_type(dropin, StreamServer)
    transport, protocol = await create_connection(Lines, "127.0.0.1", 443, ssl=ctx)
    assert_type(transport, asyncio.Transport)
    assert_type(protocol, asyncio.Protocol)
    await create_server(Lines, "127.0.0.1", 0, ssl="yes")  # type: ignore[arg-type]
