"""ReadinessReader: borrow on readable, hand over the filled slice, release."""

from __future__ import annotations

import errno
import os
import selectors
import socket
import ssl
import threading

import pytest

from bufkit import BufferPool, PooledBuffer, PoolExhausted, ReadinessReader
from bufkit.testing import Deliver, Eof, Fail, FakeSocket, Interrupt, WouldBlock

CLASSES = (16, 64, 256)


class Recorder:
    """A handler that keeps a copy of everything it is given."""

    def __init__(self, eof_result: bool | None = None) -> None:
        self.chunks: list[bytes] = []
        self.eofs = 0
        self.eof_result = eof_result

    def data_received(self, view: memoryview) -> None:
        self.chunks.append(bytes(view))

    def eof_received(self) -> bool | None:
        self.eofs += 1
        return self.eof_result

    @property
    def data(self) -> bytes:
        return b"".join(self.chunks)


class Raiser(Recorder):
    """A handler whose data_received raises after recording."""

    def data_received(self, view: memoryview) -> None:
        super().data_received(view)
        raise KeyError("handler broke")


class ScriptedSocket:
    """recv_into that raises given exception objects, to check identity."""

    def __init__(self, *outcomes: bytes | BaseException) -> None:
        self.outcomes = list(outcomes)
        self.calls = 0

    def recv_into(self, buffer: memoryview, /) -> int:
        self.calls += 1
        outcome = self.outcomes.pop(0)
        if isinstance(outcome, BaseException):
            raise outcome
        buffer[: len(outcome)] = outcome
        return len(outcome)


def make_pool() -> BufferPool:
    return BufferPool(size_classes=CLASSES, slab_size=1024)


def in_use(pool: BufferPool) -> int:
    return pool.stats().buffers_in_use


def test_short_read_hands_over_exactly_the_filled_slice() -> None:
    """A read that does not fill the buffer ends the event with no further syscall."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, initial_size=64)
    sock = FakeSocket(recv=[Deliver(b"hello"), Deliver(b"more")])
    assert reader.on_readable(sock) is True
    assert handler.chunks == [b"hello"]
    assert len(sock.calls) == 1
    assert in_use(pool) == 0


def test_full_reads_read_again_until_would_block() -> None:
    """While reads fill the buffer the reader reads again; EAGAIN ends the event."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, initial_size=16, adaptive=False)
    sock = FakeSocket(recv=[Deliver(b"a" * 16), Deliver(b"b" * 16), WouldBlock()])
    assert reader.on_readable(sock) is True
    assert handler.chunks == [b"a" * 16, b"b" * 16]
    assert [c.op for c in sock.calls] == ["recv_into"] * 3
    assert in_use(pool) == 0
    assert not reader.at_eof


def test_read_budget_bounds_reads_per_event() -> None:
    """No more than read_budget recv_into calls happen in one event."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(
        pool, handler, read_budget=3, initial_size=16, adaptive=False
    )
    sock = FakeSocket(recv=[Deliver(bytes(16 * 10))])
    assert reader.on_readable(sock) is True
    assert len(sock.calls) == 3
    assert len(handler.data) == 48
    assert reader.on_readable(sock) is True
    assert len(handler.data) == 96


def test_eof_is_reported_once_and_never_read_again() -> None:
    """EOF calls eof_received once; later events report closed without a syscall."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    sock = FakeSocket(recv=[Deliver(b"last"), Eof()])
    assert reader.on_readable(sock) is True
    assert reader.on_readable(sock) is False
    assert reader.at_eof
    assert not reader.keep_open
    assert handler.eofs == 1
    assert handler.chunks == [b"last"]
    calls = len(sock.calls)
    assert reader.on_readable(sock) is False
    assert len(sock.calls) == calls
    assert handler.eofs == 1
    assert in_use(pool) == 0


