"""The engine of a selectors ``Connection``: events, flushes, interest, closing.

Theory of operation
-------------------
A :class:`Connection` joins a non-blocking socket, a :class:`bufkit.ReadinessReader`
and a :class:`bufkit.WriteQueue` to a user protocol. Its owner (any readiness
loop) calls :meth:`~Connection.on_readable` and :meth:`~Connection.on_writable`
and is told, through one callback, which readiness the connection wants next.

Guarantees, by invariant number in DESIGN.md:

* 1, 2 -- every byte goes through the one write queue, which owns ordering and
  completions; the connection only decides *when* to flush.
* 3 -- write interest is armed by one place only, ``_ConnectionCore._flush``,
  and only when ``WriteQueue.flush`` returned ``False`` (would block); it is
  disarmed as soon as a flush drains the queue. Nothing else touches it.
* 4, 5 -- read buffers are borrowed by the reader for one event only; an idle
  connection holds none. Closing fails or drains the queue, which gives back
  every pooled buffer it owns.
* 6 -- the queue's watermarks call the protocol's ``pause_writing`` and
  ``resume_writing`` exactly at the crossings.

Cost model: writes made while a handler runs only enqueue; the connection
flushes once when the handler returns (one ``sendmsg`` for any number of small
writes). The one early flush: when a read event's writes push the queue above
its high watermark, ``_Link.recv_into`` flushes before the next read, so a fast
stream is not cut to one watermark per event; if that flush would block, write
interest is armed and the protocol stays paused (invariants 3 and 6 hold as at
the end of any event). A write outside an event asks the owner's ``defer``
hook to flush at the end of the loop iteration (one flush per iteration, not
per write). Interest changes are reported only when the wanted set differs from
the last one reported, and at most once per event. Memory: an idle connection
is one slotted object and its write queue; the reader and its ``_Link`` are
made on the first readable event.
"""

from __future__ import annotations

import errno
import logging
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

from bufkit import ReadinessReader
from bufkit.adapters._sel_types import (
    _READABLE,
    CONNECTION_TRANSITIONS,
    ConnectionState,
    Interest,
)

if TYPE_CHECKING:
    from bufkit import BufferPool, WriteQueue
    from bufkit.adapters._sel_types import (
        ConnectionProtocol,
        DeferCallback,
        StreamSocket,
    )

__all__: list[str] = []

LOGGER: Final = logging.getLogger("bufkit.adapters.selectors")
_S = ConnectionState
# Members as module constants: no enum attribute lookups or flag arithmetic
# on the per-event path.
_NONE: Final = Interest.NONE
_READ: Final = Interest.READ
_WRITE: Final = Interest.WRITE
_BOTH: Final = Interest.BOTH


@final
class _Link:
    """The reader's handler and socket: counts bytes, stops reads, flushes early.

    One small object per connection that has read at least once (made lazily,
    so an idle connection that never received a byte has none). ``pending``
    is the socket's ``pending()`` if it has one (a TLS socket: decrypted
    bytes it holds, which no selector reports), else None.
    """

    __slots__ = ("_conn", "data_received", "pending")

    def __init__(self, conn: _ConnectionCore) -> None:
        self._conn = conn
        # The protocol's own method: the reader calls it with no frame of
        # ours in between (bytes are counted in recv_into instead).
        self.data_received: Callable[[memoryview], None] = conn._protocol.data_received
        pending = getattr(conn._sock, "pending", None)
        self.pending: Callable[[], int] | None = pending if callable(pending) else None

    def eof_received(self) -> bool | None:
        return self._conn._peer_eof()

    def recv_into(self, buffer: memoryview, /) -> int:
        conn = self._conn
        if conn._above_high:
            conn._early_flush()
            if conn._error is not None:
                raise BlockingIOError(errno.EAGAIN, "the protocol failed")
        if conn._read_stopped:
            raise BlockingIOError(errno.EAGAIN, "reading is paused")
        try:
            got: int = conn._sock.recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:  # tell the socket's errors from the protocol's
            conn._recv_error = exc
            raise
        conn._bytes_received += got
        return got


