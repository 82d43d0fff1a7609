"""bufkit for asyncio and uvloop, at two levels.

:class:`PooledProtocol` is an :class:`asyncio.BufferedProtocol` that reads into
chunks of a shared :class:`bufkit.BufferPool`: it works on every asyncio
transport (TCP, Unix sockets, TLS, any loop) and keeps idle connections at
zero pool bytes, while writes stay the transport's.

The readiness stream (:func:`start_server`, :func:`open_connection`,
:func:`start_protocol_server`, :func:`open_protocol_connection`,
:class:`Connection`) goes further on loops with ``add_reader`` (selector loops
and uvloop): it runs :class:`bufkit.Connection`, the connection core, on the
raw socket, so the writes of one event or loop iteration leave in one
``sendmsg`` and :meth:`Connection.send` resolves when the kernel accepted
the data. :func:`create_server` and :func:`create_connection` run unmodified
:class:`asyncio.Protocol` classes on the same stream (TLS included).

Importing this module imports :mod:`asyncio` but not uvloop.
"""

from __future__ import annotations

from bufkit.adapters.asyncio._compat import create_connection, create_server
from bufkit.adapters.asyncio._connect import (
    open_connection,
    open_protocol_connection,
    start_protocol_server,
    start_server,
)
from bufkit.adapters.asyncio._handlers import FramerFactory, StreamProtocol
from bufkit.adapters.asyncio._protocol import PooledProtocol
from bufkit.adapters.asyncio._server import StreamServer
from bufkit.adapters.asyncio._stream import Connection

__all__ = [
    "Connection",
    "FramerFactory",
    "PooledProtocol",
    "StreamProtocol",
    "StreamServer",
    "create_connection",
    "create_server",
    "open_connection",
    "open_protocol_connection",
    "start_protocol_server",
    "start_server",
]


def _publish(*objects: object) -> None:
    """Show classes and functions under this public module."""
    for obj in objects:
        obj.__module__ = __name__


_publish(
    Connection,
    PooledProtocol,
    StreamProtocol,
    StreamServer,
    create_connection,
    create_server,
    open_connection,
    open_protocol_connection,
    start_protocol_server,
    start_server,
)
