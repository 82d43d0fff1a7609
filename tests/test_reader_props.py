"""Property tests: the reader and framers under drawn cuts, EAGAIN and EINTR."""

from __future__ import annotations

import struct
from collections.abc import Callable
from typing import Literal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bufkit import (
    BufferPool,
    DelimiterFramer,
    FrameTooLarge,
    FramingError,
    LengthPrefixedFramer,
    ReadinessReader,
    WriteQueue,
)
from bufkit.testing import Deliver, Eof, FakeSocket, RecvStep, SendStep, WouldBlock
from bufkit.testing.strategies import recv_schedules, send_schedules
from tests._reader_support import CLASSES, make_pool, reader_options

READ_CLASS_MAX = CLASSES[-1]
MAX_FRAME = 300
HEADERS = ["!H", "!I", "<Q", "!B"]
DELIMITERS = [b"\n", b"\r\n", b"ab", b"aba"]


def class_for(size: int) -> int:
    return next(c for c in CLASSES if c >= size)


def class_below(size: int) -> int:
    """The size class just under ``size`` (0 below the smallest)."""
    return max((c for c in CLASSES if c < size), default=0)


class Recorder:
    """A handler that copies what it gets and counts EOFs."""

    def __init__(self) -> None:
        self.data = bytearray()
        self.eofs = 0

    def data_received(self, view: memoryview) -> None:
        self.data += view

    def eof_received(self) -> None:
        self.eofs += 1


def drive(
    reader: ReadinessReader, sock: FakeSocket, after_event: Callable[[], None]
) -> None:
    """Call on_readable as a loop would until EOF, checking after each event."""
    for _ in range(10_000):
        sock.mark_waited()
        still_open = reader.on_readable(sock)
        after_event()
        if not still_open:
            return
    raise AssertionError("no end of file")  # pragma: no cover


def collector() -> tuple[list[bytes], Callable[[memoryview], None]]:
    """A list of frames and the on_frame callback that copies into it."""
    frames: list[bytes] = []
    return frames, lambda frame: frames.append(bytes(frame))


def lp_stream(messages: list[bytes], fmt: str, includes_header: bool) -> bytes:
    extra = struct.calcsize(fmt) if includes_header else 0
    return b"".join(struct.pack(fmt, len(m) + extra) + m for m in messages)


def splits(stream: bytes) -> list[list[RecvStep]]:
    """Every way to cut ``stream`` once, with EAGAIN at the cut, then EOF."""
    schedules: list[list[RecvStep]] = []
    for cut in range(len(stream) + 1):
        steps: list[RecvStep] = [Deliver(part) for part in (stream[:cut],) if part]
        steps.append(WouldBlock())
        steps += [Deliver(part) for part in (stream[cut:],) if part]
        steps.append(Eof())
        schedules.append(steps)
    return schedules


# Messages near the limit too: an off-by-one in max_frame shows there.
any_message = st.binary(max_size=MAX_FRAME) | st.binary(
    min_size=MAX_FRAME - 2, max_size=MAX_FRAME
)


@given(data=st.data(), options=reader_options)
def test_handler_sees_exactly_the_bytes_sent(
    data: st.DataObject, options: dict[str, int]
) -> None:
    """Whatever the cuts, EAGAINs and EINTRs, the handler gets every byte once."""
    payload = data.draw(st.binary(max_size=2000), label="payload")
    schedule = data.draw(
        recv_schedules(payload, max_chunks=None, interrupts=True), label="schedule"
    )
    pool = make_pool()
    handler = Recorder()
    reader = ReadinessReader(pool, handler, **options)  # type: ignore[arg-type]
    sock = FakeSocket(recv=schedule)

    def idle() -> None:
        assert pool.stats().buffers_in_use == 0

    drive(reader, sock, idle)
    assert bytes(handler.data) == payload
    assert handler.eofs == 1
    assert reader.at_eof


@given(
    data=st.data(),
    messages=st.lists(any_message, max_size=12),
    fmt=st.sampled_from(HEADERS),
    includes_header=st.booleans(),
    options=reader_options,
)
def test_length_prefixed_frames_round_trip(
    data: st.DataObject,
    messages: list[bytes],
    fmt: str,
    includes_header: bool,
    options: dict[str, int],
) -> None:
    """Frames out equal messages in; the pool is idle whenever no frame is pending."""
    if fmt == "!B":
        messages = [m[: 255 - 8] for m in messages]
    stream = lp_stream(messages, fmt, includes_header)
    schedule = data.draw(
        recv_schedules(stream, max_chunks=None, interrupts=True), label="schedule"
    )
    pool = make_pool()
    frames: list[bytes] = []
    framer = LengthPrefixedFramer(
        pool,
        lambda f: frames.append(bytes(f)),
        max_frame=MAX_FRAME,
        header=fmt,
        includes_header=includes_header,
    )
    reader = ReadinessReader(pool, framer, **options)  # type: ignore[arg-type]
    check_memory = _memory_check(pool, framer, class_for(MAX_FRAME))
    drive(reader, FakeSocket(recv=schedule), check_memory)
    assert frames == messages
    assert pool.stats().buffers_in_use == 0


