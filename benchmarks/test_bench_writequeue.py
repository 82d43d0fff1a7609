"""WriteQueue: syscalls per response, draining cost, write+advance rate, and
the measurement behind the coalescing threshold.

Run: ``.venv/bin/python -m pytest benchmarks/test_bench_writequeue.py
--benchmark-enable``. Call counts are asserted (they are not speeds); the
timings are read side by side within each group.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from bufkit import BufferPool, WriteQueue

if TYPE_CHECKING:
    from typing_extensions import Buffer

SMALL_WRITES = 32
SMALL_SIZE = 100
DRAIN_TOTAL = 64 << 20
PER_CALL = 64 << 10
OPS = 1000  # write+advance pairs per timed call


class CountingSocket:
    """Wraps a real socket and counts the send calls made on it."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.sendmsg_calls = 0
        self.send_calls = 0

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        """Count, then ``sendmsg`` on the real socket."""
        self.sendmsg_calls += 1
        return self.sock.sendmsg(buffers)

    def send(self, data: Buffer, /) -> int:
        """Count, then ``send`` on the real socket."""
        self.send_calls += 1
        return self.sock.send(data)


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A non-blocking socketpair with room for a whole response."""
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)
    yield a, b
    a.close()
    b.close()


def _drain_peer(peer: socket.socket, room: bytearray) -> None:
    while True:
        try:
            peer.recv_into(room)
        except BlockingIOError:
            return


# -- 1. syscalls per response with many small writes ---------------------------
@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="32 x 100 B response")
def test_queue_one_flush(
    benchmark: BenchmarkFixture, pair: tuple[socket.socket, socket.socket]
) -> None:
    """32 writes to a WriteQueue, then one flush: one sendmsg."""
    counting, room = CountingSocket(pair[0]), bytearray(1 << 16)
    queue = WriteQueue()
    chunk = b"r" * SMALL_SIZE

    responses = [0]

    def respond() -> None:
        for _ in range(SMALL_WRITES):
            queue.write(chunk)
        queue.flush(counting)
        _drain_peer(pair[1], room)
        responses[0] += 1

    benchmark(respond)
    calls_per_response = counting.sendmsg_calls / responses[0]
    benchmark.extra_info["send calls per response"] = calls_per_response
    assert counting.sendmsg_calls > 0
    assert counting.send_calls == 0


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="32 x 100 B response")
def test_send_on_every_write(
    benchmark: BenchmarkFixture, pair: tuple[socket.socket, socket.socket]
) -> None:
    """The common pattern: ``sock.send`` on every write: 32 sends."""
    counting, room = CountingSocket(pair[0]), bytearray(1 << 16)
    chunk = b"r" * SMALL_SIZE

    responses = [0]

    def respond() -> None:
        for _ in range(SMALL_WRITES):
            counting.send(chunk)
        _drain_peer(pair[1], room)
        responses[0] += 1

    benchmark(respond)
    benchmark.extra_info["send calls per response"] = counting.send_calls / responses[0]


def test_one_flush_is_one_sendmsg(pair: tuple[socket.socket, socket.socket]) -> None:
    """The count the benchmark above reports, checked once without timing."""
    counting = CountingSocket(pair[0])
    queue = WriteQueue()
    for _ in range(SMALL_WRITES):
        queue.write(b"r" * SMALL_SIZE)
    assert queue.flush(counting)
    assert (counting.sendmsg_calls, counting.send_calls) == (1, 0)


# -- 2. draining 64 MiB at 64 KiB per call ---------------------------------------
class Sink:
    """A socket that takes (copies) at most 64 KiB per call, like a kernel."""

    def __init__(self) -> None:
        self.room = memoryview(bytearray(PER_CALL))
        self.calls = 0

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        """Copy up to 64 KiB from the gather list."""
        self.calls += 1
        n = 0
        for buffer in buffers:
            view = memoryview(buffer)
            k = min(len(view), PER_CALL - n)
            self.room[n : n + k] = view[:k]
            n += k
            if n == PER_CALL:
                break
        return n

    def send(self, data: Buffer, /) -> int:
        """Copy up to 64 KiB from ``data``."""
        self.calls += 1
        view = memoryview(data)
        n = min(len(view), PER_CALL)
        self.room[:n] = view[:n]
        return n


DRAIN_SHAPES = {"1 x 64 MiB": [DRAIN_TOTAL], "1024 x 64 KiB": [PER_CALL] * 1024}


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="drain 64 MiB at 64 KiB per call")
@pytest.mark.parametrize("shape", list(DRAIN_SHAPES))
def test_drain_queue(benchmark: BenchmarkFixture, shape: str) -> None:
    """WriteQueue: write everything, then flush until drained."""
    payloads = [bytes(n) for n in DRAIN_SHAPES[shape]]

    def drain() -> int:
        sink = Sink()
        queue = WriteQueue(high_water=1 << 40)
        for data in payloads:
            queue.write(data)
        while not queue.flush(sink):
            pass
        return sink.calls

    calls = benchmark.pedantic(drain, rounds=5, iterations=1)  # type: ignore[no-untyped-call]
    assert calls == DRAIN_TOTAL // PER_CALL


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="drain 64 MiB at 64 KiB per call")
@pytest.mark.parametrize("shape", list(DRAIN_SHAPES))
def test_drain_bytearray(benchmark: BenchmarkFixture, shape: str) -> None:
    """asyncio 3.11's way: one bytearray, ``send`` it, ``del buf[:n]``."""
    payloads = [bytes(n) for n in DRAIN_SHAPES[shape]]

    def drain() -> int:
        sink, buf = Sink(), bytearray()
        for data in payloads:
            buf += data
        while buf:
            del buf[: sink.send(buf)]
        return sink.calls

    calls = benchmark.pedantic(drain, rounds=5, iterations=1)  # type: ignore[no-untyped-call]
    assert calls == DRAIN_TOTAL // PER_CALL


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="drain 64 MiB at 64 KiB per call")
def test_drain_bytes_slicing(benchmark: BenchmarkFixture) -> None:
    """The quadratic trap, ``data = data[n:]`` on bytes: 16 MiB (64 takes ~40 s)."""
    payload = bytes(DRAIN_TOTAL // 4)

    def drain() -> int:
        sink, data = Sink(), payload
        while data:
            data = data[sink.send(data) :]
        return sink.calls

    calls = benchmark.pedantic(drain, rounds=1, iterations=1)  # type: ignore[no-untyped-call]
    assert calls == DRAIN_TOTAL // 4 // PER_CALL


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="drain 64 KiB writes: cost per call, 4 vs 64 MiB")
@pytest.mark.parametrize("mib", [4, 64])
def test_drain_depth(benchmark: BenchmarkFixture, mib: int) -> None:
    """Linearity: per-call cost of draining N MiB queued as 64 KiB writes.

    Flat across depths when a gather looks only at the views it returns
    (compare the ``us per call`` extra info of the two cells). One shared
    64 KiB payload keeps the copy in cache, so only the queue's cost varies.
    """
    payload = bytes(PER_CALL)
    count = (mib << 20) // PER_CALL

    def setup() -> tuple[tuple[WriteQueue, Sink], dict[str, object]]:
        queue = WriteQueue(high_water=1 << 40)
        for _ in range(count):
            queue.write(payload)
        return (queue, Sink()), {}

    def drain(queue: WriteQueue, sink: Sink) -> int:
        while not queue.flush(sink):
            pass
        return sink.calls

    calls = benchmark.pedantic(drain, setup=setup, rounds=7)  # type: ignore[no-untyped-call]
    assert calls == count
    if benchmark.stats is not None:  # None under --benchmark-disable
        per_call = benchmark.stats.stats.min / count * 1e6
        benchmark.extra_info["us per call"] = round(per_call, 3)


