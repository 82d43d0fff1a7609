"""A Hypothesis state machine over one ``Connection``: the life-cycle table holds."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from bufkit import BufferPool, QueueClosedError, QueueFailedError
from bufkit.adapters.selectors import (
    CONNECTION_TRANSITIONS,
    ConnectionState,
    Interest,
)
from bufkit.testing import FakeSocket
from tests.adapters._selectors_support import Driver, Recorder


class ConnectionMachine(RuleBasedStateMachine):
    """Drive a connection with writes, events, peer data and every way to end."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = BufferPool()
        self.sock = FakeSocket(after_send="block")
        self.proto = Recorder(keep_open=True)
        self.driver = Driver(
            self.sock, self.proto, self.pool, high_water=64, low_water=16
        )
        self.conn = self.driver.conn
        self.conn.start()
        self.state = self.conn.state
        self.accepted = bytearray()
        self.done: list[BaseException | None] = []
        self.writes = 0
        self.fed = bytearray()

    def _moved(self) -> None:
        new = self.conn.state
        assert new is self.state or new in CONNECTION_TRANSITIONS[self.state]
        self.state = new

    @rule(data=st.binary(min_size=1, max_size=100), pooled=st.booleans())
    def write(self, data: bytes, pooled: bool) -> None:
        """Write bytes or a pooled buffer, expecting refusal once not open."""
        buf = self.pool.acquire(len(data)) if pooled else None
        if buf is not None:
            buf.view[: len(data)] = data
        try:
            if buf is None:
                self.conn.write(data, self.done.append)
            else:
                self.conn.write(buf, self.done.append, nbytes=len(data))
        except (QueueClosedError, QueueFailedError):
            assert self.conn.state is not ConnectionState.OPEN
            if buf is not None:
                buf.release()
        else:
            self.accepted += data
            self.writes += 1
        self._moved()

    @rule(accept=st.booleans())
    def kernel(self, accept: bool) -> None:
        """The peer starts or stops reading."""
        self.sock.after_send = "accept" if accept else "block"

    @rule(data=st.binary(min_size=1, max_size=300))
    def peer_sends(self, data: bytes) -> None:
        """Bytes arrive from the peer."""
        self.sock.feed(data)
        self.fed += data

    @rule()
    def peer_eof(self) -> None:
        """The peer shuts its sending side."""
        self.sock.feed_eof()

    @rule()
    def iterate(self) -> None:
        """One loop iteration."""
        self.driver.step()
        self._moved()

    @rule(
        call=st.sampled_from(
            ["close", "abort", "write_eof", "pause_reading", "resume_reading"]
        )
    )
    def call(self, call: str) -> None:
        """Call a life-cycle method."""
        getattr(self.conn, call)()
        self._moved()
        self.driver.end_iteration()
        self._moved()

    @invariant()
    def interest_matches(self) -> None:
        """Invariant 3 whenever no deferred flush is waiting."""
        if not self.driver.deferred:
            self.driver.check_interest()

    @invariant()
    def received_in_order(self) -> None:
        """What the protocol got is a prefix of what the peer sent."""
        assert bytes(self.proto.data) == bytes(self.fed[: len(self.proto.data)])

    @precondition(lambda self: self.conn.closed)
    @invariant()
    def closed_is_final(self) -> None:
        """Once closed: no interest, socket closed, pool empty, lost once."""
        assert self.conn.interest is Interest.NONE
        assert self.sock.closed
        assert self.pool.stats().buffers_in_use == 0
        assert len(self.proto.lost) == 1

    def teardown(self) -> None:
        """Close gracefully with a reading peer: every completion fires once."""
        self.sock.after_send = "accept"
        self.conn.close()
        self.driver.run(lambda: self.conn.closed)
        assert len(self.done) == self.writes
        assert self.sock.wire == bytes(self.accepted[: len(self.sock.wire)])
        if all(e is None for e in self.done):
            assert self.sock.wire == bytes(self.accepted)
        assert self.pool.stats().buffers_in_use == 0


ConnectionMachine.TestCase.settings = settings(
    max_examples=60, stateful_step_count=30, deadline=None
)
TestConnectionMachine = ConnectionMachine.TestCase
