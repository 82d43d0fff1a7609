"""``Connection``: the connection core on ``add_reader``/``add_writer``, awaitable.

Theory of operation
-------------------
Everything a stream connection decides -- when to read, when to flush, when
to arm write interest, how to pause, close, abort and fail -- is decided by
:class:`bufkit.Connection`, the loop-agnostic core. This module only plugs it
into an asyncio loop and adds the asyncio surface:

* the core's interest becomes ``add_reader``/``add_writer``/``remove_*`` on the
  socket's descriptor (``_Relay.__call__``), so write interest is armed
  exactly when the core says so (docs/design.md invariant 3), and
  ``Interest.NONE`` once closed unregisters before the socket is closed;
* the core's ``defer`` (one flush at the end of the loop iteration) is
  ``loop.call_soon``, bound once per server or client call;
* ``_Relay`` is also the protocol the core calls: it hands the user's
  :class:`StreamProtocol` (protocol mode) or the frame queue behind
  :meth:`Connection.read_frame` (callback mode) their callbacks, reports an
  exception raised by a protocol callback to the loop's exception handler
  once and aborts the connection with it, and calls ``connection_lost`` in
  the next loop iteration, as asyncio's transports do;
* awaitables are futures over the core's completion callbacks: ``send``
  queues at once and resolves when the kernel accepted the last byte
  (invariants 1 and 2 are the write queue's); ``drain`` waits while the core
  has told the protocol to pause writing (invariant 6); cancelling either
  drops the waiter, never the data.

Memory: the core holds the relay; the relay holds the user's protocol and
this connection, and lets go of both when the connection is lost; state that
only callback mode or a waiting task needs (the frame queue, futures) is made
when first needed, so a closed or failed connection, its protocol and its
frame queue are freed by reference counting (invariant 6). Exceptions kept
to fail later calls have their tracebacks cleared once reported.

Cost model: per readable event, the core's cost plus one Python call (the
relay's guard around ``data_received``); per write, the core's cost; per
interest change, one ``add_*``/``remove_*`` call; per frame in callback mode,
one ``bytes`` copy (frames outlive the read buffer).
"""

from __future__ import annotations

import asyncio
import errno
import functools
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol, cast, final

