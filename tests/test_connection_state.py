"""One Hypothesis state machine over the connection core: the lifecycle and invariants.

It drives a :class:`bufkit.Connection` over the fake socket with random events
(writes, peer data, partial writes, would-block, resets, EOF, every way to
end, watermarks changed at any time) and checks after each step the design's
invariants 1 to 6, that pause and resume alternate and match the watermarks,
that every state change is in :data:`bufkit.CONNECTION_TRANSITIONS`, that
``connection_lost`` comes at most once, and that ``Interest.NONE`` is
reported once the connection is closed, exactly once.
"""

from __future__ import annotations

import errno
from collections.abc import Callable

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from bufkit import (
    CONNECTION_TRANSITIONS,
    BufferPool,
    Connection,
    ConnectionProtocol,
    ConnectionState,
    Interest,
    QueueClosedError,
    QueueFailedError,
)
from bufkit.testing import Accept, Fail, FakeSocket, Short, WouldBlock

HIGH: int = 256
LOW: int = 64
AMPLIFY: int = 4
MAX_FEED: int = 300
MAX_WRITE: int = 100
MAX_HIGH: int = 512


class _Amplifier(ConnectionProtocol):
    """Write each read back ``AMPLIFY`` times (when asked); record callbacks."""

    def __init__(self, out: bytearray) -> None:
        self.conn: Connection | None = None
        self.data = bytearray()
        self.lost: list[Exception | None] = []
        self.amplify = 0  # writes per read (the first alone has no queue yet)
        self.zero_copy = False  # the first of them hands the read buffer over
        self.out = out  # shared with the test's own writes: one expected stream
        self.paused = False

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Record; maybe write the bytes several times, unless paused."""
        self.data += view
        conn = self.conn
        if self.amplify and conn is not None and conn.state is ConnectionState.OPEN:
            chunk = bytes(view)
            if self.zero_copy:  # the chunk itself, by ownership
                conn.write(conn.take_buffer(), nbytes=len(chunk))
                self.out += chunk
            for _ in range(self.amplify - self.zero_copy):
                conn.write(chunk)
                self.out += chunk

    def eof_received(self) -> bool:
        """Keep writing after the peer's EOF."""
        return True

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record the cause."""
        self.lost.append(exc)

    def pause_writing(self) -> None:
        """Count (the core stops reading: no more amplified writes)."""
        assert not self.paused, "pause_writing twice in a row"
        self.paused = True

    def resume_writing(self) -> None:
        """Count."""
        assert self.paused, "resume_writing without a pause"
        self.paused = False


class ConnectionMachine(RuleBasedStateMachine):
    """Random events against one connection; the invariants after each."""

    def __init__(self) -> None:
        super().__init__()
        self.pool = BufferPool()  # read buffers only
        self.wpool = BufferPool()  # buffers the test hands to write()
        self.sock = FakeSocket(after_send="block")
        self.accepted = bytearray()  # every byte written, in order
        self.proto = _Amplifier(self.accepted)
        self.deferred: list[Callable[[], object]] = []
        self.interests: list[Interest] = []
        self.nones_after_close = 0
        self.conn = Connection(
            self.pool,
            self.sock,
            self.proto,
            on_interest=self._on_interest,
            defer=self.deferred.append,
            high_water=HIGH,
            low_water=LOW,
        )
        self.conn.start()
        self.state = self.conn.state
        self.completions: list[tuple[int, BaseException | None]] = []
        self.writes = 0
        self.fed = bytearray()
        self.clean = True  # nothing dropped pending bytes (no abort, no reset)

    def _on_interest(self, conn: Connection, interest: Interest) -> None:
        assert conn is self.conn
        assert self.nones_after_close == 0, "reported after forget-me"
        self.interests.append(interest)
        if conn.closed:
            assert interest is Interest.NONE
            assert not self.sock.closed, "forget-me must come before the close"
            self.nones_after_close += 1

    def _moved(self) -> None:
        new = self.conn.state
        legal = {n for (s, _e), n in CONNECTION_TRANSITIONS.items() if s is self.state}
        assert new is self.state or new in legal, (self.state, new)
        self.state = new

    def _done(self, index: int) -> Callable[[BaseException | None], None]:
        def on_done(exc: BaseException | None) -> None:
            self.completions.append((index, exc))

        return on_done

    def _end_iteration(self) -> None:
        deferred = self.deferred
        i = 0
        while i < len(deferred):
            deferred[i]()
            i += 1
        deferred.clear()
        self._moved()

    # -- rules ---------------------------------------------------------------

    @rule(data=st.binary(min_size=1, max_size=MAX_WRITE), pooled=st.booleans())
    def write(self, data: bytes, pooled: bool) -> None:
        """Write bytes or a pooled buffer from outside an event."""
        buf = self.wpool.acquire(len(data)) if pooled else None
        if buf is not None:
            buf.view[: len(data)] = data
        try:
            if buf is None:
                self.conn.write(data, self._done(self.writes))
            else:
                self.conn.write(buf, self._done(self.writes), nbytes=len(data))
        except (QueueClosedError, QueueFailedError):
            assert self.conn.state is not ConnectionState.OPEN
            # Ownership handed over is consumed even by a refused write.
            assert buf is None or buf.released
        else:
            self.accepted += data
            self.writes += 1
        self._moved()

    @rule(accept=st.booleans())
    def kernel(self, accept: bool) -> None:
        """The peer starts or stops reading (once the schedule is used up)."""
        self.sock.after_send = "accept" if accept else "block"

    @rule(n=st.integers(1, 500))
    def partial_send(self, n: int) -> None:
        """The next send takes only ``n`` bytes."""
        self.sock.schedule_send(Accept(n))

    @rule()
    def send_would_block(self) -> None:
        """The next send would block."""
        self.sock.schedule_send(WouldBlock())

    @rule(code=st.sampled_from([errno.ECONNRESET, errno.EPIPE]))
    def send_reset(self, code: int) -> None:
        """The next send fails as the peer reset."""
        self.sock.schedule_send(Fail(code))
        self.clean = False

    @rule(data=st.binary(min_size=1, max_size=MAX_FEED))
    def peer_sends(self, data: bytes) -> None:
        """Bytes arrive from the peer."""
        self.sock.feed(data)
        self.fed += data

    @rule(n=st.integers(1, 50))
    def short_read(self, n: int) -> None:
        """The next read returns at most ``n`` bytes."""
        self.sock.schedule_recv(Short(n))

    @rule()
    def recv_reset(self) -> None:
        """The next read fails as the peer reset."""
        self.sock.schedule_recv(Fail(errno.ECONNRESET))
        self.clean = False

    @rule()
    def peer_eof(self) -> None:
        """The peer shuts its sending side."""
        self.sock.feed_eof()

    @rule(
        high=st.one_of(st.none(), st.integers(0, MAX_HIGH)),
        low=st.one_of(st.none(), st.integers(0, MAX_HIGH // 4)),
    )
    def limits(self, high: int | None, low: int | None) -> None:
        """Change the watermarks, even before the first write or after the end."""
        before = self.conn.get_write_buffer_limits()
        try:
            self.conn.set_write_buffer_limits(high, low)
        except ValueError:
            assert self.conn.get_write_buffer_limits() == before
        self._moved()
        self._end_iteration()

    @rule(copies=st.integers(0, AMPLIFY), zero_copy=st.booleans())
    def amplify(self, copies: int, zero_copy: bool) -> None:
        """The protocol writes back what it reads 0 to 4 times, maybe zero-copy."""
        self.proto.amplify = copies
        self.proto.zero_copy = zero_copy and copies > 0

    @rule()
    def iterate(self) -> None:
        """One loop iteration: deliver what the interest asks for."""
        interest = self.conn.interest
        self.sock.mark_waited()
        if interest & Interest.READ:
            self.conn.on_readable()
            self._moved()
        if interest & Interest.WRITE:
            self.conn.on_writable()
            self._moved()
        self._end_iteration()

    @rule(
        call=st.sampled_from(
            ["close", "abort", "write_eof", "pause_reading", "resume_reading"]
        )
    )
    def call(self, call: str) -> None:
        """Call a lifecycle method."""
        if call == "abort":
            self.clean = False
        getattr(self.conn, call)()
        self._moved()
        self._end_iteration()

    # -- invariants -----------------------------------------------------------

    @invariant()
    def bytes_once_in_order(self) -> None:
        """1: the wire is a prefix of what was written (and of nothing else)."""
        assert self.sock.wire == bytes(self.accepted[: len(self.sock.wire)])

    @invariant()
    def completions_once_in_order(self) -> None:
        """2: each on_done at most once, in write order."""
        indices = [i for i, _ in self.completions]
        assert indices == sorted(set(indices))

    @invariant()
    def write_interest_iff_pending(self) -> None:
        """3: write interest armed iff bytes remain after a flush (none deferred)."""
        conn = self.conn
        if conn.closed:
            assert conn.interest is Interest.NONE
        elif not self.deferred:
            assert bool(conn.interest & Interest.WRITE) == (conn.pending_bytes > 0)
            assert bool(conn.interest & Interest.READ) == conn.reading

    @invariant()
    def no_read_buffer_held(self) -> None:
        """4, 5: between events the connection holds no read buffer."""
        assert self.pool.stats().buffers_in_use == 0

    @invariant()
    def paused_exactly_between_crossings(self) -> None:
        """Between iterations: paused only above low, unpaused only at most high."""
        conn = self.conn
        assert conn.writing_paused == self.proto.paused
        if conn.closed or self.deferred:
            return
        low, high = conn.get_write_buffer_limits()
        if conn.writing_paused:
            assert conn.pending_bytes > low
        else:
            assert conn.pending_bytes <= high

    @invariant()
    def bounded_while_paused(self) -> None:
        """6: reading stops while paused, so pending stays near the watermark."""
        bound = max(HIGH, MAX_HIGH) + AMPLIFY * MAX_FEED + MAX_WRITE
        assert self.conn.pending_bytes <= bound
        if self.conn.writing_paused:
            assert not self.conn.reading

    @invariant()
    def lost_at_most_once(self) -> None:
        """connection_lost at most once, and exactly when closed."""
        assert len(self.proto.lost) == (1 if self.conn.closed else 0)
        assert self.nones_after_close == (1 if self.conn.closed else 0)

    def teardown(self) -> None:
        """Close with a reading peer: every completion fired once, all freed."""
        self.sock.after_send = "accept"
        self.proto.amplify = 0
        self.conn.close()
        self._end_iteration()
        for _ in range(500):
            if self.conn.closed:
                break
            self.iterate()
        assert self.conn.closed
        assert sorted(i for i, _ in self.completions) == list(range(self.writes))
        assert len(self.proto.lost) == 1
        assert self.nones_after_close == 1
        assert self.pool.stats().buffers_in_use == 0
        assert self.wpool.stats().buffers_in_use == 0
        if self.clean:
            assert self.sock.wire == bytes(self.accepted)


ConnectionMachine.TestCase.settings = settings(
    max_examples=150, stateful_step_count=40, deadline=None
)
TestConnectionMachine = ConnectionMachine.TestCase
