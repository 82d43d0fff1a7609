"""Twisted endpoints for bufkit transports, and their string syntax.

Theory of operation: :class:`ServerEndpoint` and :class:`ClientEndpoint` are
the ``IStreamServerEndpoint`` and ``IStreamClientEndpoint`` of
:func:`~bufkit.adapters.twisted.listen_tcp` and
:func:`~bufkit.adapters.twisted.connect_tcp`, so any Twisted application that
takes an endpoint runs on bufkit transports unchanged. The parsers give them
the string syntax ``bufkit-tcp:PORT[:interface=ADDR][:backlog=N]`` (server)
and ``bufkit-tcp:host=HOST:port=PORT[:timeout=SECONDS]`` (client), through the
plugin module ``twisted/plugins/bufkit_endpoints.py`` that ships with bufkit.
``bufkit-tls:PORT:certKey=CERT:privateKey=KEY[:interface=ADDR][:backlog=N]``
is the same server speaking TLS through a :class:`bufkit.TLSLayer`.
"""

from __future__ import annotations

import ssl as _ssl
from typing import Any

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
from bufkit.adapters.twisted._tcp import ListeningPort, connect_tcp, listen_tcp

__all__ = [
    "ClientEndpoint",
    "ClientParser",
    "ServerEndpoint",
    "ServerParser",
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
    ) -> None:
        self._ssl = ssl
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
    ) -> None:
        self._ssl = ssl
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
    """Parses ``bufkit-tcp:host=HOST:port=PORT[:timeout=SECONDS]``."""

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
        return ClientEndpoint(
            reactor,
            params["host"],
            int(params["port"]),
            float(params.get("timeout", "30")),
        )


@implementer(IPlugin, IStreamServerEndpointStringParser)
class TLSServerParser:
    """Parses ``bufkit-tls:PORT:certKey=CERT:privateKey=KEY[:interface=ADDR]``.

    ``privateKey`` defaults to ``certKey`` (one PEM file holding both), as in
    Twisted's ``ssl:`` endpoint; ``backlog=N`` is accepted too.
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
    ) -> ServerEndpoint:
        """The endpoint that the string's arguments describe.

        Raises:
            ValueError: ``certKey`` is missing.
            OSError: The certificate or key cannot be read.
        """
        if certKey is None:
            raise ValueError("bufkit-tls server endpoints need certKey=")
        context = _ssl.create_default_context(_ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(certKey, privateKey or certKey)
        return ServerEndpoint(reactor, int(port), int(backlog), interface, ssl=context)
