"""The connection core driven by hand over fake sockets: batching, interest, life."""

from __future__ import annotations

import array
import errno
import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit import (
    CONNECTION_TRANSITIONS,
    BufferPool,
    Connection,
    ConnectionEvent,
    ConnectionState,
    Interest,
    QueueClosedError,
    QueueFailedError,
)
from bufkit.servers import Echo, Fanout
from bufkit.testing import (
    Accept,
    Deliver,
    Eof,
    Fail,
    FakeSocket,
    RecvStep,
    SendStep,
    WouldBlock,
)
from tests.adapters._selectors_support import Driver, Recorder

if TYPE_CHECKING:
    from typing_extensions import Buffer


def _interest(conn: Connection) -> Interest:
    return conn.interest


def _state(conn: Connection) -> ConnectionState:
    return conn.state


def _paused(conn: Connection) -> bool:
    return conn.writing_paused


def _sendmsgs(sock: FakeSocket) -> int:
    return sum(1 for call in sock.calls if call.op in ("sendmsg", "send"))


def test_start_calls_connection_made_and_wants_read() -> None:
    """``start`` calls ``connection_made`` and reports read interest once."""
    proto = Recorder()
    driver = Driver(FakeSocket(), proto, BufferPool())
    driver.conn.start()
    assert proto.conn is driver.conn
    assert driver.interests == [Interest.READ]
    assert _state(driver.conn) is ConnectionState.OPEN
    with pytest.raises(RuntimeError, match="already started"):
        driver.conn.start()
    driver.conn.abort()


def test_writes_in_one_event_cost_one_sendmsg() -> None:
    """Fanout's 32 writes for one request byte leave in a single ``sendmsg``."""
    pool = BufferPool()
    sock = FakeSocket(recv=[Deliver(b"?")])
    driver = Driver(sock, Fanout(), pool)
    driver.conn.start()
    driver.step()
    assert _sendmsgs(sock) == 1
    assert len(sock.wire) == 32 * 100
    assert driver.conn.pending_bytes == 0
    assert driver.conn.flushes == 1
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def test_writes_outside_an_event_wait_for_the_end_of_the_iteration() -> None:
    """Writes outside an event are deferred and flushed once, together."""
    sock = FakeSocket()
    driver = Driver(sock, Recorder(), BufferPool())
    driver.conn.start()
    for i in range(10):
        driver.conn.write(b"%d," % i)
    assert _sendmsgs(sock) == 0
    assert len(driver.deferred) == 1
    driver.end_iteration()
    assert _sendmsgs(sock) == 1
    assert sock.wire == b"0,1,2,3,4,5,6,7,8,9,"
    assert driver.conn.bytes_written == 20
    driver.conn.abort()


def test_bytes_written_counts_every_kind_of_write() -> None:
    """bytes, views of any format, mutable and pooled data count their bytes."""
    pool = BufferPool()
    sock = FakeSocket()
    driver = Driver(sock, Recorder(), pool)
    driver.conn.start()
    buf = pool.acquire(10)
    buf.view[:4] = b"pool"
    driver.conn.write(b"ab")
    driver.conn.write(memoryview(b"cde"))
    driver.conn.write(memoryview(array.array("i", [1, 2])))
    driver.conn.write(bytearray(b"fg"))
    driver.conn.write(buf, nbytes=4)
    driver.conn.writelines([b"h", memoryview(b"ij")])
    driver.conn.write(memoryview(b"kxlx")[::2])  # strided: copied, 2 bytes
    driver.end_iteration()
    assert driver.conn.bytes_written == 2 + 3 + 8 + 2 + 4 + 3 + 2 == len(sock.wire)
    assert sock.wire.startswith(b"abcde")
    assert sock.wire.endswith(b"fgpoolhijkl")
    with pytest.raises(TypeError, match="str"):
        driver.conn.write("text")  # type: ignore[arg-type]
    assert driver.conn.bytes_written == 24  # a refused write counts nothing
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def test_without_defer_each_write_flushes_at_once() -> None:
    """A connection built without ``defer`` flushes every outside write."""
    sock = FakeSocket()
    conn = Connection(BufferPool(), sock, Recorder(), on_interest=lambda c, i: None)
    conn.start()
    conn.write(b"a")
    conn.write(b"b")
    assert _sendmsgs(sock) == 2
    assert sock.wire == b"ab"
    conn.abort()


