"""Reading with ReadinessReader and framing 64-byte frames, against the usual way.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_reader.py --benchmark-enable``.

1. 256 MiB through a non-blocking ``socketpair``: ``ReadinessReader`` with a
   pool against ``sock.recv(65536)``, which allocates a fresh ``bytes`` per read
   (what asyncio and Twisted do). Compare the rows of group ``read 256 MiB``;
   each row's ``extra_info`` (``--benchmark-json``) has MB/s, the reads made,
   the pool's peak bytes in use and reserved (or the bytes the ``recv`` way
   allocated), and the peak of traced Python memory over one untimed pass
   (for the pool that is its one 1 MiB slab, reserved once).
2. ``LengthPrefixedFramer`` on 64-byte (and 1 KiB, 16 KiB) frames against a
   naive ``bytearray`` accumulator (``buf += data``, ``del buf[:n]``): group
   ``frame``; frames/s in ``extra_info``.
"""

from __future__ import annotations

import selectors
import socket
import struct
import threading
import time
import tracemalloc
from collections.abc import Callable

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bufkit import BufferPool, LengthPrefixedFramer, ReadinessReader

TOTAL = 256 * 1024 * 1024
SEND_BLOCK = memoryview(bytes(range(256)) * 4096)  # 1 MiB, sent over and over
READ_SIZE = 65536
LAST_RUN: dict[str, int] = {}  # counters of the last transfer, for extra_info


class Counter:
    """The cheapest handler: counts bytes."""

    def __init__(self) -> None:
        self.count = 0
        self.eof = False

    def data_received(self, view: memoryview) -> None:
        self.count += len(view)

    def eof_received(self) -> None:
        self.eof = True


def _sender(sock: socket.socket) -> None:
    """Send TOTAL bytes, then shut the writing side."""
    sent = 0
    while sent < TOTAL:
        sock.sendall(SEND_BLOCK)
        sent += len(SEND_BLOCK)
    sock.shutdown(socket.SHUT_WR)


def _transfer(read_until_eof: Callable[[socket.socket], int]) -> float:
    """Send TOTAL bytes through a socketpair; return seconds spent reading."""
    LAST_RUN.clear()
    left, right = socket.socketpair()
    with left, right:
        left.settimeout(60)
        right.setblocking(False)
        thread = threading.Thread(target=_sender, args=(left,))
        start = time.perf_counter()
        thread.start()
        got = read_until_eof(right)
        elapsed = time.perf_counter() - start
        thread.join(60)
    assert got == TOTAL
    return elapsed


def _with_reader(sock: socket.socket, slab_size: int = 1 << 20) -> int:
    """Readiness loop: select, then ReadinessReader.on_readable."""
    pool = BufferPool(slab_size=slab_size)
    handler = Counter()
    reader = ReadinessReader(pool, handler, initial_size=READ_SIZE)
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            selector.select()
            if not reader.on_readable(sock):
                break
    stats = pool.stats()
    assert stats.buffers_in_use == 0
    LAST_RUN.update(
        reads=stats.acquires,
        pool_peak_bytes_in_use=stats.peak_bytes_in_use,
        pool_bytes_reserved=stats.bytes_reserved,
    )
    return handler.count


def _with_reader_small_slab(sock: socket.socket) -> int:
    """The same with 64 KiB slabs: the pool reserves one chunk, not 1 MiB."""
    return _with_reader(sock, slab_size=READ_SIZE)


def _with_recv(sock: socket.socket) -> int:
    """The allocating way: select, then one recv(65536) per event, as asyncio."""
    handler = Counter()
    reads = 0
    with selectors.DefaultSelector() as selector:
        selector.register(sock, selectors.EVENT_READ)
        while True:
            selector.select()
            reads += 1
            try:
                data = sock.recv(READ_SIZE)
            except BlockingIOError:  # pragma: no cover - spurious wakeup
                continue
            if not data:
                handler.eof_received()
                break
            handler.data_received(memoryview(data))
    LAST_RUN.update(reads=reads, bytes_allocated=reads * READ_SIZE)
    return handler.count


def _peak_traced(read_until_eof: Callable[[socket.socket], int]) -> int:
    """The peak of Python-traced memory over one untimed transfer."""
    tracemalloc.start()
    try:
        _transfer(read_until_eof)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="read 256 MiB", min_rounds=3, warmup=False)
@pytest.mark.parametrize(
    "way",
    [_with_reader, _with_reader_small_slab, _with_recv],
    ids=["ReadinessReader+pool", "ReadinessReader+pool(64 KiB slabs)", "recv(65536)"],
)
def test_read_256_mib(
    benchmark: BenchmarkFixture, way: Callable[[socket.socket], int]
) -> None:
    """256 MiB through a socketpair; extra_info has MB/s and peak traced bytes."""
    times: list[float] = []
    benchmark.pedantic(  # type: ignore[no-untyped-call]
        lambda: times.append(_transfer(way)), rounds=3, iterations=1
    )
    benchmark.extra_info["MB_per_s"] = round(TOTAL / min(times) / 1e6, 1)
    benchmark.extra_info.update(LAST_RUN)
    benchmark.extra_info["peak_traced_bytes"] = _peak_traced(way)


STREAM_BYTES = 16 * 1024 * 1024  # about 16 MiB of frames per pass


def _chunks(payload_size: int) -> tuple[int, list[memoryview]]:
    """A stream of ``!I``-prefixed frames cut into 64 KiB reads."""
    frame = struct.pack("!I", payload_size) + bytes(payload_size)
    frames = STREAM_BYTES // len(frame)
    stream = memoryview(frame * frames)
    return frames, [stream[i : i + READ_SIZE] for i in range(0, len(stream), READ_SIZE)]


def _framer_pass(chunks: list[memoryview]) -> int:
    """Every chunk through a LengthPrefixedFramer; frames are views."""
    pool = BufferPool()
    seen = [0]

    def on_frame(frame: memoryview) -> None:
        seen[0] += 1

    framer = LengthPrefixedFramer(pool, on_frame, max_frame=65536)
    for chunk in chunks:
        framer.data_received(chunk)
    assert pool.stats().buffers_in_use == 0
    return seen[0]


def _naive_pass(chunks: list[memoryview]) -> int:
    """The bytearray accumulator: append, then cut frames off the front."""
    buf = bytearray()
    seen = [0]

    def on_frame(frame: bytearray) -> None:
        seen[0] += 1

    unpack_from = struct.Struct("!I").unpack_from
    for chunk in chunks:
        buf += chunk
        while len(buf) >= 4:
            (size,) = unpack_from(buf, 0)
            if len(buf) < 4 + size:
                break
            on_frame(buf[4 : 4 + size])
            del buf[: 4 + size]
    return seen[0]


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="frame")
@pytest.mark.parametrize("payload_size", [64, 1024, 16384])
@pytest.mark.parametrize(
    "way", [_framer_pass, _naive_pass], ids=["LengthPrefixedFramer", "bytearray"]
)
def test_frame(
    benchmark: BenchmarkFixture,
    way: Callable[[list[memoryview]], int],
    payload_size: int,
) -> None:
    """About 16 MiB of equal frames in 64 KiB reads; extra_info has frames/s."""
    frames, chunks = _chunks(payload_size)
    count = benchmark(way, chunks)
    assert count == frames
    if benchmark.stats is not None:  # None with --benchmark-disable
        mean: float = benchmark.stats.stats.mean
        benchmark.extra_info["frames_per_s"] = round(frames / mean)
