"""The peers: the servers users would write instead of using bufkit.

Each is the plainest idiomatic server of its framework, so the comparison is
with what people actually run: an :class:`asyncio.Protocol` that writes what
``data_received`` got (on the default loop or on uvloop), a
:class:`asyncio.BufferedProtocol` that owns a 64 KiB ``bytearray`` per
connection and copies out of it (the completion-style "buffer per pending
read" pattern), and a Twisted ``Protocol`` on the epoll reactor.

With a certificate, the same echo protocol also serves TLS echo the way
each framework offers TLS: ``create_server(ssl=)`` on asyncio and uvloop,
and Twisted's own TLS (pyOpenSSL, :class:`TLSMemoryBIOFactory`) around the
same factory.
"""

from __future__ import annotations

import asyncio
import importlib
from typing import TYPE_CHECKING, Any, Final, cast

from bufkit.bench._wire import (
    BACKLOG,
    FANOUT_CHUNK,
    FANOUT_WRITES,
    ContenderUnavailable,
    Served,
)

if TYPE_CHECKING:
    from bufkit.bench._certs import CertFiles

__all__ = [
    "READ_BUFFER",
    "echo_protocols",
    "listen_port",
    "new_loop",
    "serve_asyncio",
    "serve_twisted",
    "twisted_peer",
    "twisted_tls_factory",
]

READ_BUFFER: Final = 65536
_CHUNK: Final = b"x" * FANOUT_CHUNK


class _Live:
    """How many connections are open (to report the buffers they hold)."""

    count = 0


class _Echo(asyncio.Protocol):
    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(data)


class _Fanout(_Echo):
    def data_received(self, data: bytes) -> None:
        write = self.transport.write
        for _ in range(len(data) * FANOUT_WRITES):
            write(_CHUNK)


class _BufferedEcho(asyncio.BufferedProtocol):
    transport: asyncio.Transport

    def __init__(self) -> None:
        self._buffer = bytearray(READ_BUFFER)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        _Live.count += 1

    def connection_lost(self, exc: Exception | None) -> None:
        _Live.count -= 1

    def get_buffer(self, sizehint: int) -> bytearray:
        return self._buffer

    def buffer_updated(self, nbytes: int) -> None:
        self.transport.write(self._buffer[:nbytes])


class _BufferedFanout(_BufferedEcho):
    def buffer_updated(self, nbytes: int) -> None:
        write = self.transport.write
        for _ in range(nbytes * FANOUT_WRITES):
            write(_CHUNK)


def echo_protocols() -> tuple[type[asyncio.Protocol], type[asyncio.Protocol]]:
    """The asyncio peer's echo and fanout protocols (for the drop-in)."""
    return _Echo, _Fanout


def new_loop(use_uvloop: bool) -> asyncio.AbstractEventLoop:
    """Return a new default-policy or uvloop event loop, set as current."""
    if use_uvloop:
        try:
            import uvloop
        except ImportError as exc:
            raise ContenderUnavailable(f"uvloop cannot be imported: {exc}") from exc
        loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    return loop


def listen_port(server: asyncio.Server) -> int:
    """Return the port an asyncio server listens on."""
    port: int = server.sockets[0].getsockname()[1]
    return port


def serve_asyncio(
    host: str, *, use_uvloop: bool, buffered: bool, tls: CertFiles | None = None
) -> Served:
    """Start the asyncio (or uvloop) peers on ``host`` (TLS echo with ``tls``)."""
    loop = new_loop(use_uvloop)
    echo: type[asyncio.BaseProtocol] = _BufferedEcho if buffered else _Echo
    fanout: type[asyncio.BaseProtocol] = _BufferedFanout if buffered else _Fanout
    echo_server = loop.run_until_complete(
        loop.create_server(echo, host, 0, backlog=BACKLOG)
    )
    fanout_server = loop.run_until_complete(
        loop.create_server(fanout, host, 0, backlog=BACKLOG)
    )
    tls_port = None
    if tls is not None and not buffered:
        from bufkit.bench._certs import server_context

        tls_server = loop.run_until_complete(
            loop.create_server(_Echo, host, 0, backlog=BACKLOG, ssl=server_context(tls))
        )
        tls_port = listen_port(tls_server)
    return Served(
        echo_port=listen_port(echo_server),
        fanout_port=listen_port(fanout_server),
        run_forever=loop.run_forever,
        buffer_bytes=(lambda: _Live.count * READ_BUFFER) if buffered else _zero,
        tls_port=tls_port,
    )


def _zero() -> int | None:
    return 0


def twisted_peer() -> tuple[Any, Any, Any]:
    """Install the epoll reactor; return it with the echo and fanout factories.

    The same two protocols serve the ``twisted`` peer (Twisted's own TCP
    transport) and the ``bufkit-twisted`` contender (bufkit's transport), so
    the two differ only in the transport.

    Raises:
        ContenderUnavailable: Twisted cannot be imported.
    """
    try:
        from twisted.internet import epollreactor

        cast(Any, epollreactor).install()
        from twisted.internet import protocol
    except ImportError as exc:
        raise ContenderUnavailable(f"twisted cannot be imported: {exc}") from exc
    # After install() the module ``twisted.internet.reactor`` is the reactor;
    # its zope interfaces do not type-check as methods, so it is used as Any.
    reactor: Any = importlib.import_module("twisted.internet.reactor")

    class Echo(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            cast(Any, self.transport).write(data)

    class Fanout(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            write = cast(Any, self.transport).write
            for _ in range(len(data) * FANOUT_WRITES):
                write(_CHUNK)

    echo = protocol.Factory.forProtocol(Echo)
    fanout = protocol.Factory.forProtocol(Fanout)
    return reactor, echo, fanout


def twisted_tls_factory(factory: Any, tls: CertFiles) -> Any:
    """Wrap ``factory`` in Twisted's own TLS (pyOpenSSL) with ``tls``.

    Raises:
        ContenderUnavailable: pyOpenSSL (Twisted's TLS) cannot be imported.
    """
    try:
        from twisted.internet import ssl
        from twisted.protocols.tls import TLSMemoryBIOFactory
    except ImportError as exc:
        raise ContenderUnavailable(f"Twisted's TLS needs pyOpenSSL: {exc}") from exc
    with open(tls.cert, "rb") as cert, open(tls.key, "rb") as key:
        pem = cert.read() + key.read()
    private: Any = ssl.PrivateCertificate  # untyped in Twisted
    options = private.loadPEM(pem).options()
    return TLSMemoryBIOFactory(options, False, factory)


def serve_twisted(host: str, tls: CertFiles | None = None) -> Served:
    """Start the Twisted peer (epoll reactor) on ``host`` (TLS echo with ``tls``)."""
    reactor, echo, fanout = twisted_peer()

    def listen(factory: Any) -> int:
        port = reactor.listenTCP(0, factory, backlog=BACKLOG, interface=host)
        number: int = port.getHost().port
        return number

    tls_port, tls_note = None, None
    if tls is not None:
        try:
            tls_port = listen(twisted_tls_factory(echo, tls))
        except ContenderUnavailable as exc:
            tls_note = str(exc)
    return Served(
        echo_port=listen(echo),
        fanout_port=listen(fanout),
        run_forever=reactor.run,
        tls_port=tls_port,
        tls_note=tls_note,
    )
