"""WriteQueue: a lone pooled buffer written to an empty queue (the echo path).

The queue keeps such a buffer aside, without building its list and ledger,
and sends it with one plain ``send`` on a :class:`socket.socket`; anything
else done to the queue first moves it into the general ledgers. These tests
check that the bytes, completions, watermarks and ownership are those of the
general path, on real socket pairs and on the fake socket.
"""

from __future__ import annotations

import errno
import gc
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import BufferPool, PooledBuffer, QueueState, WriteQueue
from bufkit.testing import Accept, Fail, FakeSocket
from tests.test_writequeue_ownership import watched_queue

CHUNK = 16384  # a size class of the default pool


@contextmanager
def socket_pair(sndbuf: int | None = None) -> Iterator[tuple[socket.socket, ...]]:
    """A non-blocking socketpair, closed on exit."""
    a, b = socket.socketpair()
    try:
        if sndbuf is not None:
            a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
            b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        a.setblocking(False)
        b.setblocking(False)
        yield a, b
    finally:
        a.close()
        b.close()


def filled(pool: BufferPool, data: bytes, size: int = CHUNK) -> PooledBuffer:
    """A pooled buffer of ``size`` bytes holding ``data`` from its start."""
    buf = pool.acquire(size)
    buf.view[: len(data)] = data
    buf.filled = len(data)
    return buf


def receive(sock: socket.socket, count: int) -> bytes:
    """Read exactly ``count`` bytes that are already in ``sock``'s buffer."""
    got = b""
    while len(got) < count:
        got += sock.recv(count - len(got))
    return got


def _record(done: list[int], n: int) -> Callable[[BaseException | None], None]:
    """A completion that records ``n`` when it succeeds."""

    def on_done(exc: BaseException | None) -> None:
        assert exc is None
        done.append(n)

    return on_done


def _read(sock: socket.socket) -> bytes:
    """What a non-blocking socket has now, up to 64 KiB (maybe nothing)."""
    try:
        return sock.recv(65536)
    except BlockingIOError:
        return b""


def test_lone_buffer_leaves_in_one_send_and_goes_back_to_the_pool() -> None:
    """Echo's shape: one pooled write, one flush, the chunk is free again."""
    pool = BufferPool()
    queue = WriteQueue()
    data = bytes(range(256)) * 16
    with socket_pair() as (a, b):
        queue.write(filled(pool, data))
        assert (queue.pending, queue.held_bytes) == (len(data), CHUNK)
        assert pool.stats().buffers_in_use == 1
        assert queue.flush(a)
        assert receive(b, len(data)) == data
    assert (queue.pending, queue.held_bytes) == (0, 0)
    assert pool.stats().buffers_in_use == 0


def test_lone_buffer_with_a_completion_fires_it_once_sent() -> None:
    """The completion of the lone buffer fires after its send, with None."""
    pool = BufferPool()
    queue = WriteQueue()
    done: list[BaseException | None] = []
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"a" * 3000), done.append)
        assert done == []
        assert queue.flush(a)
        assert done == [None]
        assert receive(b, 3000) == b"a" * 3000


def test_write_after_a_lone_buffer_keeps_the_order() -> None:
    """A second write goes after the lone buffer, whatever its kind."""
    pool = BufferPool()
    queue = WriteQueue()
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"1" * 3000))
        queue.write(b"2" * 10)
        queue.write(filled(pool, b"3" * 5000))
        queue.writelines([b"4" * 3, filled(pool, b"5" * 2500)])
        assert queue.flush(a)
        want = b"1" * 3000 + b"2" * 10 + b"3" * 5000 + b"4" * 3 + b"5" * 2500
        assert receive(b, len(want)) == want
    assert pool.stats().buffers_in_use == 0


def test_short_writes_after_a_lone_buffer_follow_it() -> None:
    """Short writes after the lone buffer go to the tail and leave after it."""
    pool = BufferPool()
    queue = WriteQueue()
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"1" * 3000))
        queue.write(b"2" * 10)
        queue.write(bytearray(b"3" * 20))
        assert queue.pending == 3030
        assert queue.flush(a)
        assert receive(b, 3030) == b"1" * 3000 + b"2" * 10 + b"3" * 20
    assert pool.stats().buffers_in_use == 0


