"""``check_sender``/``check_receiver`` pass correct code and catch each bug."""

from __future__ import annotations

import errno
from collections.abc import Callable

import pytest

from bufkit.testing import (
    Accept,
    CheckFailed,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    Interrupt,
    WouldBlock,
    check_receiver,
    check_receiver_example,
    check_sender,
    check_sender_example,
    gallery,
)

NO_NEWLINE = None
# The checks must catch each wrong implementation on every run: a fixed search.
MUST_CATCH_SEED = 0


def _line(message: bytes) -> bytes:
    return message + b"\n"


def test_correct_sender_passes() -> None:
    """A correct gather sender passes the check."""
    check_sender(gallery.GatherSender)


@pytest.mark.parametrize(
    ("sender", "named"),
    [
        (gallery.IgnoresReturnValue, "return value ignored"),
        (gallery.StaysArmed, "busy loop on writable"),
        (gallery.SpinsOnEagain, "without waiting for readiness"),
        (gallery.PopsBeforeSending, "taken off the queue"),
        (gallery.NeverArms, "never armed"),
        (gallery.SwapsQueueBeforeSending, "taken off the queue"),
        (gallery.GathersPastIovMax, "more than IOV_MAX"),
        (gallery.ResendsWholeBuffer, "sent twice"),
    ],
)
def test_wrong_senders_fail_with_the_bug_named(
    sender: type[gallery.GatherSender], named: str
) -> None:
    """Each deliberately wrong sender fails with a verdict that names its bug."""
    with pytest.raises(CheckFailed, match=named) as info:
        check_sender(sender, seed=MUST_CATCH_SEED)
    text = str(info.value)
    assert "reproduce with:\n    check_sender_example(make_sender" in text
    assert "schedule=[" in text
    assert "fake socket calls:" in text


def test_the_reproduction_line_reproduces() -> None:
    """The printed example fails the same way when run again."""
    with pytest.raises(CheckFailed, match="return value") as info:
        check_sender_example(gallery.IgnoresReturnValue, [b"ab", b"c"], [Accept(1)])
    assert "message[0] lost its last 1 byte" in str(info.value)


def test_swallowed_send_error_is_caught() -> None:
    """A sender that hides ``ECONNRESET`` fails the check."""

    class Swallows(gallery.GatherSender):
        def on_writable(self) -> None:
            try:
                super().on_writable()
            except ConnectionResetError:
                self.pending.clear()

    with pytest.raises(CheckFailed, match="swallowed ECONNRESET"):
        check_sender_example(Swallows, [b"abc"], [Fail(errno.ECONNRESET)])


def test_escaped_eagain_is_caught() -> None:
    """A sender that lets ``BlockingIOError`` out fails the check."""

    class Raises(gallery.GatherSender):
        def on_writable(self) -> None:
            self.sock.send(self.pending.popleft())

    with pytest.raises(CheckFailed, match="EAGAIN means"):
        check_sender_example(Raises, [b"abc"], [WouldBlock()])


def test_sender_that_surfaces_errors_passes_a_fault_example() -> None:
    """An error that reaches the caller after a clean prefix is correct."""
    sock = check_sender_example(
        gallery.GatherSender, [b"abc", b"def"], [Accept(2), Fail(errno.EPIPE)]
    )
    assert sock.wire == b"ab"


def test_correct_receivers_pass() -> None:
    """A buffering line receiver and a stream receiver pass their checks."""
    check_receiver(gallery.LineReceiver, encode=_line, messages=_no_newline())
    check_receiver(gallery.StreamReceiver)


def test_one_recv_one_message_receiver_fails() -> None:
    """A receiver that treats one ``recv`` as one message fails, named."""
    with pytest.raises(CheckFailed, match="one recv is not one message") as info:
        check_receiver(
            gallery.OneRecvOneMessage,
            encode=_line,
            messages=_no_newline(),
            seed=MUST_CATCH_SEED,
        )
    assert "check_receiver_example(make_receiver" in str(info.value)


