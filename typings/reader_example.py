"""The reader and framers, used as a user would: types checked, never run."""

from __future__ import annotations

import socket
from typing import assert_type

import bufkit
import bufkit.framing
from bufkit.testing import FakeSocket


class Echo:
    """A zero-copy echo: each received buffer goes to the write queue as is."""

    def __init__(self, queue: bufkit.WriteQueue) -> None:
        self.queue = queue
        self.reader: bufkit.ReadinessReader | None = None

    def data_received(self, view: memoryview) -> None:
        assert self.reader is not None
        buf = self.reader.take_buffer()
        assert_type(buf, bufkit.PooledBuffer)
        self.queue.write(buf, nbytes=len(view))

    def eof_received(self) -> bool:
        return True


def serve(pool: bufkit.BufferPool, sock: socket.socket, fake: FakeSocket) -> None:
    """A handler object, a real socket and the fake socket all fit."""
    echo = Echo(bufkit.WriteQueue())
    handler: bufkit.ReadHandler = echo
    reader = bufkit.ReadinessReader(pool, handler, read_budget=4, initial_size=2048)
    echo.reader = reader
    assert_type(reader.on_readable(sock), bool)
    assert_type(reader.on_readable(fake), bool)
    assert_type(reader.at_eof, bool)
    assert_type(reader.keep_open, bool)
    assert_type(reader.read_size, int)
    reader.on_readable(b"not a socket")  # type: ignore[arg-type]
    bufkit.ReadinessReader(pool, object())  # type: ignore[arg-type]
    bufkit.ReadinessReader(pool, echo, read_budget="16")  # type: ignore[arg-type]
    bufkit.ReadinessReader(pool, echo, initial_size=2.5)  # type: ignore[arg-type]
    reader.read_size = 1  # type: ignore[misc]


def frames(pool: bufkit.BufferPool) -> None:
    """Framers are read handlers; frames are memoryviews."""

    def on_frame(frame: memoryview) -> None:
        assert_type(frame, memoryview)

    lengths = bufkit.LengthPrefixedFramer(pool, on_frame, max_frame=1 << 16)
    lines = bufkit.framing.DelimiterFramer(
        pool, on_frame, max_frame=8192, delimiter=b"\n", on_eof=lambda: None
    )
    for framer in (lengths, lines):
        handler: bufkit.ReadHandler = framer
        assert_type(framer.pending_bytes, int)
        assert_type(framer.max_frame, int)
        assert_type(framer.eof_received(), bool | None)
        bufkit.ReadinessReader(pool, handler)
    assert_type(lines.delimiter, bytes)
    bufkit.LengthPrefixedFramer(pool, on_frame)  # type: ignore[call-arg]
    bufkit.DelimiterFramer(pool, on_frame, max_frame=10, delimiter="\n")  # type: ignore[arg-type]
    bufkit.LengthPrefixedFramer(pool, on_frame, 10)  # type: ignore[call-arg]

    def wants_bytes(frame: bytes) -> None: ...

    bufkit.LengthPrefixedFramer(pool, wants_bytes, max_frame=10)  # type: ignore[arg-type]
