"""TLS on the readiness stream over loopback sockets, default loop and uvloop."""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
import ssl
import weakref
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

import bufkit
from bufkit.adapters.asyncio import (
    Connection,
    StreamProtocol,
    StreamServer,
    create_connection,
    create_server,
    open_connection,
    open_protocol_connection,
    start_protocol_server,
    start_server,
)
from tests._tls import make_tls_contexts

pytestmark = pytest.mark.timeout(120)

LoopFactory = Callable[[], asyncio.AbstractEventLoop]
MIB = 1 << 20


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


@pytest.fixture(scope="module")
def contexts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, Any]:
    """A server and a client context around one self-signed certificate."""
    folder: Path = tmp_path_factory.mktemp("tls")
    return make_tls_contexts(folder)


def run_on(factory: LoopFactory, coro: Coroutine[Any, Any, None]) -> None:
    """Run ``coro`` to completion on a new loop from ``factory``."""
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(coro)


def port_of(server: StreamServer | asyncio.Server) -> int:
    """The port the server listens on."""
    port: int = server.sockets[0].getsockname()[1]
    return port


async def echo(conn: Connection) -> None:
    """Callback-mode echo: every received chunk goes straight back."""
    async for chunk in conn:
        conn.write(chunk)


def test_asyncio_client_echoes_mib_through_tls_server(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """asyncio's own TLS client gets 1 MiB back byte for byte from start_server."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    payload = os.urandom(MIB)

    async def main() -> None:
        server = await start_server(
            echo, "127.0.0.1", 0, pool=pool, ssl=server_ctx, ssl_handshake_timeout=10
        )
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port_of(server),
                ssl=client_ctx,
                server_hostname="localhost",
            )
            writer.write(payload)
            got = await reader.readexactly(MIB)
            writer.close()
            await writer.wait_closed()
        assert got == payload

    run_on(loop_factory, main())
    assert pool.stats().buffers_in_use == 0


def test_bufkit_client_against_asyncio_tls_server(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """open_connection(ssl=) echoes 1 MiB through asyncio.start_server(ssl=)."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    payload = os.urandom(MIB)

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        while data := await r.read(65536):
            w.write(data)
            await w.drain()
        w.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        async with server:
            conn = await open_connection(
                "127.0.0.1",
                port_of(server),
                pool=pool,
                ssl=client_ctx,
                server_hostname="localhost",
            )
            await conn.send(payload)
            got = bytearray()
            while len(got) < MIB:
                frame = await conn.read_frame()
                assert frame is not None
                got += frame
            assert conn.get_extra_info("cipher") is not None
            assert isinstance(conn.get_extra_info("ssl_object"), ssl.SSLObject)
            assert conn.get_extra_info("sslcontext") is client_ctx
            cert = conn.get_extra_info("peercert")
            assert isinstance(cert, dict)
            assert "subject" in cert
            assert conn.get_extra_info("compression") is None
            assert isinstance(conn.get_extra_info("socket"), socket.socket)
            peer = conn.get_extra_info("peername")
            assert isinstance(peer, tuple)
            assert peer[1] == port_of(server)
            conn.close()
            await conn.wait_closed()
        assert bytes(got) == payload

    run_on(loop_factory, main())
    assert pool.stats().buffers_in_use == 0


class Recorder(StreamProtocol):
    """Keeps what connection_lost was given."""

    def __init__(self) -> None:
        self.lost: list[Exception | None] = []

    def connection_lost(self, exc: Exception | None) -> None:
        """Record the reason."""
        self.lost.append(exc)


def test_wrong_host_name_fails_handshake(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """A certificate for another name ends the client with TLSHandshakeError."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    refs: list[weakref.ref[Recorder]] = []

    async def main() -> None:
        server = await start_protocol_server(
            Recorder, "127.0.0.1", 0, pool=pool, ssl=server_ctx
        )
        async with server:
            conn, proto = await open_protocol_connection(
                Recorder,
                "127.0.0.1",
                port_of(server),
                pool=pool,
                ssl=client_ctx,
                server_hostname="not-this-host.example",
            )
            await conn.wait_closed()
            assert len(proto.lost) == 1
            assert isinstance(proto.lost[0], bufkit.TLSHandshakeError)
            refs.append(weakref.ref(proto))

    gc.disable()
    try:
        run_on(loop_factory, main())
        assert refs[0]() is None
    finally:
        gc.enable()
    assert pool.stats().buffers_in_use == 0


def test_plain_tcp_to_tls_port_fails_handshake(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """Plain bytes to a TLS server reach its protocol as TLSHandshakeError."""
    server_ctx, _ = contexts
    pool = bufkit.BufferPool()
    protocols: list[Recorder] = []

    def factory() -> Recorder:
        protocols.append(Recorder())
        return protocols[-1]

    async def main() -> None:
        server = await start_protocol_server(
            factory, "127.0.0.1", 0, pool=pool, ssl=server_ctx
        )
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            await reader.read()  # the server closes
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if protocols and protocols[0].lost:
                    break
                await asyncio.sleep(0.01)
        assert len(protocols) == 1
        assert isinstance(protocols[0].lost[0], bufkit.TLSHandshakeError)

    run_on(loop_factory, main())
    assert pool.stats().buffers_in_use == 0


def test_idle_tls_connections_hold_no_pool_bytes(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """500 handshaken idle TLS connections lend no buffer, on either side."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    count = 500

    async def main() -> None:
        server = await start_protocol_server(
            StreamProtocol, "127.0.0.1", 0, pool=pool, ssl=server_ctx
        )
        async with server:
            conns = []
            for _ in range(count):
                conn = await open_connection(
                    "127.0.0.1",
                    port_of(server),
                    pool=pool,
                    ssl=client_ctx,
                    server_hostname="localhost",
                )
                conns.append(conn)
            for _ in range(500):
                done = all(c.get_extra_info("cipher") for c in conns)
                if done and len(server.connections) == count:
                    break
                await asyncio.sleep(0.01)
            assert all(c.get_extra_info("cipher") for c in conns)
            assert len(server.connections) == count
            assert pool.stats().bytes_in_use == 0
            for conn in conns:
                conn.abort()

    run_on(loop_factory, main())


def test_bad_tls_arguments_are_refused(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """asyncio's rules: no name without ssl, no ssl without a name, a context."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    sock = socket.socket()

    async def main() -> None:
        with pytest.raises(ValueError, match="server_hostname='x'"):
            await open_connection("127.0.0.1", 1, pool=pool, server_hostname="x")
        with pytest.raises(ValueError, match="ssl_handshake_timeout=5"):
            await open_connection("127.0.0.1", 1, pool=pool, ssl_handshake_timeout=5)
        with pytest.raises(ValueError, match="server_hostname is required"):
            await open_connection(pool=pool, sock=sock, ssl=client_ctx)
        with pytest.raises(TypeError, match="'yes'"):
            await start_server(echo, "127.0.0.1", 0, pool=pool, ssl="yes")  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="ssl_handshake_timeout=1"):
            await start_server(echo, "127.0.0.1", 0, pool=pool, ssl_handshake_timeout=1)
        with pytest.raises(ValueError, match="-1"):
            await start_protocol_server(
                StreamProtocol,
                "127.0.0.1",
                0,
                pool=pool,
                ssl=server_ctx,
                ssl_handshake_timeout=-1,
            )

    try:
        run_on(asyncio.new_event_loop, main())
    finally:
        sock.close()


class LineEcho(asyncio.Protocol):
    """An unmodified asyncio line protocol: answers each line upper-cased."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = b""
        self.lost: list[Exception | None] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Keep the transport."""
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        """Answer every complete line."""
        assert type(data) is bytes
        assert self.transport is not None
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        for line in lines:
            self.transport.write(line.upper() + b"\n")

    def connection_lost(self, exc: Exception | None) -> None:
        """Record the reason."""
        self.lost.append(exc)
        self.transport = None


def test_drop_in_runs_unmodified_asyncio_protocol(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """create_server(ssl=) serves an asyncio line protocol to asyncio's client."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    made: list[weakref.ref[LineEcho]] = []

    def factory() -> LineEcho:
        proto = LineEcho()
        made.append(weakref.ref(proto))
        return proto

    async def main() -> None:
        server = await create_server(factory, "127.0.0.1", 0, ssl=server_ctx, pool=pool)
        async with server:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1",
                port_of(server),
                ssl=client_ctx,
                server_hostname="localhost",
            )
            lines = [os.urandom(300).hex().encode() for _ in range(200)]
            writer.write(b"\n".join(lines) + b"\n")
            for line in lines:
                assert await reader.readline() == line.upper() + b"\n"
            writer.close()
            await writer.wait_closed()
            for _ in range(200):
                if made[0]() is None:
                    break
                await asyncio.sleep(0.01)

    gc.disable()
    try:
        run_on(loop_factory, main())
        assert len(made) == 1
        assert made[0]() is None
    finally:
        gc.enable()
    assert pool.stats().bytes_in_use == 0


class Client(asyncio.Protocol):
    """Collects what arrives and how the connection ended."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.done: asyncio.Future[Exception | None] = (
            asyncio.get_running_loop().create_future()
        )

    def data_received(self, data: bytes) -> None:
        """Collect."""
        self.data += data

    def connection_lost(self, exc: Exception | None) -> None:
        """Resolve ``done`` with the reason."""
        self.done.set_result(exc)


def test_drop_in_client_and_transport_methods(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """create_connection(ssl=) echoes 1 MiB; the transport answers like asyncio's."""
    server_ctx, client_ctx = contexts
    payload = os.urandom(MIB)

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(await r.readexactly(MIB))
        await w.drain()
        w.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        async with server:
            transport, proto = await create_connection(
                Client,
                "127.0.0.1",
                port_of(server),
                ssl=client_ctx,
                server_hostname="localhost",
            )
            assert isinstance(proto, Client)
            assert transport.get_protocol() is proto
            assert transport.can_write_eof() is False
            assert transport.is_reading()
            transport.writelines([payload[:1000], bytearray(payload[1000:])])
            with pytest.raises(NotImplementedError):
                transport.write_eof()
            assert await proto.done is None
            assert bytes(proto.data) == payload
            assert transport.is_closing()
            assert transport.get_write_buffer_size() == 0

    run_on(loop_factory, main())


class Watched(Client):
    """A client that records each callback and what TLS said at connection_made."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.cipher: object = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Record the cipher: asyncio knows it only after the handshake."""
        self.events.append("made")
        self.cipher = transport.get_extra_info("cipher")

    def connection_lost(self, exc: Exception | None) -> None:
        """Record, then resolve ``done``."""
        self.events.append("lost")
        super().connection_lost(exc)


def test_drop_in_client_is_made_after_the_handshake(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """create_connection(ssl=) returns once connection_made ran after the handshake."""
    server_ctx, client_ctx = contexts

    async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(await r.readexactly(5))
        await w.drain()
        w.close()

    async def main() -> None:
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_ctx)
        async with server:
            transport, proto = await create_connection(
                Watched,
                "127.0.0.1",
                port_of(server),
                ssl=client_ctx,
                server_hostname="localhost",
            )
            assert isinstance(proto, Watched)
            assert proto.events == ["made"]
            assert isinstance(proto.cipher, tuple)
            transport.write(b"hello")
            assert await proto.done is None
            assert bytes(proto.data) == b"hello"

    run_on(loop_factory, main())


def test_drop_in_client_handshake_failure_raises(
    loop_factory: LoopFactory, contexts: tuple[ssl.SSLContext, ssl.SSLContext]
) -> None:
    """A wrong host name makes create_connection raise; the protocol is never called."""
    server_ctx, client_ctx = contexts
    pool = bufkit.BufferPool()
    made: list[Watched] = []

    def factory() -> Watched:
        made.append(Watched())
        return made[-1]

    async def main() -> None:
        server = await asyncio.start_server(
            lambda r, w: None, "127.0.0.1", 0, ssl=server_ctx
        )
        async with server:
            with pytest.raises(bufkit.TLSHandshakeError) as caught:
                await create_connection(
                    factory,
                    "127.0.0.1",
                    port_of(server),
                    ssl=client_ctx,
                    server_hostname="wrong.example",
                    pool=pool,
                )
            assert isinstance(caught.value, ssl.SSLError)
            await asyncio.sleep(0.05)  # a late connection_lost would show here

    run_on(loop_factory, main())
    assert len(made) == 1
    assert made[0].events == []
    assert pool.stats().buffers_in_use == 0


def test_drop_in_server_handshake_failure_is_one_log_line(
    loop_factory: LoopFactory,
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Plain bytes to create_server(ssl=): one log line, the protocol never called."""
    server_ctx, _ = contexts
    pool = bufkit.BufferPool()
    made: list[Watched] = []

    def factory() -> Watched:
        made.append(Watched())
        return made[-1]

    async def main() -> None:
        server = await create_server(factory, "127.0.0.1", 0, ssl=server_ctx, pool=pool)
        async with server:
            reader, writer = await asyncio.open_connection("127.0.0.1", port_of(server))
            writer.write(b"GET / HTTP/1.0\r\n\r\n")
            assert await reader.read() == b""  # the server closes
            writer.close()
            await writer.wait_closed()
            for _ in range(100):
                if not server.connections:
                    break
                await asyncio.sleep(0.01)
            assert not server.connections

    caplog.set_level(logging.DEBUG, logger="bufkit")
    run_on(loop_factory, main())
    assert len(made) == 1
    assert made[0].events == []
    records = [r for r in caplog.records if r.name.startswith("bufkit")]
    assert len(records) == 1
    assert "handshake" in records[0].getMessage()
    assert records[0].exc_info is None
    assert pool.stats().buffers_in_use == 0


class Paced(asyncio.Protocol):
    """Records pause_writing and resume_writing."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def pause_writing(self) -> None:
        """Record."""
        self.events.append("pause")

    def resume_writing(self) -> None:
        """Record."""
        self.events.append("resume")


def test_drop_in_write_buffer_limits_follow_asyncio(
    loop_factory: LoopFactory,
) -> None:
    """set/get_write_buffer_limits keep asyncio's rules; raising high resumes."""

    async def main() -> None:
        stalled = asyncio.Event()

        async def serve(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await stalled.wait()  # reads nothing until the test is done
            w.close()

        server = await asyncio.start_server(serve, "127.0.0.1", 0)
        async with server:
            transport, proto = await create_connection(
                Paced, "127.0.0.1", port_of(server)
            )
            assert isinstance(proto, Paced)
            assert transport.get_write_buffer_limits() == (16384, 65536)
            transport.set_write_buffer_limits(high=1000)
            assert transport.get_write_buffer_limits() == (250, 1000)
            transport.set_write_buffer_limits(low=100)
            assert transport.get_write_buffer_limits() == (100, 400)
            with pytest.raises(ValueError, match=r"high=1, low=2"):
                transport.set_write_buffer_limits(high=1, low=2)
            assert transport.get_write_buffer_limits() == (100, 400)
            transport.set_write_buffer_limits()
            chunk = b"p" * 65536
            for _ in range(400):
                if proto.events:
                    break
                transport.write(chunk)
                await asyncio.sleep(0)
            assert proto.events == ["pause"]
            pending = transport.get_write_buffer_size()
            transport.set_write_buffer_limits(high=4 * pending, low=2 * pending)
            assert proto.events == ["pause", "resume"]
            transport.abort()
            stalled.set()

    run_on(loop_factory, main())
