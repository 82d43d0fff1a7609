"""Framers: whole frames as views, leftovers copied only while a frame is pending."""

from __future__ import annotations

import itertools
import struct
import tracemalloc
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import bufkit.framing
from bufkit import (
    BufferPool,
    DelimiterFramer,
    FrameTooLarge,
    FramingError,
    LengthPrefixedFramer,
    PoolExhausted,
    ReadinessReader,
)
from bufkit.testing import Deliver, Eof, FakeSocket, WouldBlock

CLASSES = (16, 64, 256)


class Frames:
    """An on_frame callback that copies each frame and notes if it was zero-copy."""

    def __init__(self) -> None:
        self.frames: list[bytes] = []
        self.sources: list[object] = []

    def __call__(self, frame: memoryview) -> None:
        self.frames.append(bytes(frame))
        self.sources.append(frame.obj)


def make_pool(fallback: str = "raise") -> BufferPool:
    return BufferPool(
        size_classes=CLASSES,
        slab_size=1024,
        fallback=fallback,  # type: ignore[arg-type]
    )


def in_use(pool: BufferPool) -> int:
    return pool.stats().buffers_in_use


def lp(*messages: bytes, fmt: str = "!I", includes_header: bool = False) -> bytes:
    extra = struct.calcsize(fmt) if includes_header else 0
    return b"".join(struct.pack(fmt, len(m) + extra) + m for m in messages)


def feed(
    framer: LengthPrefixedFramer | DelimiterFramer, chunks: Iterable[bytes]
) -> None:
    for chunk in chunks:
        framer.data_received(memoryview(chunk))


