"""The reading side of a readiness-stream connection, and its states.

Theory of operation: reads run only while the reader is registered; it is
removed on :meth:`~_ReadSide.pause_reading`, at end of file, and whenever
callback mode holds ``read_limit`` bytes of unread frames (checked after each
frame, so a readable event may finish its read budget first), and put back as
``read_frame`` consumes. ``read_frame`` has one waiter at most; a frame is
popped only when returned, so a cancelled wait loses nothing. Cost: one
``add_reader``/``remove_reader`` per pause, nothing per frame beyond the copy.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from bufkit.adapters.asyncio._handlers import _settle

if TYPE_CHECKING:
    from typing import Self

    from bufkit import PooledBuffer, ReadinessReader
    from bufkit.adapters.asyncio._handlers import _Frames

__all__: list[str] = []


class _State(enum.Enum):
    OPEN = "open"
    CLOSING = "closing"  # close() called: flushing what is queued
    CLOSED = "closed"


_TRANSITIONS: Final[Mapping[_State, frozenset[_State]]] = {
    _State.OPEN: frozenset({_State.CLOSING, _State.CLOSED}),
    _State.CLOSING: frozenset({_State.CLOSED}),
    _State.CLOSED: frozenset(),
}
"""Every legal state change of a connection (checked on each move)."""


class _ReadSide:
    """Reading, pausing and frames; mixed into ``Connection``."""

    __slots__ = ("_frame_waiter", "_read_paused", "_reading")

    _loop: asyncio.AbstractEventLoop
    _fd: int
    _reader: ReadinessReader
    _frames: _Frames | None
    _frame_waiter: asyncio.Future[None] | None
    _read_limit: int
    _read_paused: bool
    _reading: bool
    _state: _State
    _exc: BaseException | None

    def _on_readable(self) -> None:
        raise NotImplementedError  # Connection's

    def take_buffer(self) -> PooledBuffer:
        """Take the pool buffer behind the current ``data_received`` view.

        Protocol mode, only from inside ``data_received``: the connection then
        does not release the buffer, you must, or hand it to :meth:`write`,
        which releases it once sent. A zero-copy echo::

            def data_received(self, view: memoryview) -> None:
                conn.write(conn.take_buffer(), nbytes=len(view))

        Returns:
            The buffer; the view's bytes are its first ``len(view)`` bytes.

        Raises:
            RuntimeError: Called outside ``data_received``, or twice in one call.
        """
        return self._reader.take_buffer()

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading`."""
        self._read_paused = True
        self._remove_reader()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        self._read_paused = False
        if self._state is _State.OPEN and not self._reader.at_eof:
            self._add_reader()

    async def read_frame(self) -> bytes | None:
        """Wait for the next frame (callback mode); ``None`` at end of file.

        Without a framer, each frame is whatever one read received.

        Raises:
            RuntimeError: In protocol mode, or while another task waits.
            FramingError: The peer broke the framer's rules (for example
                :class:`bufkit.FrameTooLarge`); the connection is closed.
            OSError: The socket error that broke the connection.
        """
        frames = self._frames
        if frames is None:
            raise RuntimeError("read_frame() needs a connection in callback mode")
        while not frames.frames:
            if self._exc is not None:
                raise self._exc
            if frames.eof or self._state is _State.CLOSED:
                return None
            if self._frame_waiter is not None:
                raise RuntimeError("another task is already waiting in read_frame()")
            self._frame_waiter = self._loop.create_future()
            try:
                await self._frame_waiter
            finally:
                self._frame_waiter = None
        frame = frames.frames.popleft()
        frames.nbytes -= len(frame)
        if self._read_paused and frames.nbytes < self._read_limit:
            self.resume_reading()
        return frame

    def __aiter__(self) -> Self:
        return self

    async def __anext__(self) -> bytes:
        """The next frame; stops at end of file."""
        frame = await self.read_frame()
        if frame is None:
            raise StopAsyncIteration
        return frame

    def _frame_arrived(self) -> None:
        waiter = self._frame_waiter
        if waiter is not None:
            _settle(waiter, None)
        frames = self._frames
        if frames is not None and frames.nbytes >= self._read_limit:
            self.pause_reading()

    def _add_reader(self) -> None:
        if not self._reading:
            self._reading = True
            self._loop.add_reader(self._fd, self._on_readable)

    def _remove_reader(self) -> None:
        if self._reading:
            self._reading = False
            self._loop.remove_reader(self._fd)
