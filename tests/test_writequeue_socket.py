"""WriteQueue against real kernel sockets: small send buffers, a slow peer.

Megabytes written in many sizes and kinds drain through ``flush`` on a
non-blocking ``socketpair`` whose peer reads a little at a time; the bytes
received hash-equal the bytes written, every completion fires once in order,
and every pooled buffer goes back to its pool.
"""

from __future__ import annotations

import array
import hashlib
import random
import select
import socket
import ssl
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import BufferPool, ReadinessReader, WriteQueue
from bufkit._gather import GATHER_BYTES
from tests._tls import handshake, wrap_pair

SIZES = (0, 1, 7, 100, 1500, 2047, 2048, 5000, 16384, 65536, 300_000)
DEADLINE = 60.0


@contextmanager
def small_socketpair(sndbuf: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking socketpair with a small send buffer, closed on exit."""
    a, b = socket.socketpair()
    try:
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, sndbuf)
        a.setblocking(False)
        b.setblocking(False)
        yield a, b
    finally:
        a.close()
        b.close()


def read_some(sock: socket.socket, room: memoryview, digest: hashlib._Hash) -> int:
    """One slow read: at most ``len(room)`` bytes, fed to ``digest``."""
    try:
        n = sock.recv_into(room)
    except BlockingIOError:
        return 0
    digest.update(room[:n])
    return n


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_megabytes_through_a_small_send_buffer(seed: int) -> None:
    """~6 MiB of mixed writes reach a slow peer intact and in order."""
    rng = random.Random(seed)
    pool = BufferPool()
    sent_digest, got_digest = hashlib.sha256(), hashlib.sha256()
    fired: list[tuple[int, BaseException | None]] = []
    expected: list[int] = []  # the writes made with a completion, in order
    pauses: list[bool] = []
    queue = WriteQueue(
        high_water=256 * 1024,
        low_water=64 * 1024,
        on_pause=lambda: pauses.append(True),
        on_resume=lambda: pauses.append(False),
    )
    total = received = writes = 0
    room = memoryview(bytearray(rng.choice([997, 4096, 32768])))
    started = time.monotonic()
    with small_socketpair(4096) as (writer, reader):
        while total < 6 << 20 or queue:
            assert time.monotonic() - started < DEADLINE, "socket test ran too long"
            if total < 6 << 20 and not queue.paused:
                total += write_random(
                    queue, rng, pool, sent_digest, fired, expected, writes
                )
                writes += 1
            if not queue.flush(writer):
                select.select([reader], [writer], [], 1.0)
            received += read_some(reader, room, got_digest)
        while received < total:
            assert time.monotonic() - started < DEADLINE, "peer never got everything"
            select.select([reader], [], [], 1.0)
            received += read_some(reader, room, got_digest)
    assert got_digest.hexdigest() == sent_digest.hexdigest()
    assert fired == [(i, None) for i in expected]  # each once, in order
    assert pauses == [i % 2 == 0 for i in range(len(pauses))]
    assert pool.stats().buffers_in_use == 0


def write_random(
    queue: WriteQueue,
    rng: random.Random,
    pool: BufferPool,
    digest: hashlib._Hash,
    fired: list[tuple[int, BaseException | None]],
    expected: list[int],
    index: int,
) -> int:
    """Make one random write of a random kind; return its size."""
    size = rng.choice(SIZES)
    data = rng.randbytes(size)
    digest.update(data)

    def on_done(exc: BaseException | None) -> None:
        fired.append((index, exc))

    callback = on_done if rng.random() < 0.5 else None
    if callback is not None:
        expected.append(index)
    kind = rng.choice(["bytes", "bytearray", "array", "pooled", "lines"])
    if kind == "pooled" and 0 < size <= 65536:
        buf = pool.acquire(size)
        buf.view[:size] = data
        buf.filled = size
        queue.write(buf, callback)
    elif kind == "bytearray":
        queue.write(bytearray(data), callback)
    elif kind == "array" and size % 4 == 0:
        queue.write(array.array("i", data), callback)
    elif kind == "lines":
        cut = rng.randrange(size + 1)
        queue.writelines([data[:cut], memoryview(data)[cut:]], callback)
    else:
        queue.write(data, callback)
    return size


@pytest.mark.slow
def test_reset_peer_fails_pending_writes_with_the_kernel_error() -> None:
    """A vanished peer: flush raises the kernel's error, completions get it."""
    fired: list[BaseException | None] = []
    queue = WriteQueue(high_water=1 << 30)
    with small_socketpair(4096) as (writer, reader):
        for _ in range(64):
            queue.write(bytes(65536), fired.append)
        assert not queue.flush(writer)
        reader.close()
        with pytest.raises((BrokenPipeError, ConnectionResetError)) as info:
            queue.flush(writer)
    done = [exc for exc in fired if exc is None]
    failed = [exc for exc in fired if exc is not None]
    assert len(done) + len(failed) == 64  # each write's completion, once
    assert failed
    assert all(exc is info.value for exc in failed)
    assert info.value.errno is not None


@pytest.mark.slow
def test_tls_socket_drains_through_the_send_fallback(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """An SSLSocket (no working sendmsg, want-write errors) drains intact."""
    rng = random.Random(7)
    sent_digest, got_digest = hashlib.sha256(), hashlib.sha256()
    queue = WriteQueue()
    total = received = 0
    started = time.monotonic()
    with small_socketpair(4096) as (a, b):
        writer, reader = wrap_pair(tls_contexts, a, b)
        with writer, reader:
            handshake(writer, reader)
            for _ in range(400):
                data = rng.randbytes(rng.choice((1, 10, 100, 3000, 40000)))
                sent_digest.update(data)
                queue.write(data)
                total += len(data)
            room = memoryview(bytearray(8192))
            while received < total:
                assert time.monotonic() - started < DEADLINE, "TLS drain hung"
                if queue:
                    queue.flush(writer)
                try:
                    n = reader.recv_into(room)
                except ssl.SSLWantReadError:
                    select.select([reader], [writer] if queue else [], [], 0.05)
                    continue
                got_digest.update(room[:n])
                received += n
    assert got_digest.hexdigest() == sent_digest.hexdigest()
    assert not queue


class Digest:
    """A read handler that hashes what it is given."""

    def __init__(self) -> None:
        self.digest = hashlib.sha256()
        self.received = 0

    def data_received(self, view: memoryview) -> None:
        self.digest.update(view)
        self.received += len(view)

    def eof_received(self) -> None:
        raise AssertionError("no end of file expected")


@pytest.mark.slow
def test_tls_queue_to_readiness_reader(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext],
) -> None:
    """Queue to reader over TLS: partial records are would-block, bytes intact."""
    rng = random.Random(11)
    sent_digest = hashlib.sha256()
    pool = BufferPool()
    handler = Digest()
    queue = WriteQueue()
    total = 0
    started = time.monotonic()
    with small_socketpair(4096) as (a, b):
        writer, tls = wrap_pair(tls_contexts, a, b)
        with writer, tls:
            handshake(writer, tls)
            reader = ReadinessReader(pool, handler, read_budget=2)
            for _ in range(300):
                data = rng.randbytes(rng.choice((1, 10, 100, 3000, 40000)))
                sent_digest.update(data)
                queue.write(data)
                total += len(data)
            while handler.received < total:
                assert time.monotonic() - started < DEADLINE, "TLS read hung"
                if queue:
                    queue.flush(writer)
                select.select([tls], [writer] if queue else [], [], 0.01)
                assert reader.on_readable(tls)
                assert pool.stats().buffers_in_use == 0
    assert handler.digest.hexdigest() == sent_digest.hexdigest()


def _record(done: list[int], n: int) -> Callable[[BaseException | None], None]:
    """A completion that appends ``n`` to ``done`` when it succeeds."""

    def on_done(exc: BaseException | None) -> None:
        assert exc is None
        done.append(n)

    return on_done


@pytest.mark.slow
@settings(max_examples=40, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(SIZES[:-1]),
            st.sampled_from(("bytes", "pooled")),
            st.integers(0, 3),  # flushes before the peer reads
        ),
        min_size=1,
        max_size=30,
    ),
    max_gather=st.sampled_from((100, 4096, GATHER_BYTES)),
)
def test_one_buffer_at_a_time_reaches_a_real_socket_intact(
    steps: list[tuple[int, str, int]], max_gather: int
) -> None:
    """A lone pending buffer (tail or entry) goes out by plain send, intact."""
    pool = BufferPool()
    queue = WriteQueue(max_gather_bytes=max_gather)
    rng = random.Random(len(steps))
    sent_digest, got_digest = hashlib.sha256(), hashlib.sha256()
    done: list[int] = []
    total = received = 0
    room = memoryview(bytearray(3000))
    with small_socketpair(4096) as (a, b):
        for n, (size, kind, flushes) in enumerate(steps):
            data = rng.randbytes(size)
            sent_digest.update(data)
            total += size
            if kind == "pooled" and size:
                buf = pool.acquire(size)
                buf.view[:size] = data
                queue.write(buf, _record(done, n), nbytes=size)
            else:
                queue.write(data, _record(done, n))
            for _ in range(flushes):
                queue.flush(a)
            received += read_some(b, room, got_digest)
        started = time.monotonic()
        while received < total:
            assert time.monotonic() - started < DEADLINE, "drain hung"
            queue.flush(a)
            received += read_some(b, room, got_digest)
    assert not queue
    assert got_digest.hexdigest() == sent_digest.hexdigest()
    assert done == list(range(len(steps)))
    assert pool.stats().buffers_in_use == 0