def _memory_check(
    pool: BufferPool,
    framer: LengthPrefixedFramer | DelimiterFramer,
    leftover_class: int,
) -> Callable[[], None]:
    """Between events: idle framer -> idle pool; always within the bound."""

    def check() -> None:
        stats = pool.stats()
        if framer.pending_bytes == 0:
            assert stats.buffers_in_use == 0
        assert stats.bytes_in_use <= leftover_class
        assert framer.pending_bytes <= MAX_FRAME + 8

    return check


@st.composite
def delimited(draw: st.DrawFn) -> tuple[bytes, list[bytes]]:
    """A delimiter and messages that do not contain it (even at the seam)."""
    delimiter = draw(st.sampled_from(DELIMITERS))
    alphabet = st.sampled_from(sorted(set(delimiter + b"xb\r\n")))
    message = st.lists(alphabet, max_size=MAX_FRAME).map(bytes) | any_message
    clean = message.filter(lambda m: (m + delimiter).find(delimiter) == len(m))
    return delimiter, draw(st.lists(clean, max_size=10))


@given(data=st.data(), case=delimited(), options=reader_options)
def test_delimited_frames_round_trip(
    data: st.DataObject,
    case: tuple[bytes, list[bytes]],
    options: dict[str, int],
) -> None:
    """Lines out equal lines in, delimiters split anywhere; idle means no buffer."""
    delimiter, messages = case
    stream = b"".join(m + delimiter for m in messages)
    schedule = data.draw(
        recv_schedules(stream, max_chunks=None, interrupts=True), label="schedule"
    )
    pool = make_pool()
    frames: list[bytes] = []
    framer = DelimiterFramer(
        pool,
        lambda f: frames.append(bytes(f)),
        max_frame=MAX_FRAME,
        delimiter=delimiter,
    )
    reader = ReadinessReader(pool, framer, **options)  # type: ignore[arg-type]
    limit = class_for(MAX_FRAME + len(delimiter) - 1)
    drive(reader, FakeSocket(recv=schedule), _memory_check(pool, framer, limit))
    assert frames == messages
    assert pool.stats().buffers_in_use == 0


BadKind = Literal["too_large", "negative", "below_header"]


def bad_header(kind: BadKind, fmt: str, includes_header: bool) -> bytes:
    size = struct.calcsize(fmt)
    if kind == "too_large":
        return struct.pack(fmt, MAX_FRAME + 1 + (size if includes_header else 0))
    if kind == "negative":
        return struct.pack(fmt.lower(), -1)
    return struct.pack(fmt, size - 1)


def expect_error(
    stream: bytes,
    make: Callable[[BufferPool, Callable[[memoryview], object]], object],
    error: type[FramingError],
    before: list[bytes],
    peak_bound: int,
) -> None:
    """At every single cut: ``before`` frames, then ``error``; nothing held."""
    for schedule in splits(stream):
        pool = make_pool()
        frames, on_frame = collector()
        framer = make(pool, on_frame)
        assert isinstance(framer, LengthPrefixedFramer | DelimiterFramer)
        reader = ReadinessReader(pool, framer, initial_size=16)
        sock = FakeSocket(recv=schedule)
        with pytest.raises(error) as info:
            drive(reader, sock, lambda: None)
        assert type(info.value) is error, schedule
        assert frames == before, schedule
        stats = pool.stats()
        assert stats.buffers_in_use == 0
        assert stats.peak_bytes_in_use <= peak_bound, schedule


@given(
    before=st.lists(st.binary(max_size=40), max_size=3),
    fmt=st.sampled_from(["!H", "!I"]),
    includes_header=st.booleans(),
    kind=st.sampled_from(["too_large", "negative", "below_header"]),
    junk=st.binary(max_size=40),
)
def test_bad_length_header_at_every_split(
    before: list[bytes], fmt: str, includes_header: bool, kind: BadKind, junk: bytes
) -> None:
    """Oversized or malformed headers raise the right error wherever the cut is."""
    if kind == "below_header" and not includes_header:
        kind = "negative"
    header = fmt.lower() if kind == "negative" else fmt
    stream = lp_stream(before, header, includes_header) + bad_header(
        kind, fmt, includes_header
    )
    error = FrameTooLarge if kind == "too_large" else FramingError
    expect_error(
        stream + junk,
        lambda pool, on_frame: LengthPrefixedFramer(
            pool,
            on_frame,
            max_frame=MAX_FRAME,
            header=header,
            includes_header=includes_header,
        ),
        error,
        before,
        class_for(MAX_FRAME) + READ_CLASS_MAX,
    )


