"""The sans-IO connection core: one state machine per connection, no event loop.

Theory of operation
-------------------
A :class:`Connection` joins a non-blocking socket, a :class:`~bufkit.ReadinessReader`
and a :class:`~bufkit.WriteQueue` to a protocol with asyncio's callback names.
It knows no event loop. Its owner (a loop adapter) feeds it inputs --
:meth:`~Connection.on_readable`, :meth:`~Connection.on_writable`, and the
user's calls (``write``, ``write_eof``, ``close``, ``abort``, pause/resume
reading) -- and it answers with outputs: the readiness it now wants
(``on_interest(conn, interest)``; :attr:`Interest.NONE` once closed means
"forget me"), a request to flush at the end of the loop iteration
(``defer(flush)``), and the protocol callbacks. Every adapter is a shim that
maps :class:`Interest` to its loop's registration and nothing else.

The policies, once, here:

* **Flush at the end of each event.** Writes made while a callback runs only
  enqueue; the connection flushes once when the event ends (one ``sendmsg``
  for any number of small writes). A write outside an event asks ``defer`` for
  one flush at the end of the loop iteration.
* **One write, one send.** The first write of an event, on a plain
  connection with nothing pending, no completion callback and no pause
  pending or told (a past pause or new watermarks do not matter), is not queued:
  the connection keeps it (counted in ``pending_bytes``) and the
  end-of-event flush sends it with one ``send``. Only what the kernel refuses
  goes to the queue (made then if need be). A second write in the event,
  ``writelines``, new watermarks, ``close()`` or ``write_eof()`` move it into
  the queue first, so order and the queue's semantics are unchanged
  (docs/design.md invariants 1 and 2); an abort releases its pooled buffer.
* **Pause means the kernel refused bytes.** When a write takes the queue above
  its high watermark, the connection tries the send first and calls
  ``pause_writing`` only if what remains is still above it, as asyncio's
  transports do; a subscriber that reads fast is never paused by a burst the
  kernel can take. ``resume_writing`` follows once at or below the low
  watermark. The watermarks may change at any time
  (``set_write_buffer_limits``): pause and resume are decided again at once.
  The queue's hooks report the crossings; while the queue's own view is out
  of step with the connection's (new watermarks, or a crossing the send
  undid), the connection compares ``held_bytes`` itself after each write
  and flush, until the two agree again.
* **Reading stops while writing is paused**, and resumes with
  ``resume_writing``: a protocol that writes more than it reads (an
  amplifier) holds at most the watermarks' worth of memory
  (docs/design.md invariant 6).
* **Pool pressure stops reading, it does not kill.** If the pool cannot lend a
  read buffer, the connection stops reading, asks the pool
  (``add_release_callback``) to say when a buffer comes back, and reads again
  then; one log line per episode. The callback is removed on close.
* **Write interest** is armed by one place only, after a flush that did not
  drain (the socket would block, or the queue's spin limit was reached), and
  disarmed when a flush drains (docs/design.md invariant 3).
* **TLS** (``tls=``, a :class:`~bufkit.TLSLayer`) sits between the reader and
  queue and the socket: the reader reads plaintext from it, the queue flushes
  plaintext into it, and it reports bytes sent only once the kernel took
  their ciphertext (docs/design.md invariant 7). Write interest then follows
  the ciphertext waiting for the kernel, plus plaintext the layer could
  encrypt now: plaintext written before the handshake completes waits
  without write interest (the handshake needs reads, not writes). The core
  has no clock: it asks its owner for one timer at a time
  (``on_timer(conn, delay)``, then :meth:`~Connection.on_timeout`) for the
  handshake and graceful-close timeouts. When reading resumes while the
  layer holds plaintext or whole records (read before reading stopped),
  the connection asks ``defer`` for one read: no selector would report
  bytes that already left the kernel. A graceful close sends
  ``close_notify`` after the plaintext drained and closes once that was sent.
  Until the handshake completes, the reader reads through a small watcher
  that reports its end (``on_handshake``) before the first plaintext is
  handed over; the watcher points back at the connection, so it is dropped
  at the handshake's end and on close.
* **Errors.** An exception from the user's protocol is a bug: logged once with
  its traceback on the ``bufkit.connection`` logger, the connection aborted,
  ``connection_lost(exc)``. A peer's misbehaviour is not: resets and broken
  pipes log at DEBUG; a :class:`~bufkit.FramingError` from ``data_received``
  is one rate-limited INFO line, and the connection is aborted with it.

docs/design.md invariants 1 and 2 (bytes exactly once in order; each
``on_done`` exactly once) are the write queue's: the connection only decides
*when* to flush. docs/design.md invariants 4 and 5: read buffers are borrowed
for one event; an idle connection holds none. docs/design.md invariant 6: a
closed or failed connection is freed by reference counting. The queue's
watermark hook is a weak reference to the connection, the reader and its link are
dropped on close, so are the protocol (after ``connection_lost``), the
pool's release callback, the TLS layer's ciphertext and socket and the
owner's timer (cancelled through ``on_timer``); the traceback of the
exception that ended the connection is dropped once logged (it would hold
the frames, hence the connection).

The lifecycle is data: :class:`ConnectionState`, :class:`ConnectionEvent` and
the table :data:`CONNECTION_TRANSITIONS` (``(state, event) -> state``); a
change the table does not list raises.

Cost model: per readable event, one reader call (one ``acquire``/``recv_into``/
``release`` per read) handed the socket itself, with no wrapper around each
read (the reader stops on its ``paused`` flag, which the connection keeps
equal to its own, counts the bytes and says when an error was the
socket's), the protocol's own ``data_received`` called directly, and one
flush; a reply written as the event's only write costs no queue call
(one ``send`` from the flush); ``on_interest`` is called only when the wanted
readiness changes. An idle connection is one slotted object of about twenty slots and
nothing else: the write queue (with its one watermark hook) is made by the
first write, the reader and its link on the first readable event, and the
rarely used state (TLS and its timer, non-default watermarks or read
budget, the pause flags, pool starvation, the peer's EOF) lives in a second
object made the first time one of them is needed. A write after the
connection ended with no queue meets a queue made then, closed or failed as
the connection was, so it raises as it always did.
"""

from __future__ import annotations

import enum
import errno
import logging
import os
import sys
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, TypeVar, final

from bufkit._checks import positive_int, send_would_block
from bufkit._pool import PooledBuffer
from bufkit._reader import ReadinessReader
from bufkit._sockets import is_peer_error
from bufkit._writequeue import QueueState, WriteQueue
from bufkit.errors import FramingError, PoolExhausted, QueueFailedError

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit._pool import BufferPool
    from bufkit._protocols import CompletionCallback
    from bufkit._tls import TLSLayer

__all__ = [
    "CONNECTION_TRANSITIONS",
    "Connection",
    "ConnectionEvent",
    "ConnectionProtocol",
    "ConnectionState",
    "DeferCallback",
    "Interest",
    "InterestCallback",
    "StreamSocket",
    "TimerCallback",
    "transition",
]

