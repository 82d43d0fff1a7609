"""The load client: ``python -m bufkit.bench._client JSON``.

Raw non-blocking sockets on ``epoll`` (``poll`` elsewhere), no framework and
no per-message objects, so that one Python process can keep one server
process busy. The job (JSON on the command line) names the ``mode``
(``idle``, ``echo`` or ``fanout``), ``port``, ``connections``, message
``size`` and pipelining ``window`` (messages or requests in flight per
connection).

The client connects every connection (at most :data:`CONNECT_BATCH` pending
at a time, so the server's backlog never drops a SYN), completes every TLS
handshake when the job names a ``cafile`` (the server's certificate: the job
speaks TLS, with Python's :mod:`ssl`), and prints ``CONNECTED``. Then it
obeys stdin:

* idle mode: ``roundtrip`` sends one byte on every connection and waits for
  it to come back (``ROUNDTRIP``); ``close`` or end of input closes all.
* load modes run the load from ``CONNECTED`` on; ``mark`` prints
  ``MARK {t, bytes, cpu}`` (bytes received so far, own CPU seconds) and
  ``stop`` or end of input prints ``RESULT`` and closes all.

Any socket error or unexpected EOF prints ``ERROR {message}`` and exits 1.

``python -m bufkit.bench._client serve`` runs one job after another in the
same process, so the bench pays for no interpreter start between rounds:
each ``job {json}`` line on stdin runs as above, ending with ``RESULT`` or
``ERROR`` (its sockets closed either way), and the client then waits for the
next job; ``quit`` or the end of input ends it.
"""

from __future__ import annotations

import json
import os
import select
import socket
import ssl
import sys
import time
from collections.abc import Sequence
from typing import Any, Final

from bufkit.bench._wire import FANOUT_RESPONSE, dump_line, raise_nofile_limit

__all__ = ["main"]

CONNECT_BATCH: Final = 256
_IN: Final = select.POLLIN
_OUT: Final = select.POLLOUT
_STDIN: Final = 0
_BLOCKED: Final = (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError)
_TLS_WAIT: Final = (ssl.SSLWantReadError, ssl.SSLWantWriteError)


class _Poller:
    """``epoll`` where there is one, ``poll`` elsewhere, with one API."""

    def __init__(self) -> None:
        self._epoll = select.epoll() if hasattr(select, "epoll") else None
        self._poll = select.poll() if self._epoll is None else None

    def register(self, fd: int, mask: int) -> None:
        if self._epoll is not None:
            self._epoll.register(fd, mask)
        elif self._poll is not None:
            self._poll.register(fd, mask)

    def modify(self, fd: int, mask: int) -> None:
        if self._epoll is not None:
            self._epoll.modify(fd, mask)
        elif self._poll is not None:
            self._poll.modify(fd, mask)

    def poll(self, timeout: float) -> list[tuple[int, int]]:
        if self._epoll is not None:
            return self._epoll.poll(timeout)
        assert self._poll is not None
        return self._poll.poll(int(timeout * 1000))


class _Fatal(Exception):
    """A connection failed: the run is void."""


def _emit(tag: str, payload: object) -> None:
    os.write(1, dump_line(tag, payload).encode())


def _connect_all(host: str, port: int, count: int) -> dict[int, socket.socket]:
    """Open ``count`` connections, ``CONNECT_BATCH`` in flight at most."""
    socks: dict[int, socket.socket] = {}
    pending: dict[int, socket.socket] = {}
    poller = _Poller()
    deadline = time.monotonic() + 30 + count / 100
    try:
        while len(socks) < count:
            while len(pending) < CONNECT_BATCH and len(socks) + len(pending) < count:
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.setblocking(False)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                pending[sock.fileno()] = sock
                sock.connect_ex((host, port))
                poller.register(sock.fileno(), _OUT)
            if time.monotonic() > deadline:
                raise _Fatal(f"connecting timed out ({len(socks)} of {count})")
            for fd, _ in poller.poll(1.0):
                sock = pending.pop(fd)
                err = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    sock.close()
                    raise _Fatal(f"connect failed: {os.strerror(err)}")
                poller.modify(fd, 0)
                socks[fd] = sock
    except BaseException:
        for sock in [*socks.values(), *pending.values()]:
            sock.close()
        raise
    return socks


def _handshake_all(socks: dict[int, socket.socket], cafile: str) -> None:
    """Wrap every connection in TLS (in place) and complete the handshakes."""
    ctx = ssl.create_default_context(cafile=cafile)
    poller = _Poller()
    for fd, sock in socks.items():
        socks[fd] = ctx.wrap_socket(
            sock, server_hostname="localhost", do_handshake_on_connect=False
        )
        poller.register(fd, 0)
    waiting = set(socks)
    ready = list(socks)
    deadline = time.monotonic() + 30 + len(socks) / 50
    while waiting:
        for fd in ready:
            if fd in waiting and _handshake_step(socks[fd], poller, fd):
                waiting.discard(fd)
        if waiting and time.monotonic() > deadline:
            raise _Fatal(f"TLS handshakes timed out ({len(waiting)} waiting)")
        ready = [fd for fd, _ in poller.poll(1.0)] if waiting else []


def _handshake_step(sock: socket.socket, poller: _Poller, fd: int) -> bool:
    """Advance one handshake; return whether it completed."""
    assert isinstance(sock, ssl.SSLSocket)
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        poller.modify(fd, _IN)
        return False
    except ssl.SSLWantWriteError:
        poller.modify(fd, _OUT)
        return False
    poller.modify(fd, 0)
    return True


def _recv_plain(sock: socket.socket, buf: memoryview) -> int:
    n = sock.recv_into(buf)
    if n == 0:
        raise _Fatal("server closed a connection")
    return n