def test_swallowed_reset_receiver_fails() -> None:
    """A receiver that turns a reset into EOF fails the check."""
    with pytest.raises(CheckFailed, match="swallowed ECONNRESET"):
        check_receiver(gallery.SwallowsReceiveReset, seed=MUST_CATCH_SEED)


def test_receiver_example_verdicts() -> None:
    """Missed or repeated EOF and invented data are reported."""

    class NoEof(gallery.StreamReceiver):
        def on_readable(self) -> None:
            data = self.sock.recv(100)
            if data:
                self.on_message(data)
            else:
                self.done = True

    with pytest.raises(CheckFailed, match="on_eof was called 0 times"):
        check_receiver_example(NoEof, [b"ab"], [Deliver(b"ab"), Eof()])

    class Invents(gallery.StreamReceiver):
        def on_readable(self) -> None:
            super().on_readable()
            self.on_message(b"!")

    with pytest.raises(CheckFailed, match="never written"):
        check_receiver_example(Invents, [b"ab"], [Deliver(b"ab"), Eof()])


def test_receiver_that_does_not_read_is_a_stall() -> None:
    """A receiver that ignores readiness is reported, not hung."""

    class Idle(gallery.StreamReceiver):
        def on_readable(self) -> None:
            pass

    with pytest.raises(CheckFailed, match="received nothing"):
        check_receiver_example(Idle, [b"ab"], [Deliver(b"ab"), Eof()])


def test_check_sender_example_returns_the_fake() -> None:
    """A passing example returns its fake for more assertions."""
    sock = check_sender_example(gallery.GatherSender, [b"a" * 10], [Accept(3)] * 4)
    assert isinstance(sock, FakeSocket)
    assert sock.wire == b"a" * 10


def _no_newline() -> object:
    from hypothesis import strategies as st

    return st.binary(max_size=20).filter(lambda b: b"\n" not in b)


def test_unbounded_buffering_is_caught() -> None:
    """A sender without flow control fails when the peer is clogged."""
    with pytest.raises(CheckFailed, match="unbounded buffering"):
        check_sender(gallery.GatherSender, max_buffered=300, seed=MUST_CATCH_SEED)


def test_a_sender_with_flow_control_passes() -> None:
    """A sender that pauses the producer at a high-water mark passes."""
    check_sender(gallery.PausingSender, max_buffered=300)


def test_receiver_message_verdicts() -> None:
    """Missing, invented and wrong messages are named."""

    class Lossy(gallery.LineReceiver):
        def on_readable(self) -> None:
            super().on_readable()
            self.on_message(b"extra") if self.done else None

    with pytest.raises(CheckFailed, match="came out after the last one was sent"):
        check_receiver_example(Lossy, [b"a"], [Deliver(b"a\n"), Eof()], encode=_line)
    with pytest.raises(CheckFailed, match=r"message\[1\] b'b' never came out"):
        check_receiver_example(
            gallery.LineReceiver, [b"a", b"b"], [Deliver(b"a\nb"), Eof()], encode=_line
        )


def test_receiver_errors_and_busy_loops() -> None:
    """Escaped EAGAIN, spinning on EAGAIN and an EOF never seen are reported."""

    class Raises(gallery.StreamReceiver):
        def on_readable(self) -> None:
            self.on_message(self.sock.recv(10))

    with pytest.raises(CheckFailed, match="EAGAIN means"):
        check_receiver_example(Raises, [b"a"], [WouldBlock(), Deliver(b"a"), Eof()])

    class Spins(gallery.StreamReceiver):
        def on_readable(self) -> None:
            while True:
                try:
                    data = self.sock.recv(7)
                except BlockingIOError:
                    continue
                self.on_message(data)
                return

    with pytest.raises(CheckFailed, match="without waiting for readiness"):
        check_receiver_example(
            Spins, [b"a"], [WouldBlock(), WouldBlock(), WouldBlock(), Eof()]
        )

    class EarlyEof(gallery.StreamReceiver):
        def on_readable(self) -> None:
            self.on_eof()
            self.on_message(self.sock.recv(10))

    with pytest.raises(CheckFailed, match="though recv never returned 0"):
        check_receiver_example(EarlyEof, [b"a"], [Deliver(b"a")])


