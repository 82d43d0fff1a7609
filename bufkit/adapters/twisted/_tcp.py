"""Listening and connecting on a reactor: bufkit transports for accepted sockets.

Theory of operation
-------------------
:class:`ListeningPort` is an ``IListeningPort`` and a read descriptor: when
the reactor says the listening socket is readable it accepts a batch of
connections, builds each one's protocol with the factory and starts a
:class:`~bufkit.adapters.twisted.Transport` for it. ``accept`` errors follow
the one policy every bufkit adapter shares (:mod:`bufkit._sockets`): out of
descriptors or memory, the port stops accepting for a growing delay instead of
spinning; a connection that died in the backlog is skipped. A factory or
``connectionMade`` that raises closes that socket only.

:func:`connect_tcp` connects without blocking: the address is resolved with
the reactor's resolver (a thread, never the loop), the socket connects
non-blocking, and a small write descriptor waits for the outcome, bounded by
a timeout. Its Deferred fires with the connected protocol.

Cost model: per accepted connection, one ``accept``, one ``setsockopt``
(``TCP_NODELAY``), the factory call and one reactor registration.
"""

from __future__ import annotations

import errno
import logging
import os
import socket
import ssl as _ssl
from typing import Any, Final

from twisted.internet import defer, error
from twisted.internet.interfaces import (
    IListeningPort,
    IReadDescriptor,
    IWriteDescriptor,
)
from twisted.python import failure
from zope.interface import implementer

from bufkit import BufferPool, TLSLayer
from bufkit._sockets import AcceptAction, AcceptBackoff, set_nodelay
from bufkit.adapters.twisted._transport import Transport, peer_address

__all__ = ["ListeningPort", "connect_tcp", "default_pool", "listen_tcp"]

LOGGER: Final = logging.getLogger("bufkit.adapters.twisted")
ACCEPT_BATCH: Final = 64
"""Connections accepted per readable event at most."""
DEFAULT_HANDSHAKE_TIMEOUT: Final = 60.0
"""Seconds a TLS handshake may take, by default (asyncio's default)."""

_DEFAULT_POOL: list[BufferPool] = []


def default_pool() -> BufferPool:
    """The pool shared by every Twisted endpoint that was given none."""
    if not _DEFAULT_POOL:
        _DEFAULT_POOL.append(BufferPool())
    return _DEFAULT_POOL[0]


