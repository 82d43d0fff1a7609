"""The bufkit contenders, on the adapters' public APIs.

* ``bufkit-selectors``: :class:`bufkit.servers.Echo` and
  :class:`bufkit.servers.Fanout` on the ready-made selectors ``Loop``; echo
  forwards each pooled read buffer to the write queue by ownership (no copy;
  the queue copies reads under 2 KiB into its coalescing tail) and fanout's
  32 writes of one event leave in one ``sendmsg``.
* ``bufkit-stream`` (and ``-uvloop``): the asyncio readiness stream in
  protocol mode; echo forwards each pooled read buffer to the write queue
  by ownership (``take_buffer``: no copy), and the writes made in
  ``data_received`` leave in one ``sendmsg`` when it returns.
* ``bufkit-pooled`` (and ``-uvloop``): :class:`PooledProtocol`, reads into
  pooled chunks, writes through the loop's own transport (``bytes(view)``,
  as its docs require).
* ``bufkit-twisted``: the very Twisted protocols of the ``twisted`` peer,
  unmodified, on :mod:`bufkit.adapters.twisted` transports (epoll reactor).
* ``bufkit-asyncio``: the asyncio drop-in,
  :func:`bufkit.adapters.asyncio.create_server`, serving the asyncio peer's
  unmodified protocols (measured in the TLS echo cells).

With a certificate, each also serves TLS echo with ``ssl=`` (the same echo
protocol, on :class:`bufkit.TLSLayer`); ``bufkit-pooled`` writes through the
loop's own transport and has no TLS echo.

Each imports its adapter only when started, so a missing adapter makes that
contender skip (the server process reports the ``ImportError``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, cast

from bufkit.bench._peers import listen_port, new_loop
from bufkit.bench._wire import (
    BACKLOG,
    FANOUT_CHUNK,
    FANOUT_WRITES,
    ContenderUnavailable,
    Served,
)

if TYPE_CHECKING:
    import ssl

    from bufkit import BufferPool, PooledBuffer
    from bufkit.adapters.asyncio import Connection as StreamConnection
    from bufkit.bench._certs import CertFiles

__all__ = ["serve"]

_CHUNK: Final = b"x" * FANOUT_CHUNK


def _pool() -> BufferPool:
    from bufkit import BufferPool

    return BufferPool()


def _stream_pool() -> BufferPool:
    """The default classes plus 256 KiB: bulk reads as large as uvloop's."""
    from bufkit import BufferPool

    return BufferPool(size_classes=(2048, 16384, 65536, 262144))


def _in_use(pool: BufferPool) -> Callable[[], int | None]:
    return lambda: pool.stats().bytes_in_use


def _context(tls: CertFiles | None) -> ssl.SSLContext | None:
    from bufkit.bench._certs import server_context

    return None if tls is None else server_context(tls)


def serve_selectors(host: str, tls: CertFiles | None = None) -> Served:
    """Start ``bufkit.servers.Echo`` and ``Fanout`` on the selectors ``Loop``."""
    from bufkit.adapters.selectors import Loop
    from bufkit.servers import Echo, Fanout

    pool = _pool()
    loop = Loop(pool=pool)
    echo = loop.listen(Echo, host, 0, backlog=BACKLOG)
    fanout = loop.listen(Fanout, host, 0, backlog=BACKLOG)
    ctx = _context(tls)
    tls_port = None
    if ctx is not None:
        tls_port = loop.listen(Echo, host, 0, backlog=BACKLOG, ssl=ctx).address[1]
    return Served(
        echo_port=echo.address[1],
        fanout_port=fanout.address[1],
        run_forever=loop.run_forever,
        pool_bytes=_in_use(pool),
        tls_port=tls_port,
    )


def serve_stream(
    host: str, *, use_uvloop: bool, tls: CertFiles | None = None
) -> Served:
    """Start the asyncio readiness stream (protocol mode) on a new loop."""
    from bufkit.adapters.asyncio import StreamProtocol, start_protocol_server

    class Echo(StreamProtocol):
        write: Callable[..., None]
        take: Callable[[], PooledBuffer]

        def connection_made(self, conn: StreamConnection) -> None:
            self.write, self.take = conn.write, conn.take_buffer

        def data_received(self, view: memoryview) -> None:
            self.write(self.take(), nbytes=len(view))

    class Fanout(Echo):
        def data_received(self, view: memoryview) -> None:
            write = self.write
            for _ in range(len(view) * FANOUT_WRITES):
                write(_CHUNK)

    loop = new_loop(use_uvloop)
    pool = _stream_pool()

    def listen(factory: type[StreamProtocol], ctx: ssl.SSLContext | None = None) -> int:
        server = loop.run_until_complete(
            start_protocol_server(factory, host, 0, pool=pool, backlog=BACKLOG, ssl=ctx)
        )
        port: int = server.sockets[0].getsockname()[1]
        return port

    ctx = _context(tls)
    return Served(
        echo_port=listen(Echo),
        fanout_port=listen(Fanout),
        run_forever=loop.run_forever,
        pool_bytes=_in_use(pool),
        tls_port=None if ctx is None else listen(Echo, ctx),
    )