def test_eof_after_full_read_in_the_same_event() -> None:
    """Data then EOF in one event: the data is handed over, then EOF reported."""
    pool = make_pool()
    handler = Recorder(eof_result=True)
    reader = ReadinessReader(pool, handler, initial_size=16, adaptive=False)
    assert reader.on_readable(FakeSocket(recv=[Deliver(b"x" * 16), Eof()])) is False
    assert handler.chunks == [b"x" * 16]
    assert handler.eofs == 1
    assert reader.keep_open is True
    assert "at EOF" in repr(reader)


def test_eof_received_raising_still_marks_eof() -> None:
    """An eof_received that raises is not called again."""

    class Bad(Recorder):
        def eof_received(self) -> bool | None:
            super().eof_received()
            raise RuntimeError("eof handler broke")

    handler = Bad()
    reader = ReadinessReader(make_pool(), handler)
    with pytest.raises(RuntimeError, match="eof handler broke"):
        reader.on_readable(FakeSocket(recv=[Eof()]))
    assert reader.on_readable(FakeSocket(recv=[Eof()])) is False
    assert handler.eofs == 1


@pytest.mark.parametrize(
    "error",
    [
        ConnectionResetError(errno.ECONNRESET, "reset"),
        BrokenPipeError(errno.EPIPE, "pipe"),
        OSError(errno.ETIMEDOUT, "timed out"),
    ],
)
def test_socket_errors_propagate_unchanged_after_release(error: OSError) -> None:
    """The very exception object the socket raised reaches the caller."""
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder())
    with pytest.raises(OSError, match=str(error.strerror)) as info:
        reader.on_readable(ScriptedSocket(error))
    assert info.value is error
    assert in_use(pool) == 0
    assert not reader.at_eof


def test_fake_socket_reset_propagates() -> None:
    """A scheduled ECONNRESET surfaces as ConnectionResetError, buffer released."""
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder())
    with pytest.raises(ConnectionResetError):
        reader.on_readable(FakeSocket(recv=[Fail(errno.ECONNRESET)]))
    assert in_use(pool) == 0


def test_handler_error_propagates_after_release() -> None:
    """A handler that raises still gets its buffer taken back."""
    pool = make_pool()
    handler = Raiser()
    reader = ReadinessReader(pool, handler)
    with pytest.raises(KeyError, match="handler broke"):
        reader.on_readable(FakeSocket(recv=[Deliver(b"abc")]))
    assert handler.chunks == [b"abc"]
    assert in_use(pool) == 0


def test_interrupted_reads_are_retried_without_using_budget() -> None:
    """InterruptedError is retried and does not count against the budget."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, read_budget=1)
    sock = FakeSocket(recv=[Interrupt(), Interrupt(), Deliver(b"ok")])
    assert reader.on_readable(sock) is True
    assert handler.chunks == [b"ok"]
    scripted = ScriptedSocket(InterruptedError(errno.EINTR, "eintr"), b"again")
    assert reader.on_readable(scripted) is True
    assert handler.chunks[-1] == b"again"
    assert scripted.calls == 2


def test_would_block_after_interrupts_ends_the_event() -> None:
    """EINTR, EINTR, then EAGAIN: the event ends open, the buffer returned."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    eintr = InterruptedError(errno.EINTR, "eintr")
    scripted = ScriptedSocket(eintr, eintr, BlockingIOError(errno.EAGAIN, "again"))
    assert reader.on_readable(scripted) is True
    assert scripted.calls == 3
    assert handler.chunks == []
    assert in_use(pool) == 0