LOGGER: Final = logging.getLogger("bufkit.connection")


class Interest(enum.IntFlag):
    """The readiness a connection wants; values match :mod:`selectors`' events."""

    __module__ = "bufkit"

    NONE = 0
    READ = 1  # selectors.EVENT_READ
    WRITE = 2  # selectors.EVENT_WRITE
    BOTH = 3


class ConnectionState(enum.Enum):
    """Where a :class:`Connection` is in its life.

    The legal changes are listed in :data:`CONNECTION_TRANSITIONS`.
    """

    __module__ = "bufkit"
    # Members are singletons that compare by identity: hash them by identity
    # too, in C (Enum's own __hash__ is a Python call per table lookup).
    __hash__ = object.__hash__

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


class ConnectionEvent(enum.Enum):
    """What moves a :class:`Connection` from one state to another."""

    __module__ = "bufkit"
    __hash__ = object.__hash__  # as ConnectionState's

    START = "start()"
    """The owner started the connection."""
    WRITE_EOF = "write_eof()"
    """The user asked to shut the sending side once drained."""
    SHUT_WR = "drained after write_eof(): shutdown(SHUT_WR)"
    """The queue drained after ``write_eof``; the sending side is shut."""
    CLOSE = "close(), or eof_received() did not ask to keep writing"
    """A graceful close began: stop reading, drain, close."""
    LOST = "socket closed: connection_lost()"
    """The socket was closed (drained, aborted or failed)."""


_S = ConnectionState
_E = ConnectionEvent
CONNECTION_TRANSITIONS: Final[
    Mapping[tuple[ConnectionState, ConnectionEvent], ConnectionState]
] = {
    (_S.NEW, _E.START): _S.OPEN,
    (_S.NEW, _E.LOST): _S.CLOSED,
    (_S.OPEN, _E.WRITE_EOF): _S.WRITE_SHUTTING,
    (_S.OPEN, _E.CLOSE): _S.CLOSING,
    (_S.OPEN, _E.LOST): _S.CLOSED,
    (_S.WRITE_SHUTTING, _E.SHUT_WR): _S.WRITE_SHUT,
    (_S.WRITE_SHUTTING, _E.CLOSE): _S.CLOSING,
    (_S.WRITE_SHUTTING, _E.LOST): _S.CLOSED,
    (_S.WRITE_SHUT, _E.CLOSE): _S.CLOSING,
    (_S.WRITE_SHUT, _E.LOST): _S.CLOSED,
    (_S.CLOSING, _E.LOST): _S.CLOSED,
}
"""Every legal ``(state, event) -> state`` change of a :class:`Connection`."""

_StateT = TypeVar("_StateT", bound=enum.Enum)
_EventT = TypeVar("_EventT", bound=enum.Enum)


def transition(
    table: Mapping[tuple[_StateT, _EventT], _StateT], state: _StateT, event: _EventT
) -> _StateT:
    """Return the state ``event`` leads to from ``state`` in ``table``.

    Raises:
        RuntimeError: The table has no such change (a bug in the caller).
    """
    try:
        return table[state, event]
    except KeyError:
        raise RuntimeError(
            f"illegal transition: {event.name} in state {state.name}"
        ) from None


_READABLE: Final = frozenset({_S.OPEN, _S.WRITE_SHUTTING, _S.WRITE_SHUT})
# Members as module constants: no enum attribute lookups on the per-event path.
_NONE: Final = Interest.NONE
_READ: Final = Interest.READ
_WRITE: Final = Interest.WRITE
_BOTH: Final = Interest.BOTH
_NEW: Final = _S.NEW
_OPEN: Final = _S.OPEN
_CLOSED: Final = _S.CLOSED
# Connection._in_event: False between events, True in one, and in one that
# wrote: _KEPT (its one write is kept by the connection) then _WROTE.
_KEPT: Final = 2
_WROTE: Final = 3
_SHUT_WR: Final = 1  # socket.SHUT_WR everywhere; importing socket loads selectors


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


class ConnectionProtocol(Protocol):
    """What a :class:`Connection` calls back: asyncio's protocol callbacks.

    Subclass it and write only the methods you need (the others do nothing),
    or write all six on any class (a structural match is enough for the type
    checker: this is a :class:`typing.Protocol`). Every callback runs inside
    an event; writes made there are flushed once, after it returns. An
    exception raised by a callback is logged with its traceback and aborts
    the connection.
    """

    __slots__ = ()  # so subclasses that declare slots carry no instance dict

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

    def connection_lost(self, exc: Exception | None, /) -> None:
        """The connection is closed: ``None`` if cleanly, else the error."""
        return

    def pause_writing(self) -> None:
        """The kernel refused bytes and the queue is above its high watermark."""
        return

    def resume_writing(self) -> None:
        """The write queue drained to its low watermark: write again."""
        return


@final
class _Detached(ConnectionProtocol):
    """What a closed connection calls instead of the protocol it let go of."""

    __slots__ = ()


_DETACHED: Final = _Detached()

InterestCallback = Callable[["Connection", Interest], object]
"""``on_interest(conn, interest)``: the readiness a connection wants changed."""
DeferCallback = Callable[[Callable[[], object]], object]
"""``defer(flush)``: run ``flush()`` once at the end of the loop iteration."""
TimerCallback = Callable[["Connection", "float | None"], object]
"""``on_timer(conn, delay)``: call ``conn.on_timeout()`` after ``delay`` seconds.

``None`` cancels the timer asked for before; a new delay replaces it. Only
TLS connections ask (handshake and graceful-close timeouts).
"""
_NO_TIMER: Final = 0
_HANDSHAKE_TIMER: Final = 1
_SHUTDOWN_TIMER: Final = 2


@final
class _RateLimit:
    """At most ``limit`` lines per second on one logger; counts the rest."""

    __slots__ = ("_clock", "_count", "_limit", "_start", "_suppressed")

    def __init__(self, limit: int, clock: Callable[[], float] = time.monotonic) -> None:
        self._limit = limit
        self._clock = clock
        self._start = -1e9
        self._count = 0
        self._suppressed = 0

    def log(self, level: int, msg: str, *args: object) -> None:
        if not LOGGER.isEnabledFor(level):
            return
        now = self._clock()
        if now - self._start >= 1.0:
            if self._suppressed:
                LOGGER.log(level, "%d similar lines suppressed", self._suppressed)
            self._start, self._count, self._suppressed = now, 0, 0
        if self._count < self._limit:
            self._count += 1
            LOGGER.log(level, msg, *args)
        else:
            self._suppressed += 1


PEER_LOG_LIMIT: Final = 10
"""Lines per second at most for peers' misbehaviour and pool pressure."""
_PEER_LOG: Final = _RateLimit(PEER_LOG_LIMIT)


_DEFAULT_HIGH: Final = 65536
_DEFAULT_LOW: Final = 16384
_DEFAULT_BUDGET: Final = 16


