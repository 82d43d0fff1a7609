"""The selectors adapter over TLS: real sockets on 127.0.0.1, peers we did not write."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import socket
import ssl
import subprocess
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest

from bufkit import BufferPool, Connection, ConnectionProtocol, TLSHandshakeError
from bufkit.adapters.selectors import Connector, Loop
from bufkit.servers import Echo
from tests._tls import handshake, self_signed, wrap_pair
from tests.adapters._selectors_support import Recorder

pytestmark = pytest.mark.slow

OPENSSL = "/usr/bin/openssl"


class Material:
    """A server certificate, a client certificate and contexts around them."""

    def __init__(self, folder: Path) -> None:
        (folder / "server").mkdir()
        (folder / "client").mkdir()
        self.cert, self.key = self_signed(folder / "server")
        self.client_cert, self.client_key = self_signed(folder / "client")

    def server(
        self,
        *,
        require_client: bool = False,
        version: ssl.TLSVersion | None = None,
    ) -> ssl.SSLContext:
        """A server context; optionally demanding the client certificate."""
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(self.cert, self.key)
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(cafile=str(self.client_cert))
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx

    def client(
        self, *, with_cert: bool = False, version: ssl.TLSVersion | None = None
    ) -> ssl.SSLContext:
        """A client context trusting the server certificate."""
        ctx = ssl.create_default_context(cafile=str(self.cert))
        if with_cert:
            ctx.load_cert_chain(self.client_cert, self.client_key)
        if version is not None:
            ctx.minimum_version = ctx.maximum_version = version
        return ctx


@pytest.fixture(scope="module")
def material(tmp_path_factory: pytest.TempPathFactory) -> Material:
    """Certificates for this module's tests."""
    return Material(tmp_path_factory.mktemp("tlsmat"))


@pytest.fixture
def loop() -> Iterator[Loop]:
    """A fresh loop, closed after the test."""
    loop = Loop(pool=BufferPool())
    try:
        yield loop
    finally:
        loop.close()


class Keep(ConnectionProtocol):
    """Record plaintext and the end of one connection."""

    def __init__(self, store: list[Keep]) -> None:
        store.append(self)
        self.conn: Connection | None = None
        self.data = bytearray()
        self.lost: list[Exception | None] = []

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Record the bytes."""
        self.data += view

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record the end."""
        self.lost.append(exc)


class HTTPResponder(ConnectionProtocol):
    """Answer one HTTP request with a fixed body, then close."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.request = bytearray()

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Answer once the request head is complete."""
        self.request += view
        if b"\r\n\r\n" in self.request and self.conn is not None:
            body = b"hello over tls\n"
            self.conn.write(
                b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n"
                b"Connection: close\r\n\r\n%s" % (len(body), body)
            )
            self.conn.close()


def _in_thread(target: object) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def run() -> None:
        try:
            out.append(target())  # type: ignore[operator]
        except BaseException as exc:  # the test reads it
            out.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, out


def _serve_while(loop: Loop, thread: threading.Thread, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while thread.is_alive() and time.monotonic() < deadline:
        loop.run_once(0.02)


@pytest.mark.parametrize("size", [1, 4000, 16384, 50_000])
def test_decrypted_bytes_past_the_read_budget_are_read(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], size: int
) -> None:
    """A record bigger than the read budget covers arrives whole, not stalled."""
    client, server = wrap_pair(tls_contexts, *socket.socketpair())
    client.setblocking(False)
    server.setblocking(False)
    # One read of 1 KiB per event: a 16 KiB record leaves 15 KiB decrypted
    # inside the SSL object, and the kernel socket empty.
    pool = BufferPool(size_classes=[1024])
    loop = Loop(pool=pool, read_budget=1)
    try:
        handshake(client, server)
        recorder = Recorder()
        loop.add_socket(server, recorder)
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        client.setblocking(True)
        client.sendall(payload)
        assert loop.run_until(lambda: len(recorder.data) == size, timeout=10)
        assert recorder.data == payload
        assert pool.stats().buffers_in_use == 0
    finally:
        loop.close()
        client.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_asyncio_tls_client_against_the_loop(
    loop: Loop, material: Material, version: ssl.TLSVersion
) -> None:
    """asyncio's own TLS client echoes 1 MB through a TLS listener on the loop."""
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=material.server(version=version))
    port = listener.address[1]
    payload = os.urandom(1 << 20)

    async def client() -> tuple[bytes, str | None]:
        reader, writer = await asyncio.open_connection(
            "127.0.0.1", port, ssl=material.client(), server_hostname="localhost"
        )
        writer.write(payload)
        got = await reader.readexactly(len(payload))
        got_version = writer.get_extra_info("ssl_object").version()
        writer.close()
        await writer.wait_closed()
        return got, got_version

    thread, out = _in_thread(lambda: asyncio.run(client()))
    _serve_while(loop, thread, 30)
    thread.join(5)
    (result,) = out
    assert not isinstance(result, BaseException), result
    assert result == (
        payload,
        version.name.replace("_", ".").replace("TLSv1.", "TLSv1."),
    )
    assert loop.run_until(lambda: not loop.connections, timeout=10)
    assert loop.pool.stats().buffers_in_use == 0