def byte_by_byte(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


MESSAGES = [b"hello", b"", b"x" * 100, b"world!"]


def test_public_module_reexports_the_framers() -> None:
    """bufkit.framing is the public home of the framers and their errors."""
    assert bufkit.framing.LengthPrefixedFramer is LengthPrefixedFramer
    assert bufkit.framing.DelimiterFramer is DelimiterFramer
    assert bufkit.framing.FrameTooLarge is FrameTooLarge
    assert bufkit.framing.FramingError is FramingError


# -- LengthPrefixedFramer ------------------------------------------------------


def test_lp_whole_stream_is_all_zero_copy() -> None:
    """Frames inside one view are views of it; the pool lends nothing."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    data = lp(*MESSAGES)
    framer.data_received(memoryview(data))
    assert out.frames == MESSAGES
    assert all(source is data for source in out.sources)
    assert pool.stats().acquires == 0
    assert framer.pending_bytes == 0


def test_lp_byte_by_byte_holds_buffers_only_while_pending() -> None:
    """Fed one byte at a time, every frame arrives; idle means zero pool bytes."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    data = lp(*MESSAGES)
    for chunk in byte_by_byte(data):
        framer.data_received(memoryview(chunk))
        assert in_use(pool) == (1 if framer.pending_bytes >= 4 else 0)
        assert in_use(pool) <= 1
    assert out.frames == MESSAGES
    assert in_use(pool) == 0


def test_lp_trailing_bytes_stay_pending_until_closed() -> None:
    """A partial frame after whole ones is kept (copied) until close()."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    data = lp(*MESSAGES) + lp(b"partial")[:-3]
    framer.data_received(memoryview(data))
    assert out.frames == MESSAGES
    assert framer.pending_bytes == 4 + 4
    assert in_use(pool) == 1
    assert "pending_bytes=8" in repr(framer)
    framer.close()
    framer.close()
    assert framer.pending_bytes == 0
    assert in_use(pool) == 0


def test_lp_split_header_is_kept_without_the_pool() -> None:
    """A partial header is a few bytes of its own, not a pool buffer."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    data = lp(b"abc", b"defg")
    feed(framer, [data[:2], data[2:3]])
    assert framer.pending_bytes == 3
    assert in_use(pool) == 0
    feed(framer, [data[3:9]])
    assert out.frames == [b"abc"]
    assert framer.pending_bytes == 2
    feed(framer, [data[9:]])
    assert out.frames == [b"abc", b"defg"]
    assert pool.stats().acquires == 0


def test_lp_header_completed_then_payload_spans() -> None:
    """A split header followed by a payload that spans reads too."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    data = lp(b"0123456789")
    feed(framer, [data[:1], data[1:6], data[6:10], data[10:]])
    assert out.frames == [b"0123456789"]
    assert in_use(pool) == 0


@pytest.mark.parametrize("fmt", ["!H", "<H", "!I", "<Q", "!B", "!q"])
@pytest.mark.parametrize("includes_header", [False, True])
def test_lp_header_formats(fmt: str, includes_header: bool) -> None:
    """Any struct format of one integer works, header counted or not."""
    out = Frames()
    framer = LengthPrefixedFramer(
        make_pool(), out, max_frame=200, header=fmt, includes_header=includes_header
    )
    data = lp(*MESSAGES, fmt=fmt, includes_header=includes_header)
    feed(framer, [data[:7], data[7:]])
    assert out.frames == MESSAGES


def test_lp_too_large_is_refused_before_buffering() -> None:
    """A header announcing more than max_frame raises before any payload is kept."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=10)
    with pytest.raises(FrameTooLarge, match="frame of 11 bytes exceeds max_frame 10"):
        framer.data_received(memoryview(lp(b"ok") + struct.pack("!I", 11)))
    assert out.frames == [b"ok"]
    assert pool.stats().acquires == 0


def test_lp_too_large_in_a_split_header() -> None:
    """The check also runs when the header itself was split."""
    pool = make_pool()
    framer = LengthPrefixedFramer(pool, Frames(), max_frame=10)
    header = struct.pack("!I", 1 << 30)
    framer.data_received(memoryview(header[:3]))
    with pytest.raises(FrameTooLarge):
        framer.data_received(memoryview(header[3:] + b"x" * 50))
    assert pool.stats().acquires == 0
    assert framer.pending_bytes == 0


def test_lp_negative_length_is_malformed() -> None:
    """A signed header with a negative length is a FramingError."""
    framer = LengthPrefixedFramer(make_pool(), Frames(), max_frame=10, header="!i")
    with pytest.raises(FramingError, match="length -1 is negative"):
        framer.data_received(memoryview(struct.pack("!i", -1)))


def test_lp_length_below_included_header_is_malformed() -> None:
    """With includes_header, a length smaller than the header is malformed."""
    framer = LengthPrefixedFramer(
        make_pool(), Frames(), max_frame=10, header="!H", includes_header=True
    )
    with pytest.raises(FramingError, match="length 1 is smaller than the 2-byte"):
        framer.data_received(memoryview(struct.pack("!H", 1)))


def test_lp_failed_framer_refuses_more_data() -> None:
    """After an error the framer holds nothing and refuses further bytes."""
    pool = make_pool()
    framer = LengthPrefixedFramer(pool, Frames(), max_frame=10)
    framer.data_received(memoryview(lp(b"abcdef")[:6]))
    assert in_use(pool) == 1
    with pytest.raises(FrameTooLarge):
        framer.data_received(memoryview(b"cdef" + struct.pack("!I", 99)))
    assert in_use(pool) == 0
    with pytest.raises(FramingError, match="failed earlier"):
        framer.data_received(memoryview(lp(b"ok")))


def test_lp_on_frame_error_releases_the_leftover() -> None:
    """An on_frame that raises on a leftover frame still gets it released."""
    pool = make_pool()

    def explode(frame: memoryview) -> None:
        raise LookupError(bytes(frame))

    framer = LengthPrefixedFramer(pool, explode, max_frame=10)
    data = lp(b"boom")
    framer.data_received(memoryview(data[:5]))
    with pytest.raises(LookupError, match="boom"):
        framer.data_received(memoryview(data[5:]))
    assert in_use(pool) == 0


def test_lp_exhausted_pool_fails_the_framer_holding_nothing() -> None:
    """No leftover buffer to be had: PoolExhausted, then the framer refuses data."""
    pool = BufferPool(size_classes=(16,), slab_size=16, max_bytes=16)
    frames = Frames()
    framer = LengthPrefixedFramer(pool, frames, max_frame=16)
    held = pool.acquire(16)
    with pytest.raises(PoolExhausted):
        framer.data_received(memoryview(b"\x00\x00\x00\x01z\x00\x00\x00\x05ab"))
    assert (frames.frames, framer.pending_bytes) == ([b"z"], 0)
    held.release()
    assert pool.stats().buffers_in_use == 0
    with pytest.raises(FramingError, match="failed earlier"):
        framer.data_received(memoryview(b"cde"))


def test_lp_eof_inside_a_frame_is_an_error_and_releases() -> None:
    """EOF with a partial frame pending raises FramingError, holding nothing."""
    pool = make_pool()
    framer = LengthPrefixedFramer(pool, Frames(), max_frame=100)
    framer.data_received(memoryview(lp(b"unfinished")[:8]))
    with pytest.raises(FramingError, match="end of file inside a frame, after 8"):
        framer.eof_received()
    assert in_use(pool) == 0


def test_lp_clean_eof_returns_what_on_eof_returns() -> None:
    """A clean EOF calls on_eof and passes its value on."""
    framer = LengthPrefixedFramer(make_pool(), Frames(), max_frame=10)
    assert framer.eof_received() is None
    seen: list[str] = []

    def on_eof() -> bool:
        seen.append("eof")
        return True

    framer = LengthPrefixedFramer(make_pool(), Frames(), max_frame=10, on_eof=on_eof)
    assert framer.eof_received() is True
    assert seen == ["eof"]


def test_lp_frames_beyond_the_largest_class_use_the_heap_fallback() -> None:
    """With fallback='heap', a spanning frame bigger than any class still works."""
    pool = make_pool("heap")
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=1000)
    data = lp(b"y" * 1000)
    feed(framer, [data[:100], data[100:]])
    assert out.frames == [b"y" * 1000]
    assert pool.stats().heap_fallbacks == 1
    assert in_use(pool) == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"header": "!f"}, "exactly one integer"),
        ({"header": "!2H"}, "exactly one integer"),
        ({"header": "!?"}, "exactly one integer"),
        ({"header": "bogus"}, "not a struct format"),
        ({"max_frame": 0}, "max_frame must be at least 1, not 0"),
        ({"max_frame": 257}, "more than the largest class 256"),
    ],
)
def test_lp_bad_construction(kwargs: dict[str, object], match: str) -> None:
    """Bad headers, limits and pools are refused with ValueError."""
    options: dict[str, object] = {"max_frame": 10, **kwargs}
    with pytest.raises(ValueError, match=match) as caught:
        LengthPrefixedFramer(make_pool(), Frames(), **options)  # type: ignore[arg-type]
    # No internal error chained or shown as context, in either build.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_lp_as_reader_handler() -> None:
    """A framer is a ReadHandler: reader -> framer -> frames, buffers returned."""
    pool = make_pool()
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=200)
    reader = ReadinessReader(pool, framer, initial_size=16)
    data = lp(*MESSAGES)
    sock = FakeSocket(
        recv=[Deliver(data[:30]), WouldBlock(), Deliver(data[30:]), Eof()]
    )
    while reader.on_readable(sock):
        pass
    assert out.frames == MESSAGES
    assert in_use(pool) == 0


