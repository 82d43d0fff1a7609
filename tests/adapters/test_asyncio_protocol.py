"""PooledProtocol: pooled reads on any asyncio transport, default loop and uvloop."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import ssl
import struct
from collections.abc import Callable, Coroutine
from typing import Any, cast

import pytest

import bufkit
from bufkit.adapters.asyncio import PooledProtocol

pytestmark = pytest.mark.timeout(60)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def _uvloop_factory() -> LoopFactory:
    try:
        import uvloop
    except ImportError as exc:  # pragma: no cover - uvloop is a test dependency
        pytest.skip(f"uvloop cannot be imported here: {exc}")
    factory: LoopFactory = uvloop.new_event_loop
    return factory


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    """The default event loop, then uvloop."""
    if request.param == "uvloop":
        return _uvloop_factory()
    return asyncio.new_event_loop


def run_on(factory: LoopFactory, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a new loop from ``factory``."""
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


class FakeTransport(asyncio.Transport):
    """Just enough transport for protocol unit tests."""


class FakeProactorTransport(asyncio.Transport):
    """Looks like a transport of the Windows proactor loop."""


FakeProactorTransport.__module__ = "asyncio.proactor_events"


class Collect:
    """A read handler that keeps copies."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eofs = 0
        self.closed = 0

    def data_received(self, view: memoryview) -> None:
        """Keep a copy."""
        self.data += view

    def eof_received(self) -> bool | None:
        """Count."""
        self.eofs += 1
        return True

    def close(self) -> None:
        """Count."""
        self.closed += 1


def in_use(pool: bufkit.BufferPool) -> int:
    """Buffers lent by ``pool`` now."""
    return pool.stats().buffers_in_use


def test_get_buffer_lends_a_byte_view_and_buffer_updated_returns_it() -> None:
    """The filled view reaches the handler; the chunk is back right after."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        sink = Collect()
        proto = PooledProtocol(pool, sink)
        proto.connection_made(FakeTransport())
        buf = proto.get_buffer(-1)
        assert isinstance(buf, memoryview)
        assert buf.format == "B"
        assert not buf.readonly
        assert len(buf) == pool.largest_class
        assert proto.lent_bytes == pool.largest_class
        buf[:5] = b"hello"
        proto.buffer_updated(5)
        assert bytes(sink.data) == b"hello"
        assert in_use(pool) == 0
        assert proto.lent_bytes == 0
        proto.connection_lost(None)

    asyncio.run(body())


def test_unfilled_buffer_is_reused_then_returned_by_eof() -> None:
    """A get_buffer without buffer_updated lends the same chunk again, never two."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        sink = Collect()
        proto = PooledProtocol(pool, sink)
        proto.connection_made(FakeTransport())
        first = proto.get_buffer(-1)
        second = proto.get_buffer(-1)
        assert in_use(pool) == 1
        assert first is second
        assert proto.eof_received() is True
        assert sink.eofs == 1
        assert in_use(pool) == 0
        proto.connection_lost(None)
        assert sink.closed == 1

    asyncio.run(body())


def test_unfilled_buffer_comes_back_at_the_end_of_the_iteration() -> None:
    """The sweeper returns a chunk no read filled, so idle stays at zero."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        protos = [PooledProtocol(pool, Collect()) for _ in range(3)]
        for proto in protos:
            proto.connection_made(FakeTransport())
            proto.get_buffer(100)
        assert in_use(pool) == 3
        await asyncio.sleep(0)
        assert in_use(pool) == 0
        for proto in protos:
            proto.connection_lost(None)

    asyncio.run(body())


