"""WriteQueue properties under random writes and hostile send schedules.

Invariants 1, 2, 3, 4 and 6 of docs/design.md, checked after every operation
against :class:`bufkit.testing.FakeSocket`: the wire is a prefix of the
concatenated writes (pooled buffers contribute their fill), completions fire
once and in order, ``pending`` is written minus accepted, ``held_bytes`` adds
the rest of every owned chunk not yet released, a flush makes at most
``write_spin`` send calls and returns whether the queue drained, a fault
fails every pending completion with the one exception and gives pooled
buffers back, and pause/resume fire exactly where ``held_bytes`` crosses the
watermarks.
"""

from __future__ import annotations

import array
import errno
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit import BufferPool, QueueFailedError, QueueState, WriteQueue
from bufkit.testing import Accept, AcceptAll, Fail, FakeSocket, SendStep, WouldBlock
from tests.test_writequeue import entries

KINDS = ("bytes", "bytearray", "view", "array-i", "pooled", "pooled-big", "handover")


@dataclass
class Write:
    """One write (or writelines) to make."""

    kind: str
    sizes: list[int]
    callback: bool


@dataclass
class Flush:
    """One flush to make."""


@dataclass
class Model:
    """What the queue should have done so far."""

    data: bytearray = field(default_factory=bytearray)
    ends: list[int] = field(default_factory=list)  # stream end of each callback
    fired: list[tuple[int, BaseException | None]] = field(default_factory=list)
    events: list[tuple[str, int]] = field(default_factory=list)
    expected_events: list[str] = field(default_factory=list)
    paused: bool = False
    pending: int = 0
    calls_seen: int = 0
    owned: list[tuple[int, int, int]] = field(default_factory=list)  # start, end, chunk

    def held(self) -> int:
        """Pending bytes plus the unsendable rest of each chunk still lent."""
        accepted = len(self.data) - self.pending
        extra = sum(
            chunk - (end - max(start, accepted))
            for start, end, chunk in self.owned
            if end > accepted
        )
        return self.pending + extra


sizes = st.one_of(
    st.integers(0, 64), st.integers(0, 5000), st.sampled_from([2047, 2048, 65536])
)
writes = st.builds(
    Write,
    kind=st.sampled_from(KINDS),
    sizes=st.lists(sizes, min_size=1, max_size=4),
    callback=st.booleans(),
)
ops = st.lists(st.one_of(writes, st.just(Flush())), min_size=1, max_size=40)
send_steps: st.SearchStrategy[SendStep] = st.one_of(
    st.builds(Accept, st.integers(1, 9000)),
    st.just(WouldBlock()),
    st.just(AcceptAll()),
)
faults = st.sampled_from([errno.ECONNRESET, errno.EPIPE, errno.ENOBUFS])


def make_item(kind: str, size: int, pool: BufferPool, fill: int) -> bytes | object:
    """Build one buffer of ``kind`` holding ``size`` bytes of ``fill``.

    A pooled buffer comes as ``(buffer, size)``, its fill set to ``size``;
    the rest of its chunk holds a marker that must never reach the wire.
    """
    raw = bytes([fill]) * size
    if kind in ("bytearray", "handover"):
        return bytearray(raw)
    if kind == "view":
        return memoryview(bytearray(raw))
    if kind == "array-i":
        return array.array("i", raw[: size - size % 4])
    if kind.startswith("pooled"):
        size = min(size + 2048, 65536) if kind == "pooled-big" else size
        raw = bytes([fill]) * size
        buf = pool.acquire(max(size, 1))
        buf.view[:] = b"\xee" * buf.size
        buf.view[:size] = raw
        buf.filled = size
        return (buf, size)
    return raw


def apply_write(
    queue: WriteQueue, op: Write, model: Model, pool: BufferPool, coalesce: int
) -> None:
    """Make ``op`` on the queue and record what the model expects."""
    fill = len(model.ends) % 251
    items = [make_item(op.kind, size, pool, fill) for size in op.sizes]
    index = len(model.ends)

    def on_done(exc: BaseException | None) -> None:
        model.fired.append((index, exc))

    def add(data: bytes | memoryview, chunk: int = 0) -> None:
        start = len(model.data)
        model.data += data
        if chunk and len(data) >= max(coalesce, 1):
            model.owned.append((start, len(model.data), chunk))

    callback = on_done if op.callback else None
    before = len(model.data)
    if len(items) == 1:
        item = items[0]
        if isinstance(item, tuple):
            buf, size = item
            chunk = buf.size
            if size and op.callback:  # its fill, by default
                queue.write(buf, callback)
            else:
                queue.write(buf, callback, nbytes=size)
            add(bytes([fill]) * size, chunk)
        else:
            queue.write(item, callback, copy=op.kind != "handover")  # type: ignore[arg-type]
            add(memoryview(item).cast("B"))  # type: ignore[arg-type]
    else:
        plain: list[object] = []
        for item in items:
            if isinstance(item, tuple):
                buf, size = item
                if not size:  # writelines refuses an unfilled buffer
                    buf.view[0] = fill
                    buf.filled = size = 1
                plain.append(buf)
                add(bytes([fill]) * size, buf.size)
            else:
                plain.append(item)
                add(memoryview(item).cast("B"))  # type: ignore[arg-type]
        queue.writelines(plain, callback)  # type: ignore[arg-type]
    model.ends.append(len(model.data) if op.callback else -1)
    model.pending += len(model.data) - before
    if not model.paused and model.held() > queue.high_water:
        model.paused = True
        model.expected_events.append("pause")


