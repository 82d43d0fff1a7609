"""TLS on bufkit's Twisted transports: Twisted's, Python's and OpenSSL's clients.

Every test runs a fresh reactor on 127.0.0.1, bounded in time by the support
module's ``run``; blocking clients run in a thread the test waits for.
"""

from __future__ import annotations

import logging
import resource
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("twisted")

from twisted.internet import defer, protocol
from twisted.internet.endpoints import serverFromString
from twisted.python.failure import Failure

from bufkit import BufferPool, TLSHandshakeError
from bufkit.adapters.twisted import ClientEndpoint, ServerEndpoint, Transport
from bufkit.adapters.twisted._transport import TLS_TIMERS
from tests._tls import self_signed
from tests.adapters._twisted_support import Collect, fresh_reactor, run, sleep

pytestmark = pytest.mark.timeout(120)


class Echo(protocol.Protocol):
    """Echoes what it receives; records how it ended."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.factory.made.append(self)
        self.reasons: list[Failure] = []
        self.version: str | None = None
        self.peer_cert: object = "unread"

    def dataReceived(self, data: bytes) -> None:
        if self.version is None:
            self.version = self.transport.connection.tls.version()
            self.peer_cert = self.transport.getPeerCertificate()
        self.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.reasons.append(reason)
        self.factory.lost.append(reason)


class EchoALine(Echo):
    """Echoes, and closes once a whole line went back."""

    def dataReceived(self, data: bytes) -> None:
        super().dataReceived(data)
        if data.endswith(b"\n"):
            self.transport.loseConnection()


class EchoFactory(protocol.Factory):
    """Builds Echo protocols and keeps each one and each ``connectionLost`` reason."""

    protocol = Echo

    def __init__(self) -> None:
        self.made: list[Echo] = []
        self.lost: list[Failure] = []


def _echo_factory() -> EchoFactory:
    return EchoFactory()


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate and key for ``localhost``."""
    return self_signed(tmp_path_factory.mktemp("tls"))


def _server_ctx(pem: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pem)
    return ctx


def _client_ctx(pem: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pem[0]))


async def _until(reactor: Any, done: Callable[[], bool], timeout: float = 30) -> None:
    waited = 0.0
    while not done():
        if waited > timeout:
            raise TimeoutError("the condition never held")
        await sleep(reactor, 0.01)
        waited += 0.01


def _in_thread(target: Callable[[], object]) -> tuple[threading.Thread, list[object]]:
    out: list[object] = []

    def body() -> None:
        try:
            out.append(target())
        except BaseException as exc:  # reported by the test
            out.append(exc)

    thread = threading.Thread(target=body, daemon=True)
    thread.start()
    return thread, out


def test_python_ssl_client_against_a_string_endpoint(pem: tuple[Path, Path]) -> None:
    """``bufkit-tls:0:certKey=..:privateKey=..`` echoes to Python's ssl client."""
    payload = bytes(range(256)) * 512
    factory = _echo_factory()
    client_ctx = _client_ctx(pem)

    def client(port: int) -> bytes:
        with (
            socket.create_connection(("127.0.0.1", port), timeout=20) as raw,
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            tls.sendall(payload)
            got = bytearray()
            while len(got) < len(payload):
                part = tls.recv(65536)
                if not part:
                    break
                got += part
            return bytes(got)

    with fresh_reactor("epoll") as reactor:

        async def main() -> None:
            desc = (
                f"bufkit-tls:0:certKey={pem[0]}:privateKey={pem[1]}:interface=127.0.0.1"
            )
            port = await serverFromString(reactor, desc).listen(factory)  # type: ignore[no-untyped-call]
            thread, out = _in_thread(lambda: client(port.getHost().port))
            await _until(reactor, lambda: bool(out))
            thread.join(5)
            assert out == [payload]
            (server,) = factory.made
            transport = server.transport
            assert isinstance(transport, Transport)
            assert server.version in ("TLSv1.2", "TLSv1.3")
            assert server.peer_cert is None  # no client certificate was asked for
            assert transport.getPeerCertificate() is None  # closed now
            await port.stopListening()

        run(reactor, main)


def test_twisted_tls_client_against_a_bufkit_tls_server(
    pem: tuple[Path, Path],
) -> None:
    """Twisted's own TLS client (pyOpenSSL, TLSMemoryBIOProtocol) talks to bufkit."""
    from twisted.internet import ssl as tssl
    from twisted.protocols.tls import TLSMemoryBIOFactory

    factory = _echo_factory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> bytes:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem)
            ).listen(factory)
            options = tssl.optionsForClientTLS(
                "localhost",
                trustRoot=tssl.Certificate.loadPEM(pem[0].read_bytes()),
            )
            client = Collect()
            client_factory = protocol.ClientFactory.forProtocol(lambda: client)
            # connectSSL would flush on the global reactor's clock: build its
            # factory here with the test's reactor as the clock.
            tls_factory = TLSMemoryBIOFactory(
                options,
                True,
                client_factory,  # type: ignore[arg-type]
                clock=reactor,
            )
            reactor.connectTCP("127.0.0.1", port.getHost().port, tls_factory)
            await _until(reactor, lambda: client.transport is not None)
            client.transport.write(b"hello over pyOpenSSL")
            await _until(reactor, lambda: len(client.data) >= 20)
            client.transport.loseConnection()
            await _until(reactor, lambda: bool(factory.lost))
            await port.stopListening()
            return client.data

        assert run(reactor, main) == b"hello over pyOpenSSL"
        assert not isinstance(factory.lost[0].value, TLSHandshakeError)


