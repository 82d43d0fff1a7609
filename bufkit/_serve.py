"""``bufkit serve``: run a reference protocol on the selectors :class:`Loop` or Twisted.

Theory of operation
-------------------
The command checks its arguments first (a port in 0-65535, a host that
resolves, ``os.fork`` for ``--workers``) and binds the listening socket
itself, before it serves or forks, so a mistake is one line on stderr: status 2
for a bad argument (argparse's convention), 1 for an address that cannot be
bound (in use, not local).

One worker serves in the command's own process. With ``--workers N`` the
supervisor binds and listens once, then forks N workers that accept on that
one socket (each connection goes to one of them). No ``SO_REUSEPORT``: a
second server on the same port is refused exactly like a single-worker one,
and ``--port 0`` picks one port for all.

Stopping is state, not a signal edge. The supervisor holds one end of a socket
pair (the *lifeline*) and every worker watches the other end as a connection
of its loop: the supervisor stops the workers by closing its end, and when the
supervisor dies, even by ``SIGKILL``, the kernel closes it for it. A signal is
only recorded by its handler (a counter), and the supervisor's wait loop
sleeps in ``select`` on a socket that :func:`signal.set_wakeup_fd` writes to,
so a signal that comes at any moment (before the fork, while a worker is
still starting) is seen and never lost. Stop signals: SIGINT, SIGTERM, SIGHUP,
SIGQUIT (a second one sends SIGTERM to the workers still running). SIGUSR1 is
forwarded to the workers, each of which prints its pool and queue statistics
(every worker prints them when it exits). The supervisor signals only workers
it has not reaped: the pid of a reaped one may belong to another process.

A worker ignores SIGINT (a terminal's Ctrl-C reaches the whole process group;
the supervisor stops the workers) and SIGUSR1 until its loop handles it. A
worker that exits by itself stops the others; the command then exits with 1.
Signals and ``fork`` that the platform lacks are skipped where they are used.

With ``--tls-cert`` and ``--tls-key`` the command loads one server
:class:`ssl.SSLContext` before it binds or forks (a file that is missing or
does not load is a bad argument, status 2), and every worker's listener speaks
TLS through the connection core's TLS layer; a client that does not finish its
handshake within ``--tls-handshake-timeout`` seconds is closed.

``--loop twisted`` changes only what a worker runs (:mod:`bufkit._serve_twisted`:
Twisted's epoll reactor with bufkit transports); binding, TLS loading, the
supervisor, the lifeline and the signals are the same.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import select
import signal
import socket
import ssl
import sys
from collections.abc import Callable, Iterable
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from bufkit.adapters.selectors import (
        Connection,
        ConnectionProtocol,
        Loop,
    )

__all__ = ["add_parser", "run"]

PROTOCOLS: Final = ("echo", "discard", "fanout", "line-echo")
MAX_WORKERS: Final = 256
"""The most workers ``--workers`` accepts."""
BACKLOG: Final = 1024
TLS_HANDSHAKE_TIMEOUT: Final = 60.0
"""Seconds a TLS client may take to finish its handshake, by default."""


def _signals(*names: str) -> tuple[int, ...]:
    """The signal numbers of ``names`` that this platform has."""
    found = (getattr(signal, name, None) for name in names)
    return tuple(int(sig) for sig in found if sig is not None)


_STOP_SIGNALS: Final = _signals("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT")
_WORKER_STOP_SIGNALS: Final = _signals("SIGTERM", "SIGHUP", "SIGQUIT")
_STATS_SIGNALS: Final = _signals("SIGUSR1")
_CHILD_SIGNALS: Final = _signals("SIGCHLD")


_Handler = Callable[[int, FrameType | None], Any] | int | None
_TLS = tuple[ssl.SSLContext, float]
"""The server context and the handshake timeout."""


class UsageError(Exception):
    """A bad argument: the message is the one line the command prints."""


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the ``serve`` subcommand to the ``bufkit`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run a reference server on the selectors loop",
        description="Run a reference protocol until SIGINT (Ctrl-C), SIGTERM, "
        "SIGHUP or SIGQUIT. SIGUSR1 prints pool and queue statistics (so does "
        "exit).",
    )
    parser.add_argument("protocol", choices=PROTOCOLS)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=7000)
    parser.add_argument(
        "--workers", type=int, default=1, help="processes sharing the port"
    )
    parser.add_argument(
        "-q", "--quiet", action="store_true", help="do not log each connection"
    )
    tls = parser.add_argument_group("TLS", "serve TLS (both files or neither)")
    tls.add_argument("--tls-cert", metavar="FILE", help="PEM certificate chain")
    tls.add_argument("--tls-key", metavar="FILE", help="PEM private key")
    tls.add_argument(
        "--tls-handshake-timeout",
        type=float,
        default=TLS_HANDSHAKE_TIMEOUT,
        metavar="SECONDS",
        help="close a client whose handshake takes longer (default %(default)s)",
    )
    parser.add_argument(
        "--loop",
        choices=("selectors", "twisted"),
        default="selectors",
        help="the event loop: bufkit's selectors Loop, or Twisted's epoll reactor",
    )
    parser.set_defaults(handler=run, serve_parser=parser)


def run(args: argparse.Namespace) -> int:
    """Serve until a stop signal; return the exit status."""
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    if (args.tls_cert is None) != (args.tls_key is None):
        args.serve_parser.error("--tls-cert and --tls-key go together")
    try:
        _check(args)
        tls = _tls(args)
        sock = _bind(args.host, args.port)
    except UsageError as exc:
        print(f"bufkit serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        where = f"{args.host}:{args.port}"
        print(f"bufkit serve: cannot listen on {where}: {exc}", file=sys.stderr)
        return 1
    with sock:
        if args.workers == 1:
            work = _twisted_worker if _loop(args) == "twisted" else _worker
            return work(args.protocol, sock, lifeline=None, stops=_Counter(), tls=tls)
        return _supervise(args, sock, tls)


def _loop(args: argparse.Namespace) -> str:
    loop: str = getattr(args, "loop", "selectors")
    return loop


def _check(args: argparse.Namespace) -> None:
    """Raise :class:`UsageError` for an argument out of range."""
    if not 0 <= args.port <= 65535:
        raise UsageError(f"--port {args.port} is not a port number (0 to 65535)")
    if not 1 <= args.workers <= MAX_WORKERS:
        raise UsageError(f"--workers {args.workers} is not in 1 to {MAX_WORKERS}")
    if args.workers > 1 and not hasattr(os, "fork"):
        raise UsageError(
            f"--workers {args.workers} needs os.fork, which this platform lacks"
        )
    timeout = args.tls_handshake_timeout
    if not 0 < timeout < float("inf"):
        raise UsageError(f"--tls-handshake-timeout {timeout} is not a positive number")


def _tls(args: argparse.Namespace) -> _TLS | None:
    """Load the server context of ``--tls-cert``/``--tls-key``, if given."""
    if args.tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        context.load_cert_chain(args.tls_cert, args.tls_key)
    except (OSError, ValueError) as exc:  # ssl.SSLError is an OSError
        raise UsageError(
            f"cannot load --tls-cert {args.tls_cert!r} with --tls-key "
            f"{args.tls_key!r}: {exc}"
        ) from None
    return context, args.tls_handshake_timeout


def _bind(host: str, port: int) -> socket.socket:
    """Return a non-blocking socket listening on ``host``:``port``."""
    try:
        infos = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
    except (OSError, UnicodeError) as exc:
        raise UsageError(f"cannot resolve --host {host!r}: {exc}") from None
    family, kind, proto, _name, addr = infos[0]
    sock = socket.socket(family, kind, proto)
    try:
        if os.name == "posix":  # elsewhere SO_REUSEADDR lets a port be shared
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _factory(name: str, loop: Loop) -> Callable[[], ConnectionProtocol]:
    from bufkit import servers

    if name == "echo":
        return servers.Echo
    if name == "discard":
        return servers.Discard
    if name == "fanout":
        return lambda: servers.Fanout(schedule=loop.call_soon)
    return lambda: servers.LineEcho(loop.pool)


class _Counter:
    """How many times a signal came; the handler only counts."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.count += 1


