"""The public face of a selectors connection: what owners and protocols call.

Theory of operation: :class:`Connection` adds the public surface (construction,
entry points, writes, read-only state) to ``_ConnectionCore``, whose module notes
give the guarantees (invariants 1 to 6 of DESIGN.md) and the cost model. Every
public method is a thin, allocation-free wrapper: a write is one
``WriteQueue.write`` plus, outside an event, one deferred-flush request per loop
iteration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast, final

from bufkit import BufferPool, PooledBuffer, WriteQueue
from bufkit.adapters._sel_core import _S, _ConnectionCore
from bufkit.adapters._sel_types import (
    ConnectionProtocol,
    ConnectionState,
    DeferCallback,
    Interest,
    InterestCallback,
    StreamSocket,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit import CompletionCallback

__all__ = ["Connection"]


@final
class Connection(_ConnectionCore):
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
            :attr:`closed` turned true means: forget this connection (it is
            reported before the socket is closed, so you can unregister it).
        defer: Called with a flush function when data was written outside an
            event; run it at the end of the loop iteration (``list.append``
            onto a list you drain is enough). ``None`` flushes at once, one
            send per write.
        high_water: Pending bytes above which ``pause_writing`` is called.
        low_water: Pending bytes at or below which ``resume_writing`` follows.
        read_budget: Reads per readable event at most.

    Raises:
        ValueError: A watermark is negative, ``low_water`` exceeds
            ``high_water``, or ``read_budget`` is below 1.
    """

    __slots__ = ()

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
        self._state = _S.NEW
        self._interest = Interest.NONE
        self._sock = sock
        self._protocol = protocol
        if read_budget < 1:
            raise ValueError(f"read_budget must be at least 1, not {read_budget}")
        self._on_interest = cast(
            "Callable[[_ConnectionCore, Interest], object]", on_interest
        )
        self._defer = defer
        self._queue = WriteQueue(
            high_water=high_water,
            low_water=low_water,
            on_pause=self._on_pause,
            on_resume=self._on_resume,
        )
        self._pool = pool
        self._read_budget = read_budget
        self._reader = None  # made on the first readable event: idle costs none
        self._link = None
        self._in_event = False
        self._write_armed = False
        self._flush_scheduled = False
        self._paused = False
        self._above_high = False
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
        reader, link = self._reader, self._link
        if reader is None or link is None:
            reader, link = self._make_reader()
        self._in_event = True
        try:
            more = reader.on_readable(link)
            # A TLS socket may hold decrypted bytes past the read budget that
            # no selector will report: read them now (at most a record).
            pending = link.pending
            while more and pending is not None and pending() and not self._read_stopped:
                more = reader.on_readable(link)
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
        reader = self._reader
        if reader is None:
            reader = self._make_reader()[0]
        return reader.take_buffer()

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
        # The common cases count what they queue without asking the queue.
        if type(data) is bytes and nbytes is None:
            queue.write(data, on_done)
            self._bytes_written += len(data)
        elif nbytes is not None and type(data) is PooledBuffer:
            queue.write(data, on_done, nbytes=nbytes)
            self._bytes_written += nbytes
        elif type(data) is memoryview and nbytes is None:
            queue.write(data, on_done)
            self._bytes_written += data.nbytes
        else:
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
        self._begin_close()

    def abort(self) -> None:
        """Close now: pending writes fail with :class:`ConnectionAbortedError`."""
        if self._state is not _S.CLOSED:
            self._abort(None)
