"""Reference protocols for :class:`bufkit.adapters.selectors.Connection`.

They are what ``bufkit serve`` and the benchmarks run, and short examples of
the three ways to handle received bytes: own the buffer (:class:`Echo`), drop
it (:class:`Discard`), react with many small writes (:class:`Fanout`), or frame
it (:class:`LineEcho`). Every one stops reading while its connection's write
queue is above the high watermark, so a slow reader bounds its memory
(docs/design.md invariant 6).

A protocol whose output is a multiple of its input (:class:`Fanout`) keeps a
count of what it owes instead of queueing it: it writes only while writing is
not paused, stops at the pause (the high watermark), and writes on from
``resume_writing``. One connection then holds at most the high watermark
plus one write, whatever the input, and one callback produces at most that
much. A peer's bad input (a line too long for :class:`LineEcho`) closes its
connection with one ``INFO`` line on the ``bufkit.servers`` logger, never a
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from bufkit import DelimiterFramer, FramingError
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
_FANOUT_BATCH: Final = 65536 // FANOUT_REPLY_SIZE  # writes per scheduled call
LOGGER: Final = logging.getLogger("bufkit.servers")


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
    event into a single ``sendmsg``. The replies are owed, not queued: they
    are written while writing is not paused, up to the high watermark per
    callback, and the rest from :meth:`resume_writing`, so a peer that sends
    much and reads slowly costs one watermark of memory, not 3200 times what
    it sent. After the peer's end of file the connection stays open until
    every reply owed was written, then closes.

    ``resume_writing`` is called while the connection flushes: what it writes
    joins that flush, which goes on while the kernel takes the bytes, so one
    event may write the socket's whole send buffer. Pass ``schedule`` (the
    loop's ``call_soon``) to write from loop callbacks instead, 64 KiB (the
    default high watermark) per callback at most: the connection pauses its
    protocol only once the kernel refuses bytes, so the batch bounds each
    callback, and the loop stays responsive whatever the peers do.

    Args:
        schedule: Runs a callable soon, outside the current event
            (:meth:`bufkit.adapters.selectors.Loop.call_soon`); ``None``
            writes from ``resume_writing`` itself.
    """

    __slots__ = ("_due", "_eof", "_owed", "_paused", "_schedule")

    def __init__(
        self, *, schedule: Callable[[Callable[[], None]], object] | None = None
    ) -> None:
        self._owed = 0  # writes owed to the peer
        self._paused = False
        self._due = False  # a scheduled _produce is pending
        self._eof = False
        self._schedule = schedule

    @property
    def owed(self) -> int:
        """Bytes owed to the peer and not written yet."""
        return self._owed * FANOUT_REPLY_SIZE

    def data_received(self, view: memoryview, /) -> None:
        """Owe :data:`FANOUT_REPLIES` writes per byte received; write what fits."""
        self._owed += len(view) * FANOUT_REPLIES
        self._produce()

    def pause_writing(self) -> None:
        """Stop writing (and reading) above the high watermark."""
        self._paused = True
        super().pause_writing()

    def resume_writing(self) -> None:
        """Write on what is owed, up to the high watermark again.

        With ``schedule``, the writing is scheduled instead (see the class).
        """
        self._paused = False
        super().resume_writing()
        if self._schedule is None:
            self._produce()
        elif self._owed:
            self._later()

    def eof_received(self) -> bool | None:
        """Keep the sending side open while replies are owed.

        Returns:
            True while replies are owed (the connection closes once they
            are written), else ``None`` (close now).
        """
        self._eof = True
        return True if self._owed else None

    def _produce(self) -> None:
        if self.conn.closed:
            return
        write = self.conn.write
        chunk = _FANOUT_CHUNK
        owed = self._owed
        # With a schedule, one call writes one batch at most and schedules the
        # next: the connection pauses only once the kernel refuses bytes, and
        # a fast reader's kernel may take megabytes first.
        count = owed if self._schedule is None else min(owed, _FANOUT_BATCH)
        written = 0
        # pause_writing runs inside the write that crosses the high watermark.
        for written in range(1, count + 1):  # noqa: B007 - read after the loop
            write(chunk)
            if self._paused:
                break
        owed -= written
        self._owed = owed
        if owed and not self._paused and self._schedule is not None:
            self._later()
        elif not owed and self._eof:
            self.conn.close()

    def _later(self) -> None:
        if not self._due and self._schedule is not None:
            self._due = True
            self._schedule(self._scheduled)

    def _scheduled(self) -> None:
        self._due = False
        self._produce()


@final
class LineEcho(_Backpressure):
    """Echo each newline-terminated line, framed by :class:`bufkit.DelimiterFramer`.

    Args:
        pool: Where the framer keeps the part of a line that spans reads.
        max_line: The longest line accepted, without its newline; a longer
            one aborts the connection, with one ``INFO`` log line.
    """

    __slots__ = ("_framer",)

    def __init__(self, pool: BufferPool, *, max_line: int = LINE_MAX) -> None:
        self._framer = DelimiterFramer(
            pool, self._on_line, max_frame=max_line, delimiter=b"\n"
        )

    def data_received(self, view: memoryview, /) -> None:
        """Feed the framer; whole lines come back through it.

        A line longer than ``max_line`` is the peer's fault: the connection
        is aborted with one log line, never a traceback.
        """
        try:
            self._framer.data_received(view)
        except FramingError as exc:
            LOGGER.info("line-echo: aborting a connection: %s", exc)
            self.conn.abort()

    def _on_line(self, line: memoryview) -> None:
        self.conn.write(line.tobytes() + b"\n")

    def eof_received(self) -> bool | None:
        """Drop a partial last line and close once replies are sent."""
        self._framer.close()
        return None

    def connection_lost(self, exc: BaseException | None, /) -> None:
        """Give the framer's partial line back to the pool."""
        self._framer.close()
