"""Watermarks changed at run time: asyncio's rules, pause and resume at crossings."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from bufkit import BufferPool, Connection, ConnectionProtocol, Interest
from bufkit.testing import Accept, FakeSocket, WouldBlock


class _Flow(ConnectionProtocol):
    """Record pause/resume with the pending bytes and limits at the call."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.calls: list[tuple[str, int, tuple[int, int]]] = []

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def _record(self, what: str) -> None:
        conn = self.conn
        assert conn is not None
        self.calls.append((what, conn.pending_bytes, conn.get_write_buffer_limits()))

    def pause_writing(self) -> None:
        """Record the pause."""
        self._record("pause")

    def resume_writing(self) -> None:
        """Record the resume."""
        self._record("resume")


def _open(
    sock: FakeSocket,
    proto: ConnectionProtocol,
    high_water: int = 65536,
    low_water: int = 16384,
) -> tuple[Connection, list[Callable[[], object]]]:
    deferred: list[Callable[[], object]] = []
    conn = Connection(
        BufferPool(),
        sock,
        proto,
        on_interest=lambda c, i: None,
        defer=deferred.append,
        high_water=high_water,
        low_water=low_water,
    )
    conn.start()
    return conn, deferred


def _run(deferred: list[Callable[[], object]]) -> None:
    while deferred:
        deferred.pop(0)()


@pytest.mark.parametrize(
    ("high", "low", "expected"),
    [
        (None, None, (16384, 65536)),
        (1000, None, (250, 1000)),
        (None, 300, (300, 1200)),
        (10, 3, (3, 10)),
        (0, 0, (0, 0)),
        (7, 7, (7, 7)),
    ],
)
def test_limits_follow_asyncio_rules(
    high: int | None, low: int | None, expected: tuple[int, int]
) -> None:
    """A missing value is derived as asyncio does; get returns (low, high)."""
    conn, _ = _open(FakeSocket(), _Flow(), high_water=500, low_water=100)
    conn.set_write_buffer_limits(high, low)
    assert conn.get_write_buffer_limits() == expected


def test_limits_default_to_the_constructor_values() -> None:
    """Before any change, the limits are the constructor's watermarks."""
    conn, _ = _open(FakeSocket(), _Flow(), high_water=500, low_water=100)
    assert conn.get_write_buffer_limits() == (100, 500)


@pytest.mark.parametrize(
    ("high", "low", "error", "words"),
    [
        (10, 20, ValueError, ("high=10", "low=20")),
        (-1, None, ValueError, ("high=-1",)),
        (None, -4, ValueError, ("low=-4",)),
        (True, None, TypeError, ("True",)),
        (None, False, TypeError, ("False",)),
        ("100", None, TypeError, ("'100'",)),
        (100.0, None, TypeError, ("100.0",)),
    ],
)
def test_bad_limits_are_refused_and_change_nothing(
    high: object, low: object, error: type[Exception], words: tuple[str, ...]
) -> None:
    """A bad value raises naming it; the limits and the pause state stay."""
    proto = _Flow()
    sock = FakeSocket(after_send="block")
    conn, deferred = _open(sock, proto, high_water=100, low_water=10)
    conn.write(b"x" * 150)
    _run(deferred)
    assert conn.writing_paused
    with pytest.raises(error) as info:
        conn.set_write_buffer_limits(high, low)  # type: ignore[arg-type]
    for word in words:
        assert word in str(info.value)
    assert conn.get_write_buffer_limits() == (10, 100)
    assert conn.writing_paused
    assert [c[0] for c in proto.calls] == ["pause"]


def test_lowering_high_pauses_at_once_when_the_kernel_refuses() -> None:
    """Pending bytes above the new high, write interest armed: paused now."""
    proto = _Flow()
    sock = FakeSocket(after_send="block")
    conn, deferred = _open(sock, proto)
    conn.write(b"y" * 1000)
    _run(deferred)
    assert conn.interest is Interest.BOTH
    assert proto.calls == []
    conn.set_write_buffer_limits(high=500)
    assert proto.calls == [("pause", 1000, (125, 500))]
    assert not conn.reading


def test_lowering_high_tries_the_send_before_pausing() -> None:
    """Above the new high with a flush still to come: the kernel may take it all."""
    proto = _Flow()
    sock = FakeSocket(after_send="accept")
    conn, deferred = _open(sock, proto)
    conn.write(b"z" * 1000)  # outside an event: the flush is deferred
    conn.set_write_buffer_limits(high=100)
    assert proto.calls == []
    assert sock.wire == b"z" * 1000
    assert conn.pending_bytes == 0
    _run(deferred)
    assert proto.calls == []


def test_raising_low_resumes_at_once() -> None:
    """Paused, and pending at or below the new low: resumed before return."""
    proto = _Flow()
    sock = FakeSocket(after_send="block")
    conn, deferred = _open(sock, proto, high_water=100, low_water=10)
    conn.write(b"w" * 300)
    _run(deferred)
    assert [c[0] for c in proto.calls] == ["pause"]
    conn.set_write_buffer_limits(high=1200, low=300)
    assert proto.calls[-1] == ("resume", 300, (300, 1200))
    assert conn.reading