# -- DelimiterFramer -----------------------------------------------------------

LINES = [b"GET / HTTP/1.1", b"", b"Host: x", b"z" * 100]


def dl(*frames: bytes, delimiter: bytes = b"\r\n") -> bytes:
    return b"".join(frame + delimiter for frame in frames)


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"\x00\xff\x00"])
def test_dl_whole_stream_is_all_zero_copy(delimiter: bytes) -> None:
    """Lines inside one view are views of it; the pool lends nothing."""
    pool = make_pool()
    out = Frames()
    framer = DelimiterFramer(pool, out, max_frame=200, delimiter=delimiter)
    data = dl(*LINES, delimiter=delimiter)
    framer.data_received(memoryview(data))
    assert out.frames == LINES
    assert all(source is data for source in out.sources)
    assert pool.stats().acquires == 0


@pytest.mark.parametrize("delimiter", [b"\n", b"\r\n", b"\x00\xff\x00"])
def test_dl_byte_by_byte(delimiter: bytes) -> None:
    """Fed one byte at a time (delimiters split too), every line arrives."""
    pool = make_pool()
    out = Frames()
    framer = DelimiterFramer(pool, out, max_frame=200, delimiter=delimiter)
    for chunk in byte_by_byte(dl(*LINES, delimiter=delimiter)):
        framer.data_received(memoryview(chunk))
        assert (framer.pending_bytes == 0) == (in_use(pool) == 0)
        assert in_use(pool) <= 1
    assert out.frames == LINES
    assert in_use(pool) == 0