def test_would_block_arms_write_interest_and_drain_disarms_it() -> None:
    """Invariant 3: armed after a flush that would block, disarmed once drained."""
    sock = FakeSocket(send=[Accept(3), WouldBlock()])
    driver = Driver(sock, Recorder(), BufferPool())
    driver.conn.start()
    driver.conn.write(b"hello world")
    driver.end_iteration()
    assert _interest(driver.conn) is Interest.BOTH
    assert driver.conn.pending_bytes == 8
    driver.step()
    assert _interest(driver.conn) is Interest.READ
    assert sock.wire == b"hello world"
    assert driver.interests == [Interest.READ, Interest.BOTH, Interest.READ]
    driver.conn.abort()


def test_graceful_close_drains_then_closes() -> None:
    """``close`` sends everything queued before closing the socket."""
    sock = FakeSocket(send=[WouldBlock(), Accept(1), WouldBlock(), WouldBlock()])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    done: list[BaseException | None] = []
    driver.conn.write(b"abc", done.append)
    driver.conn.close()
    driver.end_iteration()
    assert _state(driver.conn) is ConnectionState.CLOSING
    assert _interest(driver.conn) is Interest.WRITE
    with pytest.raises(QueueClosedError):
        driver.conn.write(b"late")
    driver.run(lambda: driver.conn.closed)
    assert sock.wire == b"abc"
    assert sock.closed
    assert done == [None]
    assert proto.lost == [None]


def test_close_with_nothing_queued_closes_at_the_end_of_the_iteration() -> None:
    """``close`` outside an event with an empty queue closes once deferred run."""
    sock = FakeSocket()
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.conn.close()
    driver.conn.close()
    assert proto.lost == []
    driver.end_iteration()
    assert proto.lost == [None]
    assert driver.interests[-1] is Interest.NONE


def test_abort_fails_pending_completions() -> None:
    """``abort`` closes at once and fails every pending completion."""
    pool = BufferPool()
    sock = FakeSocket(after_send="block")
    proto = Recorder()
    driver = Driver(sock, proto, pool)
    driver.conn.start()
    done: list[BaseException | None] = []
    buf = pool.acquire(100)
    driver.conn.write(buf, done.append, nbytes=10)
    driver.conn.write(b"more", done.append)
    driver.end_iteration()
    driver.conn.abort()
    driver.conn.abort()
    assert len(done) == 2
    assert all(isinstance(e, ConnectionAbortedError) for e in done)
    assert proto.lost == [None]
    assert sock.closed
    assert pool.stats().buffers_in_use == 0
    with pytest.raises(QueueFailedError):
        driver.conn.write(b"x")


def test_send_error_reaches_completions_and_connection_lost() -> None:
    """A send error fails completions and reaches ``connection_lost`` unchanged."""
    sock = FakeSocket(send=[Accept(2), Fail(errno.ECONNRESET)])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    done: list[BaseException | None] = []
    driver.conn.write(b"abcdef", done.append)
    driver.end_iteration()
    assert _interest(driver.conn) is Interest.BOTH
    driver.step()
    assert driver.conn.closed
    assert isinstance(proto.lost[0], ConnectionResetError)
    assert done == [proto.lost[0]]


def test_receive_error_aborts_with_it() -> None:
    """A receive error aborts the connection with that error."""
    sock = FakeSocket(recv=[Fail(errno.ECONNRESET)])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.step()
    assert isinstance(proto.lost[0], ConnectionResetError)
    assert sock.closed


def test_eof_closes_unless_the_protocol_keeps_it_open() -> None:
    """EOF closes the connection when ``eof_received`` returns a false value."""
    sock = FakeSocket(recv=[Deliver(b"hi"), Eof()])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert proto.data == b"hi"
    assert proto.eofs == 1
    assert proto.lost == [None]


def test_eof_received_true_keeps_the_write_side_open() -> None:
    """After EOF with ``eof_received`` true, replies still go out."""
    sock = FakeSocket(recv=[Deliver(b"question"), Eof()])
    proto = Recorder(keep_open=True)
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.run(lambda: proto.eofs == 1)
    assert not driver.conn.reading
    assert _interest(driver.conn) is Interest.NONE
    assert _state(driver.conn) is ConnectionState.OPEN
    driver.conn.write(b"answer")
    driver.conn.close()
    driver.end_iteration()
    assert sock.wire == b"answer"
    assert proto.lost == [None]