def test_new_limits_count_for_a_queue_that_already_holds_bytes() -> None:
    """Limits changed while bytes wait: later writes cross the new ones."""
    proto = _Flow()
    sock = FakeSocket(after_send="block")
    conn, deferred = _open(sock, proto)  # 64 KiB / 16 KiB
    conn.write(b"a" * 50)
    _run(deferred)
    conn.set_write_buffer_limits(high=100, low=20)
    assert proto.calls == []
    conn.write(b"b" * 60)  # 110 > 100 and the kernel refuses: pause
    assert [c[0] for c in proto.calls] == ["pause"]
    sock.schedule_send(Accept(85))  # 25 left: still above the new low
    conn.on_writable()
    assert [c[0] for c in proto.calls] == ["pause"]
    sock.schedule_send(Accept(5))  # 20 left: at the new low
    conn.on_writable()
    assert proto.calls[-1] == ("resume", 20, (20, 100))


def test_limits_set_before_start_and_before_any_write() -> None:
    """Limits set on a new connection apply to its first writes."""
    proto = _Flow()
    sock = FakeSocket(after_send="block")
    deferred: list[Callable[[], object]] = []
    conn = Connection(
        BufferPool(), sock, proto, on_interest=lambda c, i: None, defer=deferred.append
    )
    conn.set_write_buffer_limits(high=40)
    conn.start()
    conn.write(b"q" * 41)
    assert [c[0] for c in proto.calls] == ["pause"]
    assert conn.get_write_buffer_limits() == (10, 40)


def test_limits_on_a_closed_connection_are_kept_and_do_nothing() -> None:
    """After close, set/get still work and call nothing."""
    proto = _Flow()
    conn, _ = _open(FakeSocket(), proto)
    conn.abort()
    conn.set_write_buffer_limits(high=0)
    assert conn.get_write_buffer_limits() == (0, 0)
    assert proto.calls == []


class LimitsMachine(RuleBasedStateMachine):
    """Random writes, sends and limit changes; crossings checked at each step."""

    def __init__(self) -> None:
        super().__init__()
        self.proto = _Flow()
        self.sock = FakeSocket(after_send="block")
        self.conn, self.deferred = _open(
            self.sock, self.proto, high_water=200, low_water=50
        )
        self.seen = 0  # callbacks checked so far
        self.written = bytearray()

    def _settle(self) -> None:
        _run(self.deferred)
        self._check_calls()

    def _check_calls(self) -> None:
        calls = self.proto.calls
        for what, pending, (low, high) in calls[self.seen :]:
            expected = "pause" if self.seen % 2 == 0 else "resume"
            assert what == expected, calls
            if what == "pause":
                assert pending > high, calls  # what the kernel refused
            else:
                assert pending <= low, calls
            self.seen += 1

    @rule(size=st.integers(1, 300))
    def write(self, size: int) -> None:
        """Write outside an event."""
        data = bytes([len(self.written) % 251]) * size
        self.conn.write(data)
        self.written += data
        self._check_calls()

    @rule(
        high=st.one_of(st.none(), st.integers(0, 600)),
        low=st.one_of(st.none(), st.integers(0, 150)),
    )
    def limits(self, high: int | None, low: int | None) -> None:
        """Change the watermarks (bad pairs are refused and change nothing)."""
        before = self.conn.get_write_buffer_limits()
        try:
            self.conn.set_write_buffer_limits(high, low)
        except ValueError:
            assert self.conn.get_write_buffer_limits() == before
            return
        self._check_calls()

    @rule(n=st.integers(0, 400))
    def kernel_takes(self, n: int) -> None:
        """The next send takes ``n`` bytes, then the kernel refuses again."""
        self.sock.schedule_send(Accept(n) if n else WouldBlock())

    @precondition(lambda self: bool(self.conn.interest & Interest.WRITE))
    @rule()
    def writable(self) -> None:
        """The loop reports the socket writable."""
        self.conn.on_writable()
        self._check_calls()

    @rule()
    def end_iteration(self) -> None:
        """The loop runs the deferred flushes."""
        self._settle()

    @invariant()
    def settled_state_matches_the_limits(self) -> None:
        """Between iterations: no crossing missed in either direction."""
        if self.deferred:
            return
        low, high = self.conn.get_write_buffer_limits()
        pending = self.conn.pending_bytes
        if self.conn.writing_paused:
            assert pending > low
            assert not self.conn.reading
        else:
            assert pending <= high
        assert len(self.proto.calls) % 2 == int(self.conn.writing_paused)

    @invariant()
    def bytes_in_order(self) -> None:
        """The wire is a prefix of what was written."""
        assert self.sock.wire == bytes(self.written[: len(self.sock.wire)])

    def teardown(self) -> None:
        """Let the kernel take everything: resumed, all sent."""
        self.sock.after_send = "accept"
        self._settle()
        for _ in range(100):  # scheduled refusals are used up first
            if not self.conn.interest & Interest.WRITE:
                break
            self.conn.on_writable()
            self._settle()
        assert self.sock.wire == bytes(self.written)
        assert not self.conn.writing_paused
        self.conn.close()


LimitsMachine.TestCase.settings = settings(
    max_examples=100, stateful_step_count=30, deadline=None
)
TestLimitsMachine = LimitsMachine.TestCase
