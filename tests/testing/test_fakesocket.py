"""Every schedule step of the fake socket behaves as documented."""

from __future__ import annotations

import errno

import pytest

import bufkit.testing
from bufkit.testing import (
    IOV_MAX,
    Accept,
    AcceptAll,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    Interrupt,
    RecvStep,
    SendStep,
    Short,
    WouldBlock,
    format_schedule,
)


def test_accept_cuts_inside_a_gather_buffer() -> None:
    """``Accept(n)`` takes the first ``n`` bytes of the gather, cutting a buffer."""
    sock = FakeSocket(send=[Accept(7)])
    assert sock.sendmsg([b"abcd", memoryview(b"efgh"), bytearray(b"ij")]) == 7
    assert sock.wire == b"abcdefg"


def test_accept_takes_no_more_than_offered() -> None:
    """``Accept(n)`` with fewer bytes offered accepts what was offered."""
    sock = FakeSocket(send=[Accept(100), Accept(1)])
    assert sock.send(b"abc") == 3
    assert sock.send(b"de") == 1
    assert sock.wire == b"abcd"


def test_accept_all_and_the_default_after_the_schedule() -> None:
    """``AcceptAll()`` and an exhausted schedule accept every byte."""
    sock = FakeSocket(send=[AcceptAll()])
    assert sock.send(b"x" * 1000) == 1000
    assert sock.sendmsg([b"y", b"z"]) == 2
    assert sock.wire == b"x" * 1000 + b"yz"


def test_would_block_raises_eagain_and_consumes_the_step() -> None:
    """``WouldBlock()`` raises ``EAGAIN``, then the next step runs."""
    sock = FakeSocket(send=[WouldBlock(), Accept(1)])
    with pytest.raises(BlockingIOError) as info:
        sock.send(b"ab")
    assert info.value.errno == errno.EAGAIN
    assert sock.send(b"ab") == 1
    assert sock.wire == b"a"


@pytest.mark.parametrize(
    ("code", "exc_type"),
    [
        (errno.ECONNRESET, ConnectionResetError),
        (errno.EPIPE, BrokenPipeError),
        (errno.ENOBUFS, OSError),
        (errno.ENOMEM, OSError),
    ],
)
def test_fail_raises_the_builtin_error_with_its_errno(
    code: int, exc_type: type[OSError]
) -> None:
    """``Fail(code)`` raises the builtin subclass for ``code`` with that errno."""
    sock = FakeSocket(send=[Fail(code)], recv=[Fail(code)])
    with pytest.raises(exc_type) as info:
        sock.sendmsg([b"a"])
    assert info.value.errno == code
    assert sock.wire == b""


def test_fatal_errors_break_the_connection() -> None:
    """After ``ECONNRESET`` sends raise ``EPIPE`` and receives see end of file."""
    sock = FakeSocket(send=[Fail(errno.ECONNRESET)], recv=[Deliver(b"late")])
    with pytest.raises(ConnectionResetError):
        sock.send(b"a")
    with pytest.raises(BrokenPipeError):
        sock.send(b"a")
    assert sock.recv(10) == b""


def test_transient_errors_do_not_break_the_connection() -> None:
    """``ENOBUFS`` fails one call; the next one proceeds."""
    sock = FakeSocket(send=[Fail(errno.ENOBUFS)])
    with pytest.raises(OSError, match="No buffer space"):
        sock.send(b"a")
    assert sock.send(b"a") == 1


def test_interrupt_raises_eintr() -> None:
    """``Interrupt()`` raises ``InterruptedError`` on either side."""
    sock = FakeSocket(send=[Interrupt()], recv=[Interrupt(), Deliver(b"x")])
    with pytest.raises(InterruptedError) as info:
        sock.send(b"a")
    assert info.value.errno == errno.EINTR
    with pytest.raises(InterruptedError):
        sock.recv(1)
    assert sock.recv(1) == b"x"


def test_sendmsg_over_iov_max_raises_emsgsize() -> None:
    """``sendmsg`` of more than ``iov_max`` buffers fails with ``EMSGSIZE``."""
    sock = FakeSocket(send=[AcceptAll()])
    with pytest.raises(OSError, match="Message too long") as info:
        sock.sendmsg([b"a"] * (IOV_MAX + 1))
    assert info.value.errno == errno.EMSGSIZE
    assert sock.remaining_send == (AcceptAll(),)
    assert sock.sendmsg([b"a"] * IOV_MAX) == IOV_MAX


def test_small_iov_max() -> None:
    """``iov_max`` is configurable."""
    sock = FakeSocket(iov_max=2)
    with pytest.raises(OSError, match="3 > iov_max"):
        sock.sendmsg([b"a", b"b", b"c"])


def test_empty_send_consumes_no_step() -> None:
    """Sending nothing returns 0 and leaves the schedule alone."""
    sock = FakeSocket(send=[WouldBlock()])
    assert sock.send(b"") == 0
    assert sock.sendmsg([]) == 0
    assert sock.remaining_send == (WouldBlock(),)


def test_after_send_block() -> None:
    """``after_send="block"`` raises ``EAGAIN`` once the schedule is used up."""
    sock = FakeSocket(send=[Accept(2)], after_send="block")
    assert sock.send(b"abc") == 2
    with pytest.raises(BlockingIOError):
        sock.send(b"c")


def test_non_byte_memoryviews_are_sent_as_raw_bytes() -> None:
    """A ``memoryview`` of format ``'i'`` is cut in bytes, not items."""
    data = memoryview(bytearray(range(8))).cast("i")
    sock = FakeSocket(send=[Accept(3)])
    assert sock.sendmsg([data]) == 3
    assert sock.wire == bytes(range(3))