def test_dl_trailing_bytes_stay_pending() -> None:
    """An unterminated tail after whole lines is kept until the line ends."""
    pool = make_pool()
    out = Frames()
    framer = DelimiterFramer(pool, out, max_frame=200)
    framer.data_received(memoryview(dl(*LINES) + b"tail\r"))
    assert out.frames == LINES
    assert framer.pending_bytes == 5
    assert in_use(pool) == 1
    framer.data_received(memoryview(b"\nnext\r\n"))
    assert out.frames == [*LINES, b"tail", b"next"]
    assert in_use(pool) == 0
    assert framer.delimiter == b"\r\n"
    assert repr(framer).startswith("<DelimiterFramer delimiter=b'\\r\\n'")


def test_dl_frame_of_exactly_max_frame_at_every_split() -> None:
    """A line of exactly max_frame bytes passes wherever it is cut."""
    data = dl(b"a" * 8, b"b", delimiter=b"XYZ")
    for cut in range(len(data) + 1):
        out = Frames()
        framer = DelimiterFramer(make_pool(), out, max_frame=8, delimiter=b"XYZ")
        feed(framer, [data[:cut], data[cut:]])
        assert out.frames == [b"a" * 8, b"b"], cut


def test_dl_too_long_at_every_split() -> None:
    """A line over max_frame raises FrameTooLarge wherever it is cut."""
    data = dl(b"ok", delimiter=b"XYZ") + dl(b"abc", delimiter=b"XYZ")
    for cut in range(len(data) + 1):
        pool = make_pool()
        out = Frames()
        framer = DelimiterFramer(pool, out, max_frame=2, delimiter=b"XYZ")
        with pytest.raises(FrameTooLarge):
            feed(framer, [data[:cut], data[cut:]])
        assert out.frames == [b"ok"], cut
        assert in_use(pool) == 0


def test_dl_split_delimiter_ending_a_too_long_frame() -> None:
    """A delimiter found across reads still checks the frame's length."""
    framer = DelimiterFramer(make_pool(), Frames(), max_frame=2, delimiter=b"XYZ")
    framer.data_received(memoryview(b"abcX"))
    with pytest.raises(FrameTooLarge, match="frame of 3 bytes exceeds max_frame 2"):
        framer.data_received(memoryview(b"YZ"))


def test_dl_no_delimiter_within_the_limit_raises_early() -> None:
    """Without a delimiter, the error comes once max_frame + len(delimiter) passed."""
    pool = make_pool()
    framer = DelimiterFramer(pool, Frames(), max_frame=10, delimiter=b"\r\n")
    framer.data_received(memoryview(b"x" * 11))
    assert framer.pending_bytes == 11
    with pytest.raises(FrameTooLarge):
        framer.data_received(memoryview(b"x"))
    assert in_use(pool) == 0


def test_dl_leftover_grows_through_the_classes() -> None:
    """A long pending line moves to bigger buffers, holding one at a time."""
    pool = make_pool()
    out = Frames()
    framer = DelimiterFramer(pool, out, max_frame=200, delimiter=b"\n")
    for chunk in byte_by_byte(b"q" * 150):
        framer.data_received(memoryview(chunk))
        assert in_use(pool) == 1
    framer.data_received(memoryview(b"\n"))
    assert out.frames == [b"q" * 150]
    assert in_use(pool) == 0
    per_class = {c.size: c.acquires for c in pool.stats().per_class}
    assert per_class == {16: 1, 64: 1, 256: 1}


