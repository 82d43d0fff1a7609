"""Servers and connections over loopback on both loops: failures, modes and memory."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import socket
import struct
import weakref
from collections.abc import Iterator
from typing import Any

import pytest

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    StreamProtocol,
    open_connection,
    open_protocol_connection,
    start_protocol_server,
    start_server,
)

from .test_asyncio_sockets import LoopFactory, in_use, loop_factory, port_of, run_on

__all__ = ["loop_factory"]

pytestmark = pytest.mark.timeout(60)


class Bug(StreamProtocol):
    """connection_made has a bug."""

    def connection_made(self, conn: Connection) -> None:
        """Raise."""
        raise LookupError("connection_made bug")


def broken_factory() -> StreamProtocol:
    """A protocol factory with a bug."""
    raise LookupError("factory bug")


def client_sees_the_end(port: int) -> bytes:
    """Connect with a blocking socket and read until the server ends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        try:
            return sock.recv(100)
        except ConnectionResetError:
            return b""


@pytest.mark.parametrize("factory", [Bug, broken_factory], ids=["made", "factory"])
def test_a_failing_protocol_closes_the_socket_and_leaves_no_entry(
    loop_factory: LoopFactory, factory: Any
) -> None:
    """A factory or connection_made that raises: reported, closed, forgotten."""
    pool = bufkit.BufferPool()
    reported: list[dict[str, Any]] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        async with await start_protocol_server(
            factory, "127.0.0.1", 0, pool=pool
        ) as server:
            got = await asyncio.wait_for(
                asyncio.to_thread(client_sees_the_end, port_of(server)), 10
            )
            assert got == b""
            for _ in range(10):
                await asyncio.sleep(0)
            assert not server.connections
        assert [type(ctx["exception"]) for ctx in reported] == [LookupError]

    run_on(loop_factory, body())
    assert in_use(pool) == 0


@contextlib.contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected pair of TCP sockets on 127.0.0.1."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _addr = listener.accept()
    with client, server:
        yield client, server


class Held(StreamProtocol):
    """Keeps its connection, as protocols do; remembers being told it is gone."""

    def __init__(self) -> None:
        self.lost = False

    def connection_made(self, conn: Connection) -> None:
        """Keep the connection: a cycle until the connection is lost."""
        self.conn = conn

    def connection_lost(self, exc: Exception | None) -> None:
        """Record."""
        self.lost = True


@pytest.mark.parametrize("end", ["close", "abort", "reset"])
def test_a_finished_connection_is_freed_without_the_cyclic_gc(
    loop_factory: LoopFactory, end: str
) -> None:
    """After close, abort or a peer reset, refcounting alone frees conn and protocol."""
    pool = bufkit.BufferPool()

    async def body(ours: socket.socket, peer: socket.socket) -> None:
        conn, proto = await open_protocol_connection(Held, pool=pool, sock=ours.dup())
        conn.write(b"x" * 100)
        await conn.send(b"y")
        if end == "reset":
            peer.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            peer.close()
        else:
            getattr(conn, end)()
        await asyncio.wait_for(conn.wait_closed(), 10)
        assert proto.lost
        refs = weakref.ref(conn), weakref.ref(proto)
        del conn, proto
        for _ in range(3):
            await asyncio.sleep(0)
        assert [ref() for ref in refs] == [None, None]

    gc.collect()
    gc.disable()
    try:
        with tcp_pair() as (ours, peer):
            run_on(loop_factory, body(ours, peer))
    finally:
        gc.enable()
    assert in_use(pool) == 0


@pytest.mark.parametrize("end", ["close", "reset"])
def test_a_finished_framed_connection_is_freed_without_the_cyclic_gc(
    loop_factory: LoopFactory, end: str
) -> None:
    """Callback mode with a framer holding a partial frame: freed by refcounting."""
    pool = bufkit.BufferPool()

    async def body(ours: socket.socket, peer: socket.socket) -> None:
        conn = await open_connection(
            pool=pool,
            sock=ours.dup(),
            framer=lambda f: bufkit.LengthPrefixedFramer(pool, f, max_frame=5000),
        )
        peer.sendall(struct.pack("!I", 3) + b"abc" + struct.pack("!I", 1000) + b"x")
        assert await asyncio.wait_for(conn.read_frame(), 10) == b"abc"
        while in_use(pool) == 0:  # the framer holds the partial frame
            await asyncio.sleep(0.01)
        if end == "reset":
            peer.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            peer.close()
        else:
            conn.close()
        await asyncio.wait_for(conn.wait_closed(), 10)
        ref = weakref.ref(conn)
        del conn
        for _ in range(3):
            await asyncio.sleep(0)
        assert ref() is None

    gc.collect()
    gc.disable()
    try:
        with tcp_pair() as (ours, peer):
            run_on(loop_factory, body(ours, peer))
    finally:
        gc.enable()
    assert in_use(pool) == 0


