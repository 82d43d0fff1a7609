"""The fake socket's plain surface: close, modes, records, liveness limits."""

from __future__ import annotations

import errno
import socket

import pytest

from bufkit.testing import (
    Accept,
    BusyLoopError,
    Call,
    DeadlockError,
    Deliver,
    FakeSocket,
    Interrupt,
    StepBudgetExceeded,
    WouldBlock,
    fake_socketpair,
)


def test_closed_socket_raises_ebadf() -> None:
    """Every call after ``close`` raises ``OSError(EBADF)``; ``fileno`` is -1."""
    sock = FakeSocket()
    fd = sock.fileno()
    assert fd >= 0
    sock.close()
    sock.close()
    assert sock.closed
    assert sock.fileno() == -1
    for call in (lambda: sock.send(b"a"), lambda: sock.recv(1), sock.getpeername):
        with pytest.raises(OSError, match="Bad file descriptor") as info:
            call()
        assert info.value.errno == errno.EBADF


def test_filenos_are_unique() -> None:
    """Each fake has its own descriptor number."""
    with FakeSocket() as a, FakeSocket() as b:
        assert a.fileno() != b.fileno()
    assert a.closed


def test_shutdown_write_then_send_is_epipe() -> None:
    """After ``shutdown(SHUT_WR)`` a send raises ``BrokenPipeError``."""
    sock = FakeSocket()
    sock.shutdown(socket.SHUT_WR)
    with pytest.raises(BrokenPipeError):
        sock.send(b"a")


def test_shutdown_read_then_recv_is_eof() -> None:
    """After ``shutdown(SHUT_RD)`` a receive returns ``b""``."""
    sock = FakeSocket(recv=[Deliver(b"a")])
    sock.shutdown(socket.SHUT_RD)
    assert sock.recv(1) == b""


def test_blocking_mode_waits_through_would_block() -> None:
    """In blocking mode ``WouldBlock()`` is a wait, not an error."""
    sock = FakeSocket(
        send=[WouldBlock(), Accept(2)], recv=[WouldBlock(), Deliver(b"x")]
    )
    sock.setblocking(True)
    assert sock.getblocking()
    assert sock.gettimeout() is None
    assert sock.send(b"abc") == 2
    assert sock.recv(1) == b"x"
    with pytest.raises(DeadlockError):
        sock.recv(1)
    sock.settimeout(0.5)
    with pytest.raises(TimeoutError):
        sock.recv(1)
    sock.setblocking(False)
    assert sock.gettimeout() == 0.0


def test_sendall_loops_over_partial_sends() -> None:
    """``sendall`` in blocking mode sends everything through partial sends and EINTR."""
    sock = FakeSocket(send=[Accept(1), Interrupt(), WouldBlock(), Accept(2)])
    sock.setblocking(True)
    sock.sendall(b"abcdef")
    assert sock.wire == b"abcdef"


def test_sendall_in_non_blocking_mode_raises_after_a_partial_send() -> None:
    """``sendall`` on a non-blocking fake raises ``EAGAIN`` part way, like a socket."""
    sock = FakeSocket(send=[Accept(1), WouldBlock()])
    with pytest.raises(BlockingIOError):
        sock.sendall(b"abc")
    assert sock.wire == b"a"


def test_calls_are_recorded() -> None:
    """Each call leaves a ``Call`` with its size, result, errno and step."""
    sock = FakeSocket(send=[Accept(2), WouldBlock()])
    sock.sendmsg([b"ab", b"c"])
    with pytest.raises(BlockingIOError):
        sock.send(b"c")
    assert sock.calls == [
        Call("sendmsg", 3, 2, 2, None, Accept(2)),
        Call("send", 1, 1, None, errno.EAGAIN, WouldBlock()),
    ]
    assert "sendmsg([2 buffers, 3 bytes]) = 2" in sock.transcript()
    assert "send(1) = -1 EAGAIN" in sock.transcript()


def test_busy_limit_catches_retries_without_waiting() -> None:
    """A send right after ``EAGAIN`` without waiting counts, then raises."""
    sock = FakeSocket(send=[WouldBlock(), WouldBlock(), WouldBlock()], busy_limit=1)
    with pytest.raises(BlockingIOError):
        sock.send(b"a")
    with pytest.raises(BlockingIOError):
        sock.send(b"a")
    assert sock.busy_retries == 1
    with pytest.raises(BusyLoopError, match="without waiting"):
        sock.send(b"a")
    sock.mark_waited()


def test_waiting_resets_the_busy_count() -> None:
    """A call after ``mark_waited`` is not a busy retry."""
    sock = FakeSocket(send=[WouldBlock()], busy_limit=0)
    with pytest.raises(BlockingIOError):
        sock.send(b"a")
    sock.mark_waited()
    assert sock.send(b"a") == 1
    assert sock.busy_retries == 0


def test_step_budget() -> None:
    """More calls than ``step_budget`` raise ``StepBudgetExceeded``."""
    sock = FakeSocket(step_budget=2)
    sock.send(b"a")
    sock.send(b"a")
    with pytest.raises(StepBudgetExceeded):
        sock.send(b"a")


def test_socket_surface() -> None:
    """Addresses, options and attributes look like a TCP socket's."""
    a, b = fake_socketpair()
    assert a.getpeername() == b.getsockname()
    assert a.family == socket.AF_INET
    assert a.type == socket.SOCK_STREAM
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF) == 4096
    assert a.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0
    assert "FakeSocket" in repr(a)
    a.close()
    b.close()


def test_recv_into_checks_nbytes() -> None:
    """Asking for more bytes than the buffer holds is an error, as on a socket."""
    sock = FakeSocket(recv=[Deliver(b"abc")])
    with pytest.raises(ValueError, match="buffer too small"):
        sock.recv_into(bytearray(2), 3)
    with pytest.raises(ValueError, match="negative"):
        sock.recv(-1)
