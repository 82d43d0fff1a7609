"""The TLS handshake timeout and the ``bufkit-tls:`` client string endpoint.

Servers are Twisted's own TLS (pyOpenSSL through ``TLSMemoryBIOFactory``) and
bufkit's; every test runs a fresh reactor on 127.0.0.1, bounded in time by the
support module's ``run``.
"""

from __future__ import annotations

import shutil
import socket
import ssl
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import pytest

pytest.importorskip("twisted")

from twisted.internet import endpoints, error, protocol
from twisted.python.failure import Failure

from bufkit import TLSHandshakeError
from bufkit.adapters.twisted import ClientEndpoint, ServerEndpoint, listen_tcp
from tests._tls import self_signed
from tests.adapters._twisted_support import Collect, fresh_reactor, run, sleep

pytestmark = pytest.mark.timeout(120)

# Twisted's own functions carry no annotations.
clientFromString = cast("Callable[[Any, str], Any]", endpoints.clientFromString)
serverFromString = cast("Callable[[Any, str], Any]", endpoints.serverFromString)


class Echo(protocol.Protocol):
    """Echoes what it receives; keeps the peer certificate and how it ended."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.factory.made.append(self)

    def dataReceived(self, data: bytes) -> None:
        self.factory.peer_certs.append(self.transport.getPeerCertificate())
        self.transport.write(data)

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.factory.lost.append(reason)


class EchoFactory(protocol.Factory):
    """Builds Echo protocols and keeps what they saw."""

    protocol = Echo

    def __init__(self) -> None:
        self.made: list[Echo] = []
        self.lost: list[Failure] = []
        self.peer_certs: list[Any] = []


@pytest.fixture(scope="module")
def pem(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A certificate and key for ``localhost``."""
    return self_signed(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="module")
def roots(pem: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the certificate as its only ``*.pem`` file."""
    folder = tmp_path_factory.mktemp("roots")
    shutil.copy(pem[0], folder / "ca.pem")
    (folder / "notes.txt").write_text("not a certificate\n")
    return folder


def _server_ctx(pem: tuple[Path, Path]) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*pem)
    return ctx


async def _until(reactor: Any, done: Callable[[], bool], timeout: float = 30) -> None:
    waited = 0.0
    while not done():
        if waited > timeout:
            raise TimeoutError("the condition never held")
        await sleep(reactor, 0.01)
        waited += 0.01


def _twisted_tls_server(reactor: Any, pem: tuple[Path, Path], factory: Any) -> Any:
    """Twisted's own TLS server on the test's reactor (its clock too)."""
    from OpenSSL import SSL
    from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
    from twisted.protocols.tls import TLSMemoryBIOFactory
    from zope.interface import implementer

    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.use_certificate_file(str(pem[0]))
    context.use_privatekey_file(str(pem[1]))

    @implementer(IOpenSSLServerConnectionCreator)
    class Options:
        """Makes each pyOpenSSL server connection from files, no X509 objects."""

        def serverConnectionForTLS(self, tls_protocol: Any) -> Any:
            return SSL.Connection(context, None)

    tls = TLSMemoryBIOFactory(cast(Any, Options()), False, factory, clock=reactor)
    return reactor.listenTCP(0, tls, interface="127.0.0.1")


async def _exchange(reactor: Any, endpoint: Any, data: bytes) -> Collect:
    client = Collect()
    await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
    client.transport.write(data)
    await _until(reactor, lambda: len(client.data) >= len(data) or bool(client.reasons))
    client.transport.loseConnection()
    await _until(reactor, lambda: bool(client.reasons))
    return client


@pytest.mark.parametrize("trust", ["directory", "file"])
def test_client_string_against_twisted_tls_server(
    pem: tuple[Path, Path], roots: Path, trust: str
) -> None:
    """``bufkit-tls:host=localhost:port=P:trustRoots=..`` echoes with Twisted's TLS."""
    factory = EchoFactory()
    trust_roots = roots if trust == "directory" else pem[0]
    with fresh_reactor("epoll") as reactor:

        async def main() -> bytes:
            port = _twisted_tls_server(reactor, pem, factory)
            where = port.getHost().port
            desc = f"bufkit-tls:host=localhost:port={where}:trustRoots={trust_roots}"
            client = await _exchange(reactor, clientFromString(reactor, desc), b"hi")
            await port.stopListening()
            return client.data

        assert run(reactor, main) == b"hi"


def test_client_string_positional_host_and_port(pem: tuple[Path, Path]) -> None:
    """``bufkit-tls:localhost:PORT:...`` takes host and port first, as ``tls:``."""
    factory = EchoFactory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> bytes:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=_server_ctx(pem)
            ).listen(factory)
            desc = (
                f"bufkit-tls:localhost:{port.getHost().port}:trustRoots={pem[0]}"
                ":bindAddress=127.0.0.1:timeout=10:handshakeTimeout=10"
            )
            client = await _exchange(reactor, clientFromString(reactor, desc), b"x")
            await port.stopListening()
            return client.data

        assert run(reactor, main) == b"x"


