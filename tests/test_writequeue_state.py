"""The WriteQueue lifecycle and watermarks, checked by a Hypothesis state machine.

A hand-written model of the queue (state, pending and held bytes, paused
flag, outstanding completions, lent chunks) runs beside the real one; after
every step they must agree, every state change must be the one
``TRANSITIONS`` gives for the event, pause/resume must alternate exactly where
``held_bytes`` crosses the watermarks, and no flush makes more than
``write_spin`` send calls.
"""

from __future__ import annotations

import errno
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
)

from bufkit import (
    BufferPool,
    QueueClosedError,
    QueueFailedError,
    QueueState,
    WriteQueue,
)
from bufkit._writequeue import TRANSITIONS, Event, next_state
from bufkit.testing import Accept, AcceptAll, Fail, FakeSocket, SendStep, WouldBlock

OPEN, CLOSING, CLOSED, FAILED = (
    QueueState.OPEN,
    QueueState.CLOSING,
    QueueState.CLOSED,
    QueueState.FAILED,
)


def test_transition_table_is_total() -> None:
    """Every (state, event) pair has exactly one next state."""
    assert set(TRANSITIONS) == {(s, e) for s in QueueState for e in Event}


def test_closed_and_failed_are_terminal() -> None:
    """No event leads out of CLOSED or FAILED."""
    for state in (CLOSED, FAILED):
        assert {TRANSITIONS[state, event] for event in Event} == {state}


def test_next_state_follows_the_table_and_refuses_a_missing_pair() -> None:
    """next_state applies the table; a pair it lacks is a RuntimeError naming it."""
    assert next_state(TRANSITIONS, OPEN, Event.CLOSE) is CLOSING
    partial = {(OPEN, Event.CLOSE): CLOSING}
    with pytest.raises(RuntimeError, match="no transition for DRAIN in OPEN"):
        next_state(partial, OPEN, Event.DRAIN)


def test_only_these_edges_exist() -> None:
    """The lifecycle edges are exactly the documented ones."""
    edges = {(s, t) for (s, _), t in TRANSITIONS.items() if s is not t}
    assert edges == {
        (OPEN, CLOSING),
        (OPEN, FAILED),
        (CLOSING, CLOSED),
        (CLOSING, FAILED),
    }


def test_documented_table_is_the_real_one() -> None:
    """The lifecycle table in the reference docs is ``TRANSITIONS``."""
    page = Path(__file__).parents[1] / "docs" / "reference" / "writequeue.md"
    lines = [line.strip("|").split("|") for line in page.read_text().splitlines()]
    rows = [
        [cell.strip() for cell in cells]
        for cells in lines
        if cells[0].strip() in QueueState.__members__
    ]
    events = (Event.CLOSE, Event.DRAIN, Event.FAIL)
    documented = {
        (QueueState[row[0]], event): QueueState[cell]
        for row in rows
        for event, cell in zip(events, row[1:], strict=True)
    }
    assert len(rows) == len(QueueState)
    assert documented == dict(TRANSITIONS)


