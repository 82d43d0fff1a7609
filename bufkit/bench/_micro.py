"""Queue and pool micro-benchmarks: ``python -m bufkit.bench._micro JSON``.

Run in a process of their own (so the bench's progress display does not
share their core), they print ``RESULT [rows]``, or ``SKIPPED reason`` when
the core primitives are not importable. Each figure is the best of several
repeats, in nanoseconds of the thread's CPU time (so time the thread spent
preempted by other work on a shared machine is not counted), beside the same
work done the plain way:

* **drain**: ``N`` MiB pending, sent to a sink that accepts 64 KiB per call,
  through ``WriteQueue.flush`` against ``bytearray`` + ``del buf[:n]`` (as one
  write, and as N*16 writes of 64 KiB: the cost per call must not grow with
  what is pending, so the figure per call is the same at 4, 16 and 64 MiB);
* **small writes behind pending data**: 32 writes of 100 bytes queued behind
  1 MiB, against ``buf += chunk``;
* **pool round trip**: ``acquire(n)`` + ``release()`` against ``bytearray(n)``.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Final

from bufkit.bench._wire import dump_line

__all__ = ["main", "run"]

_CALL: Final = 65536
_MIB: Final = 1 << 20


class _Sink:
    """A socket stand-in that accepts at most ``limit`` bytes per call."""

    def __init__(self, limit: int) -> None:
        self.limit = limit

    def sendmsg(self, buffers: Iterable[Any], /) -> int:
        accepted = 0
        for buffer in buffers:
            accepted += len(buffer)
            if accepted >= self.limit:
                return self.limit
        return accepted

    def send(self, data: Any, /) -> int:
        return min(self.limit, len(data))


_clock: Final = time.thread_time_ns


def _best(fn: Callable[[], object], repeats: int) -> int:
    """Return the least CPU time of ``fn`` over ``repeats`` runs, in ns."""
    best = None
    for _ in range(repeats):
        start = _clock()
        fn()
        elapsed = _clock() - start
        best = elapsed if best is None else min(best, elapsed)
    assert best is not None
    return best


def _bytearray_drain(total: int) -> Callable[[], object]:
    def drain() -> None:
        buf = bytearray(total)
        sink = _Sink(_CALL)
        start = _clock()
        while buf:
            del buf[: sink.send(buf)]
        _Timer.ns = _clock() - start

    return drain


class _Timer:
    """The last timed section (setup such as filling a buffer is not timed)."""

    ns = 0


def _queue_drain(total: int, chunks: int) -> Callable[[], object]:
    from bufkit import WriteQueue

    def drain() -> None:
        queue = WriteQueue(high_water=2 * total, low_water=0)
        piece = bytes(total // chunks)
        for _ in range(chunks):
            queue.write(piece)
        sink = _Sink(_CALL)
        start = _clock()
        while not queue.flush(sink):
            pass
        _Timer.ns = _clock() - start

    return drain


def _timed(fn: Callable[[], object], repeats: int) -> int:
    best = None
    for _ in range(repeats):
        fn()
        best = _Timer.ns if best is None else min(best, _Timer.ns)
    assert best is not None
    return best


def _row(name: str, ours: float, baseline_name: str, baseline: float) -> dict[str, Any]:
    return {
        "name": name,
        "bufkit_ns": ours,
        "baseline": baseline_name,
        "baseline_ns": baseline,
        "ratio": ours / baseline if baseline else None,
    }


def _drain_rows(repeats: int, sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    rows = []
    for mib in sizes:
        total = mib * _MIB
        calls = total // _CALL
        base = _timed(_bytearray_drain(total), repeats) / calls
        one = _timed(_queue_drain(total, 1), repeats) / calls
        many = _timed(_queue_drain(total, calls), repeats) / calls
        baseline = "bytearray + del buf[:n]"
        rows.append(
            _row(f"drain {mib} MiB, 1 write, per 64 KiB call", one, baseline, base)
        )
        rows.append(
            _row(
                f"drain {mib} MiB, {calls} writes, per 64 KiB call",
                many,
                baseline,
                base,
            )
        )
    return rows


def _small_writes(repeats: int, rounds: int) -> dict[str, Any]:
    from bufkit import WriteQueue

    chunk = b"x" * 100
    pending = bytes(_MIB)

    def queue_writes() -> None:
        for _ in range(rounds):
            queue = WriteQueue(high_water=4 * _MIB, low_water=0)
            queue.write(pending)
            write = queue.write
            for _ in range(32):
                write(chunk)

    def bytearray_writes() -> None:
        for _ in range(rounds):
            buf = bytearray(pending)
            for _ in range(32):
                buf += chunk

    ours = _best(queue_writes, repeats) / (rounds * 32)
    base = _best(bytearray_writes, repeats) / (rounds * 32)
    return _row("32 x 100 B writes behind 1 MiB, per write", ours, "buf += chunk", base)


def _pool_rows(repeats: int, count: int) -> list[dict[str, Any]]:
    from bufkit import BufferPool

    pool = BufferPool()
    rows = []
    for size in (2048, 16384, 65536):

        def round_trip(size: int = size, acquire: Any = pool.acquire) -> None:
            for _ in range(count):
                acquire(size).release()

        def allocate(size: int = size) -> None:
            for _ in range(count):
                bytearray(size)

        ours = _best(round_trip, repeats) / count
        base = _best(allocate, repeats) / count
        name = f"pool acquire+release {size // 1024} KiB"
        rows.append(_row(name, ours, f"bytearray({size})", base))
    return rows


def run(scale: float = 1.0) -> list[dict[str, Any]]:
    """Run every micro-benchmark and return the rows (``scale`` 0: a smoke run).

    Raises:
        ImportError: the core primitives are not importable.
    """
    try:
        from bufkit import BufferPool, WriteQueue  # noqa: F401
    except ImportError as exc:
        raise ImportError(f"the core primitives are not importable: {exc}") from exc
    if scale <= 0:  # a smoke test of the code paths, not a measurement
        return [*_drain_rows(1, (1,)), _small_writes(1, 1)]
    repeats = max(3, int(5 * scale))
    rows = _drain_rows(repeats, (4, 16, 64))
    rows.append(_small_writes(repeats, max(10, int(200 * scale))))
    rows.extend(_pool_rows(repeats, max(1000, int(20000 * scale))))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    """Run the micro-benchmarks with the JSON options in ``argv[0]``."""
    args = (sys.argv[1:] if argv is None else argv) or ["{}"]
    options = json.loads(args[0])
    try:
        rows = run(float(options.get("scale", 1.0)))
    except ImportError as exc:
        os.write(1, f"SKIPPED {exc}\n".encode())
        return 0
    os.write(1, dump_line("RESULT", rows).encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