def test_dl_heap_growth_is_geometric_and_capped() -> None:
    """Past the largest class, heap leftovers double, capped at the limit."""
    pool = make_pool("heap")
    out = Frames()
    framer = DelimiterFramer(pool, out, max_frame=1000, delimiter=b"\n")
    feed(framer, [b"w" * 100] * 10 + [b"\n"])
    assert out.frames == [b"w" * 1000]
    assert pool.stats().heap_fallbacks == 2
    assert in_use(pool) == 0


def test_dl_eof_inside_a_line_is_an_error() -> None:
    """EOF with an unterminated line raises FramingError and releases."""
    pool = make_pool()
    framer = DelimiterFramer(pool, Frames(), max_frame=10, on_eof=lambda: None)
    framer.data_received(memoryview(b"abc"))
    with pytest.raises(FramingError, match="after 3 bytes"):
        framer.eof_received()
    assert in_use(pool) == 0
    assert framer.eof_received() is False


def test_dl_empty_view_changes_nothing() -> None:
    """An empty view is accepted and changes nothing."""
    framer = DelimiterFramer(make_pool(), Frames(), max_frame=10)
    framer.data_received(memoryview(b""))
    assert framer.pending_bytes == 0
    assert framer.max_frame == 10


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"delimiter": b""}, "delimiter must not be empty"),
        ({"max_frame": -1}, "max_frame must be at least 1, not -1"),
        ({"max_frame": 256}, "up to 257 bytes, more than the largest class 256"),
    ],
)
def test_dl_bad_construction(kwargs: dict[str, object], match: str) -> None:
    """Empty delimiters, bad limits and too-small pools are refused."""
    options: dict[str, object] = {"max_frame": 10, **kwargs}
    with pytest.raises(ValueError, match=match):
        DelimiterFramer(make_pool(), Frames(), **options)  # type: ignore[arg-type]


@pytest.mark.parametrize("framer", [LengthPrefixedFramer, DelimiterFramer])
@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_frame": 1.5}, "max_frame must be an int, not float"),
        ({"max_frame": True}, "max_frame must be an int, not bool"),
        ({"on_frame": None}, "on_frame must be callable, not None"),
        ({"on_eof": 3}, "on_eof must be callable or None, not 3"),
    ],
)
def test_framers_name_arguments_of_the_wrong_type(
    framer: type[LengthPrefixedFramer | DelimiterFramer],
    kwargs: dict[str, object],
    match: str,
) -> None:
    """Wrong types are a TypeError naming the argument, for both framers."""
    options: dict[str, object] = {"on_frame": Frames(), "max_frame": 10, **kwargs}
    pool = make_pool()
    with pytest.raises(TypeError, match=match):
        framer(pool, **options)  # type: ignore[arg-type]
    assert pool.stats().acquires == 0


@pytest.mark.parametrize("delimiter", ["\n", 3, [10]])
def test_dl_delimiter_must_be_bytes(delimiter: object) -> None:
    """A str, int or list delimiter is refused by type name, not converted."""
    name = type(delimiter).__name__
    with pytest.raises(
        TypeError, match=f"delimiter must be bytes, not {name}"
    ) as caught:
        DelimiterFramer(make_pool(), Frames(), max_frame=10, delimiter=delimiter)  # type: ignore[arg-type]
    # The conversion's own TypeError is not shown as context, in either build.
    assert caught.value.__suppress_context__


def test_dl_as_reader_handler() -> None:
    """Reader -> DelimiterFramer with EOF forwarded through on_eof."""
    pool = make_pool()
    out = Frames()
    eofs: list[int] = []
    framer = DelimiterFramer(pool, out, max_frame=200, on_eof=lambda: eofs.append(1))
    reader = ReadinessReader(pool, framer, initial_size=16)
    data = dl(*LINES)
    sock = FakeSocket(
        recv=[Deliver(data[:17]), WouldBlock(), Deliver(data[17:]), Eof()]
    )
    while reader.on_readable(sock):
        assert in_use(pool) == (1 if framer.pending_bytes else 0)
    assert out.frames == LINES
    assert eofs == [1]
    assert in_use(pool) == 0