def test_a_bigger_request_replaces_the_unfilled_chunk() -> None:
    """Reuse happens only when the lent chunk is big enough."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        proto = PooledProtocol(pool, Collect())
        proto.connection_made(FakeTransport())
        assert len(proto.get_buffer(100)) == pool.size_classes[0]
        assert len(proto.get_buffer(5000)) == pool.size_classes[1]
        assert in_use(pool) == 1
        proto.connection_lost(None)
        assert in_use(pool) == 0

    asyncio.run(body())


def test_proactor_reads_keep_their_chunk_until_completion() -> None:
    """Where reads span iterations, the chunk stays lent (one per connection)."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        sink = Collect()
        proto = PooledProtocol(pool, sink, read_size=2048)
        proto.connection_made(FakeProactorTransport())
        buf = proto.get_buffer(-1)
        assert len(buf) == 2048
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert in_use(pool) == 1
        buf[:2] = b"ok"
        proto.buffer_updated(2)
        assert bytes(sink.data) == b"ok"
        proto.get_buffer(-1)
        proto.connection_lost(ConnectionResetError())
        assert in_use(pool) == 0

    asyncio.run(body())


def test_a_failing_handler_still_returns_the_chunk() -> None:
    """The chunk goes back even when data_received raises."""

    class Boom(PooledProtocol):
        def data_received(self, view: memoryview) -> None:
            raise ValueError("bad bytes")

    async def body() -> None:
        pool = bufkit.BufferPool()
        proto = Boom(pool)
        proto.connection_made(FakeTransport())
        proto.get_buffer(-1)
        with pytest.raises(ValueError, match="bad bytes"):
            proto.buffer_updated(3)
        assert in_use(pool) == 0

    asyncio.run(body())


def test_size_hint_policy() -> None:
    """The hint is honoured up to the largest class; read_size overrides it."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        proto = PooledProtocol(pool)
        proto.connection_made(FakeTransport())
        assert len(proto.get_buffer(0)) == pool.largest_class
        proto.eof_received()
        assert len(proto.get_buffer(1 << 30)) == pool.largest_class
        proto.eof_received()
        fixed = PooledProtocol(pool, read_size=3000)
        fixed.connection_made(FakeTransport())
        assert len(fixed.get_buffer(65536)) == pool.size_classes[1]
        fixed.connection_lost(None)
        proto.connection_lost(None)
        assert in_use(pool) == 0

    asyncio.run(body())


def test_read_size_must_be_positive() -> None:
    """A zero read size is refused."""
    with pytest.raises(ValueError, match="read_size"):
        PooledProtocol(bufkit.BufferPool(), read_size=0)


def test_buffer_updated_without_get_buffer_is_an_error() -> None:
    """The state machine of BufferedProtocol is enforced."""
    proto = PooledProtocol(bufkit.BufferPool())
    with pytest.raises(RuntimeError, match="without a lent buffer"):
        proto.buffer_updated(1)


def test_a_framer_plugs_in_and_gives_back_partial_frames() -> None:
    """A framer as handler gets whole frames; connection_lost frees a partial one."""

    async def body() -> None:
        pool = bufkit.BufferPool()
        frames: list[bytes] = []
        framer = bufkit.LengthPrefixedFramer(
            pool, lambda v: frames.append(bytes(v)), max_frame=1000
        )
        proto = PooledProtocol(pool, framer)
        proto.connection_made(FakeTransport())
        wire = b"".join(struct.pack("!I", len(p)) + p for p in (b"abc", b"hello"))
        wire += b"\x00\x00\x00\x09part"
        for i in range(0, len(wire), 4):
            buf = proto.get_buffer(-1)
            piece = wire[i : i + 4]
            buf[: len(piece)] = piece
            proto.buffer_updated(len(piece))
        assert frames == [b"abc", b"hello"]
        assert in_use(pool) == 1  # the partial frame
        proto.connection_lost(None)
        assert in_use(pool) == 0

    asyncio.run(body())


class Echo(PooledProtocol):
    """Echoes copies of what it reads (never the lent view itself)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        super().connection_made(transport)
        self.out = cast(asyncio.Transport, transport)  # uvloop's is no subclass

    def data_received(self, view: memoryview) -> None:
        """Echo a copy."""
        self.out.write(bytes(view))