from bufkit import Connection as CoreConnection
from bufkit import (
    ConnectionState,
    FramingError,
    Interest,
    StreamSocket,
)
from bufkit.adapters.asyncio._handlers import (
    DEFAULT_READ_LIMIT,
    FramerFactory,
    StreamProtocol,
    _Frames,
    _Owner,
    _settle,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Self

    from typing_extensions import Buffer

    from bufkit import BufferPool, CompletionCallback, PooledBuffer, TLSLayer

__all__ = ["Connection"]


class _StreamSocket(StreamSocket, Protocol):
    """What a connection needs from its socket (``socket.socket``, fakes)."""

    def fileno(self) -> int: ...
    def getsockname(self) -> Any: ...
    def getpeername(self) -> Any: ...


_NONE = Interest.NONE
_READS = frozenset({Interest.READ, Interest.BOTH})
_WRITES = frozenset({Interest.WRITE, Interest.BOTH})
# Unbound, with the core as the argument: no bound method per connection.
_ON_READABLE = CoreConnection.on_readable
_ON_WRITABLE = CoreConnection.on_writable
_CLOSING = frozenset({ConnectionState.CLOSING, ConnectionState.CLOSED})


def _tls_info(tls: TLSLayer | None, name: str, default: object) -> object:
    """The TLS names of ``get_extra_info``, as asyncio's SSL transports answer."""
    if tls is None:
        return default
    obj = tls.ssl_object
    value: object
    if name == "ssl_object":
        return obj
    if name == "sslcontext":
        return obj.context
    if not tls.handshake_done:
        return default
    if name == "peercert":
        value = obj.getpeercert()
    elif name == "cipher":
        value = obj.cipher()
    elif name == "compression":
        value = obj.compression()
    else:
        return default
    return default if value is None else value


@final
class _Timer:
    """The core's ``on_timer`` as one ``loop.call_later`` handle per connection.

    A new delay cancels the previous handle; ``None`` (asked on close) drops
    it, so no handle keeps a closed connection alive.
    """

    __slots__ = ("_handle", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._handle: asyncio.TimerHandle | None = None

    def __call__(self, core: CoreConnection, delay: float | None) -> None:
        handle, self._handle = self._handle, None
        if handle is not None:
            handle.cancel()
        if delay is not None:
            self._handle = self._loop.call_later(delay, core.on_timeout)


@final
class _Relay:
    """The protocol the core calls: guards the user's callbacks, adds futures.

    asyncio's rules for a callback that raises: the exception goes to the
    loop's exception handler; from ``connection_made``, ``data_received`` or
    ``eof_received`` it also aborts the connection, and ``connection_lost``
    receives it; from ``pause_writing`` or ``resume_writing`` nothing else
    happens. A framer's :class:`bufkit.FramingError` is the peer's fault,
    not a bug: it goes on to the core, which closes the connection quietly.

    Called as the core's ``on_interest``, it maps the interest to
    ``add_reader``/``add_writer`` on the descriptor (one object per
    connection does both jobs).
    """

    __slots__ = ("conn", "failure", "fd", "interest", "target")

    def __init__(
        self, conn: Connection, target: StreamProtocol | _Frames, fd: int
    ) -> None:
        self.conn: Connection | None = conn
        self.target: StreamProtocol | _Frames | None = target
        self.failure: Exception | None = None  # a callback's bug, reported
        self.fd = fd
        self.interest = _NONE  # what the loop holds for the descriptor

    def __call__(self, core: CoreConnection, interest: Interest) -> None:
        conn = self.conn
        if conn is None:  # pragma: no cover - the core reports NONE before lost
            return
        loop, fd, held = conn._loop, self.fd, self.interest
        self.interest = interest
        reading = interest in _READS
        if reading is not (held in _READS):
            if reading:
                loop.add_reader(fd, _ON_READABLE, core)
            else:
                loop.remove_reader(fd)
        writing = interest in _WRITES
        if writing is not (held in _WRITES):
            if writing:
                loop.add_writer(fd, _ON_WRITABLE, core)
            else:
                loop.remove_writer(fd)

    def connection_made(self, core: CoreConnection, /) -> None:
        target, conn = self.target, self.conn
        if isinstance(target, StreamProtocol) and conn is not None:
            try:
                target.connection_made(conn)
            except Exception as exc:
                self._failed(exc, "connection_made", fatal=True)

    def handshake_done(self, core: CoreConnection, /) -> None:
        """The core's ``on_handshake``: tell a protocol that waits for it."""
        target = self.target
        if isinstance(target, StreamProtocol):
            try:
                target._handshake_done()
            except Exception as exc:
                self._failed(exc, "connection_made", fatal=True)

    def data_received(self, view: memoryview, /) -> None:
        target = self.target
        if target is None:
            return
        try:
            target.data_received(view)
        except FramingError:
            raise
        except Exception as exc:
            self._failed(exc, "data_received", fatal=True)

    def eof_received(self) -> bool | None:
        target = self.target
        if target is None:
            return None
        try:
            return target.eof_received()
        except FramingError:
            raise
        except Exception as exc:
            self._failed(exc, "eof_received", fatal=True)
            return None

    def pause_writing(self) -> None:
        target = self.target
        if isinstance(target, StreamProtocol):
            try:
                target.pause_writing()
            except Exception as exc:
                self._failed(exc, "pause_writing", fatal=False)

    def resume_writing(self) -> None:
        conn = self.conn
        if conn is not None:
            conn._wake_drainers(None)
        target = self.target
        if isinstance(target, StreamProtocol):
            try:
                target.resume_writing()
            except Exception as exc:
                self._failed(exc, "resume_writing", fatal=False)

    def connection_lost(self, exc: Exception | None, /) -> None:
        conn, target = self.conn, self.target
        self.conn = self.target = None  # the links back: refcounting frees all
        if self.failure is not None:
            exc, self.failure = self.failure, None
        if conn is not None:
            conn._lost(exc, target if isinstance(target, StreamProtocol) else None)

    def _failed(self, exc: Exception, where: str, *, fatal: bool) -> None:
        """A protocol callback raised: report it once; abort if ``fatal``."""
        conn = self.conn
        if conn is None:
            return
        conn._report(f"Exception in {type(self.target).__name__}.{where}()", exc)
        exc.__traceback__ = None  # reported; its frames would hold the connection
        if fatal and self.failure is None:
            self.failure = exc
            conn._core.abort()


@final
class Connection:
    """One stream socket registered with the loop: gathered writes, pooled reads.

    Made by :func:`~bufkit.adapters.asyncio.start_server`,
    :func:`~bufkit.adapters.asyncio.start_protocol_server`,
    :func:`~bufkit.adapters.asyncio.open_connection` and
    :func:`~bufkit.adapters.asyncio.open_protocol_connection`, never
    directly. Received bytes reach either a :class:`StreamProtocol`
    (protocol mode) or :meth:`read_frame` (callback mode). The reading,
    writing and closing rules are those of :class:`bufkit.Connection`, which
    this class drives from the asyncio loop.
    """

    # Slots, not an instance dictionary: an idle connection is a few
    # hundred bytes, and each one counts at 10,000 connections. (Storing the
    # core's bound ``write`` and ``take_buffer`` in a dictionary saved one
    # frame per call but cost more memory per idle connection than it saved
    # CPU per request.)
    __slots__ = (
        "__weakref__",
        "_closed",
        "_core",
        "_drain_waiters",
        "_exc",
        "_frames",
        "_loop",
        "_owner",
    )

    def __init__(
        self,
        pool: BufferPool,
        sock: _StreamSocket,
        protocol: StreamProtocol | None = None,
        *,
        loop: asyncio.AbstractEventLoop,
        framer: FramerFactory | None = None,
        high_water: int = 65536,
        low_water: int = 16384,
        read_limit: int = DEFAULT_READ_LIMIT,
        read_budget: int = 16,
        tls: TLSLayer | None = None,
        defer: Callable[[Callable[[], object]], object] | None = None,
    ) -> None:
        self._loop = loop
        self._frames: _Frames | None = None
        target: StreamProtocol | _Frames
        if protocol is None:
            target = self._frames = _Frames(self._frame_arrived, framer, read_limit)
        else:
            target = protocol
        relay = _Relay(self, target, sock.fileno())
        self._core = CoreConnection(
            pool,
            sock,
            relay,
            on_interest=relay,
            defer=loop.call_soon if defer is None else defer,
            high_water=high_water,
            low_water=low_water,
            read_budget=read_budget,
            tls=tls,
            on_timer=None if tls is None else _Timer(loop),
            on_handshake=None if tls is None else relay.handshake_done,
        )
        self._exc: Exception | None = None  # what ended the connection
        self._drain_waiters: list[asyncio.Future[None]] | None = None
        self._closed: asyncio.Future[None] | None = None  # made by wait_closed()
        self._owner: _Owner | None = None

    def __repr__(self) -> str:
        core = self._core
        return f"<Connection {core.state.value} pending_bytes={core.pending_bytes}>"

    # -- lifecycle ---------------------------------------------------------

    def _start(self) -> None:
        """Call ``connection_made``, then start reading (asyncio's order)."""
        self._core.start()

    def is_closing(self) -> bool:
        """Whether :meth:`close` or :meth:`abort` was called or the connection broke."""
        return self._core.state in _CLOSING

    def close(self) -> None:
        """Stop reading, send what is queued, then close the socket.

        Later writes raise :class:`bufkit.QueueClosedError`. Use :meth:`abort`
        to drop queued data and close at once.
        """
        self._core.close()

    def abort(self) -> None:
        """Close at once, dropping queued data; pending sends fail."""
        self._core.abort()

    async def wait_closed(self) -> None:
        """Wait until the socket is closed and ``connection_lost`` has run."""
        if self._closed is None:
            self._closed = self._loop.create_future()
        await asyncio.shield(self._closed)

    def get_extra_info(self, name: str, default: object = None) -> object:
        """What asyncio's transports answer, by the same names.

        ``"socket"``, ``"sockname"`` and ``"peername"`` on every connection;
        on TLS connections also ``"ssl_object"``, ``"sslcontext"``,
        ``"peercert"``, ``"cipher"`` and ``"compression"``.

        Args:
            name: What to return.
            default: Returned for other names, or when the socket or the TLS
                session cannot say (closed, handshake not done).

        Returns:
            The value asked for, or ``default``.
        """
        core = self._core
        sock = cast("_StreamSocket", core.socket)
        try:
            if name == "socket":
                return sock
            if name == "sockname":
                return sock.getsockname()
            if name == "peername":
                return sock.getpeername()
        except OSError:
            return default
        return _tls_info(core.tls, name, default)

    # -- writing -----------------------------------------------------------

    @property
    def pending_bytes(self) -> int:
        """Bytes queued and not yet accepted by the kernel."""
        return self._core.pending_bytes

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        """Change the watermarks of ``pause_writing`` and :meth:`drain`.

        asyncio's rules: ``high`` alone sets ``low`` to ``high // 4``, ``low``
        alone sets ``high`` to ``4 * low``, neither restores 65536 and 16384.
        Pausing and resuming are decided again at once.

        Args:
            high: Queued bytes above which writing pauses.
            low: Queued bytes at or below which writing resumes.

        Raises:
            TypeError: ``high`` or ``low`` is not an int.
            ValueError: Not ``high >= low >= 0``; the limits are unchanged.
        """
        self._core.set_write_buffer_limits(high, low)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The watermarks as ``(low, high)``, in asyncio's order."""
        return self._core.get_write_buffer_limits()

    def write(
        self,
        data: Buffer | PooledBuffer,
        on_done: CompletionCallback | None = None,
        *,
        nbytes: int | None = None,
    ) -> None:
        """Queue ``data``; it leaves with this event's or iteration's other writes.

        Immutable data is not copied; a ``bytearray`` or writable view is
        copied; a :class:`bufkit.PooledBuffer` is handed over (the queue
        releases it once sent, or when it refuses it). An exception raised by
        ``on_done`` is logged and aborts the connection.

        Args:
            data: The bytes to send.
            on_done: Called with ``None`` once the kernel accepted the last
                byte, or with the error that broke the connection first.
            nbytes: For a :class:`bufkit.PooledBuffer`, send only its first
                ``nbytes`` bytes (by default its ``filled`` bytes).

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: After the connection broke or was aborted (the
                error is its ``__cause__``).
            BufferReleasedError: ``data`` is a released pooled buffer.
            TypeError: ``data`` is not bytes-like (``str``, for instance).
        """
        self._core.write(data, on_done, nbytes=nbytes)

    if not TYPE_CHECKING:
        # At run time ``conn.write`` is the core's own bound method, reached
        # with no Python frame (``attrgetter`` is C): a protocol that keeps
        # ``conn.write`` (as fanout and echo servers do) calls the core
        # directly. No slot: an idle connection stays as small as it was.
        write = property(attrgetter("_core.write"), doc=write.__doc__)

    def writelines(self, chunks: Iterable[Buffer | PooledBuffer]) -> None:
        """Queue several chunks; same rules as :meth:`write`.

        Args:
            chunks: The bytes to send, in order.

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: After the connection broke or was aborted.
        """
        self._core.writelines(chunks)

    def send(self, data: Buffer | PooledBuffer) -> asyncio.Future[None]:
        """Queue ``data`` now; the future resolves once the kernel took it all.

        Use it as ``await conn.send(data)``. The data is queued by the call
        itself, so sends keep the order of the calls even when their futures
        are awaited later or never. Cancelling the future (or the task that
        awaits it) does not withdraw the data: it is still sent.

        Args:
            data: The bytes to send (a :class:`bufkit.PooledBuffer` is handed
                over, as with :meth:`write`).

        Returns:
            A future: ``None`` once the last byte was accepted by the kernel,
            or the socket's ``OSError`` if the connection broke first
            (``ConnectionAbortedError`` after :meth:`abort`).

        Raises:
            QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            QueueFailedError: The connection had broken before the call.
        """
        fut: asyncio.Future[None] = self._loop.create_future()
        self._core.write(data, functools.partial(_settle, fut))
        return fut

    async def drain(self) -> None:
        """Wait while writing is paused (asyncio semantics).

        Writing pauses when the queue is above its high-water mark and the
        kernel refused bytes; it resumes at the low-water mark. Returns at
        once otherwise. Cancelling the wait changes nothing else.

        Raises:
            OSError: The socket error that broke the connection;
                ``ConnectionResetError`` if it was closed otherwise.
        """
        self._raise_if_lost()
        if not self._core.writing_paused:
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
        self._core.write_eof()

    # -- reading -----------------------------------------------------------

    def take_buffer(self) -> PooledBuffer:
        """Take the pool buffer behind the current ``data_received`` view.

        Protocol mode, only from inside ``data_received``: the connection then
        does not release the buffer, you must, or hand it to :meth:`write`,
        which releases it once sent. A zero-copy echo::

            def data_received(self, view: memoryview) -> None:
                conn.write(conn.take_buffer())

        Returns:
            The buffer; its ``filled`` bytes are the view's bytes.

        Raises:
            RuntimeError: Called outside ``data_received``, or twice in one call.
        """
        return self._core.take_buffer()

    if not TYPE_CHECKING:  # the core's own method, as ``write`` above
        take_buffer = property(attrgetter("_core.take_buffer"), doc=take_buffer.__doc__)

    def pause_reading(self) -> None:
        """Stop reading until :meth:`resume_reading`, from the next read on."""
        frames = self._frames
        if frames is not None:
            frames.user_paused = True
        self._core.pause_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        frames = self._frames
        if frames is None:
            self._core.resume_reading()
            return
        frames.user_paused = False
        if frames.nbytes < frames.limit:
            self._core.resume_reading()

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
            if frames.eof or self._core.closed:
                return None
            if frames.waiter is not None:
                raise RuntimeError("another task is already waiting in read_frame()")
            waiter = frames.waiter = self._loop.create_future()
            try:
                await waiter
            finally:
                frames.waiter = None
        frame = frames.frames.popleft()
        frames.nbytes -= len(frame)
        if not frames.user_paused and frames.nbytes < frames.limit:
            self._core.resume_reading()
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
        frames = self._frames
        if frames is None:  # pragma: no cover - only callback mode has frames
            return
        if frames.waiter is not None:
            _settle(frames.waiter, None)
        if frames.nbytes >= frames.limit:
            self._core.pause_reading()

    # -- the end -----------------------------------------------------------

    def _raise_if_lost(self) -> None:
        if self._exc is not None:
            raise self._exc
        if self._core.closed:
            raise ConnectionResetError(errno.ECONNRESET, "Connection lost")

    def _forget_drainer(self, fut: asyncio.Future[None]) -> None:
        waiters = self._drain_waiters
        if waiters is not None and fut in waiters:
            waiters.remove(fut)

    def _wake_drainers(self, exc: Exception | None) -> None:
        waiters, self._drain_waiters = self._drain_waiters, None
        for fut in waiters or ():
            _settle(fut, exc)

    def _lost(self, exc: Exception | None, protocol: StreamProtocol | None) -> None:
        """The core closed the socket: fail what waits, tell the protocol soon."""
        self._exc = exc
        if self._drain_waiters:
            aborted = ConnectionAbortedError(errno.ECONNABORTED, "Connection aborted")
            self._wake_drainers(exc or aborted)
        frames = self._frames
        if frames is not None:
            if frames.waiter is not None:
                _settle(frames.waiter, exc)
            frames.close()
        self._loop.call_soon(self._call_connection_lost, protocol, exc)

    def _call_connection_lost(
        self, protocol: StreamProtocol | None, exc: Exception | None
    ) -> None:
        try:
            if protocol is not None:
                protocol.connection_lost(exc)
        except Exception as bug:
            self._report(
                f"Exception in {type(protocol).__name__}.connection_lost()", bug
            )
            bug.__traceback__ = None
        finally:
            if self._closed is None:
                self._closed = self._loop.create_future()
            _settle(self._closed, None)
            owner, self._owner = self._owner, None
            if owner is not None:
                owner._connection_closed(self)

    def _report(self, message: str, exc: Exception) -> None:
        self._loop.call_exception_handler(
            {"message": message, "exception": exc, "connection": self}
        )
