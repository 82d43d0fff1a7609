"""``start_server`` and ``open_connection``: sockets in, connections out.

Theory of operation: both refuse loops without ``add_reader`` up front
(:class:`bufkit.UnsupportedLoopError` naming the loop), resolve with the
loop's ``getaddrinfo``, and bind the connection options once into a maker.
A connection of ``open_connection`` is recorded in the loop's registry, one
of a server in its server (which the registry records), so loop shutdown can
abort it. Cost: one ``getaddrinfo`` per call; nothing per connection
beyond the :class:`~bufkit.adapters.asyncio.Connection`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from bufkit.adapters.asyncio._handlers import (
    DEFAULT_READ_LIMIT,
    FramerFactory,
    StreamProtocol,
)
from bufkit.adapters.asyncio._server import (
    ClientCallback,
    ProtocolFactory,
    StreamServer,
    _check_loop,
    _MakeConnection,
    _nodelay,
    _registry,
)
from bufkit.adapters.asyncio._stream import Connection

if TYPE_CHECKING:
    from bufkit import BufferPool

__all__ = ["open_connection", "start_server"]

_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]


def _maker(
    loop: asyncio.AbstractEventLoop,
    pool: BufferPool,
    *,
    framer: FramerFactory | None,
    high_water: int,
    low_water: int,
    read_limit: int,
    read_budget: int,
) -> _MakeConnection:
    """Bind the connection options once (the caller records the connection)."""

    def make(sock: socket.socket, protocol: StreamProtocol | None) -> Connection:
        return Connection(
            loop,
            sock,
            pool,
            protocol=protocol,
            framer=framer,
            high_water=high_water,
            low_water=low_water,
            read_limit=read_limit,
            read_budget=read_budget,
        )

    return make


def _listen(
    infos: Sequence[_AddrInfo], backlog: int, reuse_address: bool
) -> list[socket.socket]:
    """One listening socket per distinct address; all or nothing."""
    sockets: list[socket.socket] = []
    try:
        for family, type_, proto, _name, addr in dict.fromkeys(infos):
            sock = socket.socket(family, type_, proto)
            sockets.append(sock)
            if reuse_address:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
    except BaseException:
        for sock in sockets:
            sock.close()
        raise
    return sockets


async def start_server(
    handler: ClientCallback | ProtocolFactory,
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    sock: socket.socket | None = None,
    framer: FramerFactory | None = None,
    backlog: int = 100,
    reuse_address: bool = True,
    high_water: int = 65536,
    low_water: int = 16384,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int = 16,
) -> StreamServer:
    """Listen on ``host``:``port`` and serve each connection with ``handler``.

    ``handler`` is either a coroutine function ``async def cb(conn)``
    (callback mode: it runs in its own task, reads with
    :meth:`~bufkit.adapters.asyncio.Connection.read_frame`, and the
    connection is closed when it returns), or a factory of
    :class:`~bufkit.adapters.asyncio.StreamProtocol` objects (protocol mode).

    Args:
        handler: The client callback or the protocol factory.
        host: Address to bind; ``None`` binds every interface.
        port: Port to bind; 0 picks a free one (see ``server.sockets``).
        pool: Lends the read buffers of every connection.
        sock: An already bound socket to listen on instead of host and port.
        framer: Callback mode: builds a framer from its ``on_frame``
            callback, e.g. ``functools.partial(LengthPrefixedFramer, pool,
            max_frame=65536)``; by default each read is a frame.
        backlog: The ``listen`` backlog, and the accepts per readable event.
        reuse_address: Set ``SO_REUSEADDR`` on the listening sockets.
        high_water: Queued bytes above which ``drain`` waits.
        low_water: Queued bytes at which ``drain`` resumes.
        read_limit: Callback mode: received frame bytes buffered before
            reading pauses (checked after each read, so up to
            ``read_budget`` more reads may land first).
        read_budget: Reads per readable event (fairness).

    Returns:
        The server, already accepting.

    Raises:
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or binding the address failed.
    """
    loop = asyncio.get_running_loop()
    _check_loop(loop)
    if sock is None:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets = _listen(infos, backlog, reuse_address)
    else:
        sock.listen(backlog)
        sock.setblocking(False)
        sockets = [sock]
    make = _maker(
        loop,
        pool,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
    )
    server = StreamServer(loop, sockets, handler, make, backlog)
    server._start()
    return server


async def open_connection(
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    protocol: StreamProtocol | None = None,
    sock: socket.socket | None = None,
    framer: FramerFactory | None = None,
    high_water: int = 65536,
    low_water: int = 16384,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int = 16,
) -> Connection:
    """Connect to ``host``:``port`` and return the connection.

    With ``protocol``, received bytes go to it (protocol mode); without, read
    them with :meth:`~bufkit.adapters.asyncio.Connection.read_frame`.

    Args:
        host: The address to connect to.
        port: The port to connect to.
        pool: Lends the read buffers.
        protocol: Receives the connection's events (protocol mode).
        sock: An already connected socket to use instead of host and port.
        framer: Callback mode: builds a framer from its ``on_frame`` callback.
        high_water: Queued bytes above which ``drain`` waits.
        low_water: Queued bytes at which ``drain`` resumes.
        read_limit: Callback mode: received frame bytes buffered before
            reading pauses.
        read_budget: Reads per readable event (fairness).

    Returns:
        The connected :class:`~bufkit.adapters.asyncio.Connection`.

    Raises:
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or connecting failed (the first address's error).
    """
    loop = asyncio.get_running_loop()
    _check_loop(loop)
    if sock is None:
        sock = await _dial(loop, host, port)
    sock.setblocking(False)
    _nodelay(sock)
    make = _maker(
        loop,
        pool,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
    )
    conn = make(sock, protocol)
    registry = _registry(loop)
    registry.add(conn)
    conn._owner = registry
    conn._start()
    return conn


async def _dial(
    loop: asyncio.AbstractEventLoop, host: str | None, port: int
) -> socket.socket:
    """Try each resolved address in turn; raise the first error if all fail."""
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    errors: list[OSError] = []
    for family, type_, proto, _name, addr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, addr)
        except OSError as exc:
            sock.close()
            errors.append(exc)
            continue
        except BaseException:
            sock.close()
            raise
        return sock
    if errors:
        raise errors[0]
    raise OSError(f"getaddrinfo({host!r}, {port}) returned no address")
