"""The fake agrees with a real non-blocking socketpair where both can behave alike."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator

import pytest

from bufkit.testing import (
    Accept,
    SendStep,
    WouldBlock,
    fake_socketpair,
)

Outcome = tuple[str, int]


def _fill(
    send: Callable[[bytes], int], chunk: bytes, limit: int = 10_000
) -> list[Outcome]:
    """Send ``chunk`` until EAGAIN; record each result or the errno."""
    outcomes: list[Outcome] = []
    for _ in range(limit):
        try:
            outcomes.append(("sent", send(chunk)))
        except OSError as exc:
            outcomes.append((type(exc).__name__, exc.errno or 0))
            break
    return outcomes


@pytest.fixture
def real_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking socketpair with a small send buffer."""
    a, b = socket.socketpair()
    with a, b:
        for sock in (a, b):
            sock.setblocking(False)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        yield a, b


def _as_schedule(outcomes: list[Outcome]) -> list[SendStep]:
    steps: list[SendStep] = [Accept(n) for kind, n in outcomes if kind == "sent"]
    return [*steps, WouldBlock()]


@pytest.mark.parametrize("size", [1000, 3001, 65536])
def test_filling_the_buffer_partial_send_then_eagain(
    real_pair: tuple[socket.socket, socket.socket], size: int
) -> None:
    """Into a full buffer: the same partial sends, EAGAIN and bytes."""
    a, b = real_pair
    chunk = bytes(range(256)) * (size // 256 + 1)
    chunk = chunk[:size]
    real = _fill(a.send, chunk)
    assert real[-1] == ("BlockingIOError", errno.EAGAIN)
    fa, fb = fake_socketpair(a_send=_as_schedule(real))
    assert _fill(fa.send, chunk) == real
    received = bytearray()
    while True:
        try:
            data = b.recv(65536)
        except BlockingIOError:
            break
        received += data
    assert bytes(received) == fa.wire == fb.recv(1 << 24)


def test_recv_into_returns_zero_at_eof(
    real_pair: tuple[socket.socket, socket.socket],
) -> None:
    """After the peer closes, ``recv_into`` returns 0 on both."""
    a, b = real_pair
    fa, fb = fake_socketpair()
    for sender in (b, fb):
        sender.send(b"last")
        sender.shutdown(socket.SHUT_WR)
    for receiver in (a, fa):
        buf = bytearray(10)
        assert receiver.recv_into(buf) == 4
        assert buf[:4] == b"last"
        assert receiver.recv_into(buf) == 0
        assert receiver.recv_into(buf) == 0


def test_recv_when_empty_is_eagain(
    real_pair: tuple[socket.socket, socket.socket],
) -> None:
    """An empty receive buffer gives ``BlockingIOError`` with ``EAGAIN`` on both."""
    a, _ = real_pair
    fa, _ = fake_socketpair()
    for sock in (a, fa):
        with pytest.raises(BlockingIOError) as info:
            sock.recv(10)
        assert info.value.errno == errno.EAGAIN


def test_send_after_the_peer_closed_is_epipe(
    real_pair: tuple[socket.socket, socket.socket],
) -> None:
    """Sending to a closed peer fails with ``BrokenPipeError`` (``EPIPE``) on both."""
    a, b = real_pair
    fa, fb = fake_socketpair()
    b.close()
    fb.close()
    for sock in (a, fa):
        assert _fill(sock.send, b"x", limit=3)[-1] == ("BrokenPipeError", errno.EPIPE)


def test_calls_on_a_closed_socket_are_ebadf() -> None:
    """Calls on a closed socket raise ``OSError(EBADF)`` on both."""
    a, b = socket.socketpair()
    b.close()
    fa, _ = fake_socketpair()
    for sock in (a, fa):
        sock.close()
        with pytest.raises(OSError, match="Bad file descriptor") as info:
            sock.send(b"x")
        assert info.value.errno == errno.EBADF
        assert sock.fileno() == -1
