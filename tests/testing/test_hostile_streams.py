"""Hostile asyncio streams: short reads, blocking ``drain()``, bugs caught."""

from __future__ import annotations

import asyncio
import struct

import pytest

from bufkit.testing import (
    CheckFailed,
    Cutting,
    HostileStreamWriter,
    Pause,
    check_stream_handler,
    check_stream_handler_example,
    run_stream_handler,
)

SEED = 0  # a fixed search, so each bug is caught on every run


def _frame(payload: bytes) -> bytes:
    return struct.pack(">H", len(payload)) + payload


FRAMES = [_frame(b"abc"), _frame(b"hello")]
LINES = [b"one\n", b"two\n", b"three\n"]


async def read_n_assumed(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The classic bug: ``read(n)`` is taken to return ``n`` bytes."""
    while header := await reader.read(2):
        (size,) = struct.unpack(">H", header)
        writer.write((await reader.read(size)).upper())
        await writer.drain()
    writer.close()


async def read_exactly(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """The correct version: ``readexactly``."""
    while True:
        try:
            header = await reader.readexactly(2)
        except asyncio.IncompleteReadError:
            break
        (size,) = struct.unpack(">H", header)
        writer.write((await reader.readexactly(size)).upper())
        await writer.drain()
    writer.close()
    await writer.wait_closed()


async def line_echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A correct line echo with ``readline`` and ``drain``."""
    while line := await reader.readline():
        writer.write(line.upper())
        await writer.drain()
    writer.close()


async def never_drains(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """A line echo that never awaits ``drain()``."""
    async for line in reader:
        writer.write(line.upper())
    writer.close()


def test_catches_read_n_assumed_to_return_n() -> None:
    """A handler assuming ``read(2)`` returns 2 bytes fails at one cut."""
    with pytest.raises(CheckFailed) as info:
        check_stream_handler(read_n_assumed, FRAMES, seed=SEED)
    text = str(info.value)
    assert "the handler's behaviour depends on how its input was cut" in text
    assert "Cutting(cuts=(1,))" in text
    assert "chunks: [b'\\x00', b'\\x03abc\\x00\\x05hello']" in text
    assert "reference output (8 bytes): b'ABCHELLO'" in text
    assert "hostile   output (0 bytes): b''" in text
    assert "handler raised error('unpack requires a buffer of 2 bytes')" in text


def test_readexactly_passes_thousands_of_cuttings() -> None:
    """The ``readexactly`` version passes 1,000 cuttings with drains and losses."""
    check_stream_handler(
        read_exactly,
        FRAMES,
        respects_backpressure=True,
        lose_connection=True,
        max_examples=1000,
    )


def test_readline_echo_passes() -> None:
    """A ``readline`` echo passes with backpressure declared."""
    check_stream_handler(line_echo, LINES, respects_backpressure=True)


def test_catches_handler_that_never_drains() -> None:
    """A handler that never awaits ``drain()`` is flagged when it promised to."""
    with pytest.raises(CheckFailed) as info:
        check_stream_handler(never_drains, LINES, respects_backpressure=True, seed=SEED)
    text = str(info.value)
    assert "before any `await writer.drain()` since the pause" in text
    assert "Cutting(pauses=(Pause(at_write=0, hold=0),))" in text


def test_short_reads_come_one_chunk_at_a_time() -> None:
    """``read(100)`` returns what one chunk holds."""
    seen: list[bytes] = []

    async def record(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        while data := await reader.read(100):
            seen.append(data)
        writer.close()

    run_stream_handler(record, b"abcdef", Cutting(cuts=(1, 4)))
    assert seen == [b"a", b"bcd", b"ef"]


def test_drain_blocks_while_paused_and_resumes_after_hold() -> None:
    """``drain()`` blocks at the pause and returns after ``hold`` deliveries."""
    outcome = run_stream_handler(
        line_echo, LINES, Cutting(cuts=(4, 8), pauses=(Pause(at_write=0, hold=1),))
    )
    calls = list(outcome.calls)
    blocked = calls.index("await drain()    # blocks: writing is paused")
    resumed = calls.index("  -> resume_writing()")
    assert "data_received(b'two\\n')" in calls[blocked:resumed]
    assert calls[resumed + 1 :].count("write(b'TWO\\n')") == 1
    assert outcome.output == b"ONE\nTWO\nTHREE\n"


def test_writer_is_a_stream_writer_with_extra_info() -> None:
    """The handler gets a StreamWriter whose extra info answers like TCP."""
    seen: list[object] = []

    async def peek(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.extend([type(writer), writer.get_extra_info("peername")])
        writer.close()

    run_stream_handler(peek, b"x", extra={"peername": ("192.0.2.1", 7)})
    assert seen == [HostileStreamWriter, ("192.0.2.1", 7)]


def test_handler_still_running_is_cancelled_and_reported() -> None:
    """A handler that waits forever is cancelled and the run says so."""

    async def waits(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readexactly(100)

    outcome = run_stream_handler(waits, b"abc", eof=False)
    assert outcome.error == "the handler was still running after the conversation"


def test_reproduce_call_fails_the_same_way() -> None:
    """``check_stream_handler_example`` reproduces a reported cutting."""
    with pytest.raises(CheckFailed, match=r"Cutting\(cuts=\(1,\)\)"):
        check_stream_handler_example(read_n_assumed, FRAMES, Cutting(cuts=(1,)))
    passing = check_stream_handler_example(read_exactly, FRAMES, Cutting(cuts=(1,)))
    assert passing.output == b"ABCHELLO"
