"""Reference protocols for :class:`bufkit.adapters.selectors.Connection`.

They are what ``bufkit serve`` and the benchmarks run, and short examples of
the three ways to handle received bytes: own the buffer (:class:`Echo`), drop
it (:class:`Discard`), react with many small writes (:class:`Fanout`), or frame
it (:class:`LineEcho`). Every one stops reading while its connection's write
queue is above the high watermark, so a slow reader bounds its memory
(invariant 6).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, final

from bufkit import DelimiterFramer
from bufkit.adapters.selectors import ConnectionProtocol

if TYPE_CHECKING:
    from bufkit import BufferPool
    from bufkit.adapters.selectors import Connection

__all__ = [
    "FANOUT_REPLIES",
    "FANOUT_REPLY_SIZE",
    "LINE_MAX",
    "Discard",
    "Echo",
    "Fanout",
    "LineEcho",
]

FANOUT_REPLIES: Final = 32
"""Writes :class:`Fanout` makes per request byte."""
FANOUT_REPLY_SIZE: Final = 100
"""Bytes in each of :class:`Fanout`'s writes."""
LINE_MAX: Final = 65536
"""The longest line :class:`LineEcho` accepts, without its newline."""

_FANOUT_CHUNK: Final = b"x" * (FANOUT_REPLY_SIZE - 1) + b"\n"


class _Backpressure(ConnectionProtocol):
    """Keep the connection; stop reading while the peer does not read."""

    __slots__ = ("conn",)

    conn: Connection

    def connection_made(self, conn: Connection, /) -> None:
        self.conn = conn

    def pause_writing(self) -> None:
        self.conn.pause_reading()

    def resume_writing(self) -> None:
        self.conn.resume_reading()


@final
class Echo(_Backpressure):
    """Send every received byte back, without copying.

    Each received chunk's pool buffer is taken from the reader and handed to
    the write queue, which releases it once sent (the queue copies a chunk
    shorter than its coalescing threshold into its tail and releases the
    buffer at once).
    """

    __slots__ = ()

    def data_received(self, view: memoryview, /) -> None:
        """Forward the buffer behind ``view`` to the write queue by ownership."""
        conn = self.conn
        conn.write(conn.take_buffer(), nbytes=len(view))


@final
class Discard(ConnectionProtocol):
    """Read and drop everything (the read path alone)."""

    __slots__ = ()

    def data_received(self, view: memoryview, /) -> None:
        """Drop the bytes."""


@final
class Fanout(_Backpressure):
    """Reply to each request byte with 32 separate 100-byte writes.

    The many-small-writes case: the connection gathers the writes of one
    event into a single ``sendmsg``.
    """

    __slots__ = ()

    def data_received(self, view: memoryview, /) -> None:
        """Write :data:`FANOUT_REPLIES` chunks per byte received."""
        write = self.conn.write
        chunk = _FANOUT_CHUNK
        for _ in range(len(view) * FANOUT_REPLIES):
            write(chunk)


@final
class LineEcho(_Backpressure):
    """Echo each newline-terminated line, framed by :class:`bufkit.DelimiterFramer`.

    Args:
        pool: Where the framer keeps the part of a line that spans reads.
        max_line: The longest line accepted, without its newline; a longer
            one aborts the connection.
    """

    __slots__ = ("_framer",)

    def __init__(self, pool: BufferPool, *, max_line: int = LINE_MAX) -> None:
        self._framer = DelimiterFramer(
            pool, self._on_line, max_frame=max_line, delimiter=b"\n"
        )

    def data_received(self, view: memoryview, /) -> None:
        """Feed the framer; whole lines come back through it."""
        self._framer.data_received(view)

    def _on_line(self, line: memoryview) -> None:
        self.conn.write(line.tobytes() + b"\n")

    def eof_received(self) -> bool | None:
        """Drop a partial last line and close once replies are sent."""
        self._framer.close()
        return None

    def connection_lost(self, exc: BaseException | None, /) -> None:
        """Give the framer's partial line back to the pool."""
        self._framer.close()
