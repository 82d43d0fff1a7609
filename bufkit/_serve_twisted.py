"""``bufkit serve --loop twisted``: the reference protocols on Twisted's epoll reactor.

Theory of operation: the command binds the socket (and loads the TLS
context) as for the selectors loop and hands them here, in its own process
for one worker or in each forked worker of the supervisor in
:mod:`bufkit._serve`. This module installs the epoll reactor (a process runs
one reactor, and a worker owns its process; the supervisor never imports
Twisted, so each worker's reactor is made after the fork), listens on that
socket with bufkit transports (:class:`bufkit.adapters.twisted.ListeningPort`,
speaking TLS through the connection core's TLS layer when a context is
given) and runs the protocols of :mod:`bufkit.adapters.twisted._servers`.

Stopping follows the supervisor's rules: a stop signal only schedules
``reactor.stop`` from a reactor call (never inside the handler), a worker
watches its end of the supervisor's socket pair as a read descriptor and
stops at its end of file, and a worker leaves SIGINT to the supervisor.
SIGUSR1 prints the pool and queue statistics from a reactor call; every
worker prints them when it exits.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import ssl
import sys
from collections.abc import Iterable
from types import FrameType
from typing import Any, Protocol

__all__ = ["serve"]


class _Counts(Protocol):
    count: int


def serve(
    name: str,
    sock: socket.socket,
    *,
    lifeline: socket.socket | None = None,
    stops: _Counts | None = None,
    tls: tuple[ssl.SSLContext, float] | None = None,
    stop_signals: Iterable[int] = (),
    stats_signals: Iterable[int] = (),
) -> int:
    """Serve ``name`` on the listening ``sock`` until a stop; return 0.

    ``lifeline`` is a worker's end of the supervisor's socket pair, ``stops``
    the counter of stop signals that came before the reactor handled them,
    ``tls`` the server context and the handshake timeout; ``stop_signals``
    stop the reactor and ``stats_signals`` print the statistics.
    """
    from twisted.internet import epollreactor

    if "twisted.internet.reactor" not in sys.modules:
        epollreactor.install()  # type: ignore[no-untyped-call]
    from twisted.internet import reactor as installed
    from twisted.internet.error import ReactorNotRunning

    from bufkit import BufferPool
    from bufkit.adapters.twisted import ListeningPort

    reactor: Any = installed
    pool = BufferPool()
    port = ListeningPort(
        reactor,
        0,
        _factory(name, reactor),
        pool=pool,
        sock=sock.dup(),
        ssl=None if tls is None else tls[0],
        ssl_handshake_timeout=60.0 if tls is None else tls[1],
    )
    port.startListening()

    def stop() -> None:
        with contextlib.suppress(ReactorNotRunning):  # a second stop
            reactor.stop()

    def on_stop(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(stop)

    def on_stats(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(_print_stats, pool)

    handlers = [(sig, on_stop) for sig in stop_signals]
    handlers += [(sig, on_stats) for sig in stats_signals]
    earlier = {sig: signal.signal(sig, handler) for sig, handler in handlers}
    if lifeline is not None:
        reactor.addReader(_Lifeline(lifeline, stop))
    if stops is not None and stops.count:  # a stop came before the handlers
        reactor.callWhenRunning(stop)
    host, where = sock.getsockname()[:2]
    scheme = " over TLS" if tls else ""
    _say(f"bufkit serve {name}{scheme}: pid {os.getpid()} listening on {host}:{where}")
    try:
        reactor.run(installSignalHandlers=False)
    finally:
        for sig, handler in earlier.items():
            signal.signal(sig, handler)
        _print_stats(pool)
    return 0


def _factory(name: str, reactor: Any) -> Any:
    from twisted.internet import protocol

    from bufkit.adapters.twisted import _servers as servers

    factory: protocol.Factory
    if name == "echo":
        factory = protocol.Factory.forProtocol(servers.Echo)
    elif name == "discard":
        factory = protocol.Factory.forProtocol(servers.Discard)
    elif name == "fanout":
        factory = protocol.Factory.forProtocol(lambda: servers.Fanout(reactor))
    else:
        factory = protocol.Factory.forProtocol(servers.LineEcho)
    factory.noisy = False
    return factory


class _Lifeline:
    """A worker's end of the supervisor's socket pair, as a read descriptor.

    Readable means end of file (the supervisor sends nothing): stop.
    """

    def __init__(self, sock: socket.socket, stop: Any) -> None:
        sock.setblocking(False)
        self._sock = sock
        self._stop = stop

    def fileno(self) -> int:
        return self._sock.fileno()

    def doRead(self) -> None:
        try:
            data = self._sock.recv(1)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._stop()

    def connectionLost(self, reason: object) -> None:
        self._stop()

    def logPrefix(self) -> str:
        return "bufkit-serve-lifeline"


def _print_stats(pool: Any) -> None:
    from bufkit.adapters.twisted._transport import OPEN_TRANSPORTS

    conns = list(OPEN_TRANSPORTS)
    numbers = pool.stats()
    _say(
        f"bufkit serve: pid {os.getpid()} connections={len(conns)} "
        f"queued_bytes={sum(c.pending_bytes for c in conns)} "
        f"paused={sum(1 for c in conns if c.writing_paused)} "
        f"pool_bytes_in_use={numbers.bytes_in_use} "
        f"pool_buffers_in_use={numbers.buffers_in_use} "
        f"pool_bytes_reserved={numbers.bytes_reserved} "
        f"pool_peak_bytes_in_use={numbers.peak_bytes_in_use} "
        f"acquires={numbers.acquires} heap_fallbacks={numbers.heap_fallbacks}"
    )


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()
