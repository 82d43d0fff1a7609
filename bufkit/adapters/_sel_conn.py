"""One connection driven by readiness events: the heart of the selectors adapter.

Theory of operation
-------------------
A :class:`Connection` joins a non-blocking socket, a :class:`bufkit.ReadinessReader`
and a :class:`bufkit.WriteQueue` to a user protocol. Its owner (any readiness
loop) calls :meth:`~Connection.on_readable` and :meth:`~Connection.on_writable`
and is told, through one callback, which readiness the connection wants next.

Guarantees, by invariant number in DESIGN.md:

* 1, 2 -- every byte goes through the one write queue, which owns ordering and
  completions; the connection only decides *when* to flush.
* 3 -- write interest is armed by one place only, :meth:`Connection._flush`,
  and only when ``WriteQueue.flush`` returned ``False`` (would block); it is
  disarmed as soon as a flush drains the queue. Nothing else touches it.
* 4, 5 -- read buffers are borrowed by the reader for one event only; an idle
  connection holds none. Closing fails or drains the queue, which gives back
  every pooled buffer it owns.
* 6 -- the queue's watermarks call the protocol's ``pause_writing`` and
  ``resume_writing`` exactly at the crossings.

Cost model: writes made while a handler runs only enqueue; the connection
flushes once when the handler returns (one ``sendmsg`` for any number of small
writes). A write outside an event asks the owner's ``defer`` hook to flush at
the end of the loop iteration (one flush per iteration, not per write). Interest
changes are reported only when the wanted set differs from the last one reported,
and at most once per event.
"""

from __future__ import annotations

import enum
import errno
import logging
import socket
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, Protocol, final

from bufkit import BufferPool, PooledBuffer, ReadinessReader, WriteQueue

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit import CompletionCallback

__all__ = [
    "CONNECTION_TRANSITIONS",
    "Connection",
    "ConnectionProtocol",
    "ConnectionState",
    "Interest",
    "SelectableSocket",
    "StreamSocket",
]

LOGGER: Final = logging.getLogger("bufkit.adapters.selectors")


class Interest(enum.IntFlag):
    """The readiness a connection wants; values match :mod:`selectors`' events."""

    NONE = 0
    READ = 1  # selectors.EVENT_READ
    WRITE = 2  # selectors.EVENT_WRITE
    BOTH = 3


class ConnectionState(enum.Enum):
    """Where a :class:`Connection` is in its life.

    The legal changes are listed in :data:`CONNECTION_TRANSITIONS`.
    """

    NEW = "new"
    """Built, :meth:`Connection.start` not called yet."""
    OPEN = "open"
    """Reading and writing."""
    WRITE_SHUTTING = "write-shutting"
    """:meth:`Connection.write_eof` called: draining, then ``shutdown(SHUT_WR)``."""
    WRITE_SHUT = "write-shut"
    """The sending side is shut; still reading."""
    CLOSING = "closing"
    """:meth:`Connection.close` called: not reading, draining, then closing."""
    CLOSED = "closed"
    """The socket is closed and ``connection_lost`` was called."""


_S = ConnectionState
CONNECTION_TRANSITIONS: Final[Mapping[ConnectionState, frozenset[ConnectionState]]] = {
    _S.NEW: frozenset({_S.OPEN, _S.CLOSED}),
    _S.OPEN: frozenset({_S.WRITE_SHUTTING, _S.CLOSING, _S.CLOSED}),
    _S.WRITE_SHUTTING: frozenset({_S.WRITE_SHUT, _S.CLOSING, _S.CLOSED}),
    _S.WRITE_SHUT: frozenset({_S.CLOSING, _S.CLOSED}),
    _S.CLOSING: frozenset({_S.CLOSED}),
    _S.CLOSED: frozenset(),
}
"""Every legal state change of a :class:`Connection`; anything else is a bug."""

_READABLE: Final = frozenset({_S.OPEN, _S.WRITE_SHUTTING, _S.WRITE_SHUT})
_WRITABLE: Final = frozenset({_S.OPEN})