def test_advance_past_a_lone_buffer_into_the_tail_releases_it() -> None:
    """Sending the lone buffer and part of the tail gives the chunk back."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.write(filled(pool, b"1" * 2048, 2048))
    queue.write(b"2" * 244)
    assert queue.held_bytes == 2292
    queue.advance(2131)
    assert (queue.pending, queue.held_bytes) == (161, 161)
    assert pool.stats().buffers_in_use == 0
    assert b"".join(map(bytes, queue.buffers())) == b"2" * 161


def test_writelines_after_a_lone_buffer_keeps_the_order() -> None:
    """writelines() right after the lone buffer sends after it."""
    pool = BufferPool()
    queue = WriteQueue()
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"1" * 3000))
        queue.writelines([b"2" * 3, filled(pool, b"3" * 2500)])
        assert queue.flush(a)
        want = b"1" * 3000 + b"2" * 3 + b"3" * 2500
        assert receive(b, len(want)) == want
    assert pool.stats().buffers_in_use == 0


def test_small_pooled_writes_fill_and_seal_the_tail() -> None:
    """Pooled writes under the threshold are copied: each chunk is back at once."""
    pool = BufferPool()
    queue = WriteQueue(high_water=1 << 30)
    for i in range(40):
        queue.write(filled(pool, bytes([i]) * 2000, 2048))
        assert pool.stats().buffers_in_use == 0
    assert queue.held_bytes == queue.pending == 80000
    want = b"".join(bytes([i]) * 2000 for i in range(40))
    assert b"".join(map(bytes, queue.buffers())) == want


def test_buffers_and_advance_see_the_lone_buffer() -> None:
    """The caller-sends API gets exactly the lone buffer's bytes, in pieces."""
    pool = BufferPool()
    queue = WriteQueue()
    queue.write(filled(pool, b"abcdef" * 500))
    assert [bytes(v) for v in queue.buffers()] == [b"abcdef" * 500]
    queue.advance(4)
    assert pool.stats().buffers_in_use == 1
    assert b"".join(map(bytes, queue.buffers())) == (b"abcdef" * 500)[4:]
    queue.advance(queue.pending)
    assert pool.stats().buffers_in_use == 0


def test_partial_send_of_a_lone_buffer_keeps_the_rest_held() -> None:
    """A short send moves the cursor; the chunk stays lent until all went."""
    pool = BufferPool()
    queue = WriteQueue()
    data = bytes(range(256)) * 256  # 64 KiB: more than the socket takes
    buf = pool.acquire(len(data))
    buf.view[:] = data
    buf.filled = len(data)
    with socket_pair(4096) as (a, b):
        queue.write(buf)
        assert not queue.flush(a)
        sent = len(data) - queue.pending
        assert 0 < sent < len(data)
        assert queue.held_bytes == len(data)  # the whole chunk is still pinned
        got = b""
        while queue or len(got) < len(data):
            queue.flush(a)
            got += _read(b)
        assert got == data
    assert pool.stats().buffers_in_use == 0


@pytest.mark.parametrize("code", [errno.ECONNRESET, errno.EPIPE])
def test_lone_buffer_on_a_fake_socket_fails_and_is_released(code: int) -> None:
    """On a socket error the lone buffer goes back; its completion gets it."""
    pool = BufferPool()
    queue = WriteQueue()
    done: list[BaseException | None] = []
    queue.write(filled(pool, b"q" * 4000), done.append)
    sock = FakeSocket(send=[Accept(10), Fail(code)])
    assert not queue.flush(sock)
    with pytest.raises((ConnectionResetError, BrokenPipeError)) as info:
        queue.flush(sock)
    assert done == [info.value]
    assert sock.wire == b"q" * 10
    assert queue.state is QueueState.FAILED
    assert pool.stats().buffers_in_use == 0


def test_lone_buffer_to_a_closed_peer_frees_the_queue_without_the_collector() -> None:
    """The kernel's error on the one send: no cycle keeps the queue alive."""
    pool = BufferPool()
    enabled = gc.isenabled()
    gc.disable()
    try:
        queue, queue_ref = watched_queue()
        done: list[BaseException | None] = []
        queue.write(filled(pool, b"r" * 4000), done.append)
        with socket_pair() as (a, b):
            b.close()
            with pytest.raises((BrokenPipeError, ConnectionResetError)) as info:
                queue.flush(a)
        assert done == [info.value]
        assert pool.stats().buffers_in_use == 0
        del queue, info, done
        assert queue_ref() is None
    finally:
        if enabled:
            gc.enable()