def test_client_certificate_reaches_a_server_that_asks(pem: tuple[Path, Path]) -> None:
    """``certificate=`` and ``privateKey=`` present a client certificate."""
    factory = EchoFactory()
    server_ctx = _server_ctx(pem)
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    server_ctx.load_verify_locations(cafile=str(pem[0]))
    with fresh_reactor("epoll") as reactor:

        async def main() -> bytes:
            port = await ServerEndpoint(
                reactor, 0, interface="127.0.0.1", ssl=server_ctx
            ).listen(factory)
            desc = (
                f"bufkit-tls:host=localhost:port={port.getHost().port}"
                f":trustRoots={pem[0]}:certificate={pem[0]}:privateKey={pem[1]}"
            )
            client = await _exchange(reactor, clientFromString(reactor, desc), b"me")
            await port.stopListening()
            return client.data

        assert run(reactor, main) == b"me"
    subject = dict(x[0] for x in factory.peer_certs[0]["subject"])
    assert subject["commonName"] == "localhost"


def test_untrusted_server_fails_the_client_handshake(
    pem: tuple[Path, Path], tmp_path: Path
) -> None:
    """A server certificate outside ``trustRoots`` is a TLSHandshakeError."""
    other, _key = self_signed(tmp_path)
    factory = EchoFactory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> Collect:
            port = _twisted_tls_server(reactor, pem, factory)
            where = port.getHost().port
            desc = f"bufkit-tls:host=localhost:port={where}:trustRoots={other}"
            client = Collect()
            endpoint = clientFromString(reactor, desc)
            await endpoint.connect(protocol.Factory.forProtocol(lambda: client))
            await _until(reactor, lambda: bool(client.reasons))
            await port.stopListening()
            return client

        client = run(reactor, main)
    assert client.data == b""
    assert isinstance(client.reasons[0].value, TLSHandshakeError)


def test_server_string_handshake_timeout_closes_a_silent_client(
    pem: tuple[Path, Path],
) -> None:
    """``handshakeTimeout=0.2``: a client that never says hello is closed."""
    factory = EchoFactory()
    with fresh_reactor("epoll") as reactor:

        async def main() -> bytes:
            desc = (
                f"bufkit-tls:0:certKey={pem[0]}:privateKey={pem[1]}"
                ":interface=127.0.0.1:handshakeTimeout=0.2"
            )
            port = await serverFromString(reactor, desc).listen(factory)
            raw = socket.create_connection(("127.0.0.1", port.getHost().port))
            raw.setblocking(False)
            try:
                await _until(reactor, lambda: bool(factory.lost))
                await sleep(reactor, 0.05)
                got = raw.recv(100)  # the end of the stream, now
            finally:
                raw.close()
            await port.stopListening()
            return got

        assert run(reactor, main) == b""
    assert isinstance(factory.lost[0].value, TLSHandshakeError)


