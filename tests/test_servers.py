"""The reference protocols of ``bufkit.servers`` over fake sockets."""

from __future__ import annotations

import logging
import socket

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit import BufferPool
from bufkit._writequeue import COALESCE_BELOW
from bufkit.adapters.selectors import Connection, Loop
from bufkit.servers import (
    FANOUT_REPLIES,
    FANOUT_REPLY_SIZE,
    Discard,
    Echo,
    Fanout,
    LineEcho,
)
from bufkit.testing import Deliver, Eof, FakeSocket, RecvStep, WouldBlock
from tests.adapters._selectors_support import Driver


def _reading(conn: Connection) -> bool:
    return conn.reading


def _sends(sock: FakeSocket) -> int:
    return sum(1 for call in sock.calls if call.op in ("sendmsg", "send"))


def test_echo_returns_every_byte_and_every_buffer() -> None:
    """Echo sends back exactly what came in; the pool ends with nothing lent."""
    pool = BufferPool()
    data = bytes(range(256)) * 100
    sock = FakeSocket(recv=[Deliver(data), Eof()])
    driver = Driver(sock, Echo(), pool)
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert sock.wire == data
    assert pool.stats().buffers_in_use == 0


def test_echo_pauses_reading_while_the_peer_does_not_read() -> None:
    """Above the high watermark Echo stops reading; below the low one it resumes."""
    pool = BufferPool()
    sock = FakeSocket(after_send="block", recv=[Deliver(b"e" * 8192)])
    driver = Driver(sock, Echo(), pool, high_water=4096, low_water=1024)
    driver.conn.start()
    driver.step()
    assert driver.conn.writing_paused
    assert not driver.conn.reading
    sock.after_send = "accept"
    driver.step()
    assert _reading(driver.conn)
    driver.conn.abort()
    assert pool.stats().buffers_in_use == 0


def test_discard_reads_and_writes_nothing() -> None:
    """Discard consumes the stream and never sends."""
    pool = BufferPool()
    sock = FakeSocket(recv=[Deliver(b"z" * 5000), Eof()])
    driver = Driver(sock, Discard(), pool)
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert driver.conn.bytes_received == 5000
    assert sock.wire == b""
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("requests", [1, 3])
def test_fanout_replies_32_writes_per_byte_in_one_send(requests: int) -> None:
    """Each request byte gets 32 writes of 100 bytes, all in one send call."""
    sock = FakeSocket(recv=[Deliver(b"?" * requests)])
    driver = Driver(sock, Fanout(), BufferPool())
    driver.conn.start()
    driver.step()
    assert len(sock.wire) == requests * FANOUT_REPLIES * FANOUT_REPLY_SIZE
    assert _sends(sock) == 1
    driver.conn.abort()


def test_line_echo_echoes_lines_split_anywhere() -> None:
    """LineEcho echoes whole lines, whatever the read boundaries."""
    pool = BufferPool()
    recv: list[RecvStep] = [Deliver(b"hel"), WouldBlock(), Deliver(b"lo\nwor")]
    recv += [Deliver(b"ld\n\n"), Eof()]
    sock = FakeSocket(recv=recv)
    driver = Driver(sock, LineEcho(pool), pool)
    driver.conn.start()
    driver.run(lambda: driver.conn.closed)
    assert sock.wire == b"hello\nworld\n\n"
    assert pool.stats().buffers_in_use == 0


@given(
    lines=st.lists(
        st.binary(max_size=300).map(lambda b: b.replace(b"\n", b"")), max_size=8
    ),
    cuts=st.lists(st.integers(1, 50), min_size=1, max_size=20),
)
def test_line_echo_with_arbitrary_splits(lines: list[bytes], cuts: list[int]) -> None:
    """Byte-exact line echo for any read split; a partial tail line is dropped."""
    stream = b"".join(line + b"\n" for line in lines) + b"tail"
    recv: list[RecvStep] = []
    pos = 0
    i = 0
    while pos < len(stream):
        size = cuts[i % len(cuts)]
        recv.append(Deliver(stream[pos : pos + size]))
        pos += size
        i += 1
    recv.append(Eof())
    pool = BufferPool()
    sock = FakeSocket(recv=recv)
    driver = Driver(sock, LineEcho(pool), pool)
    driver.conn.start()
    driver.run(lambda: driver.conn.closed, max_steps=5000)
    assert sock.wire == stream[: -len(b"tail")]
    assert pool.stats().buffers_in_use == 0


