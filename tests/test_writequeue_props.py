"""WriteQueue properties under random writes and hostile send schedules.

Invariants 1, 2, 4 and 6 of DESIGN.md, checked after every operation against
:class:`bufkit.testing.FakeSocket`: the wire is a prefix of the concatenated
writes, completions fire once and in order, ``pending`` is written minus
accepted, a fault fails every pending completion with the one exception and
gives pooled buffers back, and pause/resume match the watermark crossings.
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
    """Build one buffer of ``kind`` holding ``size`` bytes of ``fill``."""
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
        buf.view[:size] = raw
        return (buf, size)
    return raw


def apply_write(queue: WriteQueue, op: Write, model: Model, pool: BufferPool) -> None:
    """Make ``op`` on the queue and record what the model expects."""
    fill = len(model.ends) % 251
    items = [make_item(op.kind, size, pool, fill) for size in op.sizes]
    index = len(model.ends)

    def on_done(exc: BaseException | None) -> None:
        model.fired.append((index, exc))

    callback = on_done if op.callback else None
    before = len(model.data)
    if len(items) == 1:
        item = items[0]
        if isinstance(item, tuple):
            queue.write(item[0], callback, nbytes=item[1])
            model.data += bytes([fill]) * item[1]
        else:
            queue.write(item, callback, copy=op.kind != "handover")  # type: ignore[arg-type]
            model.data += memoryview(item).cast("B")  # type: ignore[arg-type]
    else:
        plain: list[object] = []
        for item in items:
            if isinstance(item, tuple):
                buf, size = item
                if size < buf.size:  # writelines sends whole buffers
                    buf.view[size:] = bytes([fill]) * (buf.size - size)
                plain.append(buf)
                model.data += bytes([fill]) * buf.size
            else:
                plain.append(item)
                model.data += memoryview(item).cast("B")  # type: ignore[arg-type]
        queue.writelines(plain, callback)  # type: ignore[arg-type]
    model.ends.append(len(model.data) if op.callback else -1)
    model.pending += len(model.data) - before
    if not model.paused and model.pending > queue.high_water:
        model.paused = True
        model.expected_events.append("pause")


def follow_sends(queue: WriteQueue, sock: FakeSocket, model: Model) -> None:
    """Replay the socket's new calls into the model's pending trajectory."""
    calls = sock.calls
    for call in calls[model.calls_seen :]:
        if call.result:
            model.pending -= call.result
            if model.paused and model.pending <= queue.low_water:
                model.paused = False
                model.expected_events.append("resume")
    model.calls_seen = len(calls)


def check(queue: WriteQueue, sock: FakeSocket, model: Model, pool: BufferPool) -> None:
    """Every invariant that holds between operations."""
    wire = sock.wire
    assert bytes(model.data[: len(wire)]) == wire
    if queue.state is not QueueState.FAILED:
        assert queue.pending == len(model.data) - len(wire) == model.pending
        due = [i for i, end in enumerate(model.ends) if 0 <= end <= len(wire)]
        assert model.fired == [(i, None) for i in due]
    assert [name for name, _ in model.events] == model.expected_events
    assert queue.paused is model.paused
    for name, pending in model.events:
        if name == "pause":
            assert pending > queue.high_water
        else:
            assert pending <= queue.low_water
    assert bool(queue) is (queue.pending > 0)


@given(
    ops=ops,
    schedule=st.lists(send_steps, max_size=30),
    fault=st.none() | st.tuples(st.integers(0, 30), faults),
    high=st.integers(0, 100_000),
    low=st.one_of(st.just(0), st.integers(0, 100_000)),
    coalesce=st.sampled_from([0, 64, 2048]),
)
def test_queue_against_a_hostile_socket(
    ops: list[Write | Flush],
    schedule: list[SendStep],
    fault: tuple[int, int] | None,
    high: int,
    low: int,
    coalesce: int,
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
        on_pause=lambda: model.events.append(("pause", queue.pending)),
        on_resume=lambda: model.events.append(("resume", queue.pending)),
        coalesce_below=coalesce,
    )
    error: OSError | None = None
    for op in [*ops, *[Flush()] * (len(schedule) + 2)]:
        if isinstance(op, Write):
            if error is not None:
                with pytest.raises(QueueFailedError) as refused:
                    queue.write(b"late")
                assert refused.value.__cause__ is error
                continue
            apply_write(queue, op, model, pool)
        elif error is None:
            try:
                drained = queue.flush(sock)
            except OSError as exc:
                error = exc
            else:
                assert drained is (queue.pending == 0)
            follow_sends(queue, sock, model)
        check(queue, sock, model, pool)
        assert (len(queue) == 0) is (queue.pending == 0)  # no empty entries
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
