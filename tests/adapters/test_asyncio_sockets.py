"""The readiness stream over real loopback sockets, on the default loop and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import random
import resource
import socket
import struct
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    StreamProtocol,
    StreamServer,
    open_connection,
    start_protocol_server,
    start_server,
)

pytestmark = pytest.mark.timeout(120)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """The default event loop, then uvloop."""
    if request.param == "uvloop":
        try:
            import uvloop
        except ImportError as exc:  # pragma: no cover - uvloop is a test dependency
            pytest.skip(f"uvloop cannot be imported here: {exc}")
        factory: LoopFactory = uvloop.new_event_loop
        return factory
    return asyncio.new_event_loop


def run_on(factory: LoopFactory, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a new loop from ``factory``."""
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


def in_use(pool: bufkit.BufferPool) -> int:
    """Buffers lent by ``pool`` now."""
    return pool.stats().buffers_in_use


def port_of(server: StreamServer) -> int:
    """The port the server listens on."""
    port: int = server.sockets[0].getsockname()[1]
    return port


async def echo(conn: Connection) -> None:
    """Callback-mode echo: every received chunk goes straight back."""
    async for chunk in conn:
        conn.write(chunk)


def raise_nofile(want: int) -> None:
    """Raise the soft descriptor limit to ``want`` (bounded by the hard limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        target = want if hard == resource.RLIM_INFINITY else min(want, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def test_thousand_concurrent_echo_clients(loop_factory: LoopFactory) -> None:
    """1000 clients at once get their random payloads back, hash for hash."""
    raise_nofile(4096)
    pool = bufkit.BufferPool()
    rng = random.Random(1234)
    payloads = [rng.randbytes(rng.randrange(1, 40_000)) for _ in range(1000)]

    async def client(port: int, payload: bytes) -> bytes:
        conn = await open_connection("127.0.0.1", port, pool=pool)
        try:
            await conn.send(payload)
            conn.write_eof()
            got = bytearray()
            async for chunk in conn:
                got += chunk
            return hashlib.sha256(got).digest()
        finally:
            conn.close()
            await conn.wait_closed()

    async def body() -> None:
        async with await start_server(
            echo, "127.0.0.1", 0, pool=pool, backlog=1024
        ) as server:
            port = port_of(server)
            digests = await asyncio.wait_for(
                asyncio.gather(*(client(port, p) for p in payloads)), 90
            )
        assert digests == [hashlib.sha256(p).digest() for p in payloads]

    run_on(loop_factory, body())
    assert in_use(pool) == 0


class FramedEcho(StreamProtocol):
    """Protocol mode: echoes length-prefixed frames, one small write per piece."""

    def __init__(self, pool: bufkit.BufferPool) -> None:
        self.pool = pool
        self.conn: Connection | None = None

    def connection_made(self, conn: Connection) -> None:
        """Set up the framer."""
        self.conn = conn
        self.framer = bufkit.LengthPrefixedFramer(
            self.pool, self.on_frame, max_frame=60_000
        )

    def on_frame(self, view: memoryview) -> None:
        """Answer with header and payload as separate writes (gathered)."""
        assert self.conn is not None
        self.conn.write(struct.pack("!I", len(view)))
        self.conn.write(bytes(view))

    def data_received(self, view: memoryview) -> None:
        """Feed the framer."""
        self.framer.data_received(view)

    def eof_received(self) -> bool | None:
        """Done."""
        return self.framer.eof_received()

    def connection_lost(self, exc: BaseException | None) -> None:
        """Free any partial frame."""
        self.framer.close()


def test_protocol_mode_with_framers_on_both_sides(loop_factory: LoopFactory) -> None:
    """Framed request/response in protocol mode; read_frame with a framer."""
    pool = bufkit.BufferPool()
    frames = [bytes([i % 251]) * (i * 397 % 50_000) for i in range(200)]

    async def body() -> None:
        async with await start_protocol_server(
            lambda: FramedEcho(pool), "127.0.0.1", 0, pool=pool
        ) as server:
            conn = await open_connection(
                "127.0.0.1",
                port_of(server),
                pool=pool,
                framer=lambda on_frame: bufkit.LengthPrefixedFramer(
                    pool, on_frame, max_frame=60_000
                ),
            )
            for frame in frames:
                conn.write(struct.pack("!I", len(frame)) + frame)
            got = [await conn.read_frame() for _ in frames]
            conn.close()
            await conn.wait_closed()
        assert got == frames

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_slow_reader_blocks_drain_and_bounds_memory(loop_factory: LoopFactory) -> None:
    """A peer that does not read pauses the writer at the watermark."""
    pool = bufkit.BufferPool()
    chunk = b"s" * 16384
    high = 65536
    peak = 0
    written = 0
    total = 8 * 1024 * 1024

    async def writer(conn: Connection) -> None:
        nonlocal peak, written
        while written < total:
            conn.write(chunk)
            written += len(chunk)
            peak = max(peak, conn.pending_bytes)
            await conn.drain()
        await conn.send(b"")
        conn.write_eof()
        await conn.read_frame()  # until the reader is done

    async def body() -> None:
        async with await start_server(
            writer, "127.0.0.1", 0, pool=pool, high_water=high, low_water=high // 4
        ) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
            with contextlib.closing(sock):
                # The writer fills the socket buffers, then drain() blocks:
                # wait (bounded) until it has stopped above the watermark.
                deadline = time.monotonic() + 20
                last = -1
                while True:
                    await asyncio.sleep(0.1)
                    conns = server.connections
                    if (
                        written == last
                        and conns
                        and next(iter(conns)).pending_bytes > high
                    ):
                        break
                    assert time.monotonic() < deadline, "drain() never blocked"
                    last = written
                assert written < total  # drain() is blocking
                conn = next(iter(server.connections))
                assert high < conn.pending_bytes <= high + len(chunk)
                sock.setblocking(False)
                loop = asyncio.get_running_loop()
                received = 0
                while True:
                    data = await loop.sock_recv(sock, 1 << 20)
                    if not data:
                        break
                    received += len(data)
            assert received == total

    run_on(loop_factory, body())
    assert peak <= high + len(chunk)
    assert in_use(pool) == 0


def test_peer_reset_mid_write_fails_awaitables_with_the_oserror(
    loop_factory: LoopFactory,
) -> None:
    """A reset while sending fails send and drain with the socket's OSError."""
    pool = bufkit.BufferPool()
    errors: list[BaseException] = []
    lost: list[BaseException | None] = []
    outcomes: list[BaseException | None] = []
    started: list[asyncio.Event] = []

    class Flood(StreamProtocol):
        def connection_made(self, conn: Connection) -> None:
            self.conn = conn
            self.task = asyncio.ensure_future(self.flood())

        async def flood(self) -> None:
            started[0].set()
            waits: list[asyncio.Future[None]] = []
            try:
                while True:
                    waits = [
                        asyncio.ensure_future(self.conn.send(b"f" * 1_000_000)),
                        asyncio.ensure_future(self.conn.drain()),
                    ]
                    await asyncio.gather(*waits)
            except OSError as exc:
                errors.append(exc)
                await asyncio.wait(waits)
                outcomes.extend(fut.exception() for fut in waits)

        def connection_lost(self, exc: BaseException | None) -> None:
            lost.append(exc)

    async def body() -> None:
        started.append(asyncio.Event())
        protocols: list[Flood] = []

        def factory() -> Flood:
            protocols.append(Flood())
            return protocols[-1]

        async with await start_protocol_server(
            factory, "127.0.0.1", 0, pool=pool
        ) as server:
            sock = socket.create_connection(("127.0.0.1", port_of(server)))
            await asyncio.wait_for(started[0].wait(), 10)
            await asyncio.sleep(0.1)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            sock.close()  # RST, with unread data queued
            await asyncio.wait_for(protocols[0].task, 10)
            assert not server.connections

    run_on(loop_factory, body())
    assert len(errors) == 1
    assert isinstance(errors[0], ConnectionResetError | BrokenPipeError)
    assert lost == [errors[0]]
    assert all(out is None or out is errors[0] for out in outcomes)  # same object
    assert in_use(pool) == 0