def serve_pooled(host: str, *, use_uvloop: bool) -> Served:
    """Start ``PooledProtocol`` servers (transport writes) on a new loop."""
    from bufkit.adapters.asyncio import PooledProtocol

    class Echo(PooledProtocol):
        write: Callable[[bytes], object]

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            super().connection_made(transport)
            self.write = cast(asyncio.Transport, transport).write

        def data_received(self, view: memoryview) -> None:
            self.write(bytes(view))

    class Fanout(Echo):
        def data_received(self, view: memoryview) -> None:
            write = self.write
            for _ in range(len(view) * FANOUT_WRITES):
                write(_CHUNK)

    loop = new_loop(use_uvloop)
    pool = _pool()

    def listen(protocol: type[Echo]) -> int:
        server = loop.run_until_complete(
            loop.create_server(lambda: protocol(pool), host, 0, backlog=BACKLOG)
        )
        return listen_port(server)

    return Served(
        echo_port=listen(Echo),
        fanout_port=listen(Fanout),
        run_forever=loop.run_forever,
        pool_bytes=_in_use(pool),
    )


def serve_twisted_adapter(host: str, tls: CertFiles | None = None) -> Served:
    """Start the Twisted peer's protocols on bufkit's Twisted transports."""
    from bufkit.adapters.twisted import listen_tcp
    from bufkit.bench._peers import twisted_peer

    pool = _pool()
    reactor, echo, fanout = twisted_peer()

    def listen(factory: object, ctx: ssl.SSLContext | None = None) -> int:
        port = listen_tcp(
            reactor, 0, factory, interface=host, backlog=BACKLOG, pool=pool, ssl=ctx
        )
        number: int = port.getHost().port
        return number

    ctx = _context(tls)
    return Served(
        echo_port=listen(echo),
        fanout_port=listen(fanout),
        run_forever=reactor.run,
        pool_bytes=_in_use(pool),
        tls_port=None if ctx is None else listen(echo, ctx),
    )


def serve_drop_in(host: str, tls: CertFiles | None = None) -> Served:
    """Start the asyncio peer's protocols on the drop-in ``create_server``."""
    from bufkit.adapters.asyncio import create_server
    from bufkit.bench._peers import echo_protocols

    echo, fanout = echo_protocols()
    loop = new_loop(use_uvloop=False)
    pool = _pool()

    def listen(
        factory: Callable[[], asyncio.Protocol], ctx: ssl.SSLContext | None = None
    ) -> int:
        server = loop.run_until_complete(
            create_server(factory, host, 0, pool=pool, backlog=BACKLOG, ssl=ctx)
        )
        port: int = server.sockets[0].getsockname()[1]
        return port

    ctx = _context(tls)
    return Served(
        echo_port=listen(echo),
        fanout_port=listen(fanout),
        run_forever=loop.run_forever,
        pool_bytes=_in_use(pool),
        tls_port=None if ctx is None else listen(echo, ctx),
    )


def serve(name: str, host: str, tls: CertFiles | None = None) -> Served:
    """Start bufkit contender ``name`` on ``host``.

    Raises:
        ContenderUnavailable: the contender is unknown or cannot run here.
        ImportError: the adapter it needs is not importable.
    """
    if name == "bufkit-selectors":
        return serve_selectors(host, tls)
    if name == "bufkit-compiled":
        from bufkit.bench import _compiled

        return _compiled.serve(host, tls)
    if name in ("bufkit-stream", "bufkit-stream-uvloop"):
        return serve_stream(host, use_uvloop=name.endswith("-uvloop"), tls=tls)
    if name in ("bufkit-pooled", "bufkit-pooled-uvloop"):
        return serve_pooled(host, use_uvloop=name.endswith("-uvloop"))
    if name == "bufkit-twisted":
        return serve_twisted_adapter(host, tls)
    if name == "bufkit-asyncio":
        return serve_drop_in(host, tls)
    raise ContenderUnavailable(f"{name} has no server in this version of bufkit")