def test_lone_buffer_released_behind_the_queue_raises_on_send() -> None:
    """Releasing a buffer the queue owns is reported when the queue lets go."""
    from bufkit import BufferReleasedError

    pool = BufferPool()
    queue = WriteQueue()
    buf = filled(pool, b"s" * 3000)
    queue.write(buf)
    buf.release()
    with socket_pair() as (a, _b), pytest.raises(BufferReleasedError):
        queue.flush(a)
    assert not queue


def test_lone_buffer_resumes_a_paused_writer_once_sent() -> None:
    """Above high water by its chunk, the lone buffer pauses; its send resumes."""
    pool = BufferPool()
    calls: list[str] = []
    queue = WriteQueue(
        high_water=4096,
        low_water=0,
        on_pause=lambda: calls.append("pause"),
        on_resume=lambda: calls.append("resume"),
    )
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"t" * 3000))  # holds its 16 KiB chunk
        assert calls == ["pause"]
        assert queue.flush(a)
        assert calls == ["pause", "resume"]
        assert receive(b, 3000) == b"t" * 3000


def test_closing_queue_with_a_lone_buffer_closes_once_sent() -> None:
    """close() while the lone buffer is pending: CLOSED after its send."""
    pool = BufferPool()
    queue = WriteQueue()
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"u" * 3000))
        queue.close()
        before = queue.state
        assert queue.flush(a)
        assert (before, queue.state) == (QueueState.CLOSING, QueueState.CLOSED)
        assert receive(b, 3000) == b"u" * 3000


def test_lone_buffer_larger_than_max_gather_goes_in_pieces() -> None:
    """A byte cap below the buffer's size: sent through the general path."""
    pool = BufferPool()
    queue = WriteQueue(max_gather_bytes=1000)
    with socket_pair() as (a, b):
        queue.write(filled(pool, b"v" * 3000))
        assert queue.flush(a)
        assert receive(b, 3000) == b"v" * 3000
    assert pool.stats().buffers_in_use == 0


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(("pooled", "bytes", "flush", "read", "advance")),
            st.integers(1, 20000),
        ),
        min_size=1,
        max_size=25,
    )
)
def test_any_mix_with_lone_buffers_reaches_a_real_socket_intact(
    steps: list[tuple[str, int]],
) -> None:
    """Pooled and bytes writes, flushes, reads and advances: exact bytes, order."""
    pool = BufferPool()
    queue = WriteQueue(high_water=1 << 30)
    wire = bytearray()  # what the peer received, and what advance() skipped
    written = bytearray()
    done: list[int] = []
    with socket_pair(4096) as (a, b):
        for n, (kind, size) in enumerate(steps):
            data = bytes([n % 251]) * size
            if kind == "pooled":
                queue.write(filled(pool, data, 65536), _record(done, n))
                written += data
            elif kind == "bytes":
                queue.write(data, _record(done, n))
                written += data
            elif kind == "flush":
                queue.flush(a)
            elif kind == "advance" and queue:
                # The caller sends the first view itself, as far as it goes.
                with suppress(BlockingIOError):
                    queue.advance(a.send(queue.buffers(1)[0]))
            elif kind == "read":
                wire += _read(b)
        while queue or len(wire) < len(written):
            queue.flush(a)
            wire += _read(b)
    assert wire == written
    writes = [n for n, (kind, _) in enumerate(steps) if kind in ("pooled", "bytes")]
    assert done == writes
    assert pool.stats().buffers_in_use == 0


def test_writelines_after_a_lone_pooled_buffer_keeps_every_byte() -> None:
    """writelines after a lone pooled buffer (tail, then a spill) sends every byte."""
    pool = BufferPool()
    queue = WriteQueue(coalesce_below=64)
    buf = pool.acquire(2048)
    buf.view[:] = b"\x00" * buf.size
    buf.filled = buf.size
    queue.write(buf)
    queue.writelines([b"\x01", b"\x02" * 64])
    sock = FakeSocket()
    assert queue.flush(sock)
    assert sock.wire == b"\x00" * 2048 + b"\x01" + b"\x02" * 64
    assert pool.stats().bytes_in_use == 0
