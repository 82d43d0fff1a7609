"""The fake agrees with real non-blocking sockets, op for op, where both are defined."""

from __future__ import annotations

import errno
import socket
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit.testing import fake_socketpair

Outcome = tuple[str, int]


def _fill(
    send: Callable[[bytes], int], chunk: bytes, limit: int = 10_000
) -> list[Outcome]:
    """Send ``chunk`` until an error; record each result or the errno."""
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


Op = tuple[str, int, int]
_OPS = st.one_of(
    st.tuples(st.just("send"), st.integers(0, 1), st.integers(1, 300)),
    st.tuples(st.just("recv"), st.integers(0, 1), st.integers(1, 700)),
    st.tuples(st.just("shutdown"), st.integers(0, 1), st.just(socket.SHUT_WR)),
    st.tuples(st.just("close"), st.integers(0, 1), st.just(0)),
)


def _shuts_down_each_side_once(ops: list[Op]) -> bool:
    sides = [side for op, side, _ in ops if op == "shutdown"]
    return len(sides) == len(set(sides))


def _apply(pair: Sequence[Any], ops: list[Op]) -> list[object]:
    """Run ``ops`` on the two sockets of ``pair``; record each result or errno."""
    outcomes: list[object] = []
    for count, (op, side, arg) in enumerate(ops):
        sock = pair[side]
        try:
            if op == "send":
                outcomes.append(sock.send(bytes([count]) * arg))
            elif op == "recv":
                outcomes.append(sock.recv(arg))
            elif op == "shutdown":
                outcomes.append(sock.shutdown(arg))
            else:
                outcomes.append(sock.close())
        except OSError as exc:
            outcomes.append((type(exc).__name__, exc.errno))
    return outcomes


def _tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as server:
        a = socket.create_connection(server.getsockname())
        b, _ = server.accept()
    a.setblocking(False)
    b.setblocking(False)
    return a, b


@given(st.lists(_OPS, max_size=12).filter(_shuts_down_each_side_once))
def test_a_fake_pair_behaves_as_a_loopback_tcp_pair(ops: list[Op]) -> None:
    """Sends, receives, shutdowns and closes give the same results and errors.

    The fake pair runs without schedules; the kernel's loopback TCP is the
    reference (a few hundred bytes never fill its buffers). Left out, where
    Linux differs from other kernels: ``SHUT_RD`` (Linux still delivers data
    after it) and a second ``shutdown`` of one socket.
    """
    a, b = _tcp_pair()
    with a, b:
        real = _apply((a, b), ops)
    assert _apply(fake_socketpair(), ops) == real


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