@final
class _Extra:
    """A connection's rarely used state, made the first time one is needed.

    TLS, non-default watermarks or read budget, the reading and writing
    pause flags, pool starvation, the peer's EOF, the failure that ended a
    connection that never wrote: an idle plain connection has none of it.
    """

    __slots__ = (
        "eof",
        "failure",
        "high",
        "low",
        "on_handshake",
        "on_timer",
        "pause_pending",
        "paused",
        "read_budget",
        "read_deferred",
        "starved",
        "timer",
        "tls",
        "watch",
        "writing_paused",
    )

    def __init__(self) -> None:
        self.tls: TLSLayer | None = None
        self.on_handshake: Callable[[Connection], object] | None = None
        self.on_timer: TimerCallback | None = None
        self.timer = _NO_TIMER
        self.high = _DEFAULT_HIGH
        self.low = _DEFAULT_LOW
        self.read_budget = _DEFAULT_BUDGET
        self.paused = False  # pause_reading()
        self.writing_paused = False  # pause_writing() was called
        self.pause_pending = False  # above high water, send not tried yet
        self.watch = False  # crossings decided by the connection, not the queue
        self.starved = False  # the pool could not lend a read buffer
        self.read_deferred = False  # defer(read) asked for, not yet run
        self.eof = False
        self.failure: Exception | None = None  # for writes after, if no queue


@final
class _Handshaking:
    """The TLS layer as the reader sees it until the handshake completed.

    It tells the connection the moment the handshake is done, before any
    plaintext reaches the protocol; then the reader reads from the layer
    itself.
    """

    __slots__ = ("_conn", "_tls")

    def __init__(self, conn: Connection, tls: TLSLayer) -> None:
        self._conn = conn
        self._tls = tls

    def recv_into(self, buffer: memoryview, /) -> int:
        tls = self._tls
        try:
            got = tls.recv_into(buffer)
        except BlockingIOError:
            if tls.handshake_done:
                self._conn._handshake_finished(tls)
            raise
        if tls.handshake_done:
            conn = self._conn
            conn._handshake_finished(tls)
            if conn._state is _CLOSED or conn._error is not None:
                # on_handshake ended the connection: these bytes go nowhere.
                raise BlockingIOError(errno.EAGAIN, "closed by on_handshake")
        return got


@final
class _Link:
    """The reader's handler, and what the reader reads from.

    Made on the first readable event (an idle connection that never received
    a byte has none). ``data_received`` is the protocol's own method, so the
    reader calls it with no frame of ours in between. ``stream`` is what the
    reader reads, handed to it as is: the socket, the TLS layer, or the
    handshake's watcher. ``pending`` is its ``pending()`` if it has one (a
    TLS layer: decrypted bytes no selector reports), else None.
    """

    __slots__ = ("_conn", "data_received", "pending", "stream")

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self.data_received: Callable[[memoryview], None] = conn._protocol.data_received
        tls = conn.tls
        self.stream: StreamSocket | TLSLayer | _Handshaking = conn._sock
        if tls is not None:
            self.stream = tls if tls.handshake_done else _Handshaking(conn, tls)
        pending = getattr(conn._sock if tls is None else tls, "pending", None)
        self.pending: Callable[[], int] | None = pending if callable(pending) else None

    def eof_received(self) -> bool | None:
        return self._conn._peer_eof()