class StreamSocket(Protocol):
    """The socket methods a :class:`Connection` uses.

    A non-blocking :class:`socket.socket` fits, and so does
    :class:`bufkit.testing.FakeSocket`. ``sendmsg`` is used when present.
    """

    def recv_into(self, buffer: memoryview, /) -> int:
        """Fill ``buffer`` from the start; return the count, 0 at end of file."""
        ...

    def send(self, data: Buffer, /) -> int:
        """Send from ``data``; return how many bytes were accepted."""
        ...

    def shutdown(self, how: int, /) -> None:
        """Shut one or both directions of the stream."""
        ...

    def close(self) -> None:
        """Close the socket."""
        ...


class SelectableSocket(StreamSocket, Protocol):
    """A :class:`StreamSocket` a selector can watch, as :class:`Loop` needs."""

    def fileno(self) -> int:
        """Return the descriptor to watch."""
        ...

    def setblocking(self, flag: bool, /) -> None:
        """Switch blocking mode (the loop turns it off)."""
        ...


class ConnectionProtocol(Protocol):
    """What a :class:`Connection` calls back: asyncio's protocol callbacks.

    Implement the methods you need structurally, or subclass this class to
    inherit do-nothing defaults. Every callback runs inside an event; writes
    made there are flushed once, after it returns. An exception raised by a
    callback is logged and aborts the connection.
    """

    def connection_made(self, conn: Connection, /) -> None:
        """The connection is open; keep ``conn`` to write to it."""
        return

    def data_received(self, view: memoryview, /) -> None:
        """Take received bytes; ``view`` is valid only during the call.

        Copy what you keep, or own the chunk with :meth:`Connection.take_buffer`.
        """
        return

    def eof_received(self) -> bool | None:
        """The peer shut its sending side; return true to keep writing."""
        return None

    def connection_lost(self, exc: BaseException | None, /) -> None:
        """The connection is closed: ``None`` if cleanly, else the error."""
        return

    def pause_writing(self) -> None:
        """The write queue went above its high watermark: stop writing."""
        return

    def resume_writing(self) -> None:
        """The write queue drained below its low watermark: write again."""
        return


@final
class _Feed:
    """The reader's handler: counts bytes and forwards to the protocol."""

    __slots__ = ("_conn", "_deliver")

    def __init__(self, conn: Connection, protocol: ConnectionProtocol) -> None:
        self._conn = conn
        self._deliver = protocol.data_received

    def data_received(self, view: memoryview, /) -> None:
        self._conn._bytes_received += len(view)
        self._deliver(view)

    def eof_received(self) -> bool | None:
        return self._conn._peer_eof()


@final
class _Gate:
    """The socket as the reader sees it: would-block once reading must stop."""

    __slots__ = ("_conn", "_recv_into")

    def __init__(self, conn: Connection, sock: StreamSocket) -> None:
        self._conn = conn
        self._recv_into = sock.recv_into

    def recv_into(self, buffer: memoryview, /) -> int:
        conn = self._conn
        if conn._read_stopped:
            raise BlockingIOError(errno.EAGAIN, "reading is paused")
        try:
            return self._recv_into(buffer)
        except (BlockingIOError, InterruptedError):
            raise
        except OSError as exc:  # tell the socket's errors from the protocol's
            conn._recv_error = exc
            raise


InterestCallback = Callable[["Connection", Interest], object]
DeferCallback = Callable[[Callable[[], object]], object]


