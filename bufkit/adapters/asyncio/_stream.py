"""``Connection``: a gather-write, pooled-read stream on ``add_reader``/``add_writer``.

Theory of operation
-------------------
A :class:`Connection` owns one non-blocking socket and registers it with the
loop directly (``add_reader``/``add_writer``: selector loops and uvloop). Reads
go through a :class:`bufkit.ReadinessReader`, so a chunk is borrowed only while
the socket is readable and an idle connection holds zero pool bytes
(invariants 4 and 5). Writes go to a :class:`bufkit.WriteQueue`: ``write``
only enqueues. Writes made while a readable event is handled (from
``data_received`` or ``eof_received``) are flushed once, right after the
reader returns, in the same loop callback; a write made anywhere else
schedules one flush with ``call_soon``. Either way every write of one event
or loop iteration leaves in a single ``sendmsg`` (invariant 1 is the
queue's), and a request answered from ``data_received`` costs no extra trip
through the selector. Writable interest is armed only when a flush would
block with data left, and disarmed when a flush drains (invariant 3). The
queue's watermarks pause ``drain()`` callers, so a slow reader costs at most
about ``high_water`` bytes plus one write (invariant 6).

Awaitables are thin futures over the queue's completion callbacks: ``send``
queues at once (so sends keep call order) and its future resolves when the
last byte was accepted by the kernel; cancelling it (or ``drain``) only drops
the waiter, never the queued data, so the queue stays consistent. When the
connection breaks, the socket's ``OSError`` itself fails every pending
``send``, ``drain`` and ``read_frame`` (invariant 2).

Cost model: per write, one queue append, and outside a read event at most
one ``call_soon`` per loop iteration; per readable event, the reader's cost
and at most one flush; per frame in callback mode, one ``bytes`` copy (frames
outlive the read buffer). Memory per idle connection: this object (slots),
its reader, its queue and the loop's reader handle; the ``wait_closed``
future and the ``drain`` waiter list exist only once asked for, and the
queue calls back into the protocol only for the hooks it overrides.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import socket
from typing import TYPE_CHECKING, final

from bufkit import FramingError, ReadinessReader, WriteQueue
from bufkit.adapters.asyncio._handlers import (
    DEFAULT_READ_LIMIT,
    FramerFactory,
    StreamProtocol,
    _Frames,
    _hook,
    _Owner,
    _settle,
    _StreamSocket,
)
from bufkit.adapters.asyncio._reading import _TRANSITIONS, _ReadSide, _State

if TYPE_CHECKING:
    from collections.abc import Iterable

    from typing_extensions import Buffer

    from bufkit import BufferPool, CompletionCallback, PooledBuffer, ReadHandler

__all__ = ["Connection"]


@final
class Connection(_ReadSide):
    """One stream socket registered with the loop: gathered writes, pooled reads.

    Made by :func:`bufkit.adapters.asyncio.start_server` and
    :func:`bufkit.adapters.asyncio.open_connection`, never directly. Reads
    reach either a :class:`StreamProtocol` (protocol mode) or
    :meth:`read_frame` (callback mode).
    """

    __slots__ = (
        "_closed",
        "_drain_waiters",
        "_eof_pending",
        "_exc",
        "_fd",
        "_flush_scheduled",
        "_frames",
        "_in_event",
        "_loop",
        "_lost",
        "_owner",
        "_protocol",
        "_queue",
        "_read_limit",
        "_reader",
        "_sock",
        "_state",
        "_writing",
    )

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sock: _StreamSocket,
        pool: BufferPool,
        *,
        protocol: StreamProtocol | None = None,
        framer: FramerFactory | None = None,
        high_water: int = 65536,
        low_water: int = 16384,
        read_limit: int = DEFAULT_READ_LIMIT,
        read_budget: int = 16,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._fd = sock.fileno()
        self._protocol = protocol
        handler: ReadHandler
        self._frames: _Frames | None = None
        if protocol is None:
            handler = self._frames = _Frames(self._frame_arrived, framer)
        else:
            handler = protocol
        self._reader = ReadinessReader(pool, handler, read_budget=read_budget)
        # drain() waiters are woken after each flush (_flush_now), so the
        # queue holds no bound method of this object: only the protocol's
        # own hooks, and only those it overrides.
        self._queue = WriteQueue(
            high_water=high_water,
            low_water=low_water,
            on_pause=_hook(protocol, "pause_writing"),
            on_resume=_hook(protocol, "resume_writing"),
        )
        self._read_limit = read_limit
        self._state = _State.OPEN
        self._exc: Exception | None = None
        self._reading = False  # reader registered
        self._read_paused = False  # by pause_reading() or the frame backlog
        self._writing = False  # writer registered (invariant 3)
        self._flush_scheduled = False  # a flush will run: call_soon or end of event
        self._in_event = False  # inside _on_readable: flush when it returns
        self._eof_pending = False  # write_eof() waits for the queue to drain
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._frame_waiter: asyncio.Future[None] | None = None
        self._closed: asyncio.Future[None] | None = None  # made by wait_closed()
        self._lost = False  # connection_lost has run
        self._owner: _Owner | None = None

    def __repr__(self) -> str:
        return f"<Connection fd={self._fd} {self._state.value} pending={self.pending}>"

    # -- lifecycle ---------------------------------------------------------

    def _start(self) -> None:
        """Tell the protocol, then start reading (asyncio's order)."""
        if self._protocol is not None:
            self._protocol.connection_made(self)
        if self._state is _State.OPEN and not self._read_paused:
            self._add_reader()

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called or the connection broke."""
        return self._state is not _State.OPEN

    def close(self) -> None:
        """Stop reading, send what is queued, then close the socket.

        Later writes raise :class:`bufkit.QueueClosedError`. Use :meth:`abort`
        to drop queued data and close at once.
        """
        if self._state is not _State.OPEN:
            return
        self._move(_State.CLOSING)
        self._remove_reader()
        self._queue.close()
        if not (self._writing or self._flush_scheduled):
            self._schedule_flush()

    def abort(self) -> None:
        """Close at once, dropping queued data; pending sends fail."""
        self._finish(None)

    async def wait_closed(self) -> None:
        """Wait until the socket is closed and ``connection_lost`` has run."""
        if self._lost:
            return
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    # -- writing -----------------------------------------------------------

    @property
    def pending(self) -> int:
        """Bytes queued and not yet accepted by the kernel."""
        return self._queue.pending

    def write(
        self,
        data: Buffer | PooledBuffer,
        on_done: CompletionCallback | None = None,
        *,
        nbytes: int | None = None,
    ) -> None:
        """Queue ``data``; it leaves with this iteration's other writes.

        Immutable data is not copied; a ``bytearray`` or writable view is
        copied; a :class:`bufkit.PooledBuffer` is handed over (the queue
        releases it once sent).

        Args:
            data: The bytes to send.
            on_done: Called with ``None`` once the kernel accepted the last
                byte, or with the error that broke the connection first.
            nbytes: For a :class:`bufkit.PooledBuffer`, send only its first
                ``nbytes`` bytes.

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: After the connection broke (the error is its
                ``__cause__``).
            BufferReleasedError: ``data`` is a released pooled buffer.
            TypeError: ``data`` is not bytes-like (``str``, for instance).
        """
        self._queue.write(data, on_done, nbytes=nbytes)
        if not (self._flush_scheduled or self._writing):
            self._schedule_flush()

    def writelines(self, chunks: Iterable[Buffer]) -> None:
        """Queue several chunks; same rules as :meth:`write`.

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: After the connection broke.
        """
        self._queue.writelines(chunks)
        if not (self._flush_scheduled or self._writing):
            self._schedule_flush()

    def send(self, data: Buffer | PooledBuffer) -> asyncio.Future[None]:
        """Queue ``data`` now; the future resolves once the kernel took it all.

        Use it as ``await conn.send(data)``. The data is queued by the call
        itself, so sends keep the order of the calls even when their futures
        are awaited later or never. Cancelling the future (or the task that
        awaits it) does not withdraw the data: it is still sent.

        Returns:
            A future: ``None`` once the last byte was accepted by the kernel,
            or the socket's ``OSError`` if the connection broke first.

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: The connection had broken before the call.
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        self.write(data, functools.partial(_settle, fut))
        return fut

    async def drain(self) -> None:
        """Wait while the queue is over its high-water mark (asyncio semantics).

        Returns at once below the mark. Cancelling the wait changes nothing
        else.

        Raises:
            OSError: The socket error that broke the connection;
                ``ConnectionResetError`` if it was closed meanwhile.
        """
        self._raise_if_lost()
        if not self._queue.paused:
            return
        fut: asyncio.Future[None] = self._loop.create_future()
        if self._drain_waiters is None:
            self._drain_waiters = []
        self._drain_waiters.append(fut)
        try:
            await fut
        finally:
            self._forget_drainer(fut)

    def write_eof(self) -> None:
        """Shut the sending side once the queue is flushed; reading goes on.

        Later writes raise :class:`bufkit.QueueClosedError`.
        """
        if self._state is not _State.OPEN or self._eof_pending:
            return
        self._eof_pending = True
        self._queue.close()
        if not (self._writing or self._flush_scheduled):
            self._schedule_flush()

    def get_extra_info(self, name: str, default: object = None) -> object:
        """``"socket"``, ``"sockname"`` or ``"peername"``, as in asyncio."""
        try:
            if name == "socket":
                return self._sock
            if name == "sockname":
                return self._sock.getsockname()
            if name == "peername":
                return self._sock.getpeername()
        except OSError:
            pass
        return default

    # -- loop callbacks ----------------------------------------------------

    def _on_readable(self) -> None:
        # Writes made by the handler only mark a flush as due (_in_event);
        # it runs once, below, after the reader returns: one sendmsg for
        # the whole event, and no extra loop iteration (no call_soon).
        scheduled = self._flush_scheduled  # a call_soon flush is already due
        self._in_event = True
        try:
            still_open = self._reader.on_readable(self._sock)
            if not still_open:
                self._remove_reader()
                if not self._reader.keep_open:
                    self.close()
        except (OSError, FramingError) as exc:  # the peer's doing, not a bug
            self._finish(exc)
            return
        except Exception as exc:
            self._report("Fatal error in a read handler", exc)
            self._finish(exc)
            return
        finally:
            self._in_event = False
        if self._flush_scheduled and not scheduled:
            self._flush_scheduled = False
            if self._state is not _State.CLOSED:
                self._flush_now()

    def _schedule_flush(self) -> None:
        self._flush_scheduled = True
        if not self._in_event:
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self._state is not _State.CLOSED:
            self._flush_now()

    def _flush_now(self) -> None:
        try:
            drained = self._queue.flush(self._sock)
        except OSError as exc:
            self._finish(exc)
            return
        if self._drain_waiters and not self._queue.paused:
            self._wake_drainers()
        if not drained:
            if not self._writing:
                self._writing = True
                self._loop.add_writer(self._fd, self._flush_now)
            return
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        if self._state is _State.CLOSING:
            self._finish(None)
        elif self._eof_pending:
            self._shutdown_write()

    def _shutdown_write(self) -> None:
        self._eof_pending = False
        try:
            self._sock.shutdown(socket.SHUT_WR)
        except OSError as exc:
            self._finish(exc)

    def _forget_drainer(self, fut: asyncio.Future[None]) -> None:
        waiters = self._drain_waiters
        if waiters is not None and fut in waiters:
            waiters.remove(fut)

    def _wake_drainers(self, exc: BaseException | None = None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for fut in waiters or ():
            _settle(fut, exc)

    # -- teardown ----------------------------------------------------------

    def _move(self, state: _State) -> None:
        if state not in _TRANSITIONS[self._state]:
            raise RuntimeError(f"{self!r}: illegal move to {state.value}")
        self._state = state

    def _raise_if_lost(self) -> None:
        if self._exc is not None:
            raise self._exc
        if self._state is _State.CLOSED:
            raise ConnectionResetError(errno.ECONNRESET, "Connection lost")

    def _finish(self, exc: Exception | None) -> None:
        """Unregister, fail what waits, close the socket, tell the protocol."""
        if self._state is _State.CLOSED:
            return
        self._move(_State.CLOSED)
        self._exc = exc
        self._remove_reader()
        if self._writing:
            self._writing = False
            self._loop.remove_writer(self._fd)
        lost = exc or ConnectionAbortedError(errno.ECONNABORTED, "Connection aborted")
        if self._queue:
            self._queue.fail(lost)
        else:
            self._queue.close()
        self._wake_drainers(lost)
        if self._frame_waiter is not None:
            _settle(self._frame_waiter, exc)
        if self._frames is not None:
            self._frames.close()
        self._sock.close()
        self._loop.call_soon(self._call_connection_lost, exc)

    def _call_connection_lost(self, exc: Exception | None) -> None:
        try:
            if self._protocol is not None:
                self._protocol.connection_lost(exc)
        finally:
            self._lost = True
            if self._closed is not None:
                _settle(self._closed, None)
            if self._owner is not None:
                self._owner._connection_closed(self)

    def _report(self, message: str, exc: BaseException) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "connection": self}
        )
