"""``bufkit serve``: run a reference protocol on the selectors :class:`Loop`.

With ``--workers N`` (N > 1) the parent binds the port once (so ``--port 0``
picks one port for all), forks N workers that listen on it with
``SO_REUSEPORT`` (the kernel spreads connections across them), forwards
SIGINT, SIGTERM and SIGUSR1 to them and reaps them. SIGUSR1 makes a worker
print its pool and queue statistics; every worker prints them when it exits.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bufkit.adapters.selectors import ConnectionProtocol, Loop

__all__ = ["add_parser", "run"]

_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_SIGNALS = (*_STOP_SIGNALS, signal.SIGUSR1)
PROTOCOLS = ("echo", "discard", "fanout", "line-echo")


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add the ``serve`` subcommand to the ``bufkit`` command."""
    parser = subparsers.add_parser(
        "serve",
        help="run a reference server on the selectors loop",
        description="Run a reference protocol until Ctrl-C. SIGUSR1 prints "
        "pool and queue statistics (so does exit).",
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
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    """Serve until a stop signal; return the exit status."""
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="[%(process)d] %(levelname)s %(name)s: %(message)s",
    )
    if args.workers < 1:
        print("bufkit serve: --workers must be at least 1", file=sys.stderr)
        return 2
    if args.workers == 1:
        return _worker(args.protocol, args.host, args.port, reuse_port=False)
    return _supervise(args)


def _factory(name: str, loop: Loop) -> Callable[[], ConnectionProtocol]:
    from bufkit import servers

    if name == "echo":
        return servers.Echo
    if name == "discard":
        return servers.Discard
    if name == "fanout":
        return servers.Fanout
    return lambda: servers.LineEcho(loop.pool)


def _worker(name: str, host: str, port: int, *, reuse_port: bool) -> int:
    from bufkit.adapters.selectors import Loop

    loop = Loop()
    try:
        listener = loop.listen(_factory(name, loop), host, port, reuse_port=reuse_port)
    except OSError as exc:
        loop.close()
        print(f"bufkit serve: cannot listen on {host}:{port}: {exc}", file=sys.stderr)
        return 1
    try:
        # The loop runs these as callbacks, never inside the signal handler,
        # which could interrupt a read, a write or a lend of the pool.
        for sig in _STOP_SIGNALS:
            loop.add_signal_handler(sig, loop.stop)
        loop.add_signal_handler(signal.SIGUSR1, _print_stats, loop)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)  # see _supervise
        where = "{}:{}".format(*listener.address)
        _say(f"bufkit serve {name}: pid {os.getpid()} listening on {where}")
        loop.run_forever()
    finally:
        _print_stats(loop)
        loop.close()  # also gives the signals their earlier handlers back
    return 0


def _print_stats(loop: Loop) -> None:
    stats = loop.pool.stats()
    conns = loop.connections
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


def _supervise(args: argparse.Namespace) -> int:
    """Fork the workers, forward signals to them, reap them."""
    # Hold the port (bound, not listening) so that every worker, and --port 0,
    # share one port; a bound socket that is not listening gets no connections.
    holder = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    holder.bind((args.host, args.port))
    port = holder.getsockname()[1]
    sys.stdout.flush()
    children: list[int] = []
    # Until the parent forwards and each worker has its own handlers, a
    # signal waits (blocked) rather than kill a process by default action.
    signal.pthread_sigmask(signal.SIG_BLOCK, _SIGNALS)
    saved = {sig: signal.signal(sig, _forwarder(children)) for sig in _SIGNALS}
    try:
        for _ in range(args.workers):
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                holder.close()
                # Not the parent's forwarder: the worker's loop handles these
                # while it runs and gives back SIG_IGN, so a signal that comes
                # late (a terminal's Ctrl-C reaches the whole group besides the
                # forwarded one) cannot cut the exit short.
                for sig in _SIGNALS:
                    signal.signal(sig, signal.SIG_IGN)
                status = 1
                try:
                    status = _worker(args.protocol, args.host, port, reuse_port=True)
                finally:
                    sys.stdout.flush()
                    os._exit(status)
            children.append(pid)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        return _reap(children)
    finally:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _SIGNALS)
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        holder.close()


def _forwarder(children: list[int]) -> Callable[[int, FrameType | None], None]:
    def forward(signum: int, frame: FrameType | None) -> None:
        for pid in children:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signum)

    return forward


def _reap(children: list[int]) -> int:
    status = 0
    alive = set(children)
    while alive:
        pid, code = os.wait()
        alive.discard(pid)
        if os.waitstatus_to_exitcode(code) != 0:
            status = 1
    return status