def test_bufkit_tls_client_sees_the_server_certificate(
    pem: tuple[Path, Path],
) -> None:
    """A bufkit TLS client endpoint verifies and reads the peer certificate."""
    factory = _echo_factory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> tuple[bytes, Any]:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem)
            ).listen(factory)
            client = Collect()
            await ClientEndpoint(
                reactor,
                "127.0.0.1",
                port.getHost().port,
                ssl=_client_ctx(pem),
                server_hostname="localhost",
            ).connect(protocol.Factory.forProtocol(lambda: client))
            client.transport.write(b"ping")
            await _until(reactor, lambda: client.data == b"ping")
            cert = client.transport.getPeerCertificate()
            client.transport.loseConnection()
            await _until(reactor, lambda: bool(client.reasons))
            await port.stopListening()
            return client.data, cert

        data, cert = run(reactor, main)
    assert data == b"ping"
    assert dict(x[0] for x in cert["subject"])["commonName"] == "localhost"


def test_openssl_s_client_against_a_bufkit_tls_server(pem: tuple[Path, Path]) -> None:
    """``openssl s_client`` sends a line to a bufkit TLS server and reads it back."""
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.skip("openssl is not installed")
    factory = _echo_factory()
    factory.protocol = EchoALine

    def client(port: int) -> bytes:
        done = subprocess.run(
            [
                openssl,
                "s_client",
                "-connect",
                f"127.0.0.1:{port}",
                "-servername",
                "localhost",
                "-CAfile",
                str(pem[0]),
                "-quiet",
                "-verify_return_error",
            ],
            input=b"from openssl\n",
            capture_output=True,
            timeout=30,
            check=False,
        )
        return done.stdout

    with fresh_reactor("epoll") as reactor:

        async def main() -> object:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem)
            ).listen(factory)
            thread, out = _in_thread(lambda: client(port.getHost().port))
            await _until(reactor, lambda: bool(out))
            thread.join(5)
            await port.stopListening()
            return out[0]

        assert run(reactor, main) == b"from openssl\n"


def test_a_failed_handshake_is_a_tls_handshake_error(
    pem: tuple[Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Plain HTTP to a TLS port: a TLSHandshakeError Failure, one quiet log line."""
    factory = _echo_factory()

    def client(port: int) -> bytes:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
            got = bytearray()
            while part := sock.recv(4096):
                got += part
            return bytes(got)

    pool = BufferPool()
    with fresh_reactor("epoll") as reactor, caplog.at_level(logging.INFO):

        async def main() -> None:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem), pool=pool
            ).listen(factory)
            thread, out = _in_thread(lambda: client(port.getHost().port))
            await _until(reactor, lambda: bool(out) and bool(factory.lost))
            thread.join(5)
            await port.stopListening()

        run(reactor, main)
    (reason,) = factory.lost
    assert isinstance(reason.value, TLSHandshakeError)
    failed = [r for r in caplog.records if "handshake" in r.getMessage().lower()]
    assert len(failed) == 1
    assert failed[0].exc_info is None
    assert pool.stats().buffers_in_use == 0


def test_a_wrong_host_name_fails_the_client_handshake(pem: tuple[Path, Path]) -> None:
    """A certificate for another name: the client ends with a TLSHandshakeError."""
    factory = _echo_factory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> BaseException | None:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem)
            ).listen(factory)
            client = Collect()
            await ClientEndpoint(
                reactor,
                "127.0.0.1",
                port.getHost().port,
                ssl=_client_ctx(pem),
                server_hostname="not-localhost.example",
            ).connect(protocol.Factory.forProtocol(lambda: client))
            await _until(reactor, lambda: bool(client.reasons))
            await _until(reactor, lambda: bool(factory.lost))
            await port.stopListening()
            return client.reasons[0].value

        reason = run(reactor, main)
    assert isinstance(reason, TLSHandshakeError)


def test_two_hundred_idle_tls_connections_hold_no_pool_bytes(
    pem: tuple[Path, Path],
) -> None:
    """200 TLS connections, echoed once, then idle: 0 pool bytes, no timers left."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1024:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(1024, hard), hard))
    count = 200
    pool = BufferPool()
    factory = _echo_factory()
    clients = [Collect() for _ in range(count)]
    with fresh_reactor("epoll") as reactor:

        async def main() -> None:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem), pool=pool
            ).listen(factory)
            ctx = _client_ctx(pem)
            endpoint = ClientEndpoint(
                reactor,
                "127.0.0.1",
                port.getHost().port,
                ssl=ctx,
                server_hostname="localhost",
                pool=pool,
            )
            for client in clients:
                await endpoint.connect(
                    protocol.Factory.forProtocol(lambda c=client: c)  # type: ignore[misc]
                )
            for client in clients:
                client.transport.write(b"ping")
            await _until(reactor, lambda: all(c.data == b"ping" for c in clients), 60)
            await sleep(reactor, 0.2)
            assert pool.stats().bytes_in_use == 0
            assert pool.stats().buffers_in_use == 0
            transports = [c.transport for c in clients] + [
                p.transport for p in factory.made
            ]
            assert len(transports) == 2 * count
            assert not any(t.connection in TLS_TIMERS for t in transports)
            assert all(t.connection.tls.handshake_done for t in transports)
            assert all(t.connection.pending_bytes == 0 for t in transports)
            for client in clients:
                client.transport.loseConnection()
            await _until(reactor, lambda: len(factory.lost) == count, 60)
            await port.stopListening()
            await defer.succeed(None)

        run(reactor, main, timeout=100)