@final
class Connection:
    """A non-blocking socket, a reader and a write queue, driven by readiness.

    Call :meth:`start` once, then :meth:`on_readable` / :meth:`on_writable`
    whenever the socket is ready for what :attr:`interest` asks. The
    connection owns the socket and closes it.

    Args:
        pool: Lends the read buffers.
        sock: A connected, non-blocking socket (or a fake one).
        protocol: Receives the callbacks of :class:`ConnectionProtocol`.
        on_interest: Called as ``on_interest(conn, interest)`` whenever the
            wanted readiness changes. :attr:`Interest.NONE` after
            :attr:`closed` turned true means: forget this connection (it is
            reported exactly once, before the socket is closed, so you can
            unregister it).
        defer: Called with a flush function when data was written outside an
            event; run it once at the end of the loop iteration
            (``list.append`` onto a list you drain is enough). Also called
            with a read function when reading resumes while the TLS layer
            holds bytes no selector reports. ``None`` flushes at once, one
            send per write, and reads such bytes at once when reading
            resumes outside an event.
        high_water: Pending bytes above which the connection sends at once
            and, if the kernel refuses bytes, calls ``pause_writing``.
        low_water: Pending bytes at or below which ``resume_writing`` follows.
            :meth:`set_write_buffer_limits` changes both later.
        read_budget: Reads per readable event at most.
        tls: A :class:`bufkit.TLSLayer` to speak TLS over ``sock`` (a plain
            socket): the protocol then sees plaintext only, and the handshake
            starts with :meth:`start`.
        on_timer: Called as ``on_timer(conn, delay)`` when the connection
            wants :meth:`on_timeout` called after ``delay`` seconds, and as
            ``on_timer(conn, None)`` to cancel that. Only TLS connections ask
            (the handshake and graceful-close timeouts); without it they have
            no timeout.
        on_handshake: Called as ``on_handshake(conn)`` once the TLS
            handshake completed, before any plaintext reaches the protocol;
            never without ``tls``, never after a failed handshake.
        read_bytes: For a protocol that needs :class:`bytes`: a read that
            follows a read that filled its buffer is made with
            ``sock.recv`` and ``data_received`` gets ``memoryview(data)``
            of that new bytes object (its ``obj``), see
            :class:`bufkit.ReadinessReader`. Ignored with ``tls`` (reads
            stay pooled). :meth:`take_buffer` refuses such reads.

    Raises:
        TypeError: ``read_budget`` or a watermark is not an int, ``tls``
            is not a :class:`bufkit.TLSLayer`, or ``on_handshake`` is not
            callable, or ``read_bytes`` is set and ``sock`` has no ``recv``.
        ValueError: A watermark is negative, ``low_water`` exceeds
            ``high_water``, or ``read_budget`` is below 1.
    """

    __module__ = "bufkit"
    __slots__ = (
        "__weakref__",
        "_bytes_received",
        "_bytes_written",
        "_defer",
        "_error",
        "_extra",
        "_flush_scheduled",
        "_flushes",
        "_flushing",
        "_in_event",
        "_interest",
        "_link",
        "_on_interest",
        "_one",
        "_pool",
        "_protocol",
        "_queue",
        "_read_bytes",
        "_read_stopped",
        "_reader",
        "_sock",
        "_state",
        "_write_armed",
    )

    def __init__(
        self,
        pool: BufferPool,
        sock: StreamSocket,
        protocol: ConnectionProtocol,
        *,
        on_interest: InterestCallback,
        defer: DeferCallback | None = None,
        high_water: int = _DEFAULT_HIGH,
        low_water: int = _DEFAULT_LOW,
        read_budget: int = _DEFAULT_BUDGET,
        tls: TLSLayer | None = None,
        on_timer: TimerCallback | None = None,
        on_handshake: Callable[[Connection], object] | None = None,
        read_bytes: bool = False,
    ) -> None:
        if on_handshake is not None and not callable(on_handshake):
            raise TypeError(
                f"on_handshake must be callable or None, not {on_handshake!r}"
            )
        if type(read_budget) is not int:
            raise TypeError(f"read_budget must be an int, not {read_budget!r}")
        if read_budget < 1:
            raise ValueError(f"read_budget must be at least 1, not {read_budget}")
        if not (
            type(high_water) is int
            and type(low_water) is int
            and 0 <= low_water <= high_water
        ):  # checked in full only when not plainly valid (no call per accept)
            positive_int("high_water", high_water, minimum=0)
            positive_int("low_water", low_water, minimum=0)
            if low_water > high_water:
                raise ValueError(
                    f"watermarks need 0 <= low_water <= high_water, "
                    f"got low_water={low_water}, high_water={high_water}"
                )
        if read_bytes and tls is None and not callable(getattr(sock, "recv", None)):
            raise TypeError(f"read_bytes needs a socket with recv(), not {sock!r}")
        self._read_bytes = bool(read_bytes) and tls is None
        self._extra: _Extra | None = None
        if tls is not None:
            from bufkit import _tls

            if not isinstance(tls, _tls.TLSLayer):
                raise TypeError(f"tls must be a bufkit.TLSLayer, not {tls!r}")
            tls.attach(sock)
            extra = self._rare()
            extra.tls, extra.on_timer, extra.on_handshake = tls, on_timer, on_handshake
        if (
            high_water != _DEFAULT_HIGH
            or low_water != _DEFAULT_LOW
            or read_budget != _DEFAULT_BUDGET
        ):
            extra = self._rare()
            extra.high, extra.low = int(high_water), int(low_water)
            extra.read_budget = read_budget
        self._state = _NEW
        self._interest = _NONE
        self._pool = pool
        self._sock = sock
        self._protocol = protocol
        self._on_interest = on_interest
        self._defer = defer
        self._queue: WriteQueue | None = None  # made by the first write
        # The one write of an event with no queue: bytes, or a pooled buffer
        # and the view of what it sends. Sent at the end of the event.
        self._one: tuple[PooledBuffer | None, bytes | memoryview] | None = None
        self._reader: ReadinessReader | None = None  # made on the first read
        self._link: _Link | None = None
        self._in_event: int = False  # or True, _KEPT, _WROTE: see _KEPT
        self._flushing = False
        self._write_armed = False
        self._flush_scheduled = False
        self._read_stopped = True
        self._error: Exception | None = None
        self._bytes_received = 0
        self._bytes_written = 0
        self._flushes = 0

    def _rare(self) -> _Extra:
        extra = self._extra
        if extra is None:
            extra = self._extra = _Extra()
        return extra

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
        return self._state is _CLOSED

    @property
    def reading(self) -> bool:
        """Whether the connection wants to read.

        False before :meth:`start`, after end of file or :meth:`close`, after
        :meth:`pause_reading`, while writing is paused, and while the pool
        has no buffer to lend.
        """
        return not self._read_stopped

    @property
    def writing_paused(self) -> bool:
        """Whether the protocol was told ``pause_writing`` (and not resumed)."""
        extra = self._extra
        return extra is not None and extra.writing_paused

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet accepted by the kernel."""
        queue, one = self._queue, self._one
        pending = 0 if queue is None else queue.pending
        if one is not None:
            pending += len(one[1])
        return pending

    @property
    def bytes_received(self) -> int:
        """Bytes handed to the protocol so far."""
        reader = self._reader
        if reader is None:
            return self._bytes_received
        return self._bytes_received + reader.bytes_received

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
    def tls(self) -> TLSLayer | None:
        """The TLS layer (peer certificate, ALPN, cipher, version), if any."""
        extra = self._extra
        return None if extra is None else extra.tls

    @property
    def protocol(self) -> ConnectionProtocol | None:
        """The protocol this connection calls back; None once closed.

        After ``connection_lost`` the connection lets go of its protocol (as
        asyncio's transports do), so a protocol that keeps the connection
        forms no reference cycle with it.
        """
        return None if self._state is _CLOSED else self._protocol

    def __repr__(self) -> str:
        return (
            f"<Connection {self._state.value} interest={self._interest.name}"
            f" pending={self.pending_bytes}>"
        )

    # -- inputs from the owner ------------------------------------------------

    def start(self) -> None:
        """Call ``connection_made`` and report the first interest (read).

        Raises:
            RuntimeError: If the connection was already started.
        """
        if self._state is not _NEW:
            raise RuntimeError(f"connection already started: {self!r}")
        self._state = transition(CONNECTION_TRANSITIONS, _NEW, _E.START)
        self._read_stopped = False
        self._in_event = True
        try:
            self._protocol.connection_made(self)
        except Exception as exc:
            self._error = exc
        tls = self.tls
        if tls is not None and self._state is _OPEN:
            self._set_timer(_HANDSHAKE_TIMER, tls.handshake_timeout)
            try:
                tls.begin()
            except OSError as exc:  # a TLSHandshakeError
                self._lose(exc)
        self._update_reading()
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
            # The stream itself, not a wrapper: the reader stops when told
            # (``paused``, kept equal to _read_stopped) and counts the bytes.
            more = reader.on_readable(link.stream)
            # A TLS socket may hold decrypted bytes past the read budget that
            # no selector will report: read them now (at most a record).
            pending = link.pending
            while more and pending is not None and pending() and not self._read_stopped:
                more = reader.on_readable(link.stream)
        except Exception as exc:
            self._read_failed(exc, reader)
        self._end_event()

    def on_timeout(self) -> None:
        """The delay last asked for with ``on_timer`` passed: act on it.

        A handshake still running fails with :class:`bufkit.TLSHandshakeError`;
        a graceful close still sending is aborted with :class:`TimeoutError`.
        Does nothing if no timer is due (cancelled, or the connection closed).
        """
        extra = self._extra
        if extra is None:
            return
        kind, extra.timer = extra.timer, _NO_TIMER
        tls = extra.tls
        if self._state is _CLOSED or tls is None or kind == _NO_TIMER:
            return
        if kind == _HANDSHAKE_TIMER:
            from bufkit._tls import handshake_error

            self._lose(
                handshake_error(
                    None,
                    "the TLS handshake did not complete within "
                    f"{tls.handshake_timeout:g} s",
                )
            )
            return
        _PEER_LOG.log(
            logging.INFO,
            "%s did not finish closing within %g s; aborting",
            repr(self),
            tls.shutdown_timeout,
        )
        self._abort(TimeoutError(f"TLS close took over {tls.shutdown_timeout:g} s"))

    def on_writable(self) -> None:
        """Send what is queued; disarm write interest once it drained."""
        if self._state is _CLOSED:
            return
        self._in_event = True
        self._end_event()

    def take_buffer(self) -> PooledBuffer:
        """Own the chunk behind the view of the current ``data_received``.

        Zero-copy echo: ``conn.write(conn.take_buffer(), nbytes=len(view))``.

        Returns:
            The pooled buffer; release it, or pass it to :meth:`write`.

        Raises:
            RuntimeError: No ``data_received`` call is in progress, its
                buffer was already taken, or its read came as bytes
                (``read_bytes``).
        """
        reader = self._reader
        if reader is None:
            raise RuntimeError("take_buffer() works only inside data_received")
        return reader.take_buffer()

    # -- inputs from the user -------------------------------------------------

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
        in_event = self._in_event
        if (
            in_event is _WROTE
            and queue is not None
            and type(data) is bytes
            and nbytes is None
        ):
            # The third or later write of an event (fanout): the queue takes it.
            queue.write(data, on_done)
            self._bytes_written += len(data)
            if self._extra is not None:
                self._after_write(self._extra)
            return
        if in_event is not _WROTE:  # not the third or later write of an event
            if in_event is True:  # the first
                self._in_event = _WROTE
                if (
                    on_done is None
                    # Not over TLS (the layer's flush sends it), nor while
                    # a pause is pending or told or the connection decides
                    # the crossings; other rare state (a past pause, new
                    # watermarks, ...) does not change how it is sent.
                    and (
                        (extra := self._extra) is None
                        or (
                            extra.tls is None
                            and not extra.watch
                            and not extra.pause_pending
                            and not extra.writing_paused
                        )
                    )
                    and self._state is _OPEN
                    and not self._flushing
                    and (queue is None or not queue)
                ):
                    # The one write of an event: kept here, sent at its end.
                    if type(data) is bytes:
                        if nbytes is None and data:
                            self._one = (None, data)
                            self._bytes_written += len(data)
                            self._in_event = _KEPT
                            return
                    elif type(data) is PooledBuffer and nbytes.__class__ is int:
                        # Its memory without the checked property's frame;
                        # the property raises BufferReleasedError if released.
                        view = data._mem if data._lent else data.view
                        if 0 < nbytes <= len(view):
                            self._one = (data, view[:nbytes])
                            self._bytes_written += nbytes
                            self._in_event = _KEPT
                            return
            elif in_event is _KEPT:  # the second: the kept one goes first
                self._in_event = _WROTE
            if queue is None or self._one is not None:
                queue = self._queue_for_write()
        elif queue is None:  # let go of for new watermarks in this event
            queue = self._queue_for_write()
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
        extra = self._extra
        if extra is not None:
            self._after_write(extra)
        elif self._in_event is False and not (
            self._write_armed or self._flush_scheduled
        ):
            self._schedule_flush()

    def writelines(
        self,
        buffers: Iterable[Buffer | PooledBuffer],
        on_done: CompletionCallback | None = None,
    ) -> None:
        """Queue several buffers; ``on_done`` fires once the last one was sent.

        Args:
            buffers: Bytes-like objects (mutable ones are copied) or
                :class:`bufkit.PooledBuffer` objects whose ownership passes here.
            on_done: Called with ``None`` once the last byte was sent, or with
                the error.

        Raises:
            bufkit.QueueClosedError: After :meth:`close` or :meth:`write_eof`.
            bufkit.QueueFailedError: After :meth:`abort` or a socket error.
        """
        queue = self._queue_for_write()
        before = queue.pending
        queue.writelines(buffers, on_done)
        self._bytes_written += queue.pending - before
        extra = self._extra
        if extra is not None:
            self._after_write(extra)
        elif not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def _after_write(self, extra: _Extra) -> None:
        if extra.watch:
            self._check_limits(extra)
        if extra.pause_pending:
            self._above_high_water()
        elif not (self._in_event or self._write_armed or self._flush_scheduled):
            self._schedule_flush()

    def set_write_buffer_limits(
        self, high: int | None = None, low: int | None = None
    ) -> None:
        """Change the watermarks of pending bytes, with asyncio's rules.

        ``high`` alone sets ``low`` to ``high // 4``; ``low`` alone sets
        ``high`` to ``4 * low``; neither restores the defaults (65536 and
        16384). Pause and resume are decided again at once: above the new
        ``high``, ``pause_writing`` follows if the kernel refuses bytes (the
        send is tried first, as after a write); paused and at or below the
        new ``low``, ``resume_writing`` is called before this returns. Bytes
        are counted as :attr:`pending_bytes` plus the unsent part of the
        pooled chunks the queue holds (docs/design.md invariant 6).

        Args:
            high: Pending bytes above which writing pauses.
            low: Pending bytes at or below which writing resumes.

        Raises:
            TypeError: ``high`` or ``low`` is not an int (a bool is refused).
            ValueError: Not ``high >= low >= 0``; the message names both
                values. The limits are unchanged.
        """
        high, low = _write_limits(high, low)
        extra = self._rare()
        extra.high, extra.low = high, low
        if self._state is _CLOSED:
            return
        if self._one is not None:
            self._queue_for_write()  # counted with the others from now on
        extra.watch = self._queue is not None  # it counts with the old ones
        self._check_limits(extra)
        if extra.pause_pending:
            self._above_high_water()  # try the send; pause if bytes remain

    def get_write_buffer_limits(self) -> tuple[int, int]:
        """The watermarks as ``(low, high)``, in asyncio's order."""
        extra = self._extra
        if extra is None:
            return (_DEFAULT_LOW, _DEFAULT_HIGH)
        return (extra.low, extra.high)

    def pause_reading(self) -> None:
        """Stop reading (no more ``data_received``) until :meth:`resume_reading`."""
        self._rare().paused = True
        self._update_reading()

    def resume_reading(self) -> None:
        """Read again after :meth:`pause_reading`."""
        extra = self._extra
        if extra is not None:
            extra.paused = False
        self._update_reading()

    def write_eof(self) -> None:
        """Shut the sending side once everything queued was sent.

        Later writes raise :class:`bufkit.QueueClosedError`. Does nothing
        unless the connection is open.

        Raises:
            NotImplementedError: The connection speaks TLS (a ``tls=`` layer,
                or an :class:`ssl.SSLSocket`): TLS has no half-close that
                peers agree on (``close_notify`` ends the session), so
                :meth:`close` is the way to end it. The state is unchanged.
        """
        if self._state is not _OPEN:
            return
        ssl = sys.modules.get("ssl")  # no SSLSocket exists unless ssl is loaded
        if self.tls is not None or (
            ssl is not None and isinstance(self._sock, ssl.SSLSocket)
        ):
            raise NotImplementedError(
                f"write_eof() is not supported over TLS ({self!r}): "
                "close() the connection instead"
            )
        if self._one is not None:
            self._queue_for_write()  # the queue drains it before the shutdown
        self._state = transition(CONNECTION_TRANSITIONS, _OPEN, _E.WRITE_EOF)
        if self._queue is not None:
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
        if self._state is not _CLOSED:
            self._abort(None)

    # -- events ---------------------------------------------------------------

    def _make_reader(self) -> tuple[ReadinessReader, _Link]:
        link = _Link(self)
        extra = self._extra
        budget = _DEFAULT_BUDGET if extra is None else extra.read_budget
        reader = ReadinessReader(
            self._pool, link, read_budget=budget, read_bytes=self._read_bytes
        )
        if self._read_stopped:  # a new reader reads until told otherwise
            reader.paused = True
        self._reader, self._link = reader, link
        return reader, link

    def _make_queue(self) -> WriteQueue:
        # The first write (or the first since the queue was let go of).
        extra = self._extra
        hook = _Crossing(self)
        if extra is None:
            queue = WriteQueue(on_pause=hook, on_resume=hook)
        else:
            queue = WriteQueue(
                high_water=extra.high,
                low_water=extra.low,
                on_pause=hook,
                on_resume=hook,
            )
        self._queue = queue
        state = self._state
        if state is not _OPEN and state is not _NEW:
            # What the queue would say had it been there all along.
            failure = None if extra is None else extra.failure
            if failure is None:
                queue.close()
            else:
                queue.fail(failure)
        return queue

    def _queue_for_write(self) -> WriteQueue:
        # The queue (made if needed) with the event's kept write moved in
        # first: it was written before whatever comes now.
        queue = self._queue
        if queue is None:
            queue = self._make_queue()
        one = self._one
        if one is not None:
            self._one = None
            buf, data = one
            if buf is None:
                queue.write(data)
            else:
                queue.write(buf, nbytes=len(data))
        return queue

    def _end_event(self) -> None:
        # Still "in the event" while flushing: writes made by completions join
        # this flush instead of scheduling another (and never re-enter it).
        if self._error is None and self._state is not _CLOSED:
            self._flush()  # completions and watermark callbacks may raise here
        self._in_event = False
        if self._error is not None:
            self._protocol_failed()
        if self._state is _CLOSED:
            self._drop_reader()  # the reader's link points back here

    def _drop_reader(self) -> None:
        reader = self._reader
        if reader is not None:
            self._bytes_received += reader.bytes_received  # kept for the property
        self._reader = self._link = None

    def _read_failed(self, exc: Exception, reader: ReadinessReader) -> None:
        if reader.recv_failed and isinstance(exc, OSError):
            self._lose(exc)
        elif isinstance(exc, PoolExhausted) and self._from_reader_acquire(exc):
            self._starve(exc)
        elif isinstance(exc, FramingError):
            _PEER_LOG.log(
                logging.INFO,
                "closing %s: the peer broke framing (%s: %s)",
                repr(self),
                type(exc).__name__,
                exc,
            )
            exc.__traceback__ = None
            self._abort(exc)
        else:
            self._error = exc

    def _from_reader_acquire(self, exc: PoolExhausted) -> bool:
        # The reader's own acquire failed (not the protocol's): the traceback
        # entry after ReadinessReader.on_readable's is the pool's acquire.
        # Told by function and file name, which a compiled build's entries
        # keep (its functions have no code objects or locals to compare).
        tb = exc.__traceback__
        while tb is not None and not _runs(tb, "on_readable", "_reader.py"):
            tb = tb.tb_next
        below = None if tb is None else tb.tb_next
        return below is not None and _runs(below, "acquire", "_pool.py")

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
        if self._state is not _CLOSED and not self._write_armed:
            self._in_event = True
            self._end_event()

    def _flush(self) -> None:
        extra = self._extra
        if extra is not None and extra.tls is not None:
            self._flush_tls(extra.tls, extra)
            return
        queue = self._queue
        one = self._one
        if one is not None:  # the event's one write; the queue, if any, is empty
            self._one = None
            self._flushes += 1
            buf, data = one
            try:
                sent = self._sock.send(data)
            except OSError as exc:
                drained = self._send_failed(buf, data, exc)
            else:
                if sent == len(data):
                    if buf is not None:
                        buf.release()
                    drained = True
                else:
                    drained = self._send_rest(buf, data, sent)
            if self._state is _CLOSED:
                return
            if extra is None:
                extra = self._extra  # the rest may have gone above high
            if extra is not None and extra.pause_pending:
                self._pause_after_send(extra)
        elif queue is not None and queue:
            self._flushes += 1
            self._flushing = True
            try:
                drained = queue.flush(self._sock)
            except OSError as exc:
                self._flushing = False
                self._lose(exc)
                return
            except Exception as exc:  # an on_done or watermark callback raised
                self._error = exc
                drained = not queue
            self._flushing = False
            if extra is not None:
                if extra.watch:
                    self._check_limits(extra)
                if extra.pause_pending:
                    self._pause_after_send(extra)
        else:
            drained = True
        self._write_armed = not drained
        if self._error is not None:
            return  # a callback raised: the caller aborts the connection
        if drained:
            if self._state is not _OPEN:
                self._drained()
                return
            if self._interest is _READ and not self._read_stopped:
                return  # the usual end of an event: nothing to change
        self._report_interest()

    def _send_failed(
        self, buf: PooledBuffer | None, data: bytes | memoryview, exc: OSError
    ) -> bool:
        # The one write's send raised: it would block (all of it waits in a
        # queue), or the connection is lost. Returns whether nothing waits.
        if send_would_block(exc) or isinstance(exc, InterruptedError):
            return self._send_rest(buf, data, 0)
        if buf is not None:
            buf.release()
        self._lose(exc)
        return True

    def _send_rest(
        self, buf: PooledBuffer | None, data: bytes | memoryview, sent: int
    ) -> bool:
        # The kernel took ``sent`` bytes of the one write: the rest waits in
        # a queue made now. Returns whether nothing waits.
        size = len(data)
        if sent.__class__ is not int or not 0 <= sent < size:
            if buf is not None:
                buf.release()
            self._error = ValueError(
                f"{self._sock!r} reported {sent!r} bytes sent of {size} offered"
            )
            return True
        queue = self._queue
        if queue is None:
            queue = self._make_queue()
        if buf is None:
            queue.write(memoryview(data)[sent:])  # a view of bytes: no copy
        elif sent:
            queue.write(data[sent:])  # copied: the chunk goes back now
            buf.release()
        else:
            queue.write(buf, nbytes=size)
        return False

    def _flush_tls(self, tls: TLSLayer, extra: _Extra) -> None:
        # Plaintext goes through the TLS layer, which reports it sent once its
        # ciphertext was; handshake and alert bytes go out in the same flush.
        queue = self._queue
        self._flushing = True
        try:
            tls.flush()  # handshake and post-handshake messages first
            if queue is not None and queue and tls.handshake_done:
                self._flushes += 1
                queue.flush(tls)
            if self._state is _S.CLOSING and not queue:
                tls.close_notify()
                tls.flush()
        except OSError as exc:
            self._flushing = False
            self._lose(exc)
            return
        except Exception as exc:  # an on_done or watermark callback raised
            self._error = exc
        self._flushing = False
        if extra.timer == _HANDSHAKE_TIMER and tls.handshake_done:
            self._handshake_finished(tls)
        waiting = tls.cipher_pending
        pending = queue is not None and bool(queue)
        self._write_armed = bool(waiting) or (pending and tls.writable)
        if extra.watch:
            self._check_limits(extra)
        if extra.pause_pending:
            self._pause_after_send(extra)
        if self._error is not None:
            return
        if not (pending or waiting) and self._state is not _OPEN:
            self._drained()
        else:
            self._report_interest()

    def _handshake_finished(self, tls: TLSLayer) -> None:
        # Once, as the handshake completed (noticed by a read, or by the
        # flush that ends the event): before any plaintext is handed over.
        extra = self._extra
        if extra is None or extra.timer != _HANDSHAKE_TIMER or self._state is _CLOSED:
            return
        link = self._link
        if link is not None:
            link.stream = tls  # the watcher points back here: let it go
        if self._state is _S.CLOSING:  # closed during the handshake
            self._set_timer(_SHUTDOWN_TIMER, tls.shutdown_timeout)
        else:
            self._set_timer(_NO_TIMER, None)
        self._update_reading()  # paused writing or close() stop reads now
        callback = extra.on_handshake
        if callback is not None:
            try:
                callback(self)
            except Exception as exc:
                self._error = exc

    def _set_timer(self, kind: int, delay: float | None) -> None:
        extra = self._extra
        if extra is None or kind == extra.timer == _NO_TIMER:
            return
        extra.timer = kind
        if extra.on_timer is not None:
            extra.on_timer(self, delay)

    def _above_high_water(self) -> None:
        # A write took the queue above high water: try the send before
        # telling the protocol to pause, as a paused protocol must mean the
        # kernel refused bytes.
        if self._flushing:
            return  # the flush running now decides when it ends
        if self._state is _NEW:
            self._tell_paused()
        elif self._in_event:
            self._flush()
        else:
            self._in_event = True
            self._end_event()

    def _drained(self) -> None:
        state = self._state
        if state is _S.CLOSING:
            self._finish(None)
        elif state is _S.WRITE_SHUTTING:
            try:
                self._sock.shutdown(_SHUT_WR)
            except OSError as exc:
                self._lose(exc)
                return
            self._state = transition(CONNECTION_TRANSITIONS, state, _E.SHUT_WR)
            extra = self._extra
            if extra is not None and extra.eof:
                self._finish(None)
            else:
                self._report_interest()
        else:
            self._report_interest()

    def _update_reading(self) -> None:
        extra = self._extra
        if extra is None:
            self._read_stopped = self._state not in _READABLE
        else:
            was_stopped = self._read_stopped
            self._read_stopped = stopped = (
                extra.paused
                or extra.starved
                or extra.eof
                or (
                    (extra.writing_paused or self._state not in _READABLE)
                    and not self._handshaking(extra.tls)
                )
            )
            if was_stopped and not stopped and extra.tls is not None:
                self._tell_reader()
                if not self._in_event:
                    self._report_interest()
                self._defer_read(extra, extra.tls)
                return
        self._tell_reader()
        if not self._in_event:
            self._report_interest()

    def _tell_reader(self) -> None:
        # The reader is handed the stream itself: it stops reading, even in
        # the middle of an event, by its own flag, kept equal to ours.
        reader = self._reader
        if reader is not None:
            reader.paused = self._read_stopped

    def _defer_read(self, extra: _Extra, tls: TLSLayer) -> None:
        # Reading resumed: bytes the layer already holds (read from the
        # kernel before reading stopped) make no socket readable, so ask
        # for one read at the end of the loop iteration. Once per resume:
        # a read that stops again asks for nothing until the next one.
        if extra.read_deferred or not tls.pending():
            return
        extra.read_deferred = True
        if self._defer is not None:
            self._defer(self._deferred_read)
        elif not self._in_event:
            self._deferred_read()  # no loop to defer to: read at once
        else:
            extra.read_deferred = False  # read by the next readable event

    def _deferred_read(self) -> None:
        extra = self._extra
        if extra is not None:
            extra.read_deferred = False
        if self._state is not _CLOSED and not self._read_stopped:
            self.on_readable()

    def _handshaking(self, tls: TLSLayer | None) -> bool:
        # A TLS handshake needs reads: neither paused writing nor close()
        # stops them until it completes (what was written still goes out).
        return tls is not None and self._state is not _CLOSED and not tls.handshake_done

    def _report_interest(self) -> None:
        if self._state is _CLOSED:
            return
        if self._read_stopped:
            want = _WRITE if self._write_armed else _NONE
        else:
            want = _BOTH if self._write_armed else _READ
        if want != self._interest:
            self._interest = want
            self._on_interest(self, want)

    def _begin_close(self) -> None:
        state = self._state
        if state is _NEW:
            self._finish(None)
        elif state in _READABLE:
            if self._one is not None:
                self._queue_for_write()  # the queue drains it before the close
            self._state = transition(CONNECTION_TRANSITIONS, state, _E.CLOSE)
            if self._queue is not None:
                self._queue.close()
            self._update_reading()
            tls = self.tls
            if tls is not None and tls.handshake_done:
                self._set_timer(_SHUTDOWN_TIMER, tls.shutdown_timeout)
            self._request_flush()

    # -- watermarks ------------------------------------------------------------

    def _check_limits(self, extra: _Extra) -> None:
        # The crossings decided here rather than by the queue's hook while
        # the queue's own view is out of step: new watermarks, or a crossing
        # whose send left bytes at or below high (no pause then).
        queue = self._queue
        held = 0 if queue is None else queue.held_bytes
        if extra.pause_pending or extra.writing_paused:
            if held <= extra.low:
                self._on_resume()
        elif held > extra.high:
            self._on_pause()
        queue = self._queue  # the callbacks may have written
        if self._flushing or not extra.watch:
            return  # the flush running now may still change the queue
        if queue is None:
            extra.watch = False
            return
        over = extra.pause_pending or extra.writing_paused
        if queue.high_water == extra.high and queue.low_water == extra.low:
            if queue.paused == over:
                extra.watch = False  # back in step: the hook decides again
        elif not queue and not over and queue.state is QueueState.OPEN:
            self._queue = None  # the next write makes one with the new limits
            extra.watch = False

    def _pause_after_send(self, extra: _Extra) -> None:
        # A write crossed high water and the send was tried: pause only if
        # what remains is still above it, as asyncio decides.
        queue = self._queue
        if queue is not None and queue.held_bytes > extra.high:
            self._tell_paused()
        else:
            extra.pause_pending = False
            extra.watch = queue is not None  # the queue counts itself paused

    # -- callbacks from the reader, the queue and the pool ----------------------

    def _queue_crossed(self) -> None:
        # The queue's hook: it went above high water, or back to low water.
        extra = self._extra
        if extra is not None and extra.watch:
            return
        queue = self._queue
        if queue is not None and queue.paused:
            self._on_pause()
        else:
            self._on_resume()

    def _peer_eof(self) -> bool | None:
        self._rare().eof = True
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
        if self._write_armed or self._state is _CLOSED:
            self._tell_paused()  # the kernel is refusing bytes already
        else:
            self._rare().pause_pending = True

    def _tell_paused(self) -> None:
        extra = self._rare()
        extra.pause_pending = False
        if extra.writing_paused:
            return
        extra.writing_paused = True
        self._update_reading()
        try:
            self._protocol.pause_writing()
        except Exception as exc:
            self._error = exc

    def _on_resume(self) -> None:
        extra = self._extra
        if extra is None:
            return
        if extra.pause_pending:
            extra.pause_pending = False  # drained by the send: no pause at all
            return
        if not extra.writing_paused:
            return
        extra.writing_paused = False
        self._update_reading()
        try:
            self._protocol.resume_writing()
        except Exception as exc:
            self._error = exc

    def _starve(self, exc: PoolExhausted) -> None:
        extra = self._rare()
        if not extra.starved:
            extra.starved = True
            _PEER_LOG.log(
                logging.WARNING,
                "%s stops reading until the pool has a buffer again: %s",
                repr(self),
                str(exc),  # not the exception: its traceback holds the frames
            )
            self._pool.add_release_callback(self._pool_returned)
        self._update_reading()

    def _pool_returned(self) -> None:
        # The pool gave a buffer back (maybe inside another connection's
        # event): read again at the end of the loop iteration.
        if self._defer is None:
            self._resume_after_starving()
        else:
            self._defer(self._resume_after_starving)

    def _resume_after_starving(self) -> None:
        extra = self._extra
        if extra is not None and extra.starved and self._state is not _CLOSED:
            extra.starved = False
            self._update_reading()

    # -- ending ---------------------------------------------------------------

    def _protocol_failed(self) -> None:
        exc, self._error = self._error, None
        if exc is None:  # pragma: no cover - callers check
            return
        peer_left = (
            isinstance(exc, QueueFailedError)
            and exc.__cause__ is not None
            and is_peer_error(exc.__cause__)
        )
        if peer_left and self._state is _CLOSED:
            # A write met a queue the peer's reset had just failed, in the
            # same callback (an early send found the reset): not a bug.
            LOGGER.debug("%s: write after the peer left: %s", repr(self), exc)
        elif peer_left:
            # The protocol let a write to a connection whose peer left (a
            # subscriber's, say) escape: it ends this connection, but the
            # cause is a peer's, so one line without a traceback says it.
            _PEER_LOG.log(
                logging.INFO,
                "%s: a callback wrote to a connection whose peer left (%s); aborting",
                repr(self),
                exc,
            )
        elif self._state is _CLOSED:
            LOGGER.error("protocol error after %s closed", repr(self), exc_info=exc)
        else:
            LOGGER.error("protocol error; aborting %s", repr(self), exc_info=exc)
        exc.__traceback__ = None  # logged; its frames would hold this connection
        if self._state is not _CLOSED:
            self._abort(exc)

    def _lose(self, exc: OSError) -> None:
        # The socket failed: a peer's reset is not our bug, say it quietly.
        if self.tls is not None and _is_handshake_error(exc):
            _PEER_LOG.log(logging.INFO, "%s: TLS handshake failed: %s", repr(self), exc)
        elif is_peer_error(exc):
            LOGGER.debug("%s lost: %s", repr(self), exc)
        else:
            _PEER_LOG.log(logging.WARNING, "%s lost: %s", repr(self), exc)
        exc.__traceback__ = None
        self._abort(exc)

    def _abort(self, exc: Exception | None) -> None:
        if self._state is _CLOSED:
            return
        failure = exc
        if failure is None:
            failure = ConnectionAbortedError(errno.ECONNABORTED, "connection aborted")
        queue = self._queue
        if queue is None:
            self._rare().failure = failure  # for a write after: QueueFailedError
        else:
            try:
                queue.fail(failure)
            except Exception:  # on_done callbacks raised; they are failed anyway
                LOGGER.exception(
                    "completion callback raised while aborting %s", repr(self)
                )
        self._finish(exc)

    def _finish(self, exc: Exception | None) -> None:
        self._state = transition(CONNECTION_TRANSITIONS, self._state, _E.LOST)
        self._read_stopped = True
        self._tell_reader()
        self._write_armed = False
        extra = self._extra
        if extra is not None and extra.starved:
            extra.starved = False
            self._pool.remove_release_callback(self._pool_returned)
        self._set_timer(_NO_TIMER, None)
        self._interest = _NONE
        self._on_interest(self, _NONE)
        if extra is not None and extra.tls is not None:
            extra.tls.close()
        self._sock.close()
        if self._queue is not None:
            self._queue.close()
        one = self._one
        if one is not None:  # never sent: ownership handed over is consumed
            self._one = None
            if one[0] is not None:
                one[0].release()
        if not self._in_event:
            self._drop_reader()
        protocol, self._protocol = self._protocol, _DETACHED
        try:
            protocol.connection_lost(exc)
        except Exception:
            LOGGER.exception("connection_lost raised for %s", repr(self))


@final
class _Crossing(weakref.ref[Connection]):
    """The write queue's one watermark hook: a weak reference to its connection.

    The queue calls it at a pause and at a resume alike (the connection asks
    the queue which); being the weak reference itself, it costs one object
    and keeps the connection alive neither directly nor through a cycle.
    """

    __slots__ = ()

    def __call__(self) -> None:
        conn = weakref.ref.__call__(self)
        if conn is not None:
            conn._queue_crossed()


def _is_handshake_error(exc: OSError) -> bool:
    from bufkit.errors import TLSHandshakeError

    return isinstance(exc, TLSHandshakeError)


def _write_limits(high: int | None, low: int | None) -> tuple[int, int]:
    """``(high, low)`` by asyncio's rules for missing values, checked."""
    for name, value in (("high", high), ("low", low)):
        if value is not None and (type(value) is bool or not isinstance(value, int)):
            raise TypeError(f"{name} must be an int or None, not {value!r}")
    if high is None:
        high = _DEFAULT_HIGH if low is None else 4 * low
    if low is None:
        low = high // 4
    if not high >= low >= 0:
        raise ValueError(
            f"watermarks need high >= low >= 0, got high={high}, low={low}"
        )
    return int(high), int(low)


def _runs(tb: TracebackType, function: str, module_file: str) -> bool:
    """Whether traceback entry ``tb`` is in ``function`` of ``module_file``."""
    code = tb.tb_frame.f_code
    return (
        code.co_name == function and os.path.basename(code.co_filename) == module_file
    )


# Documented where users import them.
StreamSocket.__module__ = ConnectionProtocol.__module__ = "bufkit"
