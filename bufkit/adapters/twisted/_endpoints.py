"""Twisted endpoints for bufkit transports, and their string syntax.

Theory of operation: :class:`ServerEndpoint` and :class:`ClientEndpoint` are
the ``IStreamServerEndpoint`` and ``IStreamClientEndpoint`` of
:func:`~bufkit.adapters.twisted.listen_tcp` and
:func:`~bufkit.adapters.twisted.connect_tcp`, so any Twisted application that
takes an endpoint runs on bufkit transports unchanged. The parsers give them
the string syntax ``bufkit-tcp:PORT[:interface=ADDR][:backlog=N]`` (server)
and ``bufkit-tcp:host=HOST:port=PORT[:timeout=SECONDS][:bindAddress=ADDR]``
(client), through the plugin module ``twisted/plugins/bufkit_endpoints.py``
that ships with bufkit.
``bufkit-tls:PORT:certKey=CERT:privateKey=KEY[:interface=ADDR][:backlog=N]``
is the same server speaking TLS through a :class:`bufkit.TLSLayer`, and
``bufkit-tls:host=HOST:port=PORT[:trustRoots=PATH][:certificate=CERT]
[:privateKey=KEY][:timeout=SECONDS][:bindAddress=ADDR]`` the client, with the
parameters of Twisted's own ``tls:`` client endpoint. Both TLS strings take
``handshakeTimeout=SECONDS``.
"""

from __future__ import annotations

import ssl as _ssl
from pathlib import Path
from typing import Any, Final

from twisted.internet import defer
from twisted.internet.interfaces import (
    IStreamClientEndpoint,
    IStreamClientEndpointStringParserWithReactor,
    IStreamServerEndpoint,
    IStreamServerEndpointStringParser,
)
from twisted.plugin import IPlugin
from zope.interface import implementer

from bufkit import BufferPool
from bufkit.adapters.twisted._tcp import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    ListeningPort,
    connect_tcp,
    listen_tcp,
)

__all__ = [
    "ClientEndpoint",
    "ClientParser",
    "ServerEndpoint",
    "ServerParser",
    "TLSClientParser",
    "TLSServerParser",
]