async def shout(conn: Connection, suffix: bytes) -> None:
    """A handler that takes a second argument, bound with a lambda."""
    line = await conn.read_frame()
    assert line is not None
    await conn.send(line.upper() + suffix)


def ask(port: int, question: bytes) -> bytes:
    """Send ``question`` over a blocking socket; read until the server ends it."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(question)
        got = b""
        with contextlib.suppress(ConnectionResetError):
            while chunk := sock.recv(65536):
                got += chunk
        return got


def test_start_server_awaits_what_a_lambda_handler_returns(
    loop_factory: LoopFactory,
) -> None:
    """``start_server(lambda conn: handle(conn, x))`` works as asyncio's does."""
    pool = bufkit.BufferPool()

    async def body() -> None:
        async with await start_server(
            lambda conn: shout(conn, b"!"), "127.0.0.1", 0, pool=pool
        ) as server:
            got = await asyncio.to_thread(ask, port_of(server), b"hey")
        assert got == b"HEY!"

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_a_handler_returning_no_awaitable_is_a_reported_type_error(
    loop_factory: LoopFactory,
) -> None:
    """A handler that returns a protocol: TypeError reported, the client not hung."""
    pool = bufkit.BufferPool()
    reported: list[dict[str, Any]] = []

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        async with await start_server(
            lambda conn: Held(),  # type: ignore[arg-type, return-value]
            "127.0.0.1",
            0,
            pool=pool,
        ) as server:
            got = await asyncio.to_thread(ask, port_of(server), b"hey")
            for _ in range(10):
                await asyncio.sleep(0)
            assert not server.connections
        assert got == b""

    run_on(loop_factory, body())
    assert [type(ctx["exception"]) for ctx in reported] == [TypeError]
    assert "start_protocol_server" in str(reported[0]["exception"])
    assert in_use(pool) == 0


def test_start_server_refuses_a_protocol_class() -> None:
    """A StreamProtocol class given to start_server: TypeError naming it, no socket."""

    async def body() -> None:
        with pytest.raises(TypeError, match=r"Held.*start_protocol_server"):
            await start_server(Held, "127.0.0.1", 0, pool=bufkit.BufferPool())  # type: ignore[arg-type]

    asyncio.run(body())


class PauseBug(StreamProtocol):
    """Writes 4 MiB at once; its pause_writing has a bug."""

    def __init__(self) -> None:
        self.pauses = 0

    def connection_made(self, conn: Connection) -> None:
        """Write everything (more than the socket buffer), then close once sent."""
        sock = conn.get_extra_info("socket")
        assert isinstance(sock, socket.socket)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 131072)
        conn.write(bytes(range(256)) * 16384)
        conn.close()

    def pause_writing(self) -> None:
        """Count, then raise."""
        self.pauses += 1
        raise LookupError("pause_writing bug")


def test_a_raising_pause_writing_does_not_stall_a_large_write(
    loop_factory: LoopFactory,
) -> None:
    """4 MiB written at once arrives whole though pause_writing raises."""
    pool = bufkit.BufferPool()
    reported: list[dict[str, Any]] = []
    protocols: list[PauseBug] = []

    def factory() -> PauseBug:
        protocols.append(PauseBug())
        return protocols[-1]

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        async with await start_protocol_server(
            factory, "127.0.0.1", 0, pool=pool
        ) as server:
            got = await asyncio.wait_for(
                asyncio.to_thread(ask, port_of(server), b""), 30
            )
        assert got == bytes(range(256)) * 16384

    run_on(loop_factory, body())
    assert protocols[0].pauses == 1
    assert [type(ctx["exception"]) for ctx in reported] == [LookupError]