# -- 3. write + advance rate --------------------------------------------------------
@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="write+advance, 1000 pairs per call")
@pytest.mark.parametrize("size", [16, 100, 4096])
@pytest.mark.parametrize("pattern", ["ping-pong", "burst", "burst+callback"])
def test_write_advance(benchmark: BenchmarkFixture, size: int, pattern: str) -> None:
    """``write`` then ``advance``: alternating, or 1000 writes then one advance."""
    queue = WriteQueue(high_water=1 << 40)
    chunk = b"w" * size
    write, advance = queue.write, queue.advance

    def done(exc: BaseException | None) -> None:
        pass

    def ping_pong() -> None:
        for _ in range(OPS):
            write(chunk)
            advance(size)

    def burst() -> None:
        for _ in range(OPS):
            write(chunk)
        queue.buffers()
        advance(size * OPS)

    def burst_callback() -> None:
        for _ in range(OPS):
            write(chunk, done)
        queue.buffers()
        advance(size * OPS)

    run = {"ping-pong": ping_pong, "burst": burst, "burst+callback": burst_callback}
    benchmark(run[pattern])
    assert not queue


# -- the measurement behind COALESCE_BELOW --------------------------------------
@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="coalescing: 64 KiB of writes, flushed to a socketpair")
@pytest.mark.parametrize("size", [64, 256, 1024, 2048, 4096, 16384])
@pytest.mark.parametrize("mode", ["own entry", "coalesced"])
def test_coalescing(
    benchmark: BenchmarkFixture,
    pair: tuple[socket.socket, socket.socket],
    size: int,
    mode: str,
) -> None:
    """Per-write cost with and without copying into the shared tail."""
    coalesce = 0 if mode == "own entry" else size + 1
    queue = WriteQueue(coalesce_below=coalesce, high_water=1 << 40)
    pair[0].setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    chunk, room = b"c" * size, bytearray(1 << 20)
    count = (64 << 10) // size

    def batch() -> None:
        for _ in range(count):
            queue.write(chunk)
        while not queue.flush(pair[0]):
            _drain_peer(pair[1], room)
        _drain_peer(pair[1], room)

    benchmark(batch)
    benchmark.extra_info["writes per call"] = count


