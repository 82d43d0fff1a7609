"""The Twisted adapter, used as a user would: types checked, never run."""

from __future__ import annotations

from typing import Any, assert_type

from twisted.internet import defer
from twisted.internet.protocol import Factory, Protocol

import bufkit
from bufkit.adapters.twisted import (
    ClientEndpoint,
    ListeningPort,
    ServerEndpoint,
    Transport,
    connect_tcp,
    default_pool,
    listen_tcp,
)

pool = bufkit.BufferPool()


def serve(reactor: Any, factory: Factory[Protocol]) -> None:
    """Endpoints and functions take the reactor first and an optional pool."""
    port = listen_tcp(reactor, 8080, factory, interface="127.0.0.1", pool=pool)
    assert_type(port, ListeningPort)
    assert_type(port.stopListening(), defer.Deferred[None])
    assert_type(
        ServerEndpoint(reactor, 0, pool=pool).listen(factory),
        defer.Deferred[ListeningPort],
    )
    assert_type(
        ClientEndpoint(reactor, "localhost", 8080).connect(factory), defer.Deferred[Any]
    )
    assert_type(connect_tcp(reactor, "127.0.0.1", 8080, factory), defer.Deferred[Any])
    assert_type(default_pool(), bufkit.BufferPool)
    listen_tcp(reactor, "8080", factory)  # type: ignore[arg-type]


def inspect(transport: Transport) -> None:
    """The bufkit connection under a transport is reachable and typed."""
    assert_type(transport.connection, bufkit.Connection)
    assert_type(transport.connection.pending_bytes, int)