async def _echo_through(
    pool: bufkit.BufferPool,
    payloads: list[bytes],
    server_ssl: ssl.SSLContext | None = None,
    client_ssl: ssl.SSLContext | None = None,
) -> int:
    """Echo each payload over its own connection; return pool buffers in use
    while every connection is open and idle."""
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Echo(pool), "127.0.0.1", 0, ssl=server_ssl
    )
    port = server.sockets[0].getsockname()[1]
    streams = []
    try:
        for payload in payloads:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port,
                ssl=client_ssl,
                server_hostname="localhost" if client_ssl else None,
            )
            streams.append((reader, writer))
            writer.write(payload)
            await writer.drain()
            got = await asyncio.wait_for(reader.readexactly(len(payload)), 20)
            assert hashlib.sha256(got).digest() == hashlib.sha256(payload).digest()
        for _ in range(3):
            await asyncio.sleep(0)
        idle_in_use = in_use(pool)
    finally:
        for _, writer in streams:
            writer.close()
        for _, writer in streams:
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        server.close()
        await server.wait_closed()
    return idle_in_use


def test_echo_over_tcp_on_both_loops(loop_factory: LoopFactory) -> None:
    """Payloads come back intact; idle connections hold no pool bytes."""
    pool = bufkit.BufferPool()
    payloads = [bytes([i]) * n for i, n in enumerate((1, 1000, 300_000))]

    async def body() -> None:
        assert await _echo_through(pool, payloads) == 0

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_echo_over_tls_on_both_loops(
    loop_factory: LoopFactory, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """TLS through PooledProtocol: intact data, zero pool bytes once idle."""
    pool = bufkit.BufferPool(poison=True)
    payloads = [b"x", bytes(range(256)) * 4000, b"tail" * 10]
    server_ctx, client_ctx = tls_contexts

    async def body() -> None:
        idle = await _echo_through(pool, payloads, server_ctx, client_ctx)
        assert idle == 0

    run_on(loop_factory, body())
    assert in_use(pool) == 0


def test_framed_tls_server(
    loop_factory: LoopFactory, tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """A framer behind PooledProtocol over TLS sees whole frames."""
    pool = bufkit.BufferPool()
    server_ctx, client_ctx = tls_contexts
    frames: list[bytes] = []
    done: list[asyncio.Event] = []

    def make() -> PooledProtocol:
        def on_frame(view: memoryview) -> None:
            frames.append(bytes(view))
            if len(frames) == 50:
                done[0].set()

        return PooledProtocol(
            pool, bufkit.LengthPrefixedFramer(pool, on_frame, max_frame=60_000)
        )

    async def body() -> None:
        done.append(asyncio.Event())
        loop = asyncio.get_running_loop()
        server = await loop.create_server(make, "127.0.0.1", 0, ssl=server_ctx)
        port = server.sockets[0].getsockname()[1]
        _, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=client_ctx, server_hostname="localhost"
        )
        for i in range(50):
            payload = bytes([i]) * (i * 1200)
            writer.write(struct.pack("!I", len(payload)) + payload)
        await writer.drain()
        await asyncio.wait_for(done[0].wait(), 20)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()

    run_on(loop_factory, body())
    assert frames == [bytes([i]) * (i * 1200) for i in range(50)]
    assert in_use(pool) == 0


class LineServer(PooledProtocol):
    """The how-to's migration step 1: asyncio code that assigns self.transport."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport the asyncio way."""
        super().connection_made(transport)
        self.transport = cast(asyncio.Transport, transport)
        self.pending = b""

    def data_received(self, view: memoryview) -> None:
        """Answer each line in upper case."""
        self.pending += view
        *lines, self.pending = self.pending.split(b"\n")
        for line in lines:
            self.transport.write(line.upper() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        """The typeshed signature, as in a ported asyncio protocol."""
        super().connection_lost(exc)


def test_a_ported_protocol_may_assign_its_transport(loop_factory: LoopFactory) -> None:
    """``self.transport = transport`` in connection_made works on both loops."""
    pool = bufkit.BufferPool()

    async def body() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: LineServer(pool), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"one\ntw")
        writer.write(b"o\n")
        got = await asyncio.wait_for(reader.readexactly(8), 10)
        writer.close()
        await writer.wait_closed()
        server.close()
        await server.wait_closed()
        assert got == b"ONE\nTWO\n"

    run_on(loop_factory, body())
    assert in_use(pool) == 0