class _Lifeline:
    """The worker's end of the supervisor's socket pair: its end of file stops."""

    __slots__ = ("_stop",)

    def __init__(self, stop: Callable[[], object]) -> None:
        self._stop = stop

    def connection_made(self, conn: Connection, /) -> None:
        """Nothing to keep."""

    def data_received(self, view: memoryview, /) -> None:
        """The supervisor sends nothing."""

    def eof_received(self) -> bool | None:
        """The supervisor closed its end or died: stop."""
        self._stop()
        return None

    def connection_lost(self, exc: BaseException | None, /) -> None:
        """Stop, whatever closed the pair."""
        self._stop()

    def pause_writing(self) -> None:
        """Nothing is written."""

    def resume_writing(self) -> None:
        """Nothing is written."""


def _worker(
    name: str,
    sock: socket.socket,
    *,
    lifeline: socket.socket | None,
    stops: _Counter,
    tls: _TLS | None,
) -> int:
    """Serve on ``sock`` until a stop signal or the lifeline's end of file."""
    from bufkit.adapters.selectors import Loop

    loop = Loop()
    try:
        factory, dup = _factory(name, loop), sock.dup()
        if tls is None:
            listener = loop.listen_socket(factory, dup)
        else:
            listener = loop.listen_socket(
                factory, dup, ssl=tls[0], ssl_handshake_timeout=tls[1]
            )
        # The loop runs these as callbacks, never inside the signal handler,
        # which could interrupt a read, a write or a lend of the pool.
        for sig in _WORKER_STOP_SIGNALS if lifeline else _STOP_SIGNALS:
            loop.add_signal_handler(sig, loop.stop)
        for sig in _STATS_SIGNALS:
            loop.add_signal_handler(sig, _print_stats, loop)
        if lifeline is not None:
            loop.add_socket(lifeline, _Lifeline(loop.stop))
        if stops.count:  # a stop signal came before the loop handled them
            loop.stop()
        where = "{}:{}".format(*listener.address[:2])
        scheme = " over TLS" if tls else ""
        _say(f"bufkit serve {name}{scheme}: pid {os.getpid()} listening on {where}")
        loop.run_forever()
    finally:
        _print_stats(loop)
        loop.close()  # also gives the signals their earlier handlers back
    return 0


