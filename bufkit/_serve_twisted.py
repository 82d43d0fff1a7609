"""``bufkit serve --loop twisted``: the reference protocols on Twisted's epoll reactor.

Theory of operation: the command binds the socket as for the selectors loop
and hands it here. This module installs the epoll reactor (a process runs
one reactor, and ``bufkit serve`` owns its process), listens on that socket
with bufkit transports (:class:`bufkit.adapters.twisted.ListeningPort`) and
runs the protocols of :mod:`bufkit.adapters.twisted._servers`. The reactor's
own handlers stop it on SIGINT and SIGTERM (and SIGHUP/SIGQUIT here too);
SIGUSR1 prints the pool and queue statistics from a reactor call, never
inside the signal handler. One worker only.
"""

from __future__ import annotations

import os
import signal
import socket
import sys
from types import FrameType
from typing import Any

__all__ = ["serve"]


def serve(name: str, sock: socket.socket) -> int:
    """Serve ``name`` on the listening ``sock`` until a stop signal; return 0."""
    from twisted.internet import epollreactor

    if "twisted.internet.reactor" not in sys.modules:
        epollreactor.install()  # type: ignore[no-untyped-call]
    from twisted.internet import protocol
    from twisted.internet import reactor as installed

    from bufkit import BufferPool
    from bufkit.adapters.twisted import ListeningPort
    from bufkit.adapters.twisted import _servers as servers
    from bufkit.adapters.twisted._transport import OPEN_TRANSPORTS

    reactor: Any = installed
    pool = BufferPool()
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
    port = ListeningPort(reactor, 0, factory, pool=pool, sock=sock.dup())
    port.startListening()

    def stats() -> None:
        conns = list(OPEN_TRANSPORTS)
        numbers = pool.stats()
        line = (
            f"bufkit serve: pid {os.getpid()} connections={len(conns)} "
            f"queued_bytes={sum(c.pending_bytes for c in conns)} "
            f"paused={sum(1 for c in conns if c.writing_paused)} "
            f"pool_bytes_in_use={numbers.bytes_in_use} "
            f"pool_buffers_in_use={numbers.buffers_in_use} "
            f"pool_bytes_reserved={numbers.bytes_reserved} "
            f"pool_peak_bytes_in_use={numbers.peak_bytes_in_use} "
            f"acquires={numbers.acquires} heap_fallbacks={numbers.heap_fallbacks}"
        )
        sys.stdout.write(line + "\n")
        sys.stdout.flush()

    def on_stats(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(stats)

    def on_stop(signum: int, frame: FrameType | None) -> None:
        reactor.callFromThread(reactor.stop)

    earlier = {
        sig: signal.signal(sig, handler)
        for sig, handler in (
            (signal.SIGUSR1, on_stats),
            (signal.SIGHUP, on_stop),
            (signal.SIGQUIT, on_stop),
        )
    }
    try:
        reactor.run()  # its handlers stop it on SIGINT and SIGTERM
    finally:
        for sig, handler in earlier.items():
            signal.signal(sig, handler)
        stats()
    return 0