def test_write_eof_shuts_after_draining_and_closes_on_peer_eof() -> None:
    """``write_eof`` drains, shuts the write side, and EOF then closes."""
    sock = FakeSocket(send=[WouldBlock()], recv=[WouldBlock(), Deliver(b"x"), Eof()])
    proto = Recorder(keep_open=True)
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.conn.write(b"bye")
    driver.conn.write_eof()
    driver.conn.write_eof()
    assert _state(driver.conn) is ConnectionState.WRITE_SHUTTING
    driver.end_iteration()
    driver.step()
    assert _state(driver.conn) is ConnectionState.WRITE_SHUT
    assert any(c.op == "shutdown" for c in sock.calls)
    driver.run(lambda: driver.conn.closed)
    assert proto.data == b"x"
    assert proto.lost == [None]


def test_pause_reading_stops_within_the_event() -> None:
    """``pause_reading`` in ``data_received`` stops the rest of the event's reads."""
    pool = BufferPool()
    size = pool.size_classes[0]
    sock = FakeSocket(recv=[Deliver(b"a" * size * 4)])
    proto = Recorder()
    proto.on_data = lambda conn, view: conn.pause_reading()
    driver = Driver(sock, proto, pool, read_budget=8)
    driver.conn.start()
    driver.step()
    assert proto.chunks == 1
    assert _interest(driver.conn) is Interest.NONE
    driver.conn.resume_reading()
    assert _interest(driver.conn) is Interest.READ
    proto.on_data = None
    driver.step()
    assert len(proto.data) == size * 4
    driver.conn.abort()


def test_watermarks_pause_and_resume_the_protocol() -> None:
    """Crossing the high and then the low watermark calls the protocol once each."""
    sock = FakeSocket(send=[WouldBlock()])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool(), high_water=100, low_water=10)
    driver.conn.start()
    driver.conn.write(b"x" * 150)
    assert proto.pauses == 1
    assert driver.conn.writing_paused
    driver.end_iteration()
    driver.step()
    assert proto.resumes == 1
    assert not _paused(driver.conn)
    driver.conn.abort()


