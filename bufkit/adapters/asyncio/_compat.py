"""``create_server``, ``create_connection``: asyncio protocols on bufkit TLS.

Theory of operation: an :class:`asyncio.Protocol` written for
``loop.create_server`` runs unchanged over the readiness stream. A
``_Bridge`` (a :class:`~bufkit.adapters.asyncio.StreamProtocol`) sits between
the connection core and the user's protocol: it hands the protocol a
``_Transport`` in ``connection_made``, one ``bytes`` copy of each read in
``data_received`` (the read buffer goes back to the pool at once, so idle
connections hold no pool bytes, docs/design.md invariant 6), and forwards
``eof_received``, ``pause_writing``, ``resume_writing`` and
``connection_lost``. TLS is the core's :class:`bufkit.TLSLayer`, as on the
rest of the stream; there is no per-connection receive buffer besides the
layer's memory BIO. As in asyncio, a TLS protocol's ``connection_made``
waits for the core's ``on_handshake``; a failed handshake never reaches the
protocol, and ``create_connection`` raises it.

Memory: the bridge lets go of the protocol and the transport once
``connection_lost`` ran, and the transport lets go of the connection when it
closes, so nothing but the user's own references keep a closed connection.

Cost: per read, one ``bytes`` copy and one Python call more than protocol
mode; per write, one call more (a ``bytearray`` or ``memoryview`` is copied,
as asyncio's transports do, since the caller may change it afterwards).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, final

from bufkit.adapters.asyncio._connect import (
    open_protocol_connection,
    start_protocol_server,
)
from bufkit.adapters.asyncio._handlers import StreamProtocol, _settle

if TYPE_CHECKING:
    import ssl as _ssl

    from typing_extensions import Buffer

    from bufkit import BufferPool
    from bufkit.adapters.asyncio._server import StreamServer
    from bufkit.adapters.asyncio._stream import Connection

__all__ = ["create_connection", "create_server"]


@final
class _Transport(asyncio.Transport):
    """asyncio's transport methods over one readiness-stream connection."""

    def __init__(self, conn: Connection, protocol: asyncio.BaseProtocol) -> None:
        super().__init__()
        self._conn: Connection | None = conn
        self._protocol = protocol
        self._reading = True
        self._closing = False
        self._limits = (0, 0)  # what get_write_buffer_limits says once lost

    def __repr__(self) -> str:
        return f"<bufkit transport {self._conn!r}>"

    def _lost(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            self._limits = conn.get_write_buffer_limits()
        self._closing = True
        self._reading = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        """What asyncio's transports answer (see ``Connection.get_extra_info``)."""
        conn = self._conn
        return default if conn is None else conn.get_extra_info(name, default)

    def is_closing(self) -> bool:
        """Whether close or abort was called or the connection is gone."""
        conn = self._conn
        return self._closing or conn is None or conn.is_closing()

    def close(self) -> None:
        """Send what is queued, then close; ``connection_lost`` follows."""
        self._closing = True
        if self._conn is not None:
            self._conn.close()

    def abort(self) -> None:
        """Close at once, dropping queued data."""
        self._closing = True
        if self._conn is not None:
            self._conn.abort()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        """Refused: the bridge's protocol is fixed for the connection's life."""
        raise NotImplementedError(
            f"set_protocol({protocol!r}) is not supported by bufkit transports"
        )

    def get_protocol(self) -> asyncio.BaseProtocol:
        """The protocol this transport serves."""
        return self._protocol

    def is_reading(self) -> bool:
        """Whether the transport is receiving."""
        return self._reading and not self.is_closing()

    def pause_reading(self) -> None:
        """Stop calling ``data_received`` until :meth:`resume_reading`."""
        if self._conn is not None and self._reading:
            self._reading = False
            self._conn.pause_reading()

    def resume_reading(self) -> None:
        """Resume after :meth:`pause_reading`."""
        if self._conn is not None and not self._reading:
            self._reading = True
            self._conn.resume_reading()

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        """Change the watermarks of ``pause_writing``, with asyncio's rules.

        Once the connection is lost this does nothing.

        Raises:
            TypeError: ``high`` or ``low`` is not an int.
            ValueError: Not ``high >= low >= 0``.
        """
        conn = self._conn
        if conn is not None:  # once the connection is lost, nothing to pace
            conn.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        """Bytes queued and not yet accepted by the kernel."""
        conn = self._conn
        return 0 if conn is None else conn.pending_bytes

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The (low, high) watermarks."""
        conn = self._conn
        return self._limits if conn is None else conn.get_write_buffer_limits()

    def write(self, data: Buffer) -> None:
        """Queue ``data`` (copied when mutable); dropped after close as asyncio does."""
        conn = self._conn
        if conn is None or conn.is_closing():
            return
        if not isinstance(data, bytes):
            data = bytes(data)
        if data:
            conn.write(data)

    def writelines(self, list_of_data: Iterable[Buffer]) -> None:
        """Queue each chunk, as :meth:`write`."""
        for data in list_of_data:
            self.write(data)

    def write_eof(self) -> None:
        """Shut the sending side once flushed.

        Raises:
            NotImplementedError: The connection speaks TLS (half-close is not
                supported over TLS, as in asyncio).
        """
        conn = self._conn
        if conn is not None:
            conn.write_eof()

    def can_write_eof(self) -> bool:
        """False on TLS connections, true on plain TCP."""
        conn = self._conn
        return conn is not None and conn.get_extra_info("ssl_object") is None


@final
class _Bridge(StreamProtocol):
    """The stream's protocol, relaying to one unmodified asyncio protocol.

    On TLS connections the protocol's ``connection_made`` waits for the end
    of the handshake, as asyncio's: a handshake that fails never reaches the
    protocol (neither ``connection_made`` nor ``connection_lost``), and only
    ``ready`` (a client's, which ``create_connection`` awaits) learns why.
    """

    __slots__ = ("_made", "_protocol", "_transport", "ready")

    def __init__(
        self, protocol: asyncio.Protocol, ready: asyncio.Future[None] | None = None
    ) -> None:
        self._protocol: asyncio.Protocol | None = protocol
        self._transport: _Transport | None = None
        self._made = False
        self.ready = ready

    def connection_made(self, conn: Connection) -> None:
        protocol = self._protocol
        assert protocol is not None
        self._transport = _Transport(conn, protocol)
        if conn.get_extra_info("ssl_object") is None:
            self._handshake_done()

    def _handshake_done(self) -> None:
        protocol, transport = self._protocol, self._transport
        if protocol is None or transport is None:  # pragma: no cover - core order
            return
        self._made = True
        ready, self.ready = self.ready, None
        if ready is not None:
            _settle(ready, None)
        protocol.connection_made(transport)

    def data_received(self, view: memoryview) -> None:
        protocol = self._protocol
        if protocol is not None:
            protocol.data_received(bytes(view))

    def eof_received(self) -> bool | None:
        protocol = self._protocol
        return None if protocol is None else protocol.eof_received()

    def pause_writing(self) -> None:
        if self._protocol is not None:
            self._protocol.pause_writing()

    def resume_writing(self) -> None:
        if self._protocol is not None:
            self._protocol.resume_writing()

    def connection_lost(self, exc: Exception | None) -> None:
        protocol, self._protocol = self._protocol, None
        transport, self._transport = self._transport, None
        if transport is not None:
            transport._lost()
        ready, self.ready = self.ready, None
        if ready is not None:
            _settle(ready, exc or ConnectionResetError("closed during the handshake"))
        if protocol is not None and self._made:
            protocol.connection_lost(exc)


def _bridged(
    factory: Callable[[], asyncio.Protocol],
    ready: asyncio.Future[None] | None = None,
) -> Callable[[], _Bridge]:
    def make() -> _Bridge:
        return _Bridge(factory(), ready)

    return make


async def create_server(
    protocol_factory: Callable[[], asyncio.Protocol],
    host: str | None = None,
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | None = None,
    ssl_handshake_timeout: float | None = None,
    pool: BufferPool | None = None,
    sock: socket.socket | None = None,
    backlog: int = 100,
    reuse_address: bool = True,
    high_water: int = 65536,
    low_water: int = 16384,
) -> StreamServer:
    """``loop.create_server`` for unmodified :class:`asyncio.Protocol` classes.

    Each connection's protocol gets a transport with asyncio's methods, and
    ``bytes`` in ``data_received``; TLS runs on :class:`bufkit.TLSLayer`.
    Replaces ``await loop.create_server(factory, host, port, ssl=ctx)``.

    Args:
        protocol_factory: Called with no argument per connection.
        host: Address to bind; ``None`` binds every interface.
        port: Port to bind; 0 picks a free one.
        ssl: A server :class:`ssl.SSLContext` to speak TLS.
        ssl_handshake_timeout: Seconds each handshake may take; only with
            ``ssl``.
        pool: Lends the read buffers (default: a new pool for this server).
        sock: An already bound socket to listen on instead.
        backlog: The ``listen`` backlog.
        reuse_address: Set ``SO_REUSEADDR``.
        high_water: Queued bytes above which ``pause_writing`` is called.
        low_water: Queued bytes at which ``resume_writing`` is called.

    Returns:
        The server, already accepting (``close``, ``wait_closed``,
        ``serve_forever``, ``sockets``, ``async with``).

    Raises:
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext`.
        ValueError: ``ssl_handshake_timeout`` without ``ssl`` or not positive.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or binding the address failed.
    """
    from bufkit import BufferPool

    return await start_protocol_server(
        _bridged(protocol_factory),
        host,
        port,
        pool=BufferPool() if pool is None else pool,
        sock=sock,
        ssl=ssl,
        ssl_handshake_timeout=ssl_handshake_timeout,
        backlog=backlog,
        reuse_address=reuse_address,
        high_water=high_water,
        low_water=low_water,
    )


async def create_connection(
    protocol_factory: Callable[[], asyncio.Protocol],
    host: str | None = None,
    port: int = 0,
    *,
    ssl: _ssl.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ssl_handshake_timeout: float | None = None,
    pool: BufferPool | None = None,
    sock: socket.socket | None = None,
    high_water: int = 65536,
    low_water: int = 16384,
) -> tuple[asyncio.Transport, asyncio.Protocol]:
    """``loop.create_connection`` for unmodified :class:`asyncio.Protocol` classes.

    Args:
        protocol_factory: Called once with no argument.
        host: The address to connect to.
        port: The port to connect to.
        ssl: A client :class:`ssl.SSLContext` (``True``: the default one).
        server_hostname: SNI and the name to check (default: ``host``).
        ssl_handshake_timeout: Seconds the handshake may take.
        pool: Lends the read buffers (default: a new pool).
        sock: An already connected socket to use instead.
        high_water: Queued bytes above which ``pause_writing`` is called.
        low_water: Queued bytes at which ``resume_writing`` is called.

    Returns:
        ``(transport, protocol)`` as asyncio returns them: with ``ssl``,
        once the handshake completed and ``connection_made`` returned.

    Raises:
        TLSHandshakeError: The TLS handshake failed or timed out (an
            :class:`ssl.SSLError`); the protocol was never called.
        TypeError: ``ssl`` is not an :class:`ssl.SSLContext` or ``True``.
        ValueError: ``server_hostname`` or ``ssl_handshake_timeout`` without
            ``ssl``, or ``ssl`` with neither ``host`` nor ``server_hostname``.
        UnsupportedLoopError: The running loop has no ``add_reader``.
        OSError: Resolving or connecting failed.
    """
    from bufkit import BufferPool

    ready = None
    if ssl is not None and ssl is not False:
        ready = asyncio.get_running_loop().create_future()
    conn, bridge = await open_protocol_connection(
        _bridged(protocol_factory, ready),
        host,
        port,
        pool=BufferPool() if pool is None else pool,
        sock=sock,
        ssl=ssl,
        server_hostname=server_hostname,
        ssl_handshake_timeout=ssl_handshake_timeout,
        high_water=high_water,
        low_water=low_water,
    )
    if ready is not None:
        try:
            await ready
        except BaseException:
            conn.abort()  # cancelled, or the handshake failed: nothing stays open
            # The error's traceback holds this frame: no path back to it.
            del conn, bridge, ready
            raise
    transport, protocol = bridge._transport, bridge._protocol
    if transport is None or protocol is None:
        # Lost right after the handshake, before this task ran again.
        raise ConnectionResetError("the connection closed as it was made")
    return transport, protocol