@implementer(IListeningPort, IReadDescriptor)
class ListeningPort:
    """A listening TCP socket whose connections are bufkit transports.

    Made by :func:`listen_tcp` and :class:`~bufkit.adapters.twisted.ServerEndpoint`.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        factory: Any,
        *,
        backlog: int = 50,
        interface: str = "",
        pool: BufferPool | None = None,
        high_water: int = 65536,
        low_water: int = 16384,
        ssl: _ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        sock: socket.socket | None = None,
    ) -> None:
        self._given = sock
        if ssl is not None:
            # Refuse a bad context or timeout now, not at the first accept.
            TLSLayer(ssl, server_side=True, handshake_timeout=ssl_handshake_timeout)
        self._ssl = ssl
        self._handshake_timeout = ssl_handshake_timeout
        self._reactor = reactor
        self._port = port
        self._factory = factory
        self._backlog = backlog
        self._interface = interface
        self._pool = pool if pool is not None else default_pool()
        self._high_water = high_water
        self._low_water = low_water
        self._sock: socket.socket | None = None
        self._backoff = AcceptBackoff()
        self._resume_call: Any = None
        self.connected = False

    def __repr__(self) -> str:
        return f"<bufkit ListeningPort {self._interface or '*'}:{self._port}>"

    def startListening(self) -> None:
        """Bind, listen and start accepting.

        Raises:
            twisted.internet.error.CannotListenError: The address is taken or invalid.
        """
        given, self._given = self._given, None
        if given is not None:
            self._listening(given)
            return
        family = socket.AF_INET6 if ":" in self._interface else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._interface, self._port))
            sock.listen(self._backlog)
        except OSError as exc:
            sock.close()
            raise error.CannotListenError(self._interface, self._port, exc) from exc
        self._listening(sock)

    def _listening(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._port = sock.getsockname()[1]
        self._factory.doStart()
        self.connected = True
        self._reactor.addReader(self)

    def stopListening(self) -> defer.Deferred[None]:
        """Stop accepting and close the socket; open connections stay open.

        Returns:
            A Deferred that fires once the port is closed.
        """
        if not self.connected:
            return defer.succeed(None)
        self.connected = False
        self._reactor.removeReader(self)
        if self._resume_call is not None and self._resume_call.active():
            self._resume_call.cancel()
        self._resume_call = None
        if self._sock is not None:
            self._sock.close()
        done: defer.Deferred[None] = defer.Deferred()
        self._reactor.callLater(0, self._stopped, done)
        return done

    loseConnection = stopListening

    def getHost(self) -> Any:
        """The address this port listens on."""
        if self._sock is None:
            raise RuntimeError(f"{self!r} is not listening")
        return peer_address(self._sock.family, self._sock.getsockname())

    # -- IReadDescriptor -------------------------------------------------------

    def fileno(self) -> int:
        """The listening socket's descriptor, -1 once closed."""
        return -1 if self._sock is None else self._sock.fileno()

    def doRead(self) -> None:
        """Accept a batch of connections."""
        sock = self._sock
        if sock is None or not self.connected:
            return
        for _ in range(ACCEPT_BATCH):
            try:
                conn, addr = sock.accept()
            except BlockingIOError:
                return
            except OSError as exc:
                action = self._backoff.failed(exc)
                if action is AcceptAction.SKIP:
                    continue
                if action is AcceptAction.BACK_OFF:
                    self._back_off(exc)
                return
            self._backoff.accepted()
            self._serve(conn, addr)

    def connectionLost(self, reason: failure.Failure) -> None:
        """The reactor dropped the port (shutdown): stop listening."""
        self.stopListening()

    def logPrefix(self) -> str:
        """The factory's class name."""
        return type(self._factory).__name__

    # -- internals -------------------------------------------------------------

    def _serve(self, conn: socket.socket, addr: Any) -> None:
        set_nodelay(conn)
        try:
            protocol = self._factory.buildProtocol(peer_address(conn.family, addr))
        except Exception:
            LOGGER.exception("%r: buildProtocol raised; connection closed", self)
            conn.close()
            return
        if protocol is None:
            conn.close()
            return
        tls = None
        if self._ssl is not None:
            tls = TLSLayer(
                self._ssl,
                server_side=True,
                handshake_timeout=self._handshake_timeout,
            )
        start_transport(
            self._reactor,
            conn,
            protocol,
            self._pool,
            self._high_water,
            self._low_water,
            tls,
        )

    def _back_off(self, exc: OSError) -> None:
        LOGGER.warning(
            "%r: accept failed (%s); pausing accepts for %.2f s",
            self,
            exc.strerror or exc,
            self._backoff.delay,
        )
        self._reactor.removeReader(self)
        self._resume_call = self._reactor.callLater(self._backoff.delay, self._resume)

    def _resume(self) -> None:
        self._resume_call = None
        if self.connected:
            self._reactor.addReader(self)

    def _stopped(self, done: defer.Deferred[None]) -> None:
        self._factory.doStop()
        done.callback(None)


def start_transport(
    reactor: Any,
    sock: socket.socket,
    protocol: Any,
    pool: BufferPool,
    high_water: int = 65536,
    low_water: int = 16384,
    tls: TLSLayer | None = None,
) -> Transport | None:
    """Start a transport for ``protocol``; ``None`` if ``connectionMade`` raised."""
    transport = Transport(
        reactor,
        sock,
        protocol,
        pool,
        high_water=high_water,
        low_water=low_water,
        tls=tls,
    )
    transport.start()
    if transport.disconnected:
        return None
    return transport


def listen_tcp(
    reactor: Any,
    port: int,
    factory: Any,
    *,
    backlog: int = 50,
    interface: str = "",
    pool: BufferPool | None = None,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
) -> ListeningPort:
    """Listen on ``port`` like ``reactor.listenTCP``, with bufkit transports.

    With ``ssl`` (a server-side :class:`ssl.SSLContext`) every connection
    speaks TLS through a :class:`bufkit.TLSLayer`, as ``reactor.listenSSL``;
    a client that has not finished its handshake ``ssl_handshake_timeout``
    seconds after it connected is closed.

    Raises:
        twisted.internet.error.CannotListenError: The address is taken or invalid.
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext`.
        ValueError: ``ssl_handshake_timeout`` is not a positive number.
    """
    listening = ListeningPort(
        reactor,
        port,
        factory,
        backlog=backlog,
        interface=interface,
        pool=pool,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
    )
    listening.startListening()
    return listening