@implementer(IStreamServerEndpoint)
class ServerEndpoint:
    """Listens on a TCP port with bufkit transports (``IStreamServerEndpoint``).

    Args:
        reactor: The reactor (``IReactorFDSet`` and ``IReactorTime``).
        port: The port; 0 picks a free one.
        backlog: The listen backlog.
        interface: The address to bind; ``""`` for every IPv4 address.
        pool: Lends the read buffers; one shared pool if ``None``.
        ssl: A server-side :class:`ssl.SSLContext`: every connection speaks
            TLS through a :class:`bufkit.TLSLayer`.
        ssl_handshake_timeout: Seconds a client may take to finish its TLS
            handshake before it is closed.
    """

    def __init__(
        self,
        reactor: Any,
        port: int,
        backlog: int = 50,
        interface: str = "",
        *,
        pool: BufferPool | None = None,
        ssl: _ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> None:
        self._ssl = ssl
        self._handshake_timeout = ssl_handshake_timeout
        self._reactor = reactor
        self._port = port
        self._backlog = backlog
        self._interface = interface
        self._pool = pool

    def listen(self, protocolFactory: Any) -> defer.Deferred[ListeningPort]:
        """Start listening; the Deferred fires with the ``IListeningPort``."""
        return defer.execute(
            listen_tcp,
            self._reactor,
            self._port,
            protocolFactory,
            backlog=self._backlog,
            interface=self._interface,
            pool=self._pool,
            ssl=self._ssl,
            ssl_handshake_timeout=self._handshake_timeout,
        )


@implementer(IStreamClientEndpoint)
class ClientEndpoint:
    """Connects to a TCP server with a bufkit transport (``IStreamClientEndpoint``).

    Args:
        reactor: The reactor (``IReactorFDSet``, ``IReactorTime`` and a resolver).
        host: A name or an address; names are resolved off the loop.
        port: The server's port.
        timeout: Seconds to wait for the connection.
        pool: Lends the read buffers; one shared pool if ``None``.
        ssl: A client-side :class:`ssl.SSLContext`: the connection speaks TLS
            through a :class:`bufkit.TLSLayer`.
        server_hostname: The name sent as SNI and checked against the
            server's certificate; ``host`` if ``None``.
        ssl_handshake_timeout: Seconds the TLS handshake may take; a
            handshake not done by then fails the connection.
        bind_address: A (host, port) to bind the socket to before it connects.
    """

    def __init__(
        self,
        reactor: Any,
        host: str,
        port: int,
        timeout: float = 30.0,
        *,
        pool: BufferPool | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
        bind_address: tuple[str, int] | None = None,
    ) -> None:
        self._ssl = ssl
        self._handshake_timeout = ssl_handshake_timeout
        self._bind_address = bind_address
        self._server_hostname = server_hostname
        self._reactor = reactor
        self._host = host
        self._port = port
        self._timeout = timeout
        self._pool = pool

    def connect(self, protocolFactory: Any) -> defer.Deferred[Any]:
        """Connect; the Deferred fires with the protocol once connected."""
        result: defer.Deferred[Any] = connect_tcp(
            self._reactor,
            self._host,
            self._port,
            protocolFactory,
            timeout=self._timeout,
            pool=self._pool,
            ssl=self._ssl,
            server_hostname=self._server_hostname,
            ssl_handshake_timeout=self._handshake_timeout,
            bind_address=self._bind_address,
        )
        return result


@implementer(IPlugin, IStreamServerEndpointStringParser)
class ServerParser:
    """Parses ``bufkit-tcp:PORT[:interface=ADDR][:backlog=N]``."""

    prefix = "bufkit-tcp"

    def parseStreamServer(
        self,
        reactor: Any,
        port: str,
        backlog: str = "50",
        interface: str = "",
    ) -> ServerEndpoint:
        """The endpoint that the string's arguments describe."""
        return ServerEndpoint(reactor, int(port), int(backlog), interface)


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class ClientParser:
    """Parses ``bufkit-tcp:host=HOST:port=PORT[:timeout=S][:bindAddress=ADDR]``."""

    prefix = "bufkit-tcp"

    def parseStreamClient(
        self,
        reactor: Any,
        *args: str,
        **kwargs: str,
    ) -> ClientEndpoint:
        """The endpoint that the string's arguments describe.

        Raises:
            ValueError: ``host`` or ``port`` is missing.
        """
        params = dict(zip(("host", "port"), args, strict=False))
        params.update(kwargs)
        if "host" not in params or "port" not in params:
            raise ValueError("bufkit-tcp client endpoints need host= and port=")
        bind = params.get("bindAddress")
        return ClientEndpoint(
            reactor,
            params["host"],
            int(params["port"]),
            float(params.get("timeout", "30")),
            bind_address=None if bind is None else (bind, 0),
        )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSServerParser:
    """Parses ``bufkit-tls:PORT:certKey=CERT:privateKey=KEY[:interface=ADDR]``.

    ``privateKey`` defaults to ``certKey`` (one PEM file holding both), as in
    Twisted's ``ssl:`` endpoint; ``backlog=N`` and ``handshakeTimeout=SECONDS``
    (default 60) are accepted too.
    """

    prefix = "bufkit-tls"

    def parseStreamServer(
        self,
        reactor: Any,
        port: str,
        certKey: str | None = None,
        privateKey: str | None = None,
        backlog: str = "50",
        interface: str = "",
        handshakeTimeout: str | None = None,
    ) -> ServerEndpoint:
        """The endpoint that the string's arguments describe.

        Raises:
            ValueError: ``certKey`` is missing, or a number is not one.
            OSError: The certificate or key cannot be read.
        """
        if certKey is None:
            raise ValueError("bufkit-tls server endpoints need certKey=")
        timeout = _seconds("handshakeTimeout", handshakeTimeout)
        context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certKey, privateKey or certKey)
        return ServerEndpoint(
            reactor,
            int(port),
            int(backlog),
            interface,
            ssl=context,
            ssl_handshake_timeout=timeout,
        )


