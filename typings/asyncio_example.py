"""The asyncio adapter, used as a user would: types checked, never run."""

from __future__ import annotations

import asyncio
import functools
from typing import assert_type

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    FramerFactory,
    PooledProtocol,
    StreamProtocol,
    StreamServer,
    open_connection,
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


class Greeter(StreamProtocol):
    """Level 2, protocol mode."""

    def connection_made(self, conn: Connection) -> None:
        conn.write(b"hello\n")


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


async def servers() -> None:
    """Both kinds of handler are accepted; the results are typed."""
    framer: FramerFactory = functools.partial(
        bufkit.LengthPrefixedFramer, pool, max_frame=4096
    )
    server = await start_server(handle, "127.0.0.1", 0, pool=pool, framer=framer)
    assert_type(server, StreamServer)
    other = await start_server(Greeter, "127.0.0.1", 0, pool=pool)
    assert_type(other.connections, frozenset[Connection])
    conn = await open_connection("127.0.0.1", 8888, pool=pool, protocol=Greeter())
    assert_type(conn, Connection)
    assert_type(conn.pending, int)
    await start_server(handle, "127.0.0.1", 0)  # type: ignore[call-arg]
    await open_connection("127.0.0.1", "80", pool=pool)  # type: ignore[arg-type]