def test_server_close_aborts_connections_and_tasks(loop_factory: LoopFactory) -> None:
    """Closing the server unregisters and closes everything it served."""
    pool = bufkit.BufferPool()
    cancelled: list[bool] = []

    async def stuck(conn: Connection) -> None:
        framer_conn = conn
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise
        finally:
            assert framer_conn.is_closing()

    async def body() -> None:
        loop = asyncio.get_running_loop()
        server = await start_server(stuck, "127.0.0.1", 0, pool=pool)
        clients = [
            await open_connection("127.0.0.1", port_of(server), pool=pool)
            for _ in range(20)
        ]
        while len(server.connections) < 20:
            await asyncio.sleep(0.01)
        server.close()
        await asyncio.wait_for(server.wait_closed(), 10)
        assert cancelled == [True] * 20
        assert not server.sockets
        for client in clients:
            assert await asyncio.wait_for(client.read_frame(), 10) is None
            client.close()
            await client.wait_closed()
        selector = getattr(loop, "_selector", None)
        if selector is not None:  # the default loop: only its self-pipe is left
            assert len(selector.get_map()) == 1

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_loop_shutdown_cleans_up_what_is_left_open(loop_factory: LoopFactory) -> None:
    """asyncio.Runner's shutdown aborts open servers and connections: no leaks."""
    pool = bufkit.BufferPool()
    partial = struct.pack("!I", 1000) + b"half"

    async def hold(conn: Connection) -> None:
        await conn.read_frame()

    async def body() -> None:
        server = await start_server(
            hold,
            "127.0.0.1",
            0,
            pool=pool,
            framer=lambda f: bufkit.LengthPrefixedFramer(pool, f, max_frame=5000),
        )
        conn = await open_connection("127.0.0.1", port_of(server), pool=pool)
        conn.write(partial)
        while in_use(pool) == 0:  # the server holds a partial frame
            await asyncio.sleep(0.01)

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_connect_errors_are_the_oserror(loop_factory: LoopFactory) -> None:
    """A refused connection raises the socket's own error."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()

    async def body() -> None:
        with pytest.raises(ConnectionRefusedError):
            await open_connection("127.0.0.1", port, pool=bufkit.BufferPool())

    run_on(loop_factory, body())


def test_given_sockets_writelines_and_serve_forever(loop_factory: LoopFactory) -> None:
    """Servers and clients over given sockets (Unix here); serve_forever closes."""
    pool = bufkit.BufferPool()
    reported: list[dict[str, Any]] = []

    async def shout(conn: Connection) -> None:
        line = await conn.read_frame()
        assert line is not None
        conn.writelines([line.upper(), b"!"])
        await conn.send(b"\n")
        raise LookupError("a bug in the callback")

    async def body() -> None:
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(lambda _loop, ctx: reported.append(ctx))
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind("")  # an abstract Unix address
        server = await start_server(shout, pool=pool, sock=listener)
        assert server.is_serving()
        assert "serving" in repr(server)
        forever = asyncio.ensure_future(server.serve_forever())
        client_sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        client_sock.connect(listener.getsockname())
        conn = await open_connection(pool=pool, sock=client_sock)
        assert "open" in repr(conn)
        await conn.send(b"hi")
        got = b""
        async for chunk in conn:
            got += chunk
        assert got == b"HI!\n"
        conn.close()
        await conn.wait_closed()
        forever.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await forever
        assert not server.is_serving()
        await server.wait_closed()

    run_on(loop_factory, body())
    assert [type(ctx["exception"]) for ctx in reported] == [LookupError]
    assert in_use(pool) == 0


def test_bind_failure_closes_what_was_opened() -> None:
    """A port already in use raises the OSError and leaks no socket."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]

    async def body() -> None:
        with pytest.raises(OSError, match="in use"):
            await start_server(
                echo, "127.0.0.1", port, pool=bufkit.BufferPool(), reuse_address=False
            )

    with contextlib.closing(taken):
        asyncio.run(body())
