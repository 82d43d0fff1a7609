"""The reader's bytes mode: recv() after a full read, the pooled path otherwise."""

from __future__ import annotations

import errno

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit import ReadinessReader
from bufkit.testing import Deliver, Eof, FakeSocket, WouldBlock
from bufkit.testing.strategies import recv_schedules
from tests._reader_support import make_pool, reader_options

READ_OPS = ("recv", "recv_into")


class Recorder:
    """Copies what it gets, and notes whether each view came over bytes."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.kinds: list[bool] = []  # True: the view's obj is exactly bytes
        self.eofs = 0

    def data_received(self, view: memoryview) -> None:
        self.data += view
        self.kinds.append(type(view.obj) is bytes)

    def eof_received(self) -> None:
        self.eofs += 1


def reads(sock: FakeSocket) -> list[tuple[str, int, int | None]]:
    """The fake's record of reads: (op, size asked, bytes got or None)."""
    return [(c.op, c.size, c.result) for c in sock.calls if c.op in READ_OPS]


@given(data=st.data(), options=reader_options)
def test_bytes_mode_delivers_every_byte_and_switches_on_fills(
    data: st.DataObject, options: dict[str, int]
) -> None:
    """Exact bytes in order; recv only right after a full read; no pool bytes held."""
    payload = data.draw(st.binary(max_size=3000), label="payload")
    schedule = data.draw(
        recv_schedules(
            payload, max_chunks=None, interrupts=True, faults=(errno.ECONNRESET,)
        ),
        label="schedule",
    )
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(
        pool,
        handler,
        read_bytes=True,
        **options,  # type: ignore[arg-type]
    )
    sock = FakeSocket(recv=schedule)
    reset = False
    still_open = True
    for _ in range(10_000):
        sock.mark_waited()
        try:
            still_open = reader.on_readable(sock)
        except ConnectionResetError:
            reset = True
            assert reader.recv_failed
        assert pool.stats().bytes_in_use == 0
        if reset or not still_open:
            break
    assert bytes(handler.data) == sock.received
    if not reset:
        assert bytes(handler.data) == payload
        assert handler.eofs == 1
    # Each read is a recv exactly when the last read that returned filled its
    # pooled buffer, or (a recv, which asks twice the read size) returned at
    # least the read size.
    last_full = False
    recv_with_data = 0
    for op, size, got in reads(sock):
        assert op == ("recv" if last_full else "recv_into")
        if got is not None:
            last_full = got == size if op == "recv_into" else 2 * got >= size
            recv_with_data += op == "recv" and got > 0
    assert handler.kinds.count(True) == recv_with_data
    recv_into_calls = sum(op == "recv_into" for op, _, _ in reads(sock))
    assert pool.stats().acquires == recv_into_calls - sum(
        1
        for c in sock.calls
        if c.op == "recv_into" and c.errno == errno.EINTR  # retried, one acquire
    )


def test_bytes_mode_switches_between_paths_as_reads_fill() -> None:
    """Full reads lead to recv, a short read returns to the pool, EAGAIN keeps it."""
    sock = FakeSocket(
        recv=[
            Deliver(b"a" * 1200),
            WouldBlock(),
            Deliver(b"b" * 40),
            WouldBlock(),
            Deliver(b"c" * 600),
            Eof(),
        ]
    )
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(
        pool, handler, read_bytes=True, initial_size=512, adaptive=False
    )
    while reader.on_readable(sock):
        assert pool.stats().bytes_in_use == 0
    assert reads(sock) == [
        ("recv_into", 512, 512),
        ("recv", 1024, 688),  # at least the read size: the event ends here
        ("recv", 1024, None),
        ("recv", 1024, 40),  # a short read: back to the pooled path
        ("recv_into", 512, None),
        ("recv_into", 512, 512),
        ("recv", 1024, 88),
        ("recv_into", 512, 0),
    ]
    assert handler.kinds == [False, True, True, False, True]
    assert bytes(handler.data) == b"a" * 1200 + b"b" * 40 + b"c" * 600
    assert pool.stats().acquires == 4


def test_full_read_then_eagain_keeps_the_next_read_bytes() -> None:
    """EAGAIN after a full read says nothing of the next: it is read as bytes."""
    sock = FakeSocket(recv=[Deliver(b"x" * 512), WouldBlock(), Deliver(b"y" * 512)])
    handler = Recorder()
    reader = ReadinessReader(
        make_pool(), handler, read_bytes=True, initial_size=512, adaptive=False
    )
    reader.on_readable(sock)
    sock.mark_waited()
    reader.on_readable(sock)
    assert [op for op, _, _ in reads(sock)][:3] == ["recv_into", "recv", "recv"]
    assert handler.kinds[:2] == [False, True]


def test_a_burst_of_one_read_size_takes_one_read_per_event() -> None:
    """After the first full read, each read-size burst is one recv: none blocks."""
    bursts = [b"a" * 512, b"b" * 512, b"c" * 512]
    # One step per read call: the read after the first full read blocks;
    # each later burst is what the next event's first read finds.
    sock = FakeSocket(
        recv=[Deliver(bursts[0]), WouldBlock(), *map(Deliver, bursts[1:])]
    )
    handler = Recorder()
    reader = ReadinessReader(
        make_pool(), handler, read_bytes=True, initial_size=512, adaptive=False
    )
    per_event = []
    for _ in bursts:
        before = len(reads(sock))
        sock.mark_waited()
        reader.on_readable(sock)
        per_event.append(len(reads(sock)) - before)
    # The first burst fills a pooled buffer, and the read after it blocks;
    # every later burst is one recv that returns less than it asked.
    assert per_event == [2, 1, 1]
    assert bytes(handler.data) == b"".join(bursts)
    assert handler.kinds == [False, True, True]


class Taker:
    """Tries take_buffer() on every read and records what happened."""

    def __init__(self) -> None:
        self.reader: ReadinessReader | None = None
        self.outcomes: list[str] = []

    def data_received(self, view: memoryview) -> None:
        assert self.reader is not None
        try:
            buf = self.reader.take_buffer()
        except RuntimeError as exc:
            self.outcomes.append(str(exc))
        else:
            self.outcomes.append("taken")
            buf.release()

    def eof_received(self) -> None:
        pass


def test_take_buffer_refuses_a_bytes_read_clearly() -> None:
    """take_buffer() works on a pooled read and names bytes mode on a bytes read."""
    sock = FakeSocket(recv=[Deliver(b"z" * 1024), Eof()])
    pool = make_pool()
    taker = Taker()
    reader = ReadinessReader(
        pool, taker, read_bytes=True, initial_size=512, adaptive=False
    )
    taker.reader = reader
    while reader.on_readable(sock):
        pass
    assert taker.outcomes[0] == "taken"
    assert "read_bytes" in taker.outcomes[1]
    assert pool.stats().bytes_in_use == 0
    with pytest.raises(RuntimeError, match="only inside data_received"):
        reader.take_buffer()


class RecvIntoOnly:
    """A socket-like object with recv_into but no recv."""

    def recv_into(self, buffer: memoryview, /) -> int:
        buffer[:1] = b"q"
        return 1


def test_bytes_mode_needs_a_socket_with_recv() -> None:
    """read_bytes on a socket without recv() is refused with a TypeError."""
    reader = ReadinessReader(make_pool(), Recorder(), read_bytes=True)
    with pytest.raises(TypeError, match="recv"):
        reader.on_readable(RecvIntoOnly())
    assert reader.read_bytes
    assert not ReadinessReader(make_pool(), Recorder()).read_bytes