@final
class Connection:
    """A non-blocking socket, a reader and a write queue, driven by readiness.

    Call :meth:`start` once, then :meth:`on_readable` / :meth:`on_writable`
    whenever the socket is ready for what :attr:`interest` asks. The
    connection owns the socket and closes it.

    Args:
        sock: A connected, non-blocking socket (or a fake one).
        protocol: Receives the callbacks of :class:`ConnectionProtocol`.
        pool: Lends the read buffers.
        on_interest: Called as ``on_interest(conn, interest)`` whenever the
            wanted readiness changes. :attr:`Interest.NONE` after
            :attr:`closed` turned true means: forget this connection.
        defer: Called with a flush function when data was written outside an
            event; run it at the end of the loop iteration (``list.append``
            onto a list you drain is enough). ``None`` flushes at once, one
            send per write.
        high_water: Pending bytes above which ``pause_writing`` is called.
        low_water: Pending bytes at or below which ``resume_writing`` follows.
        read_budget: Reads per readable event at most.
    """

    __slots__ = (
        "__weakref__",
        "_bytes_received",
        "_bytes_written",
        "_defer",
        "_eof",
        "_error",
        "_flush_scheduled",
        "_flushes",
        "_gate",
        "_in_event",
        "_interest",
        "_on_interest",
        "_paused",
        "_protocol",
        "_queue",
        "_read_stopped",
        "_reader",
        "_recv_error",
        "_sock",
        "_state",
        "_write_armed",
    )

    def __init__(
        self,
        sock: StreamSocket,
        protocol: ConnectionProtocol,
        pool: BufferPool,
        *,
        on_interest: InterestCallback,
        defer: DeferCallback | None = None,
        high_water: int = 65536,
        low_water: int = 16384,
        read_budget: int = 16,
    ) -> None:
        self._sock = sock
        self._protocol = protocol
        self._on_interest = on_interest
        self._defer = defer
        self._queue = WriteQueue(
            high_water=high_water,
            low_water=low_water,
            on_pause=self._on_pause,
            on_resume=self._on_resume,
        )
        self._reader = ReadinessReader(
            pool, _Feed(self, protocol), read_budget=read_budget
        )
        self._gate = _Gate(self, sock)
        self._state = _S.NEW
        self._interest = Interest.NONE
        self._in_event = False
        self._write_armed = False
        self._flush_scheduled = False
        self._paused = False
        self._eof = False
        self._read_stopped = True
        self._error: BaseException | None = None
        self._recv_error: OSError | None = None
        self._bytes_received = 0
        self._bytes_written = 0
        self._flushes = 0

    # -- read-only state ----------------------------------------------------

    @property
    def state(self) -> ConnectionState:
        """Where the connection is in its life."""
        return self._state

    @property
    def interest(self) -> Interest:
        """The readiness last reported to ``on_interest``."""
        return self._interest

    @property
    def closed(self) -> bool:
        """Whether the socket is closed (``connection_lost`` was called)."""
        return self._state is _S.CLOSED

    @property
    def reading(self) -> bool:
        """Whether the connection wants to read (open, not paused, no EOF)."""
        return not self._read_stopped

    @property
    def writing_paused(self) -> bool:
        """Whether the queue is above its high watermark (protocol paused)."""
        return self._queue.paused

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        return self._queue.pending

    @property
    def bytes_received(self) -> int:
        """Bytes handed to the protocol so far."""
        return self._bytes_received

    @property
    def bytes_written(self) -> int:
        """Bytes given to :meth:`write` and :meth:`writelines` so far."""
        return self._bytes_written

    @property
    def flushes(self) -> int:
        """Flushes attempted (each is one ``sendmsg`` or a few on partial writes)."""
        return self._flushes

    @property
    def socket(self) -> StreamSocket:
        """The socket this connection owns."""
        return self._sock

    @property
    def protocol(self) -> ConnectionProtocol:
        """The protocol this connection calls back."""
        return self._protocol

    def __repr__(self) -> str:
        return (
            f"<Connection {self._state.value} interest={self._interest.name}"
            f" pending={self._queue.pending}>"
        )

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> None:
        """Call ``connection_made`` and report the first interest (read).

        Raises:
            RuntimeError: If the connection was already started.
        """
        if self._state is not _S.NEW:
            raise RuntimeError(f"connection already started: {self!r}")
        self._set_state(_S.OPEN)
        self._read_stopped = False
        self._in_event = True
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._error = exc
        self._end_event()

    def on_readable(self) -> None:
        """Read what the socket has and hand it to the protocol, then flush."""
        if self._read_stopped:
            return
        self._in_event = True
        try:
            self._reader.on_readable(self._gate)
        except Exception as exc:
            if exc is self._recv_error:
                self._in_event = False
                self._abort(exc)
                return
            self._error = exc
        self._end_event()

    def on_writable(self) -> None:
        """Send what is queued; disarm write interest once it drained."""
        if self._state is _S.CLOSED:
            return
        self._in_event = True
        self._end_event()

    def take_buffer(self) -> PooledBuffer:
        """Own the chunk behind the view of the current ``data_received``.

        Zero-copy echo: ``conn.write(conn.take_buffer(), nbytes=len(view))``.

        Returns:
            The pooled buffer; release it, or pass it to :meth:`write`.
        """
        return self._reader.take_buffer()

    # -- writing ------------------------------------------------------------

    def write(
        self,
        data: Buffer | PooledBuffer,
        on_done: CompletionCallback | None = None,
        *,
        nbytes: int | None = None,
    ) -> None:
        """Queue ``data``; ``on_done`` fires once its last byte was sent.

        Args:
            data: Bytes-like data (mutable data is copied), or a
                :class:`bufkit.PooledBuffer` whose ownership passes here.
            on_done: Called with ``None`` once sent, or with the error.
            nbytes: With a pooled buffer, send only its first ``nbytes``.

        Raises:
            bufkit.QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            bufkit.QueueFailedError: After :meth:`abort` or a socket error.
        """
        queue = self._queue
        before = queue.pending
        queue.write(data, on_done, nbytes=nbytes)
        self._bytes_written += queue.pending - before
        if not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def writelines(
        self,
        buffers: Iterable[Buffer | PooledBuffer],
        on_done: CompletionCallback | None = None,
    ) -> None:
        """Queue several buffers; ``on_done`` fires once the last one was sent.

        Raises:
            bufkit.QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            bufkit.QueueFailedError: After :meth:`abort` or a socket error.
        """
        queue = self._queue
        before = queue.pending
        queue.writelines(buffers, on_done)
        self._bytes_written += queue.pending - before
        if not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def pause_reading(self) -> None:
        """Stop reading (no more ``data_received``) until :meth:`resume_reading`."""
        self._paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        self._paused = False
        self._update_reading()

    def write_eof(self) -> None:
        """Shut the sending side once everything queued was sent.

        Later writes raise :class:`bufkit.QueueClosedError`. Does nothing
        unless the connection is open.
        """
        if self._state is not _S.OPEN:
            return
        self._set_state(_S.WRITE_SHUTTING)
        self._queue.close()
        self._request_flush()

    def close(self) -> None:
        """Close gracefully: stop reading, send everything queued, then close.

        ``connection_lost(None)`` follows once the queue drained. Later
        writes raise :class:`bufkit.QueueClosedError`.
        """
        if self._state in (_S.CLOSING, _S.CLOSED):
            return
        self._set_state(_S.CLOSING)
        self._queue.close()
        self._update_reading()
        self._request_flush()

    def abort(self) -> None:
        """Close now: pending writes fail with :class:`ConnectionAbortedError`."""
        if self._state is not _S.CLOSED:
            self._abort(None)

    # -- internals ----------------------------------------------------------

    def _set_state(self, new: ConnectionState) -> None:
        if new not in CONNECTION_TRANSITIONS[self._state]:
            raise AssertionError(f"illegal transition {self._state} -> {new}")
        self._state = new

    def _end_event(self) -> None:
        self._in_event = False
        if self._error is not None:
            self._protocol_failed()
        elif self._state is not _S.CLOSED:
            self._flush()

    def _request_flush(self) -> None:
        if not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def _schedule_flush(self) -> None:
        if self._defer is None:
            self._flush()
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
        self._write_armed = not drained
        if drained:
            self._drained()
        self._report_interest()

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
        want = Interest.NONE if self._read_stopped else Interest.READ
        if self._write_armed:
            want |= Interest.WRITE
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
            self.close()
        return keep_open

    def _on_pause(self) -> None:
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._error = exc

    def _on_resume(self) -> None:
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