@pytest.mark.parametrize(
    "make",
    [
        lambda pool, out: LengthPrefixedFramer(pool, out, max_frame=100),
        lambda pool, out: LengthPrefixedFramer(pool, out, max_frame=100, header="!B"),
        lambda pool, out: DelimiterFramer(pool, out, max_frame=100),
    ],
    ids=["four-byte header", "one-byte header", "delimiter"],
)
def test_eof_one_byte_into_a_frame_is_reported_through_the_reader(
    make: Callable[[BufferPool, Frames], LengthPrefixedFramer | DelimiterFramer],
) -> None:
    """One byte of a frame, then EOF: on_readable raises FramingError, holds nothing."""
    pool = make_pool()
    out = Frames()
    framer = make(pool, out)
    reader = ReadinessReader(pool, framer)
    sock = FakeSocket(recv=[Deliver(b"\x05"), Eof()])
    assert reader.on_readable(sock) is True  # a short read ends the event
    assert framer.pending_bytes == 1
    with pytest.raises(FramingError, match="end of file inside a frame, after 1 bytes"):
        reader.on_readable(sock)
    assert (reader.at_eof, out.frames, pool.stats().buffers_in_use) == (True, [], 0)
    assert reader.on_readable(sock) is False  # EOF is not reported twice


# -- limits on the payload, and memory that follows the bytes received -----------


def test_dl_too_large_names_the_payload_not_the_delimiter() -> None:
    """FrameTooLarge counts the frame's bytes only, however the stream is cut."""
    data = b"x" * 6 + b"\r\n"
    whole = DelimiterFramer(make_pool(), Frames(), max_frame=5)
    with pytest.raises(FrameTooLarge, match=r"^frame of 6 bytes exceeds max_frame 5$"):
        whole.data_received(memoryview(data))
    split = DelimiterFramer(make_pool(), Frames(), max_frame=5)
    with pytest.raises(
        FrameTooLarge,
        match=r"^frame of more than 5 bytes exceeds max_frame 5: "
        r"no delimiter in its first 7 bytes$",
    ):
        feed(split, byte_by_byte(data))


def test_dl_frame_of_max_frame_then_delimiter_passes_at_every_split() -> None:
    """max_frame payload bytes and a two-byte delimiter are accepted, cut anywhere."""
    data = b"x" * 5 + b"\r\n" + b"y" * 5 + b"\r\n"
    for cut in range(len(data) + 1):
        out = Frames()
        framer = DelimiterFramer(make_pool(), out, max_frame=5)
        feed(framer, [data[:cut], data[cut:]])
        assert out.frames == [b"x" * 5, b"y" * 5], cut
    out = Frames()
    feed(DelimiterFramer(make_pool(), out, max_frame=5), byte_by_byte(data))
    assert out.frames == [b"x" * 5, b"y" * 5]