def test_raising_protocol_is_logged_and_aborted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A protocol that raises gets its connection aborted, with a log record."""

    def boom(conn: Connection, view: memoryview) -> None:
        raise ValueError("boom")

    pool = BufferPool()
    sock = FakeSocket(recv=[Deliver(b"data")])
    proto = Recorder()
    proto.on_data = boom
    driver = Driver(sock, proto, pool)
    driver.conn.start()
    with caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"):
        driver.step()
    assert isinstance(proto.lost[0], ValueError)
    assert "protocol error" in caplog.text
    assert sock.closed
    assert pool.stats().buffers_in_use == 0


def test_echo_takes_the_buffer_without_copy() -> None:
    """Echo hands the received pool buffer to the queue; it returns once sent."""
    pool = BufferPool()
    ping = bytes(range(256)) * 16
    sock = FakeSocket(send=[WouldBlock()], recv=[Deliver(ping)])
    driver = Driver(sock, Echo(), pool)
    driver.conn.start()
    driver.step()
    assert pool.stats().buffers_in_use == 2  # the two reads' chunks, owned
    assert driver.conn.pending_bytes == len(ping)
    driver.step()
    assert sock.wire == ping
    assert pool.stats().buffers_in_use == 0
    driver.conn.abort()


def _successors(state: ConnectionState) -> set[ConnectionState]:
    return {
        new for (old, _event), new in CONNECTION_TRANSITIONS.items() if old is state
    }


def test_transitions_table_is_closed_under_the_states() -> None:
    """Every state but CLOSED has a way out; CLOSED is terminal; each state can end."""
    assert {old for old, _event in CONNECTION_TRANSITIONS} == set(ConnectionState) - {
        ConnectionState.CLOSED
    }
    assert _successors(ConnectionState.CLOSED) == set()
    for state in ConnectionState:
        if state is not ConnectionState.CLOSED:
            assert CONNECTION_TRANSITIONS[state, ConnectionEvent.LOST] is (
                ConnectionState.CLOSED
            )


_chunks = st.lists(st.binary(min_size=1, max_size=5000), min_size=1, max_size=6)
_send_steps = st.lists(
    st.one_of(st.builds(Accept, st.integers(1, 4000)), st.just(WouldBlock())),
    max_size=12,
)


@given(chunks=_chunks, send=_send_steps, blocks=st.lists(st.booleans(), max_size=6))
def test_echo_is_byte_exact_under_partial_writes(
    chunks: list[bytes], send: list[SendStep], blocks: list[bool]
) -> None:
    """Echo returns exactly the bytes received, then drains and closes on EOF."""
    recv: list[RecvStep] = []
    for chunk, block in zip(chunks, blocks + [False] * len(chunks), strict=False):
        recv.append(Deliver(chunk))
        if block:
            recv.append(WouldBlock())
    recv.append(Eof())
    pool = BufferPool()
    sock = FakeSocket(send=send, recv=recv)
    driver = Driver(sock, Echo(), pool)
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert sock.wire == b"".join(chunks)
    assert driver.conn.bytes_received == driver.conn.bytes_written
    assert sock.closed
    assert pool.stats().buffers_in_use == 0


_ops = st.lists(
    st.sampled_from(
        [
            "write",
            "writelines",
            "step",
            "close",
            "abort",
            "write_eof",
            "pause",
            "resume",
        ]
    ),
    max_size=30,
)


@given(ops=_ops, send=_send_steps)
def test_any_sequence_of_calls_keeps_the_invariants(
    ops: list[str], send: list[SendStep]
) -> None:
    """Random calls keep legal transitions, invariant 3 and completions exact."""
    pool = BufferPool()
    sock = FakeSocket(send=send, recv=[Deliver(b"in"), WouldBlock(), Eof()])
    proto = Recorder(keep_open=True)
    driver = Driver(sock, proto, pool)
    conn = driver.conn
    conn.start()
    done: list[BaseException | None] = []
    written = bytearray()
    for op in ops:
        before = conn.state
        if op in ("write", "writelines"):
            payload = bytes([len(written) % 256]) * 7
            try:
                if op == "write":
                    conn.write(payload, done.append)
                else:
                    conn.writelines([payload[:3], payload[3:]], done.append)
            except (QueueClosedError, QueueFailedError):
                assert conn.state is not ConnectionState.OPEN
            else:
                written += payload
        elif op == "step":
            driver.step()
        else:
            {
                "close": conn.close,
                "abort": conn.abort,
                "write_eof": conn.write_eof,
                "pause": conn.pause_reading,
                "resume": conn.resume_reading,
            }[op]()
        assert conn.state is before or conn.state in _successors(before)
        driver.end_iteration()
    conn.close()
    driver.run(lambda: conn.closed)
    assert sock.wire == written[: len(sock.wire)]
    assert len(done) == len(written) // 7
    if all(e is None for e in done):
        assert sock.wire == written
    assert len(proto.lost) == 1
    assert pool.stats().buffers_in_use == 0
    assert any(c.op == "close" for c in sock.calls)
    assert conn.state is ConnectionState.CLOSED


def test_the_reference_table_matches_the_transitions() -> None:
    """The life-cycle table in the reference docs is the transition table."""
    page = Path(__file__).parents[1] / "docs" / "reference" / "connection.md"
    documented: dict[tuple[ConnectionState, ConnectionEvent], ConnectionState] = {}
    for line in page.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and all(re.fullmatch(r"`\w+`", c) for c in cells):
            old, event, new = (c.strip("`") for c in cells)
            documented[ConnectionState[old], ConnectionEvent[event]] = ConnectionState[
                new
            ]
    assert documented == dict(CONNECTION_TRANSITIONS)


class _Raising(Recorder):
    """A protocol whose chosen callback raises."""

    def __init__(self, where: str) -> None:
        super().__init__()
        self.where = where

    def _maybe(self, name: str) -> None:
        if self.where == name:
            raise RuntimeError(f"{name} failed")

    def connection_made(self, conn: Connection, /) -> None:
        """Maybe raise."""
        super().connection_made(conn)
        self._maybe("connection_made")

    def eof_received(self) -> bool | None:
        """Maybe raise."""
        self._maybe("eof_received")
        return super().eof_received()

    def pause_writing(self) -> None:
        """Maybe raise."""
        self._maybe("pause_writing")

    def resume_writing(self) -> None:
        """Maybe raise."""
        self._maybe("resume_writing")

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record, then maybe raise."""
        super().connection_lost(exc)
        self._maybe("connection_lost")


