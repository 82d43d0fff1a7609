"""The part both framers share: leftover buffer, end of file, close, failure.

Theory of operation: see :mod:`bufkit._framing`. A framer holds at most one
pool buffer (``_buf``), only while a frame is pending (docs/design.md
invariant 5), and gives it back on completion, on error, at end of file and on
``close()`` (docs/design.md invariant 4). Cost: nothing per frame; one ``try``
per ``data_received``; growing the leftover copies what it holds, doubling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

from bufkit._argtypes import Checked
from bufkit._checks import require_int
from bufkit._pool import BufferPool, PooledBuffer
from bufkit.errors import FramingError

__all__: list[str] = []

_OnFrame = Callable[[memoryview], object]
"""Called with each whole frame, a view valid only during the call."""

_BROKEN: Final = "the framer failed earlier; its byte stream cannot be trusted"


class _Framer:
    """What both framers share: the leftover buffer, EOF, close and failure."""

    __slots__ = (
        "_buf",
        "_failed",
        "_filled",
        "_max_frame",
        "_on_eof",
        "_on_frame",
        "_pool",
    )

    def __init__(
        self,
        pool: BufferPool,
        on_frame: _OnFrame,
        max_frame: Checked[int],
        on_eof: Callable[[], object] | None,
    ) -> None:
        max_frame = require_int("max_frame", max_frame)
        if not callable(on_frame):
            raise TypeError(f"on_frame must be callable, not {on_frame!r}")
        if on_eof is not None and not callable(on_eof):
            raise TypeError(f"on_eof must be callable or None, not {on_eof!r}")
        if max_frame < 1:
            raise ValueError(f"max_frame must be at least 1, not {max_frame}")
        self._pool = pool
        self._on_frame = on_frame
        self._on_eof = on_eof
        self._max_frame = max_frame
        self._buf: PooledBuffer | None = None
        self._filled = 0
        self._failed = False

    @property
    def max_frame(self) -> int:
        """The largest frame, in bytes, that ``on_frame`` may receive."""
        return self._max_frame

    @property
    def pending_bytes(self) -> int:
        """Bytes received of a frame not yet complete (0 when idle)."""
        return self._filled

    def data_received(self, view: memoryview) -> None:
        """Take bytes from the stream and call ``on_frame`` for each whole frame.

        Frames are views valid only during the ``on_frame`` call. A frame that
        ends in a later read is copied into a pool buffer until it is complete.

        Args:
            view: The next bytes of the stream (not kept past the call).

        Raises:
            FrameTooLarge: A frame exceeds ``max_frame``; nothing of it was
                buffered beyond the limit.
            FramingError: The bytes break the framing rules, or the framer
                already failed (an error escaped an earlier call).
            PoolExhausted: The pool could not lend a leftover buffer.
        """
        if self._failed:
            raise FramingError(_BROKEN)
        try:
            self._feed(view)
        except BaseException:
            self._failed = True
            self.close()
            raise

    def eof_received(self) -> bool | None:
        """End of the stream: give any buffer back, then call ``on_eof``.

        Returns:
            Whether ``on_eof`` returned a true value (``None`` without
            ``on_eof``), so a framer used as a reader's handler keeps
            asyncio's meaning: true keeps the writing side open.

        Raises:
            FramingError: The stream ended inside a frame (the partial frame
                was dropped and its buffer given back).
        """
        pending = self.pending_bytes
        self.close()
        if pending:
            raise FramingError(f"end of file inside a frame, after {pending} bytes")
        return None if self._on_eof is None else bool(self._on_eof())

    def close(self) -> None:
        """Drop any partial frame and give its buffer back to the pool.

        Call it when the connection goes away without end of file. Safe to
        call more than once.
        """
        buf = self._buf
        self._buf = None
        self._filled = 0
        self._clear()
        if buf is not None:
            buf.release()

    def _check_room(self, largest_leftover: int) -> None:
        """Refuse a pool that could never lend the largest leftover buffer."""
        pool = self._pool
        if largest_leftover > pool.largest_class and pool.fallback == "raise":
            raise ValueError(
                f"max_frame {self._max_frame} needs leftover buffers of up to "
                f"{largest_leftover} bytes, more than the largest class "
                f"{pool.largest_class} of a pool with fallback='raise'"
            )

    def _clear(self) -> None:
        """Forget state kept outside the leftover buffer."""

    def _feed(self, view: memoryview) -> None:
        raise NotImplementedError

    def _grow(self, need: int, limit: int) -> PooledBuffer:
        """Make the leftover hold ``need`` bytes: double it, never past ``limit``.

        The bytes kept so far move to the new buffer, and the old one goes
        back at once, so a framer holds two buffers only during the copy.
        """
        buf = self._buf
        have = self._filled
        size = need if buf is None else min(max(need, 2 * buf.size), limit)
        grown = self._pool.acquire(size)
        if buf is not None:
            grown.view[:have] = buf.view[:have]
            buf.release()
        self._buf = grown
        return grown

    def _emit_leftover(self, size: int) -> None:
        """Hand the first ``size`` leftover bytes over as a frame, then release."""
        buf = self._buf
        assert buf is not None
        self._buf = None
        self._filled = 0
        try:
            self._on_frame(buf.view[:size])
        finally:
            buf.release()
