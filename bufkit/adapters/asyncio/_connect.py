"""Servers and clients of the readiness stream: sockets in, connections out.

Theory of operation: two explicit modes, as in asyncio. ``start_server`` and
``open_connection`` are callback mode: ``handler(conn)`` returns an
awaitable the server runs in a task, the client reads with ``read_frame``.
``start_protocol_server`` and ``open_protocol_connection`` are protocol mode:
a factory builds a :class:`~bufkit.adapters.asyncio.StreamProtocol` per
connection. Nothing guesses the mode from the callable. All four refuse
loops without ``add_reader`` up front (:class:`bufkit.UnsupportedLoopError`
naming the loop), resolve with the loop's ``getaddrinfo``, and bind the
connection options once into a maker. A client connection is recorded in
the loop's registry, a server's in its server (which the registry records),
so loop shutdown can abort it. Cost: one ``getaddrinfo`` per call; nothing
per connection beyond the :class:`~bufkit.adapters.asyncio.Connection`.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from bufkit._sockets import set_nodelay
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
    _registry,
)
from bufkit.adapters.asyncio._stream import Connection

if TYPE_CHECKING:
    import ssl as _ssl

    from bufkit import BufferPool, TLSLayer

DEFAULT_HANDSHAKE_TIMEOUT = 60.0
"""Seconds a TLS handshake may take by default, as in asyncio."""

__all__ = [
    "open_connection",
    "open_protocol_connection",
    "start_protocol_server",
    "start_server",
]

_AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
_P = TypeVar("_P", bound=StreamProtocol)


_Layer = Callable[[], "TLSLayer"]


def _tls_options(
    ssl: _ssl.SSLContext | bool | None,
    *,
    server_side: bool,
    host: str | None,
    server_hostname: str | None,
    handshake_timeout: float | None,
) -> _Layer | None:
    """Check the TLS arguments by asyncio's rules; return a layer maker or None.

    The first layer is built here, so a bad context, name or timeout is
    refused before any socket is opened.
    """
    import ssl as ssl_module

    from bufkit import TLSLayer

    if ssl is None or ssl is False:
        if server_hostname is not None:
            raise ValueError(
                f"server_hostname={server_hostname!r} is only meaningful with ssl"
            )
        if handshake_timeout is not None:
            raise ValueError(
                f"ssl_handshake_timeout={handshake_timeout!r} is only meaningful "
                "with ssl"
            )
        return None
    if ssl is True and not server_side:
        context = ssl_module.create_default_context()
    elif isinstance(ssl, ssl_module.SSLContext):
        context = ssl
    else:
        raise TypeError(f"ssl must be an ssl.SSLContext or None, not {ssl!r}")
    if not server_side and server_hostname is None:
        if host is None:
            raise ValueError(
                "server_hostname is required with ssl when connecting without a host"
            )
        server_hostname = host
    if server_side:
        server_hostname = None
    timeout = (
        DEFAULT_HANDSHAKE_TIMEOUT if handshake_timeout is None else handshake_timeout
    )
    name = server_hostname

    def layer() -> TLSLayer:
        return TLSLayer(
            context,
            server_side=server_side,
            server_hostname=name,
            handshake_timeout=timeout,
        )

    layer()
    return layer


def _maker(
    loop: asyncio.AbstractEventLoop,
    pool: BufferPool,
    *,
    framer: FramerFactory | None = None,
    high_water: int,
    low_water: int,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int,
    tls: _Layer | None = None,
) -> _MakeConnection:
    """Bind the connection options once (the caller records the connection)."""
    defer = loop.call_soon  # one bound method for every connection

    def make(sock: socket.socket, protocol: StreamProtocol | None) -> Connection:
        return Connection(
            pool,
            sock,
            protocol,
            loop=loop,
            framer=framer,
            high_water=high_water,
            low_water=low_water,
            read_limit=read_limit,
            read_budget=read_budget,
            tls=None if tls is None else tls(),
            defer=defer,
        )

    return make


def _refuse_classes(handler: object) -> None:
    """A class given to ``start_server`` is a protocol factory: say which to use."""
    if isinstance(handler, type):
        raise TypeError(
            f"start_server() takes a connection handler, async def handler(conn), "
            f"not the class {handler.__qualname__}: serve protocol factories "
            "with start_protocol_server()"
        )


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


async def _serve(
    handler: ClientCallback | None,
    factory: ProtocolFactory | None,
    host: str | None,
    port: int,
    *,
    pool: BufferPool,
    sock: socket.socket | None,
    backlog: int,
    reuse_address: bool,
    ssl: _ssl.SSLContext | None,
    ssl_handshake_timeout: float | None,
    framer: FramerFactory | None = None,
    high_water: int,
    low_water: int,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int,
) -> StreamServer:
    """Both servers: check, listen, bind the options, start accepting."""
    tls = _tls_options(
        ssl,
        server_side=True,
        host=host,
        server_hostname=None,
        handshake_timeout=ssl_handshake_timeout,
    )
    loop = asyncio.get_running_loop()
    _check_loop(loop)
    if sock is not None:
        sock.listen(backlog)
        sock.setblocking(False)
        sockets = [sock]
    else:
        infos = await loop.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        sockets = _listen(infos, backlog, reuse_address)
    make = _maker(
        loop,
        pool,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
        tls=tls,
    )
    server = StreamServer(
        loop, sockets, make, handler=handler, factory=factory, backlog=backlog
    )
    server._start()
    return server


async def start_server(
    handler: ClientCallback,
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    sock: socket.socket | None = None,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    framer: FramerFactory | None = None,
    backlog: int = 100,
    reuse_address: bool = True,
    high_water: int = 65536,
    low_water: int = 16384,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int = 16,
) -> StreamServer:
    """Listen on ``host``:``port`` and run ``handler(conn)`` for each connection.

    As with :func:`asyncio.start_server`, ``handler`` is called with each new
    connection and returns an awaitable (an ``async def`` function, or any
    callable returning a coroutine, such as ``lambda conn: serve(conn, db)``),
    which runs in its own task; the connection is closed when it finishes.
    The handler reads with
    :meth:`~bufkit.adapters.asyncio.Connection.read_frame` or ``async for``.
    For :class:`~bufkit.adapters.asyncio.StreamProtocol` factories use
    :func:`start_protocol_server`. A handler that raises, or returns
    something that is not awaitable, is reported to the loop's exception
    handler (a :class:`TypeError` naming the value) and its connection
    aborted.

    Args:
        handler: Called as ``handler(conn)``; returns an awaitable.
        host: Address to bind; ``None`` binds every interface.
        port: Port to bind; 0 picks a free one (see ``server.sockets``).
        pool: Lends the read buffers of every connection.
        sock: An already bound socket to listen on instead of host and port.
        ssl: A server :class:`ssl.SSLContext`: every connection speaks TLS
            through a :class:`bufkit.TLSLayer` (handlers and protocols see
            plaintext; a failed handshake ends the connection with
            :class:`bufkit.TLSHandshakeError`).
        ssl_handshake_timeout: Seconds each handshake may take (60 by
            default); only with ``ssl``.
        framer: Builds a framer from its ``on_frame`` callback, e.g.
            ``functools.partial(LengthPrefixedFramer, pool, max_frame=65536)``;
            by default each read is a frame.
        backlog: The ``listen`` backlog, and the accepts per readable event.
        reuse_address: Set ``SO_REUSEADDR`` on the listening sockets.
        high_water: Queued bytes above which writing may pause (``drain``
            waits).
        low_water: Queued bytes at which writing resumes.
        read_limit: Received frame bytes buffered before reading pauses
            (checked after each frame; no further read follows in that
            event).
        read_budget: Reads per readable event (fairness).

    Returns:
        The server, already accepting.

    Raises:
        TypeError: ``handler`` is a class (a protocol factory).
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext`.
        ValueError: ``ssl_handshake_timeout`` without ``ssl``, or not
            positive.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or binding the address failed.
    """
    _refuse_classes(handler)
    return await _serve(
        handler,
        None,
        host,
        port,
        sock=sock,
        backlog=backlog,
        reuse_address=reuse_address,
        pool=pool,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
    )


async def start_protocol_server(
    factory: ProtocolFactory,
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    sock: socket.socket | None = None,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    backlog: int = 100,
    reuse_address: bool = True,
    high_water: int = 65536,
    low_water: int = 16384,
    read_budget: int = 16,
) -> StreamServer:
    """Listen on ``host``:``port``; each connection gets ``factory()``'s protocol.

    The protocol-factory twin of :func:`start_server`, as
    :meth:`asyncio.loop.create_server` is of :func:`asyncio.start_server`. A
    factory that raises is reported to the loop's exception handler and the
    accepted socket closed; a ``connection_made`` that raises aborts its
    connection.

    Args:
        factory: Called with no argument per accepted connection; returns a
            :class:`~bufkit.adapters.asyncio.StreamProtocol`.
        host: Address to bind; ``None`` binds every interface.
        port: Port to bind; 0 picks a free one (see ``server.sockets``).
        pool: Lends the read buffers of every connection.
        sock: An already bound socket to listen on instead of host and port.
        ssl: A server :class:`ssl.SSLContext`: every connection speaks TLS
            through a :class:`bufkit.TLSLayer` (handlers and protocols see
            plaintext; a failed handshake ends the connection with
            :class:`bufkit.TLSHandshakeError`).
        ssl_handshake_timeout: Seconds each handshake may take (60 by
            default); only with ``ssl``.
        backlog: The ``listen`` backlog, and the accepts per readable event.
        reuse_address: Set ``SO_REUSEADDR`` on the listening sockets.
        high_water: Queued bytes above which writing may pause
            (``pause_writing``).
        low_water: Queued bytes at which writing resumes (``resume_writing``).
        read_budget: Reads per readable event (fairness).

    Returns:
        The server, already accepting.

    Raises:
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext`.
        ValueError: ``ssl_handshake_timeout`` without ``ssl``, or not
            positive.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or binding the address failed.
    """
    return await _serve(
        None,
        factory,
        host,
        port,
        sock=sock,
        backlog=backlog,
        reuse_address=reuse_address,
        pool=pool,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        high_water=high_water,
        low_water=low_water,
        read_budget=read_budget,
    )


async def _open(
    factory: Callable[[], _P] | None,
    host: str | None,
    port: int,
    *,
    pool: BufferPool,
    sock: socket.socket | None,
    ssl: _ssl.SSLContext | bool | None,
    server_hostname: str | None,
    ssl_handshake_timeout: float | None,
    framer: FramerFactory | None = None,
    high_water: int,
    low_water: int,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int,
) -> tuple[Connection, _P | None]:
    """Both clients: check, dial, make the protocol, start and record."""
    tls = _tls_options(
        ssl,
        server_side=False,
        host=host,
        server_hostname=server_hostname,
        handshake_timeout=ssl_handshake_timeout,
    )
    loop = asyncio.get_running_loop()
    _check_loop(loop)
    if sock is None:
        sock = await _dial(loop, host, port)
    sock.setblocking(False)
    set_nodelay(sock)
    make = _maker(
        loop,
        pool,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
        tls=tls,
    )
    try:
        protocol = None if factory is None else factory()
        conn = make(sock, protocol)
    except BaseException:
        sock.close()
        raise
    registry = _registry(loop)
    registry.add(conn)
    conn._owner = registry
    conn._start()
    return conn, protocol


async def open_connection(
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    sock: socket.socket | None = None,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    framer: FramerFactory | None = None,
    high_water: int = 65536,
    low_water: int = 16384,
    read_limit: int = DEFAULT_READ_LIMIT,
    read_budget: int = 16,
) -> Connection:
    """Connect to ``host``:``port``; read the replies with ``read_frame``.

    For a :class:`~bufkit.adapters.asyncio.StreamProtocol` use
    :func:`open_protocol_connection`.

    Args:
        host: The address to connect to.
        port: The port to connect to.
        pool: Lends the read buffers.
        sock: An already connected socket to use instead of host and port.
        ssl: A client :class:`ssl.SSLContext` (``True`` for the default
            context) to speak TLS through a :class:`bufkit.TLSLayer`.
        server_hostname: The name sent as SNI and checked against the
            server's certificate (default: ``host``); only with ``ssl``.
        ssl_handshake_timeout: Seconds the handshake may take (60 by
            default); only with ``ssl``.
        framer: Builds a framer from its ``on_frame`` callback; by default
            each read is a frame.
        high_water: Queued bytes above which writing may pause (``drain``
            waits).
        low_water: Queued bytes at which writing resumes.
        read_limit: Received frame bytes buffered before reading pauses.
        read_budget: Reads per readable event (fairness).

    Returns:
        The connected :class:`~bufkit.adapters.asyncio.Connection`.

    Raises:
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext` or ``True``.
        ValueError: ``server_hostname`` or ``ssl_handshake_timeout`` without
            ``ssl``, ``ssl`` with neither ``host`` nor ``server_hostname``,
            or a timeout that is not positive.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or connecting failed (the first address's error).
    """
    conn, _protocol = await _open(
        None,
        host,
        port,
        pool=pool,
        sock=sock,
        ssl=ssl,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        framer=framer,
        high_water=high_water,
        low_water=low_water,
        read_limit=read_limit,
        read_budget=read_budget,
    )
    return conn


async def open_protocol_connection(
    factory: Callable[[], _P],
    host: str | None = None,
    port: int = 0,
    *,
    pool: BufferPool,
    sock: socket.socket | None = None,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    high_water: int = 65536,
    low_water: int = 16384,
    read_budget: int = 16,
) -> tuple[Connection, _P]:
    """Connect to ``host``:``port`` and run ``factory()``'s protocol on it.

    The protocol-factory twin of :func:`open_connection`, as
    :meth:`asyncio.loop.create_connection` is of :func:`asyncio.open_connection`.

    Args:
        factory: Called once with no argument; returns a
            :class:`~bufkit.adapters.asyncio.StreamProtocol`.
        host: The address to connect to.
        port: The port to connect to.
        pool: Lends the read buffers.
        sock: An already connected socket to use instead of host and port.
        ssl: A client :class:`ssl.SSLContext` (``True`` for the default
            context) to speak TLS through a :class:`bufkit.TLSLayer`.
        server_hostname: The name sent as SNI and checked against the
            server's certificate (default: ``host``); only with ``ssl``.
        ssl_handshake_timeout: Seconds the handshake may take (60 by
            default); only with ``ssl``.
        high_water: Queued bytes above which writing may pause
            (``pause_writing``).
        low_water: Queued bytes at which writing resumes (``resume_writing``).
        read_budget: Reads per readable event (fairness).

    Returns:
        The connection and the protocol, once ``connection_made`` returned.

    Raises:
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext` or ``True``.
        ValueError: ``server_hostname`` or ``ssl_handshake_timeout`` without
            ``ssl``, ``ssl`` with neither ``host`` nor ``server_hostname``,
            or a timeout that is not positive.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or connecting failed (the first address's error).
    """
    conn, protocol = await _open(
        factory,
        host,
        port,
        pool=pool,
        sock=sock,
        ssl=ssl,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        high_water=high_water,
        low_water=low_water,
        read_budget=read_budget,
    )
    assert protocol is not None  # factory was given
    return conn, protocol


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
