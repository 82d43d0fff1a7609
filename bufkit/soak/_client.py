"""The soak's client side: many non-blocking connections on one selector.

Theory of operation: :func:`exchange` drives every connection of a batch at
once (so an echo server's replies are read while requests are still being
sent, and nothing deadlocks): each sends its payload in chunks of random
sizes, half-closes, and checks every reply byte against the expected reply
as it arrives (nothing is kept but a cursor), until the server's end of file.
Everything is bounded by a deadline. :func:`expected_reply` is what each
reference protocol must answer; it is written from the protocols' documented
behaviour, not from their code.
"""

from __future__ import annotations

import contextlib
import errno
import random
import selectors
import socket
import struct
import time
from collections.abc import Sequence
from typing import Final

import attrs

from bufkit.servers import FANOUT_REPLIES, FANOUT_REPLY_SIZE

__all__ = [
    "Outcome",
    "connect_many",
    "exchange",
    "expected_reply",
    "payload",
    "raise_nofile",
    "rst_close",
]

_FANOUT_LINE: Final = b"x" * (FANOUT_REPLY_SIZE - 1) + b"\n"


def payload(kind: str, size: int, rng: random.Random) -> bytes:
    """Random request bytes that the ``kind`` of server answers in full."""
    if kind == "line":  # whole lines, no line longer than 2,000 bytes
        parts: list[bytes] = []
        total = 0
        while total < size:
            line = rng.randbytes(rng.randint(0, 2000)).replace(b"\n", b" ") + b"\n"
            parts.append(line)
            total += len(line)
        return b"".join(parts)
    return rng.randbytes(size)


def expected_reply(kind: str, request: bytes) -> bytes:
    """What a ``kind`` server answers to ``request`` followed by end of file."""
    if kind in ("echo", "line"):
        return request
    if kind == "fanout":
        return _FANOUT_LINE * (len(request) * FANOUT_REPLIES)
    return b""  # discard


@attrs.define
class Outcome:
    """How one connection of :func:`exchange` went."""

    sent: int = 0
    verified: int = 0
    complete: bool = False
    problem: str | None = None


@attrs.define
class _Conn:
    sock: socket.socket
    request: bytes
    expected: bytes | None  # None: any reply (counted, not checked)
    outcome: Outcome
    chunk_max: int
    rng: random.Random


def _send(conn: _Conn, sel: selectors.BaseSelector) -> None:
    out = conn.outcome
    size = conn.rng.randint(1, conn.chunk_max)
    try:
        out.sent += conn.sock.send(conn.request[out.sent : out.sent + size])
    except BlockingIOError:
        return
    if out.sent == len(conn.request):
        conn.sock.shutdown(socket.SHUT_WR)
        sel.modify(conn.sock, selectors.EVENT_READ, conn)


def _recv(conn: _Conn) -> bool:
    """Read and check; return whether the connection is finished."""
    out = conn.outcome
    try:
        data = conn.sock.recv(262144)
    except BlockingIOError:
        return False
    expected = conn.expected
    if not data:
        out.complete = expected is None or out.verified == len(expected)
        if not out.complete:
            out.problem = f"end of file after {out.verified} of {len(expected or b'')}"
        return True
    if (
        expected is not None
        and data != expected[out.verified : out.verified + len(data)]
    ):
        out.problem = f"wrong bytes after {out.verified} verified"
        return True
    out.verified += len(data)
    return False


def exchange(
    port: int,
    requests: Sequence[tuple[bytes, bytes | None]],
    *,
    rng: random.Random,
    chunk_max: int = 65536,
    timeout: float = 30,
    host: str = "127.0.0.1",
) -> list[Outcome]:
    """Send each ``(request, expected)`` on its own connection, all at once.

    An ``expected`` of ``None`` accepts any reply (its bytes are counted).

    Returns:
        One outcome per request, in order.
    """
    sel = selectors.DefaultSelector()
    conns: list[_Conn] = []
    try:
        for request, expected in requests:
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setblocking(False)
            code = sock.connect_ex((host, port))
            conn = _Conn(sock, request, expected, Outcome(), chunk_max, rng)
            conns.append(conn)
            if code not in (0, errno.EINPROGRESS):
                conn.outcome.problem = f"connect: {errno.errorcode.get(code, code)}"
                continue
            events = selectors.EVENT_READ | selectors.EVENT_WRITE
            if not request:
                sock.shutdown(socket.SHUT_WR)
                events = selectors.EVENT_READ
            sel.register(sock, events, conn)
        _drive(sel, time.monotonic() + timeout)
    finally:
        sel.close()
        for conn in conns:
            conn.sock.close()
    return [conn.outcome for conn in conns]


def _drive(sel: selectors.BaseSelector, deadline: float) -> None:
    while sel.get_map():
        left = deadline - time.monotonic()
        if left <= 0:
            for key in list(sel.get_map().values()):
                key.data.outcome.problem = "timed out"
                sel.unregister(key.fileobj)
            return
        for key, mask in sel.select(min(left, 0.5)):
            conn: _Conn = key.data
            try:
                if mask & selectors.EVENT_WRITE:
                    _send(conn, sel)
                finished = bool(mask & selectors.EVENT_READ) and _recv(conn)
            except OSError as exc:
                conn.outcome.problem = f"{type(exc).__name__}: {exc}"
                finished = True
            if finished:
                sel.unregister(conn.sock)


def connect_many(
    port: int, count: int, *, host: str = "127.0.0.1", rcvbuf: int | None = None
) -> list[socket.socket]:
    """Open ``count`` non-blocking connections (connects may still be pending).

    A small ``rcvbuf`` keeps the kernel from absorbing what a peer that never
    reads is sent, so the server's own queue shows.
    """
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(sock)
            if rcvbuf is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            sock.setblocking(False)
            sock.connect_ex((host, port))
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def rst_close(sock: socket.socket) -> None:
    """Close with a reset (``SO_LINGER`` 0) instead of a graceful FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def raise_nofile(needed: int) -> int:
    """Raise this process's soft ``RLIMIT_NOFILE`` toward ``needed``; return it."""
    try:
        import resource
    except ImportError:  # pragma: no cover - not POSIX
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        soft = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    return soft