@given(
    before=st.lists(
        st.binary(max_size=40).map(lambda m: m.replace(b"\n", b"")), max_size=3
    ),
    extra=st.integers(1, 20),
    terminated=st.booleans(),
)
def test_overlong_line_at_every_split(
    before: list[bytes], extra: int, terminated: bool
) -> None:
    """A line longer than max_frame raises FrameTooLarge wherever the cut is."""
    max_frame = 50
    stream = b"".join(m + b"\n" for m in before) + b"L" * (max_frame + extra)
    if terminated:
        stream += b"\n"
    expect_error(
        stream,
        lambda pool, on_frame: DelimiterFramer(
            pool, on_frame, max_frame=max_frame, delimiter=b"\n"
        ),
        FrameTooLarge,
        before,
        # the leftover's class, the one it grew from (held for the copy), a read
        class_for(max_frame) + class_below(class_for(max_frame)) + READ_CLASS_MAX,
    )


@given(data=st.data(), kind=st.sampled_from(["too_large", "negative"]))
def test_bad_header_with_drawn_cuts(data: st.DataObject, kind: BadKind) -> None:
    """Drawn cuts and pauses: the error comes, and memory stays bounded."""
    before = data.draw(st.lists(st.binary(max_size=MAX_FRAME), max_size=4))
    stream = lp_stream(before, "!i", False) + bad_header(kind, "!I", False)
    stream += data.draw(st.binary(max_size=600))
    schedule = data.draw(recv_schedules(stream, max_chunks=None, interrupts=True))
    pool = make_pool()
    frames: list[bytes] = []
    framer = LengthPrefixedFramer(
        pool, lambda f: frames.append(bytes(f)), max_frame=MAX_FRAME, header="!i"
    )
    reader = ReadinessReader(pool, framer)
    error = FrameTooLarge if kind == "too_large" else FramingError
    with pytest.raises(error):
        drive(reader, FakeSocket(recv=schedule), lambda: None)
    assert frames == before
    stats = pool.stats()
    assert stats.buffers_in_use == 0
    assert stats.peak_bytes_in_use <= class_for(MAX_FRAME) + READ_CLASS_MAX


class ZeroCopyEcho:
    """A handler that forwards each received buffer to a write queue, uncopied."""

    def __init__(self, queue: WriteQueue) -> None:
        self.queue = queue
        self.reader: ReadinessReader | None = None
        self.eofs = 0

    def data_received(self, view: memoryview) -> None:
        assert self.reader is not None
        self.queue.write(self.reader.take_buffer(), nbytes=len(view))

    def eof_received(self) -> None:
        self.eofs += 1


@given(
    data=st.data(),
    send=send_schedules(min_steps=1, max_accept=200, interrupts=True),
    options=reader_options,
    coalesce=st.sampled_from([0, 100]),
)
def test_zero_copy_echo_sends_every_byte_once_and_returns_every_buffer(
    data: st.DataObject,
    send: list[SendStep],
    options: dict[str, int],
    coalesce: int,
) -> None:
    """take_buffer into a WriteQueue: wire equals input; no chunk lent twice or kept."""
    payload = data.draw(st.binary(min_size=1, max_size=3000), label="payload")
    recv = data.draw(
        recv_schedules(payload, max_chunks=None, interrupts=True), label="recv"
    )
    pool = make_pool()
    queue = WriteQueue(coalesce_below=coalesce)
    echo = ZeroCopyEcho(queue)
    reader = ReadinessReader(pool, echo, **options)  # type: ignore[arg-type]
    echo.reader = reader
    sock = FakeSocket(send=send, recv=recv)

    def after_event() -> None:
        queue.flush(sock)
        in_use = pool.stats().bytes_in_use
        assert in_use <= queue.held_bytes  # a chunk is lent only while it is queued
        # A chunk lent again while still queued would be overwritten by a
        # later read: the wire would differ from the payload.
        assert sock.wire == payload[: len(sock.wire)]

    drive(reader, sock, after_event)
    for _ in range(len(send) + 2):
        sock.mark_waited()
        if queue.flush(sock):
            break
    assert sock.wire == payload
    assert echo.eofs == 1
    assert pool.stats().buffers_in_use == 0