def test_loop_tls_client_against_asyncio_server(loop: Loop, material: Material) -> None:
    """The loop's TLS client talks to asyncio's TLS server, both ways byte-exact."""
    ready = threading.Event()
    port: list[int] = []
    stop = threading.Event()

    async def serve() -> None:
        async def handle(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            data = await r.readexactly(300_000)
            w.write(data[::-1])
            await w.drain()
            w.close()

        server = await asyncio.start_server(
            handle, "127.0.0.1", 0, ssl=material.server()
        )
        port.append(server.sockets[0].getsockname()[1])
        ready.set()
        while not stop.is_set():
            await asyncio.sleep(0.02)
        server.close()
        await server.wait_closed()

    thread, _out = _in_thread(lambda: asyncio.run(serve()))
    assert ready.wait(10)
    peers: list[Keep] = []
    payload = os.urandom(300_000)
    connector = loop.connect(
        lambda: Keep(peers),
        "127.0.0.1",
        port[0],
        ssl=material.client(),
        server_hostname="localhost",
    )
    try:
        assert loop.run_until(lambda: connector.connection is not None, timeout=10)
        conn = connector.connection
        assert conn is not None
        conn.write(payload)
        assert loop.run_until(lambda: bool(peers[0].lost), timeout=20)
        assert bytes(peers[0].data) == payload[::-1]
        assert peers[0].lost == [None]
        assert conn.tls is not None
        assert conn.tls.version() == "TLSv1.3"
    finally:
        stop.set()
        thread.join(10)
    assert loop.pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("version", ["-tls1_2", "-tls1_3"])
def test_openssl_s_client_against_the_loop(
    loop: Loop, material: Material, version: str
) -> None:
    """openssl s_client sends a line through a TLS listener and gets it back."""
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=material.server())
    proc = subprocess.Popen(
        [
            OPENSSL,
            "s_client",
            "-connect",
            f"127.0.0.1:{listener.address[1]}",
            "-CAfile",
            str(material.cert),
            "-servername",
            "localhost",
            "-verify_return_error",
            "-quiet",
            version,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )

    def talk() -> bytes:
        assert proc.stdin is not None
        assert proc.stdout is not None
        proc.stdin.write(b"hello from s_client\n")
        proc.stdin.flush()
        return proc.stdout.readline()

    thread, out = _in_thread(talk)
    try:
        _serve_while(loop, thread, 25)
    finally:
        proc.kill()
        proc.communicate()
        thread.join(5)
    assert out == [b"hello from s_client\n"]


def test_loop_client_against_openssl_s_server(loop: Loop, material: Material) -> None:
    """The loop's TLS client reaches openssl s_server and reads what it sends."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen(
        [
            OPENSSL,
            "s_server",
            "-accept",
            f"127.0.0.1:{port}",
            "-cert",
            str(material.cert),
            "-key",
            str(material.key),
            "-quiet",
            "-naccept",
            "1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        peers: list[Keep] = []
        connector = None
        for _ in range(100):  # until s_server listens
            connector = loop.connect(
                lambda: Keep(peers),
                "127.0.0.1",
                port,
                ssl=material.client(),
                server_hostname="localhost",
                on_error=lambda exc: None,
            )
            attempt: Connector = connector
            loop.run_until(lambda: attempt.done, timeout=5)  # noqa: B023
            if connector.connection is not None:
                break
            loop.run_until(lambda: False, timeout=0.05)
        assert connector is not None
        assert connector.connection is not None
        conn = connector.connection
        assert loop.run_until(
            lambda: conn.tls is not None and conn.tls.handshake_done, timeout=10
        )
        conn.write(b"to s_server\n")
        assert proc.stdin is not None
        proc.stdin.write(b"from s_server\n")
        proc.stdin.flush()
        assert loop.run_until(lambda: b"from s_server\n" in peers[-1].data, timeout=10)
        conn.close()
        loop.run_until(lambda: conn.closed, timeout=10)
        assert peers[-1].lost == [None]
    finally:
        proc.kill()
        proc.communicate()


def test_curl_gets_an_http_answer_over_tls(loop: Loop, material: Material) -> None:
    """curl fetches a page from a tiny HTTP responder on a TLS listener."""
    material_ctx = material.server()
    material_ctx.set_alpn_protocols(["http/1.1"])
    listener = loop.listen(HTTPResponder, "127.0.0.1", 0, ssl=material_ctx)
    port = listener.address[1]
    proc = subprocess.Popen(
        [
            "curl",
            "-sS",
            "--max-time",
            "20",
            "--cacert",
            str(material.cert),
            "--resolve",
            f"localhost:{port}:127.0.0.1",
            f"https://localhost:{port}/",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    thread, out = _in_thread(lambda: proc.communicate(timeout=25))
    _serve_while(loop, thread, 25)
    thread.join(5)
    (result,) = out
    assert isinstance(result, tuple)
    assert result[0] == b"hello over tls\n", result[1]
    assert proc.returncode == 0


@pytest.mark.parametrize("with_cert", [True, False])
def test_client_certificates_required(
    loop: Loop, material: Material, with_cert: bool
) -> None:
    """A server demanding a client certificate accepts one and refuses none."""
    servers: list[Keep] = []
    clients: list[Keep] = []
    listener = loop.listen(
        lambda: Keep(servers),
        "127.0.0.1",
        0,
        ssl=material.server(require_client=True),
    )
    connector = loop.connect(
        lambda: Keep(clients),
        "127.0.0.1",
        listener.address[1],
        ssl=material.client(with_cert=with_cert),
        server_hostname="localhost",
    )
    assert loop.run_until(lambda: connector.connection is not None, timeout=10)
    conn = connector.connection
    assert conn is not None
    conn.write(b"who am i")
    if with_cert:
        assert loop.run_until(
            lambda: bool(servers) and servers[0].data == b"who am i", timeout=10
        )
        server_conn = servers[0].conn
        assert server_conn is not None
        assert server_conn.tls is not None
        cert = server_conn.tls.getpeercert()
        assert cert is not None
        assert cert["subject"] == ((("commonName", "localhost"),),)
    else:
        assert loop.run_until(
            lambda: bool(servers) and bool(servers[0].lost), timeout=10
        )
        (exc,) = servers[0].lost
        assert isinstance(exc, TLSHandshakeError)
        assert servers[0].data == b""
        loop.run_until(lambda: bool(clients[0].lost), timeout=10)
        assert clients[0].data == b""
    assert loop.run_until(lambda: not loop.connections or with_cert, timeout=10)


def _raise_nofile(want: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))


def test_a_thousand_idle_tls_connections_hold_no_pool_bytes(
    loop: Loop, material: Material
) -> None:
    """1,000 TLS connections, handshaken and echoed once, then idle: 0 pool bytes."""
    _raise_nofile(4500)
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=material.server())
    clients: list[Keep] = []
    client_ctx = material.client()
    port = listener.address[1]
    count = 1000
    for _ in range(count):
        loop.connect(
            lambda: Keep(clients),
            "127.0.0.1",
            port,
            ssl=client_ctx,
            server_hostname="localhost",
        )
    assert loop.run_until(lambda: len(clients) == count, timeout=60)
    for keep in clients:
        assert keep.conn is not None
        keep.conn.write(b"ping")
    assert loop.run_until(lambda: all(k.data == b"ping" for k in clients), timeout=120)
    loop.run_until(lambda: False, timeout=0.2)  # tickets and flushes settle
    stats = loop.pool.stats()
    assert stats.bytes_in_use == 0
    assert stats.buffers_in_use == 0
    assert len(loop.connections) == 2 * count
    assert len(loop._timers) < 200  # 2,000 cancelled handshake timers dropped
    for conn in loop.connections:
        assert conn.tls is not None
        assert conn.tls.cipher_pending == 0
        assert conn.pending_bytes == 0


def _raw_client(port: int, data: bytes, *, chunk: int = 0) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if chunk:
            for i in range(0, len(data), chunk):
                sock.sendall(data[i : i + chunk])
        else:
            sock.sendall(data)
        sock.shutdown(socket.SHUT_WR)
        got = bytearray()
        while part := sock.recv(4096):
            got += part
        return bytes(got)


@pytest.mark.parametrize(
    "junk", [b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", bytes(range(256)) * 8]
)
def test_garbage_to_a_tls_port_closes_that_connection(
    loop: Loop, material: Material, junk: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """Plain HTTP or random bytes to a TLS port: one INFO line, nothing held."""
    servers: list[Keep] = []
    listener = loop.listen(lambda: Keep(servers), "127.0.0.1", 0, ssl=material.server())
    with caplog.at_level(logging.INFO, "bufkit.connection"):
        thread, out = _in_thread(lambda: _raw_client(listener.address[1], junk))
        _serve_while(loop, thread, 10)
        thread.join(5)
    (exc,) = servers[0].lost
    assert isinstance(exc, TLSHandshakeError)
    lines = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].exc_info is None
    assert not isinstance(out[0], BaseException)
    assert not loop.connections
    assert loop.pool.stats().buffers_in_use == 0


def test_a_client_hello_in_one_byte_segments(loop: Loop, material: Material) -> None:
    """A handshake whose every byte arrives in its own segment completes."""
    client_ctx = material.client()
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    hello = outgoing.read()
    servers: list[Keep] = []
    listener = loop.listen(lambda: Keep(servers), "127.0.0.1", 0, ssl=material.server())
    sock = socket.create_connection(("127.0.0.1", listener.address[1]))
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for byte in hello:
            sock.send(bytes([byte]))
            loop.run_once(0.001)
        sock.settimeout(10)
        while True:
            try:
                obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                loop.run_once(0.01)
                sock.setblocking(False)
                with contextlib.suppress(BlockingIOError):
                    incoming.write(sock.recv(65536))
                out = outgoing.read()
                if out:
                    sock.setblocking(True)
                    sock.sendall(out)
        assert obj.version() == "TLSv1.3"
        sock.sendall(outgoing.read())
        loop.run_until(
            lambda: (
                bool(servers)
                and servers[0].conn is not None
                and servers[0].conn.tls is not None
                and servers[0].conn.tls.handshake_done
            ),
            timeout=10,
        )
        assert servers[0].lost == []
    finally:
        sock.close()


def test_stalled_handshakes_time_out_while_a_healthy_client_is_served(
    loop: Loop, material: Material
) -> None:
    """200 clients stopping after their ClientHello are freed at the timeout."""
    _raise_nofile(2000)
    servers: list[Keep] = []
    listener = loop.listen(
        lambda: Keep(servers),
        "127.0.0.1",
        0,
        ssl=material.server(),
        ssl_handshake_timeout=1.5,
    )
    port = listener.address[1]
    client_ctx = material.client()
    stalled: list[socket.socket] = []
    try:
        for _ in range(200):
            incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
            obj = client_ctx.wrap_bio(incoming, outgoing, server_hostname="localhost")
            with pytest.raises(ssl.SSLWantReadError):
                obj.do_handshake()
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(outgoing.read())  # the ClientHello, then silence
            stalled.append(sock)
        healthy: list[Keep] = []
        connector = loop.connect(
            lambda: Keep(healthy),
            "127.0.0.1",
            port,
            ssl=client_ctx,
            server_hostname="localhost",
        )
        assert loop.run_until(lambda: connector.connection is not None, timeout=10)
        conn = connector.connection
        assert conn is not None
        for i in range(5):
            msg = b"msg%d" % i
            conn.write(msg)
            assert loop.run_until(
                lambda: any(bytes(s.data).endswith(msg) for s in servers),  # noqa: B023
                timeout=10,
            )
        assert loop.run_until(
            lambda: sum(1 for s in servers if s.lost) == 200, timeout=20
        )
        timed_out = [s.lost[0] for s in servers if s.lost]
        assert all(isinstance(e, TLSHandshakeError) for e in timed_out)
        assert all("did not complete within 1.5 s" in str(e) for e in timed_out)
        assert len(loop.connections) == 2  # the healthy pair
        assert not loop._timeouts
        assert loop.pool.stats().buffers_in_use == 0
    finally:
        for sock in stalled:
            sock.close()


class Quiet(ConnectionProtocol):
    """Does nothing and keeps nothing."""


def test_a_closed_tls_connection_is_freed_at_once(
    loop: Loop, material: Material
) -> None:
    """A cancelled handshake timer keeps no connection alive (no GC needed)."""
    listener = loop.listen(Quiet, "127.0.0.1", 0, ssl=material.server())
    client_ctx = material.client()
    for _ in range(3):
        loop.connect(
            Quiet,
            "127.0.0.1",
            listener.address[1],
            ssl=client_ctx,
            server_hostname="localhost",
        )

    def all_open() -> bool:
        conns = loop.connections
        return len(conns) == 6 and all(
            c.tls is not None and c.tls.handshake_done for c in conns
        )

    assert loop.run_until(all_open, timeout=10)
    refs = [weakref.ref(conn) for conn in loop.connections]
    gc.disable()
    try:
        for conn in loop.connections:
            conn.abort()
        del conn
        assert not loop.connections
        assert [r() for r in refs] == [None] * 6
    finally:
        gc.enable()