class _ConnectionCore:
    """State and internals of :class:`~bufkit.adapters.selectors.Connection`."""

    __slots__ = (
        "__weakref__",
        "_above_high",
        "_bytes_received",
        "_bytes_written",
        "_defer",
        "_eof",
        "_error",
        "_flush_scheduled",
        "_flushes",
        "_in_event",
        "_interest",
        "_link",
        "_on_interest",
        "_paused",
        "_pool",
        "_protocol",
        "_queue",
        "_read_budget",
        "_read_stopped",
        "_reader",
        "_recv_error",
        "_sock",
        "_state",
        "_write_armed",
    )

    _sock: StreamSocket
    _protocol: ConnectionProtocol
    # Connection is the only subclass: it is what the callback receives.
    _on_interest: Callable[[_ConnectionCore, Interest], object]
    _defer: DeferCallback | None
    _queue: WriteQueue
    _pool: BufferPool
    _read_budget: int
    _reader: ReadinessReader | None
    _link: _Link | None
    _state: ConnectionState
    _interest: Interest
    _in_event: bool
    _write_armed: bool
    _flush_scheduled: bool
    _paused: bool
    _above_high: bool
    _eof: bool
    _read_stopped: bool
    _error: BaseException | None
    _recv_error: OSError | None
    _bytes_received: int
    _bytes_written: int
    _flushes: int

    def _make_reader(self) -> tuple[ReadinessReader, _Link]:
        link = _Link(self)
        reader = ReadinessReader(self._pool, link, read_budget=self._read_budget)
        self._reader, self._link = reader, link
        return reader, link

    def _set_state(self, new: ConnectionState) -> None:
        if new not in CONNECTION_TRANSITIONS[self._state]:
            raise AssertionError(f"illegal transition {self._state} -> {new}")
        self._state = new

    def _begin_close(self) -> None:
        if self._state in (_S.CLOSING, _S.CLOSED):
            return
        self._set_state(_S.CLOSING)
        self._queue.close()
        self._update_reading()
        self._request_flush()

    def _end_event(self) -> None:
        # Still "in the event" while flushing: writes made by completions join
        # this flush instead of scheduling another (and never re-enter it).
        if self._error is None and self._state is not _S.CLOSED:
            self._flush()  # completions and watermark callbacks may raise here
        self._in_event = False
        if self._error is not None:
            self._protocol_failed()

    def _request_flush(self) -> None:
        if not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._defer is None:
            self._in_event = True
            self._end_event()
        else:
            self._flush_scheduled = True
            self._defer(self._deferred_flush)

    def _deferred_flush(self) -> None:
        # Runs like an event: writes made by completions join this flush.
        self._flush_scheduled = False
        if self._state is not _S.CLOSED and not self._write_armed:
            self._in_event = True
            self._end_event()

    def _flush(self) -> None:
        queue = self._queue
        if queue:
            self._flushes += 1
            try:
                drained = queue.flush(self._sock)
            except OSError as exc:
                self._abort(exc)
                return
            except Exception as exc:  # an on_done callback raised
                self._error = exc
                drained = not queue
        else:
            drained = True
        if self._error is not None:
            return  # a callback raised: the caller aborts the connection
        self._write_armed = not drained
        if drained:
            if self._state is not _S.OPEN:
                self._drained()
            elif self._interest is _READ and not self._read_stopped:
                return  # the usual end of an event: nothing to change
        self._report_interest()

    def _early_flush(self) -> None:
        # A read event pushed the queue above its high watermark: send now,
        # before the next read, so a fast peer is not held to one watermark's
        # worth of data per event. If the peer does not take it, write
        # interest is armed and the protocol stays paused, as after any event.
        if (
            self._in_event
            and not self._write_armed
            and self._error is None
            and self._state is not _S.CLOSED
        ):
            self._flush()

    def _drained(self) -> None:
        state = self._state
        if state is _S.CLOSING:
            self._finish(None)
        elif state is _S.WRITE_SHUTTING:
            try:
                self._sock.shutdown(socket.SHUT_WR)
            except OSError as exc:
                self._abort(exc)
                return
            self._set_state(_S.WRITE_SHUT)
            if self._eof:
                self._finish(None)

    def _update_reading(self) -> None:
        self._read_stopped = self._paused or self._eof or self._state not in _READABLE
        if not self._in_event:
            self._report_interest()

    def _report_interest(self) -> None:
        if self._state is _S.CLOSED:
            return
        if self._read_stopped:
            want = _WRITE if self._write_armed else _NONE
        else:
            want = _BOTH if self._write_armed else _READ
        if want != self._interest:
            self._interest = want
            self._on_interest(self, want)

    def _peer_eof(self) -> bool | None:
        self._eof = True
        self._read_stopped = True
        try:
            keep_open = self._protocol.eof_received()
        except Exception as exc:
            self._error = exc
            return None
        if self._state is _S.WRITE_SHUT:
            self._finish(None)
        elif not keep_open:
            self._begin_close()
        return keep_open

    def _on_pause(self) -> None:
        self._above_high = True
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._error = exc

    def _on_resume(self) -> None:
        self._above_high = False
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._error = exc

    def _protocol_failed(self) -> None:
        exc, self._error = self._error, None
        LOGGER.error("protocol error; aborting %r", self, exc_info=exc)
        if self._state is not _S.CLOSED:
            self._abort(exc)

    def _abort(self, exc: BaseException | None) -> None:
        if self._state is _S.CLOSED:
            return
        failure = exc
        if failure is None:
            failure = ConnectionAbortedError(errno.ECONNABORTED, "connection aborted")
        try:
            self._queue.fail(failure)
        except Exception:  # on_done callbacks raised; they are failed anyway
            LOGGER.exception("completion callback raised while aborting %r", self)
        self._finish(exc)

    def _finish(self, exc: BaseException | None) -> None:
        self._set_state(_S.CLOSED)
        self._read_stopped = True
        self._write_armed = False
        self._interest = Interest.NONE
        self._on_interest(self, Interest.NONE)
        self._sock.close()
        self._queue.close()
        try:
            self._protocol.connection_lost(exc)
        except Exception:
            LOGGER.exception("connection_lost raised for %r", self)