def test_client_handshake_timeout_against_a_silent_server() -> None:
    """``ssl_handshake_timeout``: a server that never answers fails the client."""
    with fresh_reactor("epoll") as reactor:

        async def main() -> Collect:
            silent = listen_tcp(
                reactor,
                0,
                protocol.Factory.forProtocol(protocol.Protocol),
                interface="127.0.0.1",
            )
            client = Collect()
            await ClientEndpoint(
                reactor,
                "127.0.0.1",
                silent.getHost().port,
                ssl=ssl.create_default_context(),
                server_hostname="localhost",
                ssl_handshake_timeout=0.2,
            ).connect(protocol.Factory.forProtocol(lambda: client))
            await _until(reactor, lambda: bool(client.reasons))
            await silent.stopListening()
            return client

        client = run(reactor, main)
    assert isinstance(client.reasons[0].value, TLSHandshakeError)


def test_client_bind_address_that_is_not_local_is_a_bind_error() -> None:
    """``bindAddress=`` an address not on this host fails with ConnectBindError."""
    with fresh_reactor("epoll") as reactor:

        async def main() -> str:
            desc = "bufkit-tcp:host=127.0.0.1:port=9:bindAddress=192.0.2.1"
            try:
                await clientFromString(reactor, desc).connect(
                    protocol.Factory.forProtocol(protocol.Protocol)
                )
            except error.ConnectBindError:
                return "refused"
            return "connected"

        assert run(reactor, main) == "refused"


@pytest.mark.parametrize(
    ("desc", "named"),
    [
        ("bufkit-tls:port=443", "host="),
        ("bufkit-tls:host=a:port=1:colour=red", "colour"),
        ("bufkit-tls:host=a:port=1:handshakeTimeout=0", "handshakeTimeout='0'"),
        ("bufkit-tls:host=a:port=1:handshakeTimeout=soon", "handshakeTimeout='soon'"),
        ("bufkit-tls:host=a:port=1:timeout=-1", "timeout='-1'"),
        ("bufkit-tls:host=a:port=1:privateKey=k.pem", "privateKey='k.pem'"),
    ],
)
def test_client_string_refuses_bad_options(desc: str, named: str) -> None:
    """A bad ``bufkit-tls`` client string is a ValueError naming the option."""
    with pytest.raises(ValueError, match=named):
        clientFromString(object(), desc)


def test_client_string_refuses_trust_roots_without_certificates(
    tmp_path: Path,
) -> None:
    """A ``trustRoots`` directory with no ``*.pem`` file is refused by name."""
    with pytest.raises(ValueError, match="holds no"):
        clientFromString(object(), f"bufkit-tls:host=a:port=1:trustRoots={tmp_path}")


def test_server_string_refuses_a_bad_handshake_timeout(pem: tuple[Path, Path]) -> None:
    """``handshakeTimeout=-1`` on the server string is a ValueError naming it."""
    desc = f"bufkit-tls:0:certKey={pem[0]}:privateKey={pem[1]}:handshakeTimeout=-1"
    with pytest.raises(ValueError, match="handshakeTimeout='-1'"):
        serverFromString(object(), desc)


def test_endpoint_refuses_a_bad_handshake_timeout(pem: tuple[Path, Path]) -> None:
    """``ssl_handshake_timeout=0`` is refused when listening, naming the value."""
    with fresh_reactor("epoll") as reactor:
        endpoint = ServerEndpoint(
            reactor, 0, ssl=_server_ctx(pem), ssl_handshake_timeout=0
        )
        failed = endpoint.listen(EchoFactory())
        reasons: list[Failure] = []
        failed.addErrback(reasons.append)
    assert isinstance(reasons[0].value, ValueError)
    assert "handshake_timeout" in str(reasons[0].value)