@implementer(IWriteDescriptor)
class _Connecting:
    """Waits for a non-blocking ``connect`` to finish."""

    def __init__(
        self,
        reactor: Any,
        sock: socket.socket,
        done: defer.Deferred[socket.socket],
        timeout: float,
    ) -> None:
        self._reactor = reactor
        self._sock = sock
        self._done = done
        self._timer = reactor.callLater(timeout, self._timed_out)

    def fileno(self) -> int:
        return self._sock.fileno()

    def doWrite(self) -> None:
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self._fail(_connect_error(code))
        else:
            self._finish()
            self._done.callback(self._sock)

    def connectionLost(self, reason: failure.Failure) -> None:
        # epoll reports a refused connect as an error event, not as writable.
        code = self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        self._fail(
            _connect_error(code) if code else reason.value or error.ConnectionLost()
        )

    def logPrefix(self) -> str:
        return "bufkit-connect"

    def _timed_out(self) -> None:
        self._fail(error.TimeoutError())

    def _fail(self, exc: BaseException) -> None:
        if self._done.called:
            return
        self._finish()
        self._sock.close()
        self._done.errback(failure.Failure(exc))

    def _finish(self) -> None:
        self._reactor.removeWriter(self)
        if self._timer.active():
            self._timer.cancel()


def _connect_error(code: int) -> Exception:
    """Twisted's exception for a failed ``connect`` with ``code`` (an errno)."""
    exc: Exception = error.getConnectError((code, os.strerror(code)))
    return exc


@defer.inlineCallbacks
def connect_tcp(
    reactor: Any,
    host: str,
    port: int,
    factory: Any,
    *,
    timeout: float = 30.0,
    pool: BufferPool | None = None,
    ssl: _ssl.SSLContext | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    bind_address: tuple[str, int] | None = None,
) -> Any:
    """Connect like ``reactor.connectTCP``, with a bufkit transport.

    The name is resolved by the reactor's resolver (never on the loop). With
    ``ssl`` (a client-side :class:`ssl.SSLContext`) the connection speaks
    TLS through a :class:`bufkit.TLSLayer`; ``server_hostname`` (``host`` if
    ``None``) is sent as SNI and checked against the certificate. The
    Deferred fires once TCP connected; the handshake goes on in the
    background (writes wait for it), and a failed one, or one not done
    ``ssl_handshake_timeout`` seconds after the TCP connection, reaches
    ``connectionLost`` as a :class:`bufkit.TLSHandshakeError`. With
    ``bind_address`` (host, port) the socket is bound there before it
    connects.

    Returns:
        A Deferred that fires with the connected protocol, or fails with
        ``ConnectError``, ``ConnectBindError``, ``TimeoutError`` or
        ``DNSLookupError``.

    Raises:
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext`.
        ValueError: ``ssl_handshake_timeout`` is not a positive number.
    """
    tls = None
    if ssl is not None:
        tls = TLSLayer(
            ssl,
            server_side=False,
            server_hostname=host if server_hostname is None else server_hostname,
            handshake_timeout=ssl_handshake_timeout,
        )
    try:
        socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
        ip = host
    except OSError:
        ip = yield reactor.resolve(host)
    family = socket.AF_INET6 if ":" in ip else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setblocking(False)
    if bind_address is not None:
        try:
            sock.bind(bind_address)
        except OSError as exc:
            sock.close()
            raise error.ConnectBindError(string=f"{bind_address}: {exc}") from exc
    code = sock.connect_ex((ip, port))
    if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
        sock.close()
        raise _connect_error(code)
    done: defer.Deferred[socket.socket] = defer.Deferred()
    waiter = _Connecting(reactor, sock, done, timeout)
    reactor.addWriter(waiter)
    connected = yield done
    set_nodelay(connected)
    addr = peer_address(connected.family, connected.getpeername())
    protocol = factory.buildProtocol(addr)
    if protocol is None:
        connected.close()
        raise error.ConnectError(string="the factory built no protocol")
    transport = start_transport(
        reactor,
        connected,
        protocol,
        pool if pool is not None else default_pool(),
        tls=tls,
    )
    if transport is None:
        raise error.ConnectError(string="connectionMade raised")
    return protocol