def test_sender_that_never_sends_on_writable_is_a_busy_loop() -> None:
    """A sender that stays armed and sends nothing is reported."""

    class Lazy(gallery.GatherSender):
        def on_writable(self) -> None:
            pass

    with pytest.raises(CheckFailed, match="sent nothing: a busy loop on writable"):
        check_sender_example(Lazy, [b"abc"], [WouldBlock()])


def test_escaped_eintr_is_named() -> None:
    """A sender that lets EINTR out is told to retry."""
    with pytest.raises(CheckFailed, match="EINTR means 'retry the call'"):
        check_sender_example(gallery.GatherSender, [b"abc"], [Interrupt()])


def test_check_sender_with_a_seed_and_interrupts() -> None:
    """A fixed seed and EINTR in the schedules work together."""

    class Retries(gallery.GatherSender):
        def on_writable(self) -> None:
            while True:
                try:
                    super().on_writable()
                except InterruptedError:
                    continue
                return

    check_sender(Retries, interrupts=True, seed=5)


def _drawn_by_check_sender(**options: object) -> list[object]:
    """The schedules ``check_sender`` tried, in order."""
    seen: list[object] = []

    def make(sock: FakeSocket) -> gallery.GatherSender:
        seen.append(sock.send_schedule)
        return gallery.GatherSender(sock)

    check_sender(make, **options)  # type: ignore[arg-type]
    return seen


def _drawn_by_check_receiver(**options: object) -> list[object]:
    """The schedules ``check_receiver`` tried, in order."""
    seen: list[object] = []

    def make(
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> gallery.StreamReceiver:
        seen.append(sock.recv_schedule)
        return gallery.StreamReceiver(sock, on_message, on_eof)

    check_receiver(make, **options)  # type: ignore[arg-type]
    return seen


def test_the_seed_option_fixes_the_checks(monkeypatch: pytest.MonkeyPatch) -> None:
    """``--bufkit-seed`` (the shared setting) fixes what both checks draw."""
    from bufkit.testing import _config

    monkeypatch.setattr(_config, "seed", 7)
    sender_runs = [_drawn_by_check_sender(max_examples=20) for _ in range(2)]
    receiver_runs = [_drawn_by_check_receiver(max_examples=20) for _ in range(2)]
    assert sender_runs[0] == sender_runs[1]
    assert receiver_runs[0] == receiver_runs[1]
    monkeypatch.setattr(_config, "seed", 8)
    assert _drawn_by_check_sender(max_examples=20) != sender_runs[0]
    assert _drawn_by_check_receiver(max_examples=20) != receiver_runs[0]
    assert _drawn_by_check_receiver(max_examples=20, seed=7) == receiver_runs[0]
    assert len(sender_runs[0]) <= 20 + 10  # the explicit examples, then 20
    assert len(receiver_runs[0]) <= 20 + 5


def test_check_receiver_passes_its_options_on() -> None:
    """``max_chunks`` bounds the deliveries; ``interrupts`` draws EINTR steps."""
    seen: list[tuple[object, ...]] = []

    def make(
        sock: FakeSocket,
        on_message: Callable[[bytes], object],
        on_eof: Callable[[], object],
    ) -> gallery.StreamReceiver:
        seen.append(sock.recv_schedule)
        return gallery.StreamReceiver(sock, on_message, on_eof)

    with pytest.raises(CheckFailed, match="EINTR means 'retry the call'"):
        check_receiver(make, max_chunks=1, interrupts=True, faults=(), seed=1)
    assert all(sum(isinstance(s, Deliver) for s in run) <= 1 for run in seen)
    assert any(Interrupt() in run for run in seen)
