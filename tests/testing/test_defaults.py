"""The toolkit's defaults find the classic bugs, quickly, and report them shrunk."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fix_seed
from hypothesis import strategies as st

from bufkit.testing import (
    BusyLoopError,
    CheckFailed,
    FakeSocket,
    Interrupt,
    check_sender,
    gallery,
    random_recv_schedule,
    random_send_schedule,
)
from bufkit.testing.strategies import recv_schedules, send_schedules

pytest_plugins = ["pytester"]
RUNS = 100


def _finds_ignored_return_value(run: int) -> bool:
    """Run a user's own property against the buggy sender; whether it failed."""

    @fix_seed(run)
    @settings(
        max_examples=100,
        database=None,
        deadline=None,
        phases=[Phase.generate],  # finding is measured; shrinking is not
        suppress_health_check=list(HealthCheck),
    )
    @given(messages=st.lists(st.binary()), schedule=send_schedules())
    def user_property(messages: list[bytes], schedule: list[object]) -> None:
        sock = FakeSocket(send=schedule)  # type: ignore[arg-type]
        sender = gallery.IgnoresReturnValue(sock)
        for message in messages:
            sender.write(message)
        while sender.wants_writable:
            sock.mark_waited()
            sender.on_writable()
        assert sock.wire == b"".join(messages)

    try:
        user_property()
    except AssertionError:
        return True
    return False


def test_default_schedules_find_an_ignored_return_value() -> None:
    """A user's property on default schedules catches the bug in 95 of 100 runs."""
    found = sum(_finds_ignored_return_value(run) for run in range(RUNS))
    assert found >= 95, f"found in {found} of {RUNS} runs"


@settings(derandomize=True, database=None)
@given(send_schedules(), recv_schedules())
def test_default_schedules_raise_no_eintr(
    send: list[object], recv: list[object]
) -> None:
    """A real socket never raises EINTR (PEP 475), so default schedules hold none."""
    assert not any(isinstance(step, Interrupt) for step in [*send, *recv])


def test_default_random_schedules_raise_no_eintr() -> None:
    """The seeded-random schedules hold no EINTR unless asked for."""
    for seed in range(200):
        steps = [*random_send_schedule(seed), *random_recv_schedule(seed, b"x" * 99)]
        assert Interrupt() not in steps
    assert any(Interrupt() in random_send_schedule(s, interrupt=0.5) for s in range(9))


class _Tally:
    def __init__(self) -> None:
        self.sends = self.partial = self.inside = self.boundary = 0

    def send(self, sock: FakeSocket, buffers: list[bytes]) -> None:
        ends = {sum(map(len, buffers[:i])) for i in range(1, len(buffers))}
        try:
            sent = sock.sendmsg(buffers)
        except BlockingIOError:
            sock.mark_waited()
            return
        self.sends += 1
        if sent < sum(map(len, buffers)):
            self.partial += 1
            self.boundary += sent in ends
            self.inside += len(buffers) > 1 and sent not in ends


@pytest.mark.parametrize("sizes", [[2, 3], [200, 300, 100], [40000, 9, 70000]])
def test_default_schedules_cut_inside_messages_often(sizes: list[int]) -> None:
    """Whatever the sizes, most sends are cut, inside buffers and at boundaries."""
    tally = _Tally()

    @settings(max_examples=200, derandomize=True, database=None)
    @given(send_schedules())
    def sends(schedule: list[object]) -> None:
        sock = FakeSocket(send=schedule)  # type: ignore[arg-type]
        for _ in range(3):
            tally.send(sock, [bytes(n) for n in sizes])

    sends()
    assert tally.partial >= tally.sends // 2
    assert tally.inside >= tally.sends // 5
    assert tally.boundary >= tally.sends // 20


class _ZeroSpinner(gallery.GatherSender):
    """Loops on a ``sendmsg`` of an empty buffer, which returns 0."""

    def on_writable(self) -> None:
        while self.pending:
            self.sock.sendmsg([memoryview(b"")])


def test_a_loop_that_makes_no_progress_is_stopped_at_once() -> None:
    """A loop of calls that move nothing is stopped after ``spin_limit`` calls."""
    sock = FakeSocket(spin_limit=50)
    with pytest.raises(BusyLoopError, match="no progress: 50 calls in a row"):
        _ZeroSpinner(sock).write(b"abc")
    assert sock.call_count == 50


def test_check_sender_reports_a_no_progress_loop_in_a_few_lines() -> None:
    """``check_sender`` names the no-progress loop and folds its transcript."""
    with pytest.raises(CheckFailed, match="no progress") as info:
        check_sender(_ZeroSpinner)
    text = str(info.value)
    assert "(and 999 more times, the same)" in text
    assert len(text.splitlines()) < 12


class _StallsWhenBacklogged(gallery.GatherSender):
    """Sends nothing on writable once five writes are pending."""

    def on_writable(self) -> None:
        if len(self.pending) < 5:
            super().on_writable()


def test_a_busy_loop_found_by_an_explicit_example_is_shrunk() -> None:
    """The clogged-peer example, 8 messages of 256 bytes, shrinks to 5 of 1 byte."""
    with pytest.raises(CheckFailed, match="busy loop on writable") as info:
        check_sender(_StallsWhenBacklogged)
    assert (
        "check_sender_example(make_sender, messages=[b'x', b'x', b'x', b'x', b'x'], "
        "schedule=[WouldBlock()], writable_after=[], burst=False)" in str(info.value)
    )


def test_toolkit_frames_are_hidden_from_pytest_tracebacks(
    pytester: pytest.Pytester,
) -> None:
    """A failed check shows the user's test and the report, not the toolkit's code."""
    pytester.makepyfile(
        """
        from bufkit.testing import (
            Accept, Eof, check_receiver, check_receiver_example, check_sender,
            check_sender_example, gallery)

        def test_mine():
            check_sender(gallery.IgnoresReturnValue)

        def test_my_receiver():
            check_receiver(gallery.ReportsEofTwice)

        def test_one_example():
            check_sender_example(gallery.IgnoresReturnValue, [b"ab"], [Accept(1)])

        def test_one_receiver_example():
            check_receiver_example(gallery.NeverReportsEof, [], [Eof()])
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider")
    result.assert_outcomes(failed=4)
    out = result.stdout.str()
    assert "check_sender(gallery.IgnoresReturnValue)" in out
    assert "is the return value ignored" in out
    assert "check_receiver(gallery.ReportsEofTwice)" in out
    assert "on_eof was called 2 times" in out
    for module in ("_sendcheck.py", "_recvcheck.py", "_hyp.py", "_shrink.py"):
        assert module not in out
    assert "_fakesocket.py" not in out