def _recv_tls(sock: socket.socket, buf: memoryview) -> int:
    """Read every decrypted byte there is (records the selector cannot see)."""
    got = 0
    while True:
        try:
            n = sock.recv_into(buf)
        except _TLS_WAIT:
            return got
        if n == 0:
            raise _Fatal("server closed a connection")
        got += n


class _Commands:
    """Lines from stdin, read without blocking the load loop."""

    def __init__(self) -> None:
        self._partial = b""
        self._queued: list[str] = []
        self.closed = False

    def read(self) -> list[str]:
        """Return the lines read before and the whole lines of one ``read``."""
        if self._queued:
            lines, self._queued = self._queued, []
            return lines
        data = os.read(_STDIN, 4096)
        if not data:
            self.closed = True
            return []
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()
        return [part.decode().strip() for part in parts]

    def next_line(self) -> str | None:
        """Block for the next line; None at the end of input."""
        while not self._queued and not self.closed:
            self._queued = self.read()
        return self._queued.pop(0) if self._queued else None


def _roundtrip(socks: dict[int, socket.socket]) -> float:
    """Send one byte on every connection and wait for every echo."""
    start = time.monotonic()
    poller = _Poller()
    for fd, sock in socks.items():
        sock.send(b"r")
        poller.register(fd, _IN)
    waiting = set(socks)
    buf = bytearray(16)
    while waiting:
        if time.monotonic() - start > 60:
            raise _Fatal(f"round trip timed out ({len(waiting)} waiting)")
        for fd, _ in poller.poll(1.0):
            if socks[fd].recv_into(buf) == 0:
                raise _Fatal("server closed a connection")
            waiting.discard(fd)
            poller.modify(fd, 0)
    return time.monotonic() - start


def _run_idle(socks: dict[int, socket.socket], commands: _Commands) -> None:
    while not commands.closed:
        for command in commands.read():
            if command == "roundtrip":
                _emit("ROUNDTRIP", {"seconds": _roundtrip(socks)})
            elif command == "close":
                return


def _run_load(
    socks: dict[int, socket.socket],
    job: dict[str, Any],
    commands: _Commands,
) -> int:
    """Keep ``window`` messages in flight on every connection until ``stop``."""
    fanout = job["mode"] == "fanout"
    size, window = job.get("size", 1), job["window"]
    limit = window if fanout else window * size
    payload = memoryview(b"r" * limit)
    sent = dict.fromkeys(socks, 0)
    received = dict.fromkeys(socks, 0)
    armed: set[int] = set()
    poller = _Poller()
    poller.register(_STDIN, _IN)
    for fd in socks:
        poller.register(fd, _IN)
    buf = memoryview(bytearray(1 << 18))
    total = 0
    recv = _recv_tls if "cafile" in job else _recv_plain

    def top_up(fd: int, sock: socket.socket) -> None:
        if fanout:
            room = limit - (sent[fd] - received[fd] // FANOUT_RESPONSE)
        else:
            room = limit - (sent[fd] - received[fd])
            room -= room % size
        if room <= 0:
            return
        try:
            n = sock.send(payload[:room])
        except _BLOCKED:
            n = 0
        sent[fd] += n
        if n < room and fd not in armed:
            armed.add(fd)
            poller.modify(fd, _IN | _OUT)
        elif n == room and fd in armed:
            armed.discard(fd)
            poller.modify(fd, _IN)

    for fd, sock in socks.items():
        top_up(fd, sock)
    while True:
        for fd, events in poller.poll(1.0):
            if fd == _STDIN:
                for command in commands.read():
                    if command == "mark":
                        mark = {"t": time.monotonic(), "bytes": total}
                        _emit("MARK", mark | {"cpu": time.process_time()})
                    elif command == "stop":
                        return total
                if commands.closed:
                    return total
                continue
            sock = socks[fd]
            if events & _IN:
                n = recv(sock, buf)
                received[fd] += n
                total += n
            top_up(fd, sock)


def _run_job(job: dict[str, Any], commands: _Commands) -> bool:
    """Run one job; return whether it ended with ``RESULT`` (not ``ERROR``)."""
    socks: dict[int, socket.socket] = {}
    try:
        socks = _connect_all(
            job.get("host", "127.0.0.1"), job["port"], job["connections"]
        )
        if "cafile" in job:
            _handshake_all(socks, job["cafile"])
        _emit("CONNECTED", {"n": len(socks), "t": time.monotonic()})
        if job["mode"] == "idle":
            _run_idle(socks, commands)
            total = 0
        else:
            total = _run_load(socks, job, commands)
    except (_Fatal, OSError) as exc:
        _emit("ERROR", {"message": f"{type(exc).__name__}: {exc}"})
        return False
    finally:
        for sock in socks.values():
            sock.close()
    _emit("RESULT", {"bytes": total, "cpu": time.process_time(), "t": time.monotonic()})
    return True


def _serve(commands: _Commands) -> int:
    """Run each ``job {json}`` line in turn until ``quit`` or the end of input."""
    while True:
        line = commands.next_line()
        if line is None or line == "quit":
            return 0
        tag, _, rest = line.partition(" ")
        if tag == "job":  # anything else is a leftover of a failed job
            _run_job(json.loads(rest), commands)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the job given as JSON in ``argv[0]`` (or ``serve``); return the status."""
    arg = (sys.argv[1:] if argv is None else argv)[0]
    raise_nofile_limit()
    commands = _Commands()
    if arg == "serve":
        return _serve(commands)
    return 0 if _run_job(json.loads(arg), commands) else 1


if __name__ == "__main__":
    sys.exit(main())