def _twisted_worker(
    name: str,
    sock: socket.socket,
    *,
    lifeline: socket.socket | None,
    stops: _Counter,
    tls: _TLS | None,
) -> int:
    """:func:`_worker` on Twisted's epoll reactor with bufkit transports."""
    from bufkit._serve_twisted import serve

    return serve(
        name,
        sock,
        lifeline=lifeline,
        stops=stops,
        tls=tls,
        stop_signals=_WORKER_STOP_SIGNALS if lifeline else _STOP_SIGNALS,
        stats_signals=_STATS_SIGNALS,
    )


def _print_stats(loop: Loop) -> None:
    stats = loop.pool.stats()
    conns = [c for c in loop.connections if not isinstance(c.protocol, _Lifeline)]
    pending = sum(c.pending_bytes for c in conns)
    paused = sum(1 for c in conns if c.writing_paused)
    _say(
        f"bufkit serve: pid {os.getpid()} connections={len(conns)} "
        f"queued_bytes={pending} paused={paused} "
        f"pool_bytes_in_use={stats.bytes_in_use} "
        f"pool_buffers_in_use={stats.buffers_in_use} "
        f"pool_bytes_reserved={stats.bytes_reserved} "
        f"pool_peak_bytes_in_use={stats.peak_bytes_in_use} "
        f"acquires={stats.acquires} heap_fallbacks={stats.heap_fallbacks}"
    )


