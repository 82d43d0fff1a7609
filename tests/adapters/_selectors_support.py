"""Helpers for the selectors adapter's tests: a recording protocol, a tiny driver."""

from __future__ import annotations

from collections.abc import Callable

from bufkit import BufferPool
from bufkit.adapters.selectors import (
    Connection,
    ConnectionProtocol,
    Interest,
    StreamSocket,
)


class Recorder(ConnectionProtocol):
    """Record every callback; optionally keep writing after EOF."""

    def __init__(self, *, keep_open: bool = False) -> None:
        self.conn: Connection | None = None
        self.data = bytearray()
        self.chunks = 0
        self.eofs = 0
        self.lost: list[Exception | None] = []
        self.pauses = 0
        self.resumes = 0
        self.keep_open = keep_open
        self.on_data: Callable[[Connection, memoryview], object] | None = None
        self.on_eof: Callable[[Connection], object] | None = None

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Record the bytes, then run ``on_data``."""
        self.data += view
        self.chunks += 1
        if self.on_data is not None and self.conn is not None:
            self.on_data(self.conn, view)

    def eof_received(self) -> bool | None:
        """Record EOF, run ``on_eof``, answer ``keep_open``."""
        self.eofs += 1
        if self.on_eof is not None and self.conn is not None:
            self.on_eof(self.conn)
        return self.keep_open

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record the cause."""
        self.lost.append(exc)

    def pause_writing(self) -> None:
        """Count."""
        self.pauses += 1

    def resume_writing(self) -> None:
        """Count."""
        self.resumes += 1


class Driver:
    """Run one connection like a loop would, checking invariant 3 each iteration."""

    def __init__(
        self,
        sock: StreamSocket,
        protocol: ConnectionProtocol,
        pool: BufferPool,
        **options: int,
    ) -> None:
        self.deferred: list[Callable[[], object]] = []
        self.interests: list[Interest] = []
        self.sock = sock
        self.conn = Connection(
            pool,
            sock,
            protocol,
            on_interest=self._on_interest,
            defer=self.deferred.append,
            **options,
        )

    def _on_interest(self, conn: Connection, interest: Interest) -> None:
        assert conn is self.conn
        self.interests.append(interest)

    def end_iteration(self) -> None:
        """Run the deferred flushes, then check invariant 3."""
        deferred = self.deferred
        i = 0
        while i < len(deferred):
            deferred[i]()
            i += 1
        deferred.clear()
        self.check_interest()

    def check_interest(self) -> None:
        """Write interest is armed iff data is pending (when not closed)."""
        conn = self.conn
        if conn.closed:
            assert conn.interest is Interest.NONE
            return
        armed = bool(conn.interest & Interest.WRITE)
        assert armed == (conn.pending_bytes > 0), (conn, conn.pending_bytes)
        assert bool(conn.interest & Interest.READ) == conn.reading

    def step(self) -> None:
        """One loop iteration: deliver what the interest asks for."""
        conn = self.conn
        interest = conn.interest
        mark = getattr(self.sock, "mark_waited", None)
        if mark is not None:
            mark()
        if interest & Interest.READ:
            conn.on_readable()
        if interest & Interest.WRITE:
            conn.on_writable()
        self.end_iteration()

    def run(self, until: Callable[[], bool], max_steps: int = 2000) -> None:
        """Step until ``until()`` is true."""
        for _ in range(max_steps):
            if until():
                return
            self.step()
        raise AssertionError(f"not done after {max_steps} steps: {self.conn!r}")