def follow_sends(queue: WriteQueue, sock: FakeSocket, model: Model, spin: int) -> None:
    """Replay one flush's send calls into the model's held trajectory."""
    calls = sock.calls[model.calls_seen :]
    assert len(calls) <= spin  # the write-spin limit
    for call in calls:
        if call.result:
            model.pending -= call.result
            if model.paused and model.held() <= queue.low_water:
                model.paused = False
                model.expected_events.append("resume")
    model.calls_seen += len(calls)


def check(queue: WriteQueue, sock: FakeSocket, model: Model, pool: BufferPool) -> None:
    """Every invariant that holds between operations."""
    wire = sock.wire
    assert bytes(model.data[: len(wire)]) == wire
    failed = queue.state is QueueState.FAILED
    if not failed:
        assert queue.pending == len(model.data) - len(wire) == model.pending
        assert queue.held_bytes == model.held()
        due = [i for i, end in enumerate(model.ends) if 0 <= end <= len(wire)]
        assert model.fired == [(i, None) for i in due]
        in_use = pool.stats().bytes_in_use
        assert in_use == sum(c for _, end, c in model.owned if end > len(wire))
    assert [name for name, _ in model.events] == model.expected_events
    assert queue.paused is (model.paused or failed)
    for name, held in model.events:
        if name == "pause":
            assert held > queue.high_water
        else:
            assert held <= queue.low_water
    assert bool(queue) is (queue.pending > 0)


@given(
    ops=ops,
    schedule=st.lists(send_steps, max_size=30),
    fault=st.none() | st.tuples(st.integers(0, 30), faults),
    high=st.integers(0, 100_000),
    low=st.one_of(st.just(0), st.integers(0, 100_000)),
    coalesce=st.sampled_from([0, 64, 2048]),
    spin=st.sampled_from([1, 2, 16]),
)
def test_queue_against_a_hostile_socket(
    ops: list[Write | Flush],
    schedule: list[SendStep],
    fault: tuple[int, int] | None,
    high: int,
    low: int,
    coalesce: int,
    spin: int,
) -> None:
    """Writes and flushes under partial sends, EAGAIN and faults keep invariants."""
    if fault is not None:
        schedule.insert(min(fault[0], len(schedule)), Fail(fault[1]))
    sock = FakeSocket(send=schedule)
    pool = BufferPool()
    model = Model()
    low = min(low, high)
    queue = WriteQueue(
        high_water=high,
        low_water=low,
        on_pause=lambda: model.events.append(("pause", queue.held_bytes)),
        on_resume=lambda: model.events.append(("resume", queue.held_bytes)),
        coalesce_below=coalesce,
        write_spin=spin,
    )
    error: OSError | None = None
    # Enough flushes to finish the schedule, then drain at `spin` calls each.
    for op in [*ops, *[Flush()] * (len(schedule) + 2 + 60 // spin)]:
        if isinstance(op, Write):
            if error is not None:
                with pytest.raises(QueueFailedError) as refused:
                    queue.write(b"late")
                assert refused.value.__cause__ is error
                continue
            apply_write(queue, op, model, pool, coalesce)
        elif error is None:
            try:
                drained = queue.flush(sock)
            except OSError as exc:
                error = exc
            else:
                assert drained is (queue.pending == 0)
            follow_sends(queue, sock, model, spin)
        check(queue, sock, model, pool)
        assert (entries(queue) == 0) is (queue.pending == 0)  # no empty entries
    if error is None:
        assert sock.wire == bytes(model.data)
        assert [i for i, _ in model.fired] == [
            i for i, end in enumerate(model.ends) if end >= 0
        ]
    else:
        assert queue.state is QueueState.FAILED
        assert queue.pending == 0
        accepted = len(sock.wire)
        for i, end in enumerate(model.ends):
            if end < 0:
                continue
            expected = None if end <= accepted else error
            assert model.fired.count((i, expected)) == 1
        assert [i for i, _ in model.fired] == sorted(i for i, _ in model.fired)
    assert pool.stats().buffers_in_use == 0


@given(sizes=st.lists(st.integers(0, 300), max_size=60), cut=st.integers(1, 50))
def test_gather_lists_cover_pending_exactly(sizes: list[int], cut: int) -> None:
    """Concatenated gather lists, advanced by hand, are exactly the writes."""
    queue = WriteQueue(coalesce_below=0, max_gather_bytes=cut * 7)
    expected = b"".join(bytes([i % 256]) * n for i, n in enumerate(sizes))
    for i, n in enumerate(sizes):
        queue.write(bytes([i % 256]) * n)
    out = bytearray()
    while queue:
        views = queue.buffers(max_count=cut)
        assert 1 <= len(views) <= cut
        assert sum(map(len, views)) <= cut * 7
        chunk = b"".join(views)[: max(1, len(views) * 3)]
        out += chunk
        queue.advance(len(chunk))
    assert bytes(out) == expected