# -- 4. write + flush, the per-event path --------------------------------------------
class NullSink:
    """A socket that accepts everything at once and copies nothing."""

    def sendmsg(self, buffers: Iterable[Buffer], /) -> int:
        """Accept the whole gather list."""
        return sum(memoryview(b).nbytes for b in buffers)

    def send(self, data: Buffer, /) -> int:
        """Accept the whole buffer."""
        return memoryview(data).nbytes


@pytest.mark.benchmark_suite
@pytest.mark.benchmark(group="write+flush, 1000 pairs per call")
@pytest.mark.parametrize("size", [100, 4096])
@pytest.mark.parametrize("kind", ["bytes", "pooled"])
@pytest.mark.parametrize("sink", ["socketpair", "null sink"])
def test_write_flush(
    benchmark: BenchmarkFixture,
    pair: tuple[socket.socket, socket.socket],
    size: int,
    kind: str,
    sink: str,
) -> None:
    """``write`` then ``flush``: one send per pair, as an echo server makes."""
    queue, pool = WriteQueue(), BufferPool()
    chunk = b"f" * size
    real = sink == "socketpair"
    target: socket.socket | NullSink = pair[0] if real else NullSink()
    peer, room = pair[1], memoryview(bytearray(size))
    write, flush, acquire = queue.write, queue.flush, pool.acquire

    def pairs() -> None:
        for _ in range(OPS):
            if kind == "pooled":
                buf = acquire(size)
                buf.view[:size] = chunk
                write(buf, nbytes=size)
            else:
                write(chunk)
            flush(target)
            if real:
                peer.recv_into(room)

    benchmark(pairs)
    assert not queue
    assert pool.stats().buffers_in_use == 0