def test_deliver_with_a_short_buffer_carries_over() -> None:
    """A ``Deliver`` larger than the buffer is a short read; the rest comes next."""
    sock = FakeSocket(recv=[Deliver(b"abcdef"), Eof()])
    buf = bytearray(4)
    assert sock.recv_into(buf) == 4
    assert buf == b"abcd"
    assert sock.recv_into(buf, 1) == 1
    assert sock.recv(10) == b"f"
    assert sock.recv(10) == b""
    assert sock.received == b"abcdef"


def test_eof_is_sticky() -> None:
    """After ``Eof()`` every receive returns ``b""``, whatever follows."""
    sock = FakeSocket(recv=[Eof(), Deliver(b"never")])
    assert sock.recv(5) == b""
    assert sock.recv_into(bytearray(5)) == 0
    assert sock.recvmsg(5) == (b"", [], 0, None)


def test_recv_would_block_and_the_default_after_the_schedule() -> None:
    """Receives raise ``EAGAIN`` on ``WouldBlock()`` and after the schedule."""
    sock = FakeSocket(recv=[WouldBlock(), Deliver(b"a")])
    with pytest.raises(BlockingIOError):
        sock.recv(1)
    assert sock.recv(1) == b"a"
    with pytest.raises(BlockingIOError):
        sock.recv(1)


def test_after_recv_eof() -> None:
    """``after_recv="eof"`` reports end of file once the schedule is used up."""
    sock = FakeSocket(recv=[Deliver(b"a")], after_recv="eof")
    assert sock.recv(5) == b"a"
    assert sock.recv(5) == b""


def test_recv_zero_bytes_consumes_no_step() -> None:
    """A zero-byte receive returns at once and keeps the schedule."""
    sock = FakeSocket(recv=[Deliver(b"a")])
    assert sock.recv(0) == b""
    assert sock.remaining_recv == (Deliver(b"a"),)


def test_fed_bytes_are_split_by_short_steps() -> None:
    """``feed`` supplies inbound bytes; ``Short(n)`` caps one receive."""
    sock = FakeSocket(recv=[Short(2), WouldBlock(), Short(1)])
    sock.feed(b"hello")
    sock.feed_eof()
    assert sock.recv(10) == b"he"
    with pytest.raises(BlockingIOError):
        sock.recv(10)
    assert sock.recv(10) == b"l"
    assert sock.recv(10) == b"lo"
    assert sock.recv(10) == b""


def test_steps_print_as_python_that_rebuilds_them() -> None:
    """A schedule's repr is Python code equal to the schedule."""
    steps: list[SendStep | RecvStep] = [
        Accept(3),
        AcceptAll(),
        WouldBlock(),
        Interrupt(),
        Fail(errno.ECONNRESET),
        Deliver(b"a\x00"),
        Short(2),
        Eof(),
    ]
    text = format_schedule(steps)
    assert eval(text, vars(bufkit.testing) | {"errno": errno}) == steps


def test_invalid_steps_are_rejected() -> None:
    """Steps validate their values; schedules validate their step types."""
    with pytest.raises(ValueError, match="at least 1"):
        Accept(0)
    with pytest.raises(ValueError, match="at least 1"):
        Short(-1)
    with pytest.raises(ValueError, match="unknown errno"):
        Fail(-5)
    with pytest.raises(ValueError, match="Eof"):
        Deliver(b"")
    with pytest.raises(TypeError, match="not a send step"):
        FakeSocket(send=[Eof()])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="not a receive step"):
        FakeSocket(recv=[Accept(1)])  # type: ignore[list-item]


def test_repr_rebuilds_the_fake() -> None:
    """A fake's repr is Python code that rebuilds it in its initial state."""
    sock = FakeSocket(
        send=[Accept(2)], recv=[Deliver(b"x")], after_recv="eof", busy_limit=3
    )
    sock.send(b"abc")
    again = eval(repr(sock), vars(bufkit.testing) | {"errno": errno})
    assert repr(again) == repr(sock)
    assert again.remaining_send == (Accept(2),)
    assert again.after_recv == "eof"


def test_faults_seen_label_what_was_exercised() -> None:
    """``faults_seen`` names the hostile behaviours shown so far."""
    sock = FakeSocket(
        send=[Accept(3), WouldBlock(), Fail(errno.ECONNRESET)],
        recv=[Deliver(b"abc"), Eof()],
    )
    assert sock.faults_seen == frozenset()
    sock.sendmsg([b"ab", b"cd"])
    with pytest.raises(BlockingIOError):
        sock.send(b"d")
    with pytest.raises(ConnectionResetError):
        sock.send(b"d")
    assert sock.faults_seen == {
        "partial send",
        "cut inside a gather buffer",
        "EAGAIN on send",
        "ECONNRESET",
    }
    other = FakeSocket(recv=[Deliver(b"abc"), Eof()])
    assert other.recv(2) == b"ab"
    assert other.recv(2) == b"c"
    assert other.recv(2) == b""
    assert other.faults_seen == {"short read", "EOF"}


def test_a_cut_at_a_buffer_boundary_is_not_inside_a_buffer() -> None:
    """A partial gather send that ends between buffers is only a partial send."""
    sock = FakeSocket(send=[Accept(2)])
    sock.sendmsg([b"ab", b"cd"])
    assert sock.faults_seen == {"partial send"}