def test_would_block_first_reads_nothing() -> None:
    """A spurious wakeup: EAGAIN at once, no handler call, still open."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    assert reader.on_readable(FakeSocket(recv=[WouldBlock()])) is True
    assert handler.chunks == []
    assert in_use(pool) == 0


class Taker:
    """A handler that takes every buffer it is given."""

    def __init__(
        self, reader: list[ReadinessReader], raise_after: bool = False
    ) -> None:
        self.reader = reader
        self.taken: list[tuple[PooledBuffer, int]] = []
        self.raise_after = raise_after

    def data_received(self, view: memoryview) -> None:
        self.taken.append((self.reader[0].take_buffer(), len(view)))
        if self.raise_after:
            raise ValueError("after take")

    def eof_received(self) -> None:
        return None


def test_take_buffer_hands_ownership_to_the_handler() -> None:
    """A taken buffer stays lent until the handler releases it."""
    pool = make_pool()
    box: list[ReadinessReader] = []
    handler = Taker(box)
    box.append(ReadinessReader(pool, handler, initial_size=16, adaptive=False))
    assert box[0].on_readable(FakeSocket(recv=[Deliver(b"0123456789abcdefXYZ")]))
    assert in_use(pool) == 2
    got = [bytes(buf.view[:n]) for buf, n in handler.taken]
    assert got == [b"0123456789abcdef", b"XYZ"]
    for buf, _ in handler.taken:
        buf.release()
    assert in_use(pool) == 0


def test_taken_buffer_is_not_released_when_the_handler_raises() -> None:
    """Ownership passes at take_buffer, even if the handler then raises."""
    pool = make_pool()
    box: list[ReadinessReader] = []
    handler = Taker(box, raise_after=True)
    box.append(ReadinessReader(pool, handler))
    with pytest.raises(ValueError, match="after take"):
        box[0].on_readable(FakeSocket(recv=[Deliver(b"abc")]))
    assert in_use(pool) == 1
    handler.taken[0][0].release()
    assert in_use(pool) == 0


def test_take_buffer_outside_data_received_or_twice_is_refused() -> None:
    """take_buffer works only once per data_received call."""
    pool = make_pool()
    box: list[ReadinessReader] = []

    class Twice(Recorder):
        def data_received(self, view: memoryview) -> None:
            box[0].take_buffer().release()
            box[0].take_buffer()

    box.append(ReadinessReader(pool, Twice()))
    with pytest.raises(RuntimeError, match="only inside data_received"):
        box[0].take_buffer()
    with pytest.raises(RuntimeError, match="once per call"):
        box[0].on_readable(FakeSocket(recv=[Deliver(b"abc")]))
    assert in_use(pool) == 0


def test_read_size_climbs_one_class_per_full_read_and_stops_at_largest() -> None:
    """Full reads move the read size up a class, never past the largest."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, initial_size=16)
    assert reader.read_size == 16
    sock = FakeSocket(recv=[Deliver(bytes(16 + 64 + 256 + 256)), WouldBlock()])
    assert reader.on_readable(sock) is True
    assert [c.size for c in sock.calls] == [16, 64, 256, 256, 256]
    assert reader.read_size == 256
    assert in_use(pool) == 0


def test_read_size_steps_down_after_several_small_reads() -> None:
    """Three reads in a row that fit the class below move the size down a class."""
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder(), initial_size=256)
    sock = FakeSocket(recv=[Deliver(b"x" * 10)] * 3)
    for _ in range(2):
        reader.on_readable(sock)
        assert reader.read_size == 256
    reader.on_readable(sock)
    assert reader.read_size == 64


def test_a_medium_read_resets_the_small_read_count() -> None:
    """A read too big for the class below breaks a run of small reads."""
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder(), initial_size=256)
    steps = [Deliver(b"x"), Deliver(b"x"), Deliver(b"y" * 100)] + [Deliver(b"z")] * 2
    sock = FakeSocket(recv=steps)
    for _ in steps:
        reader.on_readable(sock)
    assert reader.read_size == 256
    reader.on_readable(FakeSocket(recv=[Deliver(b"z")]))
    assert reader.read_size == 64


def test_smallest_class_never_steps_down() -> None:
    """At the smallest class small reads change nothing."""
    reader = ReadinessReader(make_pool(), Recorder(), initial_size=1)
    assert reader.read_size == 16
    sock = FakeSocket(recv=[Deliver(b"x")] * 5)
    for _ in range(5):
        reader.on_readable(sock)
    assert reader.read_size == 16


