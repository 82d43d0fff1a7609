"""The callbacks side of the readiness stream: protocols, frame queues, futures.

Theory of operation: a connection hands received bytes either to a user's
:class:`StreamProtocol` or to a ``_Frames`` queue that copies each frame once
(frames outlive the read buffer) for ``read_frame``. Completion callbacks of
the write queue become futures through ``_settle``, which never touches a
future whose waiter was cancelled, so cancelling a wait changes nothing else.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, Protocol

if TYPE_CHECKING:
    from bufkit import ReadHandler
    from bufkit.adapters.asyncio._stream import Connection

__all__ = ["DEFAULT_READ_LIMIT", "FramerFactory", "StreamProtocol"]

FramerFactory = Callable[[Callable[[memoryview], object]], "ReadHandler"]
"""Builds a framer (a :class:`bufkit.ReadHandler`) from its ``on_frame`` callback."""

DEFAULT_READ_LIMIT: Final = 65536
"""Bytes of received frames buffered before reading pauses (callback mode)."""


class StreamProtocol:
    """Callbacks of a :class:`Connection` in protocol mode; override what you need.

    The names, signatures and order are asyncio's: :meth:`connection_made`,
    then :meth:`data_received` and finally :meth:`eof_received`, then
    :meth:`connection_lost`; :meth:`pause_writing` and
    :meth:`resume_writing` at the write queue's watermarks. An exception
    raised by one of them goes to the loop's exception handler and aborts
    the connection; ``connection_lost`` then receives it.
    """

    def connection_made(self, conn: Connection) -> None:
        """The connection is ready; keep ``conn`` to write to it."""

    def data_received(self, view: memoryview) -> None:
        """Bytes arrived; ``view`` is valid only during the call."""

    def eof_received(self) -> bool | None:
        """The peer stopped sending; return true to keep writing."""
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """The connection is closed: ``exc`` broke it, or ``None``."""

    def pause_writing(self) -> None:
        """The write queue went over its high-water mark."""

    def resume_writing(self) -> None:
        """The write queue fell back to its low-water mark."""

    def _handshake_done(self) -> None:
        # TLS connections only: the handshake completed, before any
        # plaintext arrives (the drop-in's protocols start here).
        pass


class _Frames:
    """The read handler of callback mode: queues frames for ``read_frame``.

    It points back at its connection (``on_arrival``) and its framer points
    back at it: :meth:`close` drops both links, so a closed connection is
    freed by reference counting while its unread frames stay readable.
    """

    __slots__ = (
        "_framer",
        "_on_arrival",
        "eof",
        "frames",
        "limit",
        "nbytes",
        "user_paused",
        "waiter",
    )

    def __init__(
        self,
        on_arrival: Callable[[], object],
        framer: FramerFactory | None,
        limit: int,
    ) -> None:
        self._on_arrival: Callable[[], object] | None = on_arrival
        self.frames: collections.deque[bytes] = collections.deque()
        self.nbytes = 0
        self.limit = limit  # frame bytes buffered before reading pauses
        self.eof = False
        self.user_paused = False  # pause_reading() was called
        self.waiter: asyncio.Future[None] | None = None  # read_frame() waits
        self._framer = None if framer is None else framer(self.on_frame)

    def data_received(self, view: memoryview, /) -> None:
        if self._framer is None:
            self.on_frame(view)
        else:
            self._framer.data_received(view)

    def on_frame(self, view: memoryview) -> None:
        self.frames.append(bytes(view))
        self.nbytes += len(view)
        if self._on_arrival is not None:
            self._on_arrival()

    def eof_received(self) -> bool:
        if self._framer is not None:
            self._framer.eof_received()
        self.eof = True
        if self._on_arrival is not None:
            self._on_arrival()
        return True

    def close(self) -> None:
        """Give back a partial frame and drop the links back (idempotent)."""
        framer, self._framer, self._on_arrival = self._framer, None, None
        close = getattr(framer, "close", None)
        if callable(close):
            close()


class _Owner(Protocol):
    """Told when a connection is closed (its server, or the loop's registry)."""

    def _connection_closed(self, conn: Connection, /) -> None: ...


def _settle(fut: asyncio.Future[None], exc: BaseException | None) -> None:
    """Resolve ``fut`` unless its waiter gave up (cancelled)."""
    if not fut.done():
        if exc is None:
            fut.set_result(None)
        else:
            fut.set_exception(exc)