@implementer(IPlugin, IStreamClientEndpointStringParserWithReactor)
class TLSClientParser:
    """Parses ``bufkit-tls:host=HOST:port=PORT`` with Twisted's ``tls:`` options.

    As in ``tls:HOST:PORT``, the host and port may also come first without
    names. Options: ``trustRoots=PATH`` (a directory of ``*.pem`` CA
    certificates, as Twisted's, or one PEM file; the platform's trust store
    if absent), ``certificate=CERT`` and ``privateKey=KEY`` (a client
    certificate; the key defaults to the certificate file), ``timeout=SECONDS``
    for the TCP connection (default 30), ``bindAddress=ADDR`` (the local
    address), and ``handshakeTimeout=SECONDS`` (default 60). The server's
    certificate is always verified against ``host``.
    """

    prefix = "bufkit-tls"

    def parseStreamClient(
        self,
        reactor: Any,
        *args: str,
        **kwargs: str,
    ) -> ClientEndpoint:
        """The endpoint that the string's arguments describe.

        Raises:
            ValueError: ``host`` or ``port`` is missing, an option is unknown,
                a number is not one, or ``trustRoots`` holds no certificate.
            OSError: A certificate, key or CA file cannot be read.
        """
        params = dict(zip(("host", "port"), args, strict=False))
        params.update(kwargs)
        unknown = set(params) - _TLS_CLIENT_OPTIONS
        if unknown:
            raise ValueError(f"bufkit-tls client endpoints take no {sorted(unknown)}")
        if "host" not in params or "port" not in params:
            raise ValueError("bufkit-tls client endpoints need host= and port=")
        bind = params.get("bindAddress")
        return ClientEndpoint(
            reactor,
            params["host"],
            int(params["port"]),
            _seconds("timeout", params.get("timeout", "30")),
            ssl=_client_context(
                params.get("trustRoots"),
                params.get("certificate"),
                params.get("privateKey"),
            ),
            ssl_handshake_timeout=_seconds(
                "handshakeTimeout", params.get("handshakeTimeout")
            ),
            bind_address=None if bind is None else (bind, 0),
        )


_TLS_CLIENT_OPTIONS: Final = frozenset(
    (
        "host",
        "port",
        "trustRoots",
        "certificate",
        "privateKey",
        "timeout",
        "bindAddress",
        "handshakeTimeout",
    )
)


def _seconds(name: str, text: str | None) -> float:
    """A positive number of seconds from a string option (the default if absent)."""
    if text is None:
        return DEFAULT_HANDSHAKE_TIMEOUT
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise ValueError(f"{name}={text!r} is not a positive number of seconds")
    return value


def _client_context(
    trust_roots: str | None, certificate: str | None, private_key: str | None
) -> _ssl.SSLContext:
    """The client context of the ``bufkit-tls`` client string's options."""
    if trust_roots is None:
        context = _ssl.create_default_context(_ssl.Purpose.SERVER_AUTH)
    else:
        context = _ssl.SSLContext(_ssl.PROTOCOL_TLS_CLIENT)  # verifies, checks names
        root = Path(trust_roots)
        files = sorted(root.glob("*.pem")) if root.is_dir() else [root]
        if not files:
            raise ValueError(f"trustRoots={trust_roots!r} holds no *.pem file")
        for file in files:
            context.load_verify_locations(cafile=file)
    if certificate is not None:
        context.load_cert_chain(certificate, private_key or certificate)
    elif private_key is not None:
        raise ValueError(f"privateKey={private_key!r} needs certificate=")
    return context