def test_lp_header_alone_holds_a_small_chunk_not_the_announced_frame() -> None:
    """Five bytes announcing 16 MiB make the framer hold one small chunk."""
    max_frame = 16 * 1024 * 1024
    pool = BufferPool(fallback="heap")
    pool.acquire(1).release()  # cut the small class's slab beforehand
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=max_frame)
    tracemalloc.start()
    try:
        framer.data_received(memoryview(struct.pack("!I", max_frame) + b"x"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 1024
    stats = pool.stats()
    assert (stats.bytes_in_use, stats.heap_fallbacks) == (2048, 0)
    assert framer.pending_bytes == 5
    framer.close()
    assert pool.stats().bytes_in_use == 0


def test_lp_leftover_grows_with_the_payload_received() -> None:
    """The leftover doubles as payload arrives, holding at most twice what came."""
    pool = make_pool("heap")
    out = Frames()
    framer = LengthPrefixedFramer(pool, out, max_frame=1000)
    payload = bytes(range(256)) * 3 + b"end"
    data = lp(payload)
    received = 0
    for start in range(0, len(data), 37):
        chunk = data[start : start + 37]
        framer.data_received(memoryview(chunk))
        received += len(chunk)
        held = pool.stats().bytes_in_use
        twice = 2 * (received - 4)  # twice the payload received so far
        if out.frames:
            assert held == 0
        else:  # the class that holds twice as much, or that much from the heap
            assert held <= next((c for c in CLASSES if c >= twice), twice), received
    assert out.frames == [payload]
    assert pool.stats().buffers_in_use == 0


@st.composite
def lp_case(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Whole frames and a cut-off tail of one more."""
    messages = draw(st.lists(st.binary(max_size=256), max_size=5))
    extra = lp(draw(st.binary(min_size=1, max_size=256)))
    return messages, extra[: draw(st.integers(0, len(extra) - 1))]


@st.composite
def dl_case(draw: st.DrawFn) -> tuple[list[bytes], bytes]:
    """Whole lines and an unterminated tail (no delimiter byte in either)."""
    line = st.binary(max_size=200).map(
        lambda b: b.replace(b"\r", b"").replace(b"\n", b"")
    )
    return draw(st.lists(line, max_size=5)), draw(line)


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    """``stream`` cut at ``points`` (any order, repeats allowed)."""
    edges = [0, *sorted(p % (len(stream) + 1) for p in points), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(edges)]


@given(case=lp_case(), points=st.lists(st.integers(0, 2000), max_size=12))
def test_lp_frames_are_the_same_whole_byte_by_byte_and_cut_anywhere(
    case: tuple[list[bytes], bytes], points: list[int]
) -> None:
    """Whole, byte by byte, or at drawn cuts: the same frames and the same tail."""
    messages, tail = case
    stream = lp(*messages) + tail
    for chunks in ([stream], byte_by_byte(stream), cut(stream, points)):
        pool = make_pool()
        out = Frames()
        framer = LengthPrefixedFramer(pool, out, max_frame=256)
        feed(framer, chunks)
        assert out.frames == messages
        assert framer.pending_bytes == len(tail)
        assert in_use(pool) == (1 if len(tail) >= 4 else 0)
        framer.close()
        assert in_use(pool) == 0


@given(case=dl_case(), points=st.lists(st.integers(0, 2000), max_size=12))
def test_dl_frames_are_the_same_whole_byte_by_byte_and_cut_anywhere(
    case: tuple[list[bytes], bytes], points: list[int]
) -> None:
    """Whole, byte by byte, or at drawn cuts: the same lines and the same tail."""
    lines, tail = case
    stream = dl(*lines) + tail
    for chunks in ([stream], byte_by_byte(stream), cut(stream, points)):
        pool = make_pool()
        out = Frames()
        framer = DelimiterFramer(pool, out, max_frame=200)
        feed(framer, chunks)
        assert out.frames == lines
        assert framer.pending_bytes == len(tail)
        assert in_use(pool) == (1 if tail else 0)
        framer.close()
        assert in_use(pool) == 0


@given(
    size=st.integers(6, 40),
    delimiter=st.sampled_from([b"\n", b"\r\n", b"XYZ"]),
    points=st.lists(st.integers(0, 100), max_size=6),
)
def test_dl_too_large_counts_only_the_payload_at_drawn_cuts(
    size: int, delimiter: bytes, points: list[int]
) -> None:
    """A frame past max_frame is refused wherever cut; a named size is the payload."""
    stream = b"a" * size + delimiter + b"b" + delimiter
    framer = DelimiterFramer(make_pool(), Frames(), max_frame=5, delimiter=delimiter)
    with pytest.raises(FrameTooLarge) as info:
        feed(framer, cut(stream, points))
    message = str(info.value)
    assert message in (
        f"frame of {size} bytes exceeds max_frame 5",
        f"frame of more than 5 bytes exceeds max_frame 5: "
        f"no delimiter in its first {5 + len(delimiter)} bytes",
    )