def test_fixed_read_size_asks_for_exactly_that_many_bytes() -> None:
    """adaptive=False reads exactly initial_size bytes, whatever the class."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, initial_size=10, adaptive=False)
    sock = FakeSocket(recv=[Deliver(bytes(25)), WouldBlock()])
    reader.on_readable(sock)
    assert [c.size for c in sock.calls] == [10, 10, 10]
    assert handler.chunks == [bytes(10), bytes(10), bytes(5)]
    assert reader.read_size == 10


def test_default_initial_size_is_a_class_of_at_least_2048() -> None:
    """Without initial_size the first read uses the smallest class >= 2048."""
    assert ReadinessReader(BufferPool(), Recorder()).read_size == 2048
    big = BufferPool(size_classes=(1024, 4096, 65536))
    assert ReadinessReader(big, Recorder()).read_size == 4096
    assert ReadinessReader(make_pool(), Recorder()).read_size == 256
    assert ReadinessReader(big, Recorder(), adaptive=False).read_size == 4096
    assert ReadinessReader(make_pool(), Recorder(), adaptive=False).read_size == 256


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"read_budget": 0}, "read_budget must be at least 1, not 0"),
        ({"initial_size": 0}, "initial_size 0 is outside 1..256"),
        ({"initial_size": 257}, "initial_size 257 is outside 1..256"),
    ],
)
def test_bad_construction_is_a_value_error(kwargs: dict[str, int], match: str) -> None:
    """A budget below 1 or a size the pool cannot serve is refused."""
    pool = make_pool()
    with pytest.raises(ValueError, match=match):
        ReadinessReader(pool, Recorder(), **kwargs)  # type: ignore[arg-type]
    assert pool.stats().acquires == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"read_budget": 1.5}, "read_budget must be an int, not float"),
        ({"read_budget": True}, "read_budget must be an int, not bool"),
        ({"initial_size": "64"}, "initial_size must be an int, not str"),
        ({"initial_size": 2.5, "adaptive": False}, "initial_size must be an int"),
    ],
)
def test_construction_with_a_non_int_is_a_type_error(
    kwargs: dict[str, object], match: str
) -> None:
    """A budget or size that is not an int is refused by name, not used."""
    pool = make_pool()
    with pytest.raises(TypeError, match=match):
        ReadinessReader(pool, Recorder(), **kwargs)  # type: ignore[arg-type]
    assert pool.stats().acquires == 0


class DataOnly:
    """Half a handler: no eof_received."""

    def data_received(self, view: memoryview) -> None:
        """Drop the bytes."""


@pytest.mark.parametrize(
    ("handler", "match"),
    [(object(), "no data_received"), (DataOnly(), "no eof_received")],
)
def test_handler_without_the_protocol_is_refused_at_construction(
    handler: object, match: str
) -> None:
    """A handler missing a ReadHandler method is a TypeError before any read."""
    with pytest.raises(TypeError, match=match):
        ReadinessReader(make_pool(), handler)  # type: ignore[arg-type]


@pytest.mark.parametrize("name", ["SSLWantReadError", "SSLWantWriteError"])
def test_tls_want_errors_end_the_event_like_would_block(name: str) -> None:
    """A TLS socket with part of a record would block: no error, nothing held."""
    want = getattr(ssl, name)()
    handler = Recorder()
    pool = make_pool()
    reader = ReadinessReader(pool, handler, initial_size=16)
    sock = ScriptedSocket(want, b"x" * 16, InterruptedError(), want, b"tail")
    assert reader.on_readable(sock)
    assert (sock.calls, handler.chunks, in_use(pool)) == (1, [], 0)
    assert reader.on_readable(sock)
    assert (sock.calls, handler.data, in_use(pool)) == (4, b"x" * 16, 0)
    assert reader.on_readable(sock)
    assert (handler.data, reader.at_eof) == (b"x" * 16 + b"tail", False)


def test_fatal_tls_error_propagates_unchanged() -> None:
    """An SSLError that is not a want-error reaches the caller as the same object."""
    error = ssl.SSLError(1, "bad record mac")
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder())
    with pytest.raises(ssl.SSLError) as info:
        reader.on_readable(ScriptedSocket(error))
    assert info.value is error
    assert in_use(pool) == 0


def test_socket_error_after_an_interrupt_propagates_unchanged() -> None:
    """A reset right after EINTR reaches the caller as the same object."""
    error = ConnectionResetError(errno.ECONNRESET, "reset")
    pool = make_pool()
    sock = ScriptedSocket(InterruptedError(), error)
    with pytest.raises(ConnectionResetError) as info:
        ReadinessReader(pool, Recorder()).on_readable(sock)
    assert (info.value, sock.calls, in_use(pool)) == (error, 2, 0)


def test_exhausted_pool_raises_before_reading_and_loses_nothing() -> None:
    """PoolExhausted comes before any recv_into; the bytes wait in the socket."""
    pool = BufferPool(size_classes=(64,), slab_size=64, max_bytes=64)
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    sock = ScriptedSocket(b"abc")
    held = pool.acquire(64)
    with pytest.raises(PoolExhausted, match="max_bytes=64"):
        reader.on_readable(sock)
    assert (sock.calls, handler.chunks, reader.at_eof) == (0, [], False)
    held.release()
    assert reader.on_readable(sock)
    assert (handler.data, in_use(pool)) == (b"abc", 0)


def test_exhausted_pool_error_is_clean_and_the_reader_reads_again() -> None:
    """PoolExhausted carries no internal exception; a later call reads again."""
    pool = BufferPool(size_classes=(64,), slab_size=64, max_bytes=64)
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    for _ in range(2):  # a cold pool, then a warm one that lent and got back
        held = pool.acquire(64)
        sock = ScriptedSocket(b"abc")
        with pytest.raises(PoolExhausted) as info:
            reader.on_readable(sock)
        assert info.value.__cause__ is None
        assert info.value.__context__ is None
        held.release()
        assert reader.on_readable(sock) is True
    assert (handler.data, in_use(pool), reader.at_eof) == (b"abcabc", 0, False)


def test_exhausted_in_the_middle_of_an_event_keeps_what_was_read() -> None:
    """The pool runs dry after a read the handler kept: nothing read is lost."""
    pool = BufferPool(size_classes=(16,), slab_size=16, max_bytes=16)
    kept: list[PooledBuffer] = []

    class Keeper(Recorder):
        def data_received(self, view: memoryview) -> None:
            super().data_received(view)
            kept.append(reader.take_buffer())

    handler = Keeper()
    reader = ReadinessReader(pool, handler, initial_size=16, adaptive=False)
    sock = ScriptedSocket(b"x" * 16, b"tail")
    with pytest.raises(PoolExhausted) as info:
        reader.on_readable(sock)
    assert info.value.__context__ is None
    assert (handler.data, sock.calls) == (b"x" * 16, 1)
    assert kept[0].filled == 16
    kept.pop().release()
    assert reader.on_readable(sock) is True
    assert handler.data == b"x" * 16 + b"tail"
    kept.pop().release()
    assert in_use(pool) == 0


def test_repr_shows_state_and_read_size() -> None:
    """The repr names the state and the next read size."""
    reader = ReadinessReader(make_pool(), Recorder(), initial_size=64)
    assert repr(reader) == "<ReadinessReader open read_size=64>"


@pytest.mark.slow
def test_megabytes_through_a_real_nonblocking_socketpair() -> None:
    """Random megabytes arrive intact, in order, through a real socketpair."""
    payload = os.urandom(8 * 1024 * 1024)
    pool = BufferPool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler)
    left, right = socket.socketpair()
    with left, right, selectors.DefaultSelector() as selector:
        right.setblocking(False)
        left.settimeout(30)

        def send() -> None:
            left.sendall(payload)
            left.shutdown(socket.SHUT_WR)

        sender = threading.Thread(target=send)
        sender.start()
        selector.register(right, selectors.EVENT_READ)
        events = 0
        while events < 100_000:
            assert selector.select(timeout=30), "socketpair stalled"
            events += 1
            assert in_use(pool) == 0
            if not reader.on_readable(right):
                break
        sender.join(30)
    assert handler.eofs == 1
    assert handler.data == payload
    assert in_use(pool) == 0
    assert reader.read_size == pool.largest_class


def test_take_buffer_hands_over_the_fill_length() -> None:
    """A buffer taken in data_received has the count of bytes read as its fill."""
    pool = BufferPool()
    taken: list[PooledBuffer] = []

    class Keep:
        def data_received(self, view: memoryview) -> None:
            taken.append(reader.take_buffer())

        def eof_received(self) -> None:
            return None

    reader = ReadinessReader(pool, Keep())
    a, b = socket.socketpair()
    with a, b:
        b.setblocking(False)
        a.sendall(b"hello")
        reader.on_readable(b)
    assert [buf.filled for buf in taken] == [5]
    assert bytes(taken[0].view[: taken[0].filled]) == b"hello"
    taken[0].release()


# -- pausing, counting, and telling the socket's errors apart -----------------


class Pauser(Recorder):
    """A handler that pauses its reader after the first chunk."""

    reader: ReadinessReader

    def data_received(self, view: memoryview) -> None:
        super().data_received(view)
        self.reader.paused = True


def test_pausing_inside_data_received_ends_the_call() -> None:
    """paused set by the handler: no further read in this call or the next."""
    pool = make_pool()
    handler = Pauser()
    reader = ReadinessReader(pool, handler, initial_size=16)
    handler.reader = reader
    sock = FakeSocket(recv=[Deliver(b"a" * 16), Deliver(b"b" * 16)])
    assert reader.on_readable(sock)
    assert handler.chunks == [b"a" * 16]
    assert reader.on_readable(sock)
    assert handler.chunks == [b"a" * 16]
    reader.paused = False
    assert reader.on_readable(sock)
    assert handler.chunks[1] == b"b" * 16
    assert in_use(pool) == 0


def test_bytes_received_counts_what_the_handler_got() -> None:
    """bytes_received is the sum of the chunks handed over."""
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, initial_size=16)
    sock = FakeSocket(recv=[Deliver(b"x" * 40), WouldBlock(), Deliver(b"y" * 5)])
    reader.on_readable(sock)
    assert reader.bytes_received == len(handler.data) == 40
    reader.on_readable(sock)
    reader.on_readable(sock)
    assert reader.bytes_received == len(handler.data) == 45


def test_recv_failed_tells_the_sockets_error_from_the_handlers() -> None:
    """recv_failed: true after recv_into raised, false after the handler did."""
    pool = make_pool()
    reader = ReadinessReader(pool, Raiser())
    with pytest.raises(KeyError):
        reader.on_readable(FakeSocket(recv=[Deliver(b"hi")]))
    after_handler = reader.recv_failed
    reset = ConnectionResetError(errno.ECONNRESET, "reset")
    with pytest.raises(ConnectionResetError) as info:
        reader.on_readable(ScriptedSocket(reset))
    assert info.value is reset
    assert (after_handler, reader.recv_failed) == (False, True)
    assert in_use(pool) == 0


def test_recv_failed_after_an_interrupted_read() -> None:
    """A socket error on the retry after EINTR is the socket's too."""
    pool = make_pool()
    reader = ReadinessReader(pool, Recorder())
    broken = BrokenPipeError(errno.EPIPE, "gone")
    with pytest.raises(BrokenPipeError):
        reader.on_readable(ScriptedSocket(InterruptedError(), broken))
    assert reader.recv_failed
