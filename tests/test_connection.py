"""The connection core driven by hand over fake sockets."""

from __future__ import annotations

from collections.abc import Callable

from bufkit import BufferPool, Connection, ConnectionProtocol, ConnectionState, Interest
from bufkit.testing import Deliver, Eof, FakeSocket


class _Echo(ConnectionProtocol):
    """Echo every read; keep the connection."""

    conn: Connection | None = None

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Echo."""
        assert self.conn is not None
        self.conn.write(bytes(view))


def test_core_echoes_and_closes_on_eof() -> None:
    """Bytes in come back out; EOF closes; NONE is reported once, pool empty."""
    pool = BufferPool()
    sock = FakeSocket(recv=[Deliver(b"hello"), Eof()])
    interests: list[Interest] = []
    deferred: list[Callable[[], object]] = []
    conn = Connection(
        pool,
        sock,
        _Echo(),
        on_interest=lambda c, i: interests.append(i),
        defer=deferred.append,
    )
    conn.start()
    assert interests == [Interest.READ]
    conn.on_readable()
    assert sock.wire == b"hello"
    conn.on_readable()  # a short read ended the first event
    assert conn.state is ConnectionState.CLOSED
    assert interests == [Interest.READ, Interest.NONE]
    assert pool.stats().buffers_in_use == 0
