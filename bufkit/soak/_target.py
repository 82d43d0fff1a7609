"""The soak's server side: ``python -m bufkit.soak._target [--nofile N] KIND ...``.

Theory of operation: the soak runs every server in a subprocess through this
module, which first lowers (or raises) ``RLIMIT_NOFILE`` when asked (the
fd-limit flood), then becomes the server: ``serve PROTOCOL [ARGS]`` runs
``bufkit serve`` in this very process (so ``--workers`` forks from here),
``aio-stream`` and ``aio-pooled`` run an echo server on asyncio with the
readiness stream (:func:`bufkit.adapters.asyncio.start_server`) or
:class:`bufkit.adapters.asyncio.PooledProtocol`. The asyncio servers speak
``bufkit serve``'s line protocol: ``pid N listening on HOST:PORT`` once
serving, a statistics line (``connections=``, ``queued_bytes=``,
``pool_bytes_in_use=`` ...) on SIGUSR1 and at exit, and they stop cleanly on
SIGINT, SIGTERM and SIGHUP. Both echo servers stop reading while their
writing is paused, so a peer that does not read costs a bounded amount.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Sequence

from bufkit import BufferPool
from bufkit.adapters import asyncio as bufkit_asyncio

__all__ = ["main"]


def _set_nofile(limit: int) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))


class _StreamEcho(bufkit_asyncio.StreamProtocol):
    """Echo on the readiness stream; stop reading while writing is paused."""

    def __init__(self, conns: set[bufkit_asyncio.Connection]) -> None:
        self._conns = conns
        self._conn: bufkit_asyncio.Connection | None = None

    def connection_made(self, conn: bufkit_asyncio.Connection) -> None:
        self._conn = conn
        self._conns.add(conn)

    def data_received(self, view: memoryview) -> None:
        assert self._conn is not None
        self._conn.write(view)  # a pool chunk's view is copied by the queue

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._conn is not None:
            self._conns.discard(self._conn)

    def pause_writing(self) -> None:
        assert self._conn is not None
        self._conn.pause_reading()

    def resume_writing(self) -> None:
        assert self._conn is not None
        self._conn.resume_reading()


class _PooledEcho(bufkit_asyncio.PooledProtocol):
    """Echo with pooled reads and the transport's writes; backpressure too."""

    def __init__(self, pool: BufferPool, conns: set[_PooledEcho]) -> None:
        super().__init__(pool)
        self._conns = conns
        self._out: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        assert isinstance(transport, asyncio.Transport)
        self._out = transport
        self._conns.add(self)

    def data_received(self, view: memoryview) -> None:
        assert self._out is not None
        self._out.write(bytes(view))

    def eof_received(self) -> bool | None:
        super().eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._conns.discard(self)

    def pause_writing(self) -> None:
        assert self._out is not None
        self._out.pause_reading()

    def resume_writing(self) -> None:
        assert self._out is not None
        self._out.resume_reading()

    @property
    def queued(self) -> int:
        """Bytes in the transport's write buffer."""
        return 0 if self._out is None else self._out.get_write_buffer_size()


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _stats_line(pool: BufferPool, connections: int, queued: int) -> str:
    stats = pool.stats()
    return (
        f"bufkit soak target: pid {os.getpid()} connections={connections} "
        f"queued_bytes={queued} pool_bytes_in_use={stats.bytes_in_use} "
        f"pool_buffers_in_use={stats.buffers_in_use} "
        f"pool_bytes_reserved={stats.bytes_reserved}"
    )


async def _serve_asyncio(mode: str, host: str) -> int:
    loop = asyncio.get_running_loop()
    pool = BufferPool()
    stop = asyncio.Event()
    streams: set[bufkit_asyncio.Connection] = set()
    pooled: set[_PooledEcho] = set()
    server: asyncio.AbstractServer | bufkit_asyncio.StreamServer
    if mode == "aio-stream":
        server = await bufkit_asyncio.start_protocol_server(
            lambda: _StreamEcho(streams), host, 0, pool=pool, backlog=1024
        )
    else:
        server = await loop.create_server(
            lambda: _PooledEcho(pool, pooled), host, 0, backlog=1024
        )

    def report() -> None:
        queued = sum(c.pending_bytes for c in streams) + sum(p.queued for p in pooled)
        _say(_stats_line(pool, len(streams) + len(pooled), queued))

    for name in ("SIGINT", "SIGTERM", "SIGHUP"):
        if hasattr(signal, name):
            loop.add_signal_handler(getattr(signal, name), stop.set)
    if hasattr(signal, "SIGUSR1"):
        loop.add_signal_handler(signal.SIGUSR1, report)
    where = "{}:{}".format(*server.sockets[0].getsockname()[:2])
    _say(f"bufkit soak target {mode}: pid {os.getpid()} listening on {where}")
    await stop.wait()
    report()
    server.close()
    for conn in list(streams):
        conn.abort()
    for protocol in list(pooled):
        if protocol.transport is not None:
            protocol.transport.abort()  # type: ignore[attr-defined]
    await server.wait_closed()
    await asyncio.sleep(0)  # let the aborted connections' callbacks run
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bufkit.soak._target")
    parser.add_argument("--nofile", type=int, default=None)
    parser.add_argument("kind", choices=("serve", "aio-stream", "aio-pooled"))
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Become the server described by ``argv``; return its exit status."""
    args = _parser().parse_args(argv)
    if args.nofile is not None:
        _set_nofile(args.nofile)
    if args.kind == "serve":
        from bufkit._cli import main as bufkit_main

        return bufkit_main(["serve", *args.rest])
    return asyncio.run(_serve_asyncio(args.kind, "127.0.0.1"))


if __name__ == "__main__":
    sys.exit(main())