def _say(line: str) -> None:
    """Write one whole line at once, so workers sharing stdout do not interleave."""
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _install(sigs: Iterable[int], handler: _Handler) -> dict[int, _Handler]:
    return {sig: signal.signal(sig, handler) for sig in sigs}


def _supervise(args: argparse.Namespace, sock: socket.socket, tls: _TLS | None) -> int:
    """Fork the workers, stop them on a stop signal, reap them."""
    stops, stats = _Counter(), _Counter()
    wake_r, wake_w = socket.socketpair()
    keep, give = socket.socketpair()  # the lifeline
    for end in (wake_r, wake_w):
        end.setblocking(False)
    saved = _install(_STOP_SIGNALS, stops)
    saved |= _install(_STATS_SIGNALS, stats)
    saved |= _install(_CHILD_SIGNALS, _Counter())  # only to wake the wait
    old_fd = signal.set_wakeup_fd(wake_w.fileno(), warn_on_full_buffer=False)
    alive: set[int] = set()
    try:
        sys.stdout.flush()
        for _ in range(args.workers):
            if stops.count:
                break
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                work = _twisted_worker if _loop(args) == "twisted" else _worker
                _child(
                    work, args.protocol, sock, give, (keep, wake_r, wake_w), stops, tls
                )
            alive.add(pid)
        give.close()
        host, port = sock.getsockname()[:2]
        _say(
            f"bufkit serve: pid {os.getpid()} supervising {len(alive)} workers "
            f"on {host}:{port}"
        )
        return _wait(alive, keep, wake_r, stops, stats)
    finally:
        signal.set_wakeup_fd(old_fd)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        for end in (wake_r, wake_w, keep, give):
            end.close()
        for pid in alive:  # only if the wait itself failed
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


def _child(
    work: Callable[..., int],
    name: str,
    sock: socket.socket,
    lifeline: socket.socket,
    parents: tuple[socket.socket, ...],
    stops: _Counter,
    tls: _TLS | None,
) -> None:  # pragma: no cover - runs in the child
    """Become a worker; never returns."""
    status = 1
    try:
        signal.set_wakeup_fd(-1)
        for end in parents:
            end.close()
        stops.count = 0
        if hasattr(signal, "SIGINT"):
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        for sig in _STATS_SIGNALS:
            signal.signal(sig, signal.SIG_IGN)  # its default action would kill
        for sig in _CHILD_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        status = work(name, sock, lifeline=lifeline, stops=stops, tls=tls)
    finally:
        sys.stdout.flush()
        os._exit(status)


def _wait(
    alive: set[int],
    lifeline: socket.socket,
    wake: socket.socket,
    stops: _Counter,
    stats: _Counter,
) -> int:
    """Reap the workers; act on the signals counted, woken by the wakeup fd."""
    status = 0
    stops_seen = stats_seen = 0
    while alive:
        if _reap(alive):
            status = 1
            stops.count = max(stops.count, 1)  # a worker ended: stop the rest
        if stops.count > stops_seen:
            if stops_seen == 0:
                lifeline.close()  # every worker sees its end of file
            else:
                _kill(alive, signal.SIGTERM)
            stops_seen = stops.count
        if stats.count > stats_seen:
            stats_seen = stats.count
            for sig in _STATS_SIGNALS:
                _kill(alive, sig)
        if alive:
            select.select([wake], [], [])
            with contextlib.suppress(BlockingIOError, InterruptedError):
                wake.recv(4096)
    return status


def _reap(alive: set[int]) -> bool:
    """Reap the workers that ended; return whether one failed or ended alone."""
    failed = False
    for pid in list(alive):
        done, code = os.waitpid(pid, os.WNOHANG)
        if done:
            alive.discard(pid)
            failed |= os.waitstatus_to_exitcode(code) != 0
    return failed


def _kill(alive: set[int], sig: int) -> None:
    """Signal the workers not reaped yet (their pids are still theirs)."""
    for pid in alive:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)