class QueueMachine(RuleBasedStateMachine):
    """Random writes, advances, flushes, closes and failures."""

    def __init__(self) -> None:
        super().__init__()
        self.queue = WriteQueue()
        self.state = OPEN
        self.pending = 0
        self.written = 0
        self.paused = False
        self.events: list[str] = []
        self.expected: list[str] = []
        self.outstanding: list[tuple[int, int]] = []  # (end, id)
        self.fired: list[tuple[int, BaseException | None]] = []
        self.expected_fired: list[tuple[int, BaseException | None]] = []
        self.error: BaseException | None = None
        self.next_id = 0
        self.pool = BufferPool()
        self.owned: list[tuple[int, int, int]] = []  # (start, end, chunk size)
        self.spin = 16

    @initialize(
        high=st.integers(0, 3000),
        low_part=st.integers(0, 3000),
        spin=st.integers(1, 4),
    )
    def make_queue(self, high: int, low_part: int, spin: int) -> None:
        """Build the queue with random watermarks and write-spin limit."""
        self.spin = spin
        self.queue = WriteQueue(
            write_spin=spin,
            high_water=high,
            low_water=min(low_part, high),
            on_pause=lambda: self.events.append("pause"),
            on_resume=lambda: self.events.append("resume"),
        )

    # -- the model's bookkeeping ------------------------------------------------
    def held(self) -> int:
        """Pending bytes plus the rest of each chunk still lent to the queue."""
        accepted = self.written - self.pending
        return self.pending + sum(
            chunk - (end - max(start, accepted))
            for start, end, chunk in self.owned
            if end > accepted
        )

    def sent(self, n: int) -> None:
        """``n`` bytes were accepted: move the model like the queue should."""
        if not n:
            return
        self.pending -= n
        if self.pending == 0:
            self.expect_transition(Event.DRAIN)
        if self.paused and self.held() <= self.queue.low_water:
            self.paused = False
            self.expected.append("resume")
        accepted = self.written - self.pending
        while self.outstanding and self.outstanding[0][0] <= accepted:
            self.expected_fired.append((self.outstanding.pop(0)[1], None))

    def expect_transition(self, event: Event) -> None:
        """Apply ``event`` to the model by hand, and check the table agrees."""
        before = self.state
        if event is Event.CLOSE and before is OPEN:
            self.state = CLOSING
        elif event is Event.DRAIN and before is CLOSING:
            self.state = CLOSED
        elif event is Event.FAIL and before in (OPEN, CLOSING):
            self.state = FAILED
        assert TRANSITIONS[before, event] is self.state

    def broke(self, exc: BaseException) -> None:
        """The queue failed with ``exc``: pending completions get it."""
        if self.state in (OPEN, CLOSING):
            self.expect_transition(Event.FAIL)
            self.error = exc
            self.pending = 0
            self.expected_fired += [(i, exc) for _, i in self.outstanding]
            self.outstanding.clear()
            self.owned.clear()

    # -- rules ----------------------------------------------------------------
    @rule(size=st.integers(0, 2500), callback=st.booleans())
    def write(self, size: int, callback: bool) -> None:
        """Write ``size`` bytes, with or without a completion."""
        ident = self.next_id
        self.next_id += 1

        def on_done(exc: BaseException | None) -> None:
            self.fired.append((ident, exc))

        if self.state is not OPEN:
            error = QueueClosedError if self.error is None else QueueFailedError
            with pytest.raises(error):
                self.queue.write(b"w" * size, on_done if callback else None)
            return
        if callback:
            self.outstanding.append((self.written + size, ident))
        self.written += size
        self.pending += size
        if not self.paused and self.held() > self.queue.high_water:
            self.paused = True
            self.expected.append("pause")
        if callback and self.pending == 0:
            self.expected_fired.append((self.outstanding.pop()[1], None))
        self.queue.write(b"w" * size, on_done if callback else None)

    @rule(size=st.integers(1, 5000))
    def write_pooled(self, size: int) -> None:
        """Write a pooled buffer's fill; from 2 KiB on, the queue owns the chunk."""
        buf = self.pool.acquire(size)
        buf.filled = size
        if self.state is not OPEN:
            with pytest.raises((QueueClosedError, QueueFailedError)):
                self.queue.write(buf)
            assert buf.released
            return
        if size >= 2048:
            self.owned.append((self.written, self.written + size, buf.size))
        self.written += size
        self.pending += size
        if not self.paused and self.held() > self.queue.high_water:
            self.paused = True
            self.expected.append("pause")
        self.queue.write(buf)

    @rule(part=st.integers(0, 100))
    def advance(self, part: int) -> None:
        """Report part of what is pending as sent."""
        n = self.pending * part // 100
        self.sent(n)
        self.queue.advance(n)

    @rule()
    def advance_too_far(self) -> None:
        """Advancing past the pending bytes is refused and changes nothing."""
        with pytest.raises(ValueError, match="pending"):
            self.queue.advance(self.pending + 1)

    @rule(
        step=st.one_of(
            st.builds(Accept, st.integers(1, 4000)),
            st.just(AcceptAll()),
            st.just(WouldBlock()),
            st.sampled_from([Fail(errno.ECONNRESET), Fail(errno.EPIPE)]),
        )
    )
    def flush(self, step: SendStep) -> None:
        """Flush into a socket that takes one step, then blocks."""
        sock = FakeSocket(send=[step] * self.spin * 2, after_send="block")
        try:
            drained = self.queue.flush(sock)
        except OSError as exc:
            assert isinstance(step, Fail)
            self.broke(exc)
        else:
            assert len(sock.calls) <= self.spin
            for call in sock.calls:
                self.sent(call.result or 0)
            assert drained is (self.pending == 0)

    @rule()
    def close(self) -> None:
        """Close: no more writes; drains to CLOSED."""
        self.expect_transition(Event.CLOSE)
        if self.pending == 0:
            self.expect_transition(Event.DRAIN)
        self.queue.close()

    @rule()
    def fail(self) -> None:
        """Fail the queue on purpose."""
        exc = RuntimeError("failed on purpose")
        self.broke(exc)
        self.queue.fail(exc)

    # -- invariants -------------------------------------------------------------
    @invariant()
    def agrees_with_the_model(self) -> None:
        """State, pending bytes, pause flag and completions match the model."""
        assert self.queue.state is self.state
        assert self.queue.pending == self.pending
        assert bool(self.queue) is (self.pending > 0)
        assert self.queue.paused is (self.paused or self.state is FAILED)
        if self.state is not FAILED:
            assert self.queue.held_bytes == self.held()
        lent = self.pool.stats().bytes_in_use
        accepted = self.written - self.pending
        assert lent == sum(c for _, end, c in self.owned if end > accepted)
        assert self.fired == self.expected_fired

    @invariant()
    def pause_and_resume_alternate_at_crossings(self) -> None:
        """The callbacks fired exactly at the model's crossings, alternating."""
        assert self.events == self.expected
        assert all(a != b for a, b in zip(self.events, self.events[1:], strict=False))
        assert not self.events or self.events[0] == "pause"


TestQueueMachine = QueueMachine.TestCase