@pytest.mark.parametrize(
    "where",
    ["connection_made", "eof_received", "pause_writing", "resume_writing", "on_done"],
)
def test_any_raising_callback_aborts_only_its_connection(
    where: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Whichever callback raises, the connection aborts with it, logged."""
    pool = BufferPool()
    sock = FakeSocket(send=[WouldBlock()], recv=[WouldBlock(), Eof()])
    proto = _Raising(where)
    driver = Driver(sock, proto, pool, high_water=10, low_water=0)

    def on_done(exc: BaseException | None) -> None:
        if where == "on_done":
            raise RuntimeError("on_done failed")

    with caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"):
        driver.conn.start()
        if not driver.conn.closed:
            driver.conn.write(pool.acquire(4096), on_done, nbytes=100)
            driver.run(lambda: driver.conn.closed)
    assert isinstance(proto.lost[0], RuntimeError)
    assert f"{where} failed" in str(proto.lost[0])
    assert "protocol error" in caplog.text
    assert sock.closed
    assert pool.stats().buffers_in_use == 0


def test_connection_lost_raising_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception from ``connection_lost`` is logged; the close completes."""
    sock = FakeSocket()
    proto = _Raising("connection_lost")
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    with caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"):
        driver.conn.abort()
    assert driver.conn.closed
    assert "connection_lost raised" in caplog.text


def test_on_done_raising_during_abort_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A completion that raises while the queue fails is logged, not raised."""

    def bad(exc: BaseException | None) -> None:
        raise RuntimeError("bad completion")

    sock = FakeSocket(after_send="block")
    driver = Driver(sock, Recorder(), BufferPool())
    driver.conn.start()
    driver.conn.write(b"x" * 10, bad)
    driver.end_iteration()
    with caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"):
        driver.conn.abort()
    assert "completion callback raised" in caplog.text


class _NoShutdown:
    """A fake socket whose ``shutdown`` fails, as on a connection already gone."""

    def __init__(self) -> None:
        self.fake = FakeSocket()

    def recv_into(self, buffer: memoryview, /) -> int:
        """Delegate."""
        return self.fake.recv_into(buffer)

    def send(self, data: Buffer, /) -> int:
        """Delegate."""
        return self.fake.send(data)

    def shutdown(self, how: int, /) -> None:
        """Fail."""
        raise OSError(errno.ENOTCONN, "not connected")

    def close(self) -> None:
        """Delegate."""
        self.fake.close()


def test_write_eof_failing_shutdown_aborts_with_the_error() -> None:
    """If ``shutdown`` fails, the connection aborts with that error."""
    proto = Recorder()
    sock = _NoShutdown()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.conn.write_eof()
    driver.end_iteration()
    assert isinstance(proto.lost[0], OSError)
    assert proto.lost[0].errno == errno.ENOTCONN


def test_write_eof_after_peer_eof_closes_once_shut() -> None:
    """Peer EOF kept open, then ``write_eof``: closed once the side is shut."""
    sock = FakeSocket(recv=[Eof()])
    proto = Recorder(keep_open=True)
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.step()
    assert _state(driver.conn) is ConnectionState.OPEN
    driver.conn.write(b"reply")
    driver.conn.write_eof()
    driver.end_iteration()
    assert sock.wire == b"reply"
    assert proto.lost == [None]


def test_a_completion_that_writes_joins_the_same_flush() -> None:
    """Data written from ``on_done`` leaves in the flush that completed it."""
    sock = FakeSocket()
    driver = Driver(sock, Recorder(), BufferPool())
    conn = driver.conn
    conn.start()
    conn.write(b"a", lambda exc: conn.write(b"b"))
    assert len(driver.deferred) == 1
    driver.end_iteration()
    assert sock.wire == b"ab"
    assert not driver.deferred
    assert _interest(conn) is Interest.READ
    conn.abort()


def test_bad_watermarks_or_budget_are_refused() -> None:
    """Inconsistent watermarks and a zero read budget raise ``ValueError``."""
    sock = FakeSocket()
    with pytest.raises(ValueError, match="low_water"):
        Connection(
            BufferPool(), sock, Recorder(), on_interest=print, high_water=1, low_water=2
        )
    with pytest.raises(ValueError, match="read_budget"):
        Connection(BufferPool(), sock, Recorder(), on_interest=print, read_budget=0)


def test_crossing_the_high_watermark_mid_event_flushes_and_reads_on() -> None:
    """A read event that passes the high watermark sends, then keeps reading."""
    pool = BufferPool()
    parts = [b"a" * 2048, b"b" * 16384, b"c" * 16384]  # reads that fill buffers
    data = b"".join(parts)
    sock = FakeSocket(recv=[*map(Deliver, parts), WouldBlock()])
    driver = Driver(sock, Echo(), pool, high_water=4096, low_water=1024)
    driver.conn.start()
    driver.conn.on_readable()  # one readable event
    assert sock.wire == data
    ops = [c.op for c in sock.calls]
    assert ops.index("sendmsg") < len(ops) - 1 - ops[::-1].index("recv_into")
    assert driver.conn.reading
    assert not driver.conn.writing_paused
    driver.check_interest()
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def test_a_mid_event_flush_that_would_block_pauses_and_arms_write() -> None:
    """If the peer takes nothing, the protocol stays paused and write is armed."""
    pool = BufferPool()
    data = b"w" * 12288
    sock = FakeSocket(after_send="block", recv=[Deliver(data), WouldBlock()])
    driver = Driver(sock, Echo(), pool, high_water=4096, low_water=1024)
    driver.conn.start()
    driver.step()
    assert driver.conn.writing_paused
    assert not driver.conn.reading
    assert driver.conn.interest is Interest.WRITE
    assert driver.conn.pending_bytes <= 4096 + pool.largest_class
    sock.after_send = "accept"
    driver.run(lambda: sock.wire == data)
    assert driver.conn.pending_bytes == 0
    driver.check_interest()  # resumed: reading again, write disarmed
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


class _Chain(Recorder):
    """Writes a chunk whose completion writes the next one, ``left`` times."""

    def __init__(self, left: int) -> None:
        super().__init__()
        self.left = left

    def connection_made(self, conn: Connection, /) -> None:
        super().connection_made(conn)
        self._next(None)

    def _next(self, exc: BaseException | None) -> None:
        conn = self.conn
        if exc is None and self.left and conn is not None:
            self.left -= 1
            conn.write(b"c" * 4096, self._next)


def test_a_completion_chain_cannot_hold_the_loop() -> None:
    """One flush makes at most 16 sends, then waits for writability with data left."""
    pool = BufferPool()
    sock = FakeSocket()  # takes everything, every time
    driver = Driver(sock, _Chain(10_000), pool)
    driver.conn.start()
    driver.end_iteration()
    assert _sendmsgs(sock) == 16
    assert driver.conn.interest & Interest.WRITE
    assert driver.conn.pending_bytes > 0
    driver.conn.on_writable()  # writable: another bounded flush
    assert _sendmsgs(sock) == 32
    assert driver.conn.interest & Interest.WRITE
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def _recvs(sock: FakeSocket) -> int:
    return sum(1 for call in sock.calls if call.op in ("recv_into", "recv"))


def test_abort_in_data_received_ends_the_event_s_reads() -> None:
    """An abort in ``data_received`` ends the reads: none on the closed socket."""
    pool = BufferPool()
    size = pool.size_classes[0]
    sock = FakeSocket(recv=[Deliver(b"a" * size * 4)])
    proto = Recorder()
    proto.on_data = lambda conn, view: conn.abort()
    driver = Driver(sock, proto, pool, read_budget=8)
    driver.conn.start()
    driver.step()
    assert _recvs(sock) == 1
    assert proto.chunks == 1
    assert proto.lost == [None]
    assert pool.stats().buffers_in_use == 0


def test_bytes_received_outlives_the_connection() -> None:
    """``bytes_received`` still counts every byte handed over once closed."""
    sock = FakeSocket(recv=[Deliver(b"a" * 5000), Deliver(b"b" * 7), Eof()])
    proto = Recorder()
    driver = Driver(sock, proto, BufferPool())
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert proto.data == b"a" * 5000 + b"b" * 7
    assert driver.conn.bytes_received == 5007


def test_an_os_error_of_data_received_is_the_protocol_s_bug(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An ``OSError`` from ``data_received`` is a protocol error, not a reset."""
    exc = ConnectionResetError(errno.ECONNRESET, "raised by the protocol")

    def fail(conn: Connection, view: memoryview) -> None:
        raise exc

    proto = Recorder()
    proto.on_data = fail
    driver = Driver(FakeSocket(recv=[Deliver(b"x")]), proto, BufferPool())
    driver.conn.start()
    with caplog.at_level(logging.DEBUG, logger="bufkit.connection"):
        driver.step()
    assert proto.lost == [exc]
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "protocol error" in errors[0].getMessage()