def test_line_echo_aborts_on_a_line_too_long_in_one_quiet_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A line past ``max_line`` aborts the connection with one line, no traceback."""
    pool = BufferPool()
    sock = FakeSocket(recv=[Deliver(b"a" * 100)])
    driver = Driver(sock, LineEcho(pool, max_line=10), pool)
    driver.conn.start()
    with caplog.at_level(logging.DEBUG):
        driver.step()
    assert driver.conn.closed
    assert [r.exc_info for r in caplog.records] == [None] * len(caplog.records)
    lines = [r for r in caplog.records if "line-echo" in r.getMessage()]
    assert len(lines) == 1
    assert lines[0].levelno == logging.INFO
    assert "10" in lines[0].getMessage()  # names the limit
    assert pool.stats().buffers_in_use == 0


_HIGH = 65536


def _fanout_pair(
    loop: Loop, *, scheduled: bool = False
) -> tuple[socket.socket, Connection]:
    server, client = socket.socketpair()
    client.setblocking(False)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    protocol = Fanout(schedule=loop.call_soon if scheduled else None)
    return client, loop.add_socket(server, protocol)


def _drain(client: socket.socket) -> tuple[bytes, bool]:
    """Read what is there; return it and whether the peer's end of file came."""
    got = bytearray()
    while True:
        try:
            data = client.recv(1 << 20)
        except BlockingIOError:
            return bytes(got), False
        if not data:
            return bytes(got), True
        got += data


def test_fanout_holds_a_bounded_backlog_for_a_peer_that_never_reads() -> None:
    """2 KiB in owes 6.5 MB out: the queue stays under the high watermark + a write."""
    loop = Loop(high_water=_HIGH, low_water=_HIGH // 4)
    client, conn = _fanout_pair(loop)
    try:
        client.send(b"?" * 2048)
        peak = 0
        for _ in range(40):
            loop.run_once(0.005)
            peak = max(peak, conn.pending_bytes)
        assert conn.writing_paused
        assert peak <= _HIGH + FANOUT_REPLY_SIZE
        protocol = conn.protocol
        assert isinstance(protocol, Fanout)
        assert protocol.owed > 0  # the rest waits as a count, not as bytes
    finally:
        client.close()
        loop.close()


def test_fanout_pays_every_byte_owed_to_a_reader_that_reads() -> None:
    """A peer that reads gets exactly 3200 bytes per byte sent, then end of file."""
    loop = Loop(high_water=_HIGH, low_water=_HIGH // 4)
    client, conn = _fanout_pair(loop)
    try:
        client.send(b"?" * 300)
        client.shutdown(socket.SHUT_WR)
        got = bytearray()
        for _ in range(100_000):
            loop.run_once(0.001)
            assert conn.pending_bytes <= _HIGH + FANOUT_REPLY_SIZE
            try:
                data = client.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                break
            got += data
        line = b"x" * (FANOUT_REPLY_SIZE - 1) + b"\n"
        assert got == line * (300 * FANOUT_REPLIES)
        assert conn.closed
    finally:
        client.close()
        loop.close()


@pytest.mark.parametrize("size", [1, COALESCE_BELOW - 1, COALESCE_BELOW])
def test_echo_owns_large_reads_and_the_queue_copies_small_ones(size: int) -> None:
    """A read at the queue's coalescing threshold waits in its own buffer."""
    pool = BufferPool()
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    sock = FakeSocket(after_send="block", recv=[Deliver(data)])
    driver = Driver(sock, Echo(), pool)
    driver.conn.start()
    driver.step()
    assert driver.conn.pending_bytes == size  # the peer takes nothing yet
    owned = 1 if size >= COALESCE_BELOW else 0
    assert pool.stats().buffers_in_use == owned
    sock.after_send = "accept"
    driver.run(lambda: driver.conn.pending_bytes == 0)
    assert sock.wire == data
    assert pool.stats().buffers_in_use == 0
    driver.conn.abort()


@pytest.mark.parametrize("scheduled", [True, False])
def test_scheduled_fanout_writes_one_watermark_per_loop_iteration(
    scheduled: bool,
) -> None:
    """With ``schedule``, an iteration writes two high watermarks at most."""
    loop = Loop(high_water=_HIGH, low_water=_HIGH // 4)
    client, conn = _fanout_pair(loop, scheduled=scheduled)
    try:
        client.send(b"?" * 300)
        client.shutdown(socket.SHUT_WR)
        got = bytearray()
        most = 0
        for _ in range(100_000):
            before = conn.bytes_written
            loop.run_once(0.001)
            most = max(most, conn.bytes_written - before)
            data, eof = _drain(client)
            got += data
            if eof:
                break
        assert len(got) == 300 * FANOUT_REPLIES * FANOUT_REPLY_SIZE
        # Scheduled: the read event's watermark and one scheduled callback's.
        bounded = most <= 2 * (_HIGH + FANOUT_REPLY_SIZE)
        assert bounded is scheduled  # inline, a flush writes what the kernel takes
    finally:
        client.close()
        loop.close()
