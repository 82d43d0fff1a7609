"""A Twisted transport over the connection core.

Theory of operation
-------------------
:class:`Transport` is what a Twisted protocol sees as ``self.transport``: an
``ITCPTransport`` that is also the reactor's file descriptor (``fileno``,
``doRead``, ``doWrite``). Behind it, one :class:`bufkit.Connection` does all
the work: it reads the readiness way into pooled buffers, gathers every write
of one event into one ``sendmsg``, closes, half-closes and fails. The
transport only maps the core's outputs onto the reactor and onto Twisted's
vocabulary:

* the readiness the core wants becomes ``addReader``/``addWriter``/
  ``removeReader``/``removeWriter`` (docs/design.md invariant 3 is the core's);
* the core's request to flush at the end of the loop iteration joins one
  per-reactor batch that runs from one ``callLater(0)``;
* ``data_received(view)`` becomes ``dataReceived(bytes(view))``: exactly the
  bytes read, copied once, since Twisted protocols keep what they receive.
  Without TLS the core reads in bytes mode (``read_bytes``): a read that
  follows a read that filled its buffer is made with ``recv`` into a new
  bytes object, passed on as it is (no copy); other reads stay pooled, so a
  short read never allocates the whole read size.
  A protocol that provides :class:`IViewReceiver` gets the pooled view itself
  (valid during the call only) and skips the copy (invariants 4 and 5: the
  buffer goes back to the pool when the call returns);
* the writes shorter than :data:`SMALL_WRITE` that a protocol makes inside
  ``dataReceived`` (a header, a line, a chunk each) are kept in one list for
  the process and reach the core joined, as one write, when it returns, or
  before any call on that transport that must see them queued (a larger
  write, ``writeSequence``, ``loseConnection``, a producer, ``connection``).
  Order is kept (invariant 1): only writes of the transport whose
  ``dataReceived`` runs are kept, and any other write of it goes after them;
* ``pause_writing``/``resume_writing`` pause and resume a registered
  streaming producer; a pull producer is asked for more each time everything
  written before was accepted by the kernel;
* with TLS (a :class:`bufkit.TLSLayer` as ``tls=``) the protocol sees
  plaintext; the one timer the core asks for (handshake, graceful close) is
  one ``reactor.callLater`` handle per connection, cancelled and dropped when
  the connection closes, and a failed handshake reaches ``connectionLost`` as
  a Failure of :class:`bufkit.TLSHandshakeError` (the core logs one line);
* ``connection_lost`` becomes ``connectionLost(Failure(ConnectionDone()))``
  for a clean close, ``ConnectionAborted`` for ``abortConnection()``, and
  ``ConnectionLost`` for a socket error, as Twisted's own transports do.

Memory (invariant 6): the transport is the core's protocol; the core lets go
of it once closed, and the transport drops its Twisted protocol once
``connectionLost`` ran, so a closed connection is freed by reference
counting. While open, the transport is held by the reactor (while
registered) and by :data:`OPEN_TRANSPORTS`, so a paused, idle connection is
never left to the cyclic garbage collector.

Cost model: per readable event, the core's cost plus one ``bytes`` copy per
pooled read (none for an :class:`IViewReceiver`, none for a bytes-mode
read); per small write inside ``dataReceived``, one list append, and one
join and queue write per ``dataReceived``; per other write, one queue
write; one reactor call per change of wanted readiness; one
``getpeername``/``getsockname`` per transport at most, on the first
``getPeer``/``getHost`` (Twisted's web server asks both per request). Every
boolean of a transport lives in one int slot; with the addresses' slot it
has eight, which CPython's allocator rounds to the same size as seven.
"""

from __future__ import annotations

import errno
import logging
import socket
import weakref
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeAlias

from twisted.internet import address, error
from twisted.internet.interfaces import (
    IConsumer,
    IHalfCloseableProtocol,
    IPushProducer,
    IReadWriteDescriptor,
    ISystemHandle,
    ITCPTransport,
)
from twisted.python import failure
from zope.interface import Interface, implementer

from bufkit import (
    BufferPool,
    Connection,
    ConnectionState,
    Interest,
    QueueClosedError,
    QueueFailedError,
    TLSHandshakeError,
)
from bufkit._tls import TLSLayer

__all__ = ["OPEN_TRANSPORTS", "IViewReceiver", "Transport", "peer_address"]

LOGGER: Final = logging.getLogger("bufkit.adapters.twisted")

_OPEN: Final = ConnectionState.OPEN
_CLOSING: Final = ConnectionState.CLOSING

# Bits of Transport._flags: every boolean a transport keeps shares one slot
# (one pointer per connection instead of eight). Eight bits at most: any value
# up to 256 is an int object CPython shares, anything above costs 32 bytes.
# Twisted's ``disconnecting`` and ``disconnected`` come from the core's state.
_ABORTED: Final = 1
_WRITE_SHUT_UNTOLD: Final = 2
_STREAMING: Final = 4
_PRODUCER_PAUSED: Final = 8
_READING: Final = 16  # registered with the reactor as a reader
_WRITING: Final = 32  # ... as a writer (Interest.WRITE * _READING)
_VIEWS: Final = 64  # the protocol provides IViewReceiver
_CONNECTED: Final = 128

SMALL_WRITE: Final = 2048
"""Writes shorter than this, made inside ``dataReceived``, are joined first."""
_BATCH_MAX: Final = 64
"""Small writes joined at most into one (64 x 2 KiB bounds a batch)."""

OPEN_TRANSPORTS: Final[dict[Connection, Transport]] = {}
"""Every open transport by its connection.

It keeps an idle transport that no reactor watches alive, and lets one
interest callback serve every connection. An entry goes when its connection
has reported that it wants nothing more.
"""


class IViewReceiver(Interface):  # type: ignore[misc]
    """A protocol that takes received bytes as a pooled :class:`memoryview`.

    Declare it with ``@implementer(IViewReceiver)``. The transport then calls
    :meth:`viewReceived` instead of ``dataReceived`` and makes no copy: the
    view is a slice of a pooled buffer, valid only during the call. Copy what
    you keep (``bytes(view)``), or parse it in place.
    """

    def viewReceived(view: memoryview) -> None:
        """Bytes arrived; ``view`` is valid only until this returns."""


_Address: TypeAlias = address.IPv4Address | address.IPv6Address | address.UNIXAddress


def peer_address(family: int, sockaddr: Any) -> _Address:
    """Twisted's address object for a socket address of ``family``."""
    if family == socket.AF_INET:
        return address.IPv4Address("TCP", sockaddr[0], sockaddr[1])
    if family == socket.AF_INET6:
        return address.IPv6Address("TCP", sockaddr[0], sockaddr[1])
    return address.UNIXAddress(sockaddr)


class _FlushBatch:
    """Deferred flushes of one reactor, run together from one ``callLater(0)``."""

    __slots__ = ("_due", "_reactor")

    def __init__(self, reactor: Any) -> None:
        self._reactor = reactor
        self._due: list[Callable[[], object]] = []

    def __call__(self, flush: Callable[[], object]) -> None:
        if not self._due:
            self._reactor.callLater(0, self._run)
        self._due.append(flush)

    def _run(self) -> None:
        due, self._due = self._due, []
        for flush in due:
            flush()


class _Dispatch:
    """The transport whose ``dataReceived`` runs now, and its small writes.

    A Twisted protocol often answers one read with many small writes (a
    header, a line, a chunk each). Each would cost the transport's and the
    core's call; instead the transport keeps them here, one list for the
    whole process, and hands them to its connection joined, as one write,
    when ``dataReceived`` returns (or sooner: before any call that must see
    them queued). ``dataReceived`` of one transport never runs inside
    another's, except when a protocol drives a read itself; that inner one
    then writes without batching. Only the transport that owns the batch
    touches it, so the transports of a reactor running in another thread
    meanwhile see another owner and write without batching.
    """

    __slots__ = ("small", "transport")

    def __init__(self) -> None:
        self.transport: Transport | None = None
        self.small: list[bytes] = []


_NOW: Final = _Dispatch()


TLS_TIMERS: Final[dict[Connection, Any]] = {}
"""The one pending ``callLater`` handle of each TLS connection that asked for one.

Kept here, not on the transport, so a plain TCP transport holds no slot for it.
"""

_BATCHES: Final[weakref.WeakKeyDictionary[object, _FlushBatch]] = (
    weakref.WeakKeyDictionary()
)


def _batch_for(reactor: Any) -> _FlushBatch:
    batch = _BATCHES.get(reactor)
    if batch is None:
        batch = _BATCHES[reactor] = _FlushBatch(reactor)
    return batch


def _on_interest(conn: Connection, interest: Interest) -> None:
    """The core's interest output, one function shared by every transport."""
    transport = OPEN_TRANSPORTS.get(conn)
    if transport is not None:
        transport._set_interest(interest)


def _on_timer(conn: Connection, delay: float | None) -> None:
    """The core's timer output (TLS only), one function shared by every transport."""
    transport = OPEN_TRANSPORTS.get(conn)
    if transport is not None:
        transport._set_timer(delay)


@implementer(
    ITCPTransport, IConsumer, IPushProducer, IReadWriteDescriptor, ISystemHandle
)
class Transport:
    """A connected TCP socket as a Twisted transport, on a bufkit connection.

    Made by :class:`~bufkit.adapters.twisted.ServerEndpoint` and
    :class:`~bufkit.adapters.twisted.ClientEndpoint` (or
    :func:`~bufkit.adapters.twisted.listen_tcp` /
    :func:`~bufkit.adapters.twisted.connect_tcp`), never directly by users.

    Args:
        reactor: A reactor that provides ``IReactorFDSet`` and ``IReactorTime``.
        sock: A connected socket; made non-blocking here, and owned from now on.
        protocol: The Twisted protocol to drive.
        pool: Lends the read buffers.
        high_water: Pending bytes above which a streaming producer is paused.
        low_water: Pending bytes at which it is resumed.
        tls: A :class:`bufkit.TLSLayer` to speak TLS through; the protocol
            then sees plaintext only. Its timers run on ``reactor.callLater``.
    """

    __slots__ = (
        "__weakref__",
        "_conn",
        "_flags",
        "_names",
        "_producer",
        "_reactor",
        "_sock",
        "protocol",
    )

    def __init__(
        self,
        reactor: Any,
        sock: socket.socket,
        protocol: Any,
        pool: BufferPool,
        *,
        high_water: int = 65536,
        low_water: int = 16384,
        tls: TLSLayer | None = None,
    ) -> None:
        sock.setblocking(False)
        self._reactor: Any = reactor
        self._sock = sock
        self.protocol: Any | None = protocol
        self._flags = 0  # _CONNECTED | _READING | ... (every boolean, one slot)
        self._producer: Any = None
        # (peer, host) addresses, each made on its first getPeer()/getHost().
        self._names: tuple[_Address | None, _Address | None] | None = None
        # The transport is the core's protocol: no bridge object per
        # connection. The core lets go of it once closed, so no cycle remains.
        self._conn = Connection(
            pool,
            sock,
            self,
            on_interest=_on_interest,
            defer=_batch_for(reactor),
            high_water=high_water,
            low_water=low_water,
            tls=tls,
            on_timer=None if tls is None else _on_timer,
            # Reads that follow a full read arrive as bytes the protocol keeps.
            read_bytes=tls is None and not IViewReceiver.providedBy(protocol),
        )

    def __repr__(self) -> str:
        return f"<bufkit Transport fd={self._sock.fileno()} {self._conn.state.value}>"

    @property
    def connected(self) -> bool:
        """Whether the connection is open (Twisted's attribute)."""
        return bool(self._flags & _CONNECTED)

    @property
    def disconnecting(self) -> bool:
        """Whether a close was asked for and is under way (Twisted's attribute)."""
        return bool(self._flags & _CONNECTED) and self._conn.state is _CLOSING

    @property
    def disconnected(self) -> bool:
        """Whether the connection is closed (Twisted's attribute)."""
        return self._conn.closed

    def start(self) -> None:
        """Call the protocol's ``makeConnection`` and start reading."""
        OPEN_TRANSPORTS[self._conn] = self
        self._conn.start()

    # -- the reactor's side: IReadWriteDescriptor -------------------------

    def fileno(self) -> int:
        """The socket's descriptor, -1 once closed."""
        return self._sock.fileno()

    def doRead(self) -> None:
        """The reactor says readable: the core reads, the protocol is called."""
        self._conn.on_readable()

    def doWrite(self) -> None:
        """The reactor says writable: the core sends what is queued."""
        self._conn.on_writable()

    def connectionLost(self, reason: failure.Failure) -> None:
        """The reactor dropped this descriptor (shutdown): close at once."""
        self._conn.abort()

    def logPrefix(self) -> str:
        """The protocol's class name, as Twisted's transports log it."""
        protocol = self.protocol
        return type(protocol).__name__ if protocol is not None else "bufkit"

    # -- ITransport ----------------------------------------------------------

    def write(self, data: bytes | str) -> None:
        """Queue ``data``; every write of one event leaves in one ``sendmsg``.

        Ignored after :meth:`loseConnection` or :meth:`loseWriteConnection`,
        as in Twisted.

        Raises:
            TypeError: ``data`` is a ``str`` or not bytes-like.
        """
        now = _NOW
        if now.transport is self:
            small = now.small
            if type(data) is bytes and len(data) < SMALL_WRITE:
                small.append(data)
                if len(small) >= _BATCH_MAX:
                    _write_small()
                return
            if small:
                _write_small()
        if isinstance(data, str):
            raise TypeError("Data must be bytes, not str")
        self._write_now(data)

    def _write_now(self, data: bytes) -> None:
        # No context manager per write: a try costs nothing until it catches.
        try:  # noqa: SIM105
            self._conn.write(data)
        except (QueueClosedError, QueueFailedError):
            pass  # closing, shut or closed: ignored, as Twisted does

    def writeSequence(self, data: Iterable[bytes | str]) -> None:
        """Queue every item of ``data``, in order, as :meth:`write` would.

        Runs of items shorter than :data:`SMALL_WRITE` (the header lines
        twisted.web sends this way) are joined, so they cost one queue entry
        and one iovec, not one each.

        Raises:
            TypeError: An item is a ``str``.
        """
        items: list[bytes] = []
        for item in data:
            if isinstance(item, str):
                raise TypeError("Data must be bytes, not str")
            items.append(item)
        now = _NOW
        if now.transport is self:  # inside dataReceived: join with its writes
            small = now.small
            for item in items:
                if type(item) is bytes and len(item) < SMALL_WRITE:
                    small.append(item)
                else:
                    if small:
                        _write_small()
                    self._write_now(item)
            if len(small) >= _BATCH_MAX:
                _write_small()
            return
        parts = _coalesced(items)
        if len(parts) == 1:
            self._write_now(parts[0])
        elif parts and self._conn.state is _OPEN:
            self._conn.writelines(parts)

    def loseConnection(self) -> None:
        """Stop reading, send what is queued, then close (``ConnectionDone``)."""
        if self._flags & _CONNECTED and self._conn.state is not _CLOSING:
            if _NOW.transport is self and _NOW.small:
                _write_small()
            self._conn.close()

    def abortConnection(self) -> None:
        """Close now, dropping queued data (``ConnectionAborted``)."""
        if not self._conn.closed:
            if _NOW.transport is self:
                _NOW.small.clear()
            self._flags |= _ABORTED
            self._conn.abort()

    def loseWriteConnection(self) -> None:
        """Shut the sending side once everything queued was sent; keep reading."""
        if not self._flags & _CONNECTED or self._conn.state is not _OPEN:
            return  # already shut, closing or closed
        if _NOW.transport is self and _NOW.small:
            _write_small()
        self._conn.write(b"", self._write_side_done)
        self._conn.write_eof()

    def getPeer(self) -> _Address:
        """The remote address, asked of the socket once and then kept.

        Raises:
            OSError: The first call came after the socket closed, or the
                peer is already gone (``ENOTCONN``).
        """
        names = self._names
        if names is not None and names[0] is not None:
            return names[0]
        peer = peer_address(self._sock.family, self._sock.getpeername())
        self._names = (peer, None if names is None else names[1])
        return peer

    def getHost(self) -> _Address:
        """The local address, asked of the socket once and then kept.

        Raises:
            OSError: The first call came after the socket closed.
        """
        names = self._names
        if names is not None and names[1] is not None:
            return names[1]
        host = peer_address(self._sock.family, self._sock.getsockname())
        self._names = (None if names is None else names[0], host)
        return host

    def getHandle(self) -> socket.socket:
        """The socket itself (``ISystemHandle``)."""
        return self._sock

    # -- ITCPTransport -------------------------------------------------------

    def getTcpNoDelay(self) -> bool:
        """Whether Nagle's algorithm is off."""
        return bool(self._sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

    def setTcpNoDelay(self, enabled: bool) -> None:
        """Turn Nagle's algorithm off (true) or on."""
        self._sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, int(enabled))

    def getTcpKeepAlive(self) -> bool:
        """Whether TCP keep-alive probes are on."""
        return bool(self._sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE))

    def setTcpKeepAlive(self, enabled: bool) -> None:
        """Turn TCP keep-alive probes on or off."""
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, int(enabled))

    # -- IConsumer -----------------------------------------------------------

    def registerProducer(self, producer: Any, streaming: bool) -> None:
        """Let ``producer`` feed this transport, paced by the write queue.

        A streaming (push) producer is paused when the queue goes above its
        high watermark and resumed at its low watermark. A pull producer is
        asked for more (``resumeProducing``) at once and then each time all
        it wrote was accepted by the kernel.

        Raises:
            RuntimeError: Another producer is still registered.
        """
        if self._producer is not None:
            raise RuntimeError(
                f"Cannot register producer {producer!r}, because producer"
                f" {self._producer!r} was never unregistered."
            )
        if self._conn.closed:
            producer.stopProducing()
            return
        if _NOW.transport is self and _NOW.small:
            _write_small()
        self._producer = producer
        self._flags &= ~(_STREAMING | _PRODUCER_PAUSED)
        if streaming:
            self._flags |= _STREAMING
        if not streaming:
            self._ask_pull_producer()
        elif self._conn.writing_paused:
            self.pause_writing()

    def unregisterProducer(self) -> None:
        """Forget the producer; the connection stays open."""
        self._producer = None

    # -- IPushProducer (the reading side) --------------------------------------

    def pauseProducing(self) -> None:
        """Stop reading until :meth:`resumeProducing`."""
        self._conn.pause_reading()

    def resumeProducing(self) -> None:
        """Read again."""
        self._conn.resume_reading()

    def stopProducing(self) -> None:
        """The consumer is done with us: close the connection."""
        self.loseConnection()

    # -- bufkit extras -------------------------------------------------------

    @property
    def connection(self) -> Connection:
        """The :class:`bufkit.Connection` behind this transport.

        Small writes made earlier in the same ``dataReceived`` are queued on
        it first, so its counters see them.
        """
        if _NOW.transport is self and _NOW.small:
            _write_small()
        return self._conn

    def getPeerCertificate(self) -> Any:
        """The peer's certificate as the TLS layer gives it (``ISSLTransport``).

        ``None`` without TLS or before the handshake completed; else what
        :meth:`bufkit.TLSLayer.getpeercert` returns (a dict, empty when the
        certificate was not verified).
        """
        tls = self._conn.tls
        if tls is None or not tls.handshake_done:
            return None
        return tls.getpeercert()

    # -- the core's callbacks (ConnectionProtocol) ------------------------------

    def connection_made(self, conn: Connection, /) -> None:
        """The core started: tell the Twisted protocol (``makeConnection``)."""
        self._flags |= _CONNECTED
        protocol = self.protocol
        if protocol is not None:
            if IViewReceiver.providedBy(protocol):
                self._flags |= _VIEWS
            protocol.makeConnection(self)

    def data_received(self, view: memoryview, /) -> None:
        """Bytes read: ``dataReceived(bytes)``, or ``viewReceived(view)``.

        Small writes the protocol makes meanwhile are joined into one write
        when it returns.
        """
        protocol = self.protocol
        if self._flags & _VIEWS:
            protocol.viewReceived(view)  # type: ignore[union-attr]
            return
        if protocol is None:
            return
        obj = view.obj  # the read's own bytes object, after a full read
        data = obj if type(obj) is bytes else bytes(view)
        now = _NOW
        if now.transport is not None:  # a read driven from another's dataReceived
            protocol.dataReceived(data)
            return
        now.transport = self
        try:
            protocol.dataReceived(data)
        finally:
            if now.small:
                _write_small()
            now.transport = None

    def eof_received(self) -> bool | None:
        """The peer shut its side: ``readConnectionLost`` if half-closeable."""
        protocol = self.protocol
        if protocol is not None and IHalfCloseableProtocol.providedBy(protocol):
            protocol.readConnectionLost()
            return True
        return False

    def connection_lost(self, exc: Exception | None, /) -> None:
        """The core closed the socket: ``connectionLost`` with Twisted's reason."""
        self._set_timer(None)
        if _NOW.transport is self:  # closed from inside its own dataReceived
            _NOW.small.clear()
        self._flags &= ~_CONNECTED
        if exc is None:
            self._tell_write_shut()
        producer, self._producer = self._producer, None
        protocol, self.protocol = self.protocol, None
        if producer is not None:
            try:
                producer.stopProducing()
            except Exception:
                LOGGER.exception("stopProducing raised for %r", self)
        if protocol is not None:
            if exc is None and self._flags & _ABORTED:
                protocol.connectionLost(failure.Failure(error.ConnectionAborted()))
            else:
                protocol.connectionLost(_reason(exc))

    def pause_writing(self) -> None:
        """Above high water and the kernel refused bytes: pause a push producer."""
        producer = self._producer
        flags = self._flags
        if (
            producer is not None
            and flags & (_STREAMING | _PRODUCER_PAUSED) == _STREAMING
        ):
            self._flags = flags | _PRODUCER_PAUSED
            producer.pauseProducing()

    def resume_writing(self) -> None:
        """Down to low water: resume a paused push producer."""
        producer = self._producer
        flags = self._flags
        both = _STREAMING | _PRODUCER_PAUSED
        if producer is not None and flags & both == both:
            self._flags = flags & ~_PRODUCER_PAUSED
            producer.resumeProducing()

    def _set_interest(self, interest: Interest) -> None:
        reactor = self._reactor
        if self._conn.closed:  # the last report: forget this transport
            OPEN_TRANSPORTS.pop(self._conn, None)
        flags = self._flags
        # Interest.READ and Interest.WRITE as _READING and _WRITING.
        changed = (flags & (_READING | _WRITING)) ^ (interest * _READING)
        if not changed:
            return
        self._flags = flags ^ changed
        if changed & _READING:
            if flags & _READING:
                reactor.removeReader(self)
            else:
                reactor.addReader(self)
        if changed & _WRITING:
            if flags & _WRITING:
                reactor.removeWriter(self)
            else:
                reactor.addWriter(self)

    def _set_timer(self, delay: float | None) -> None:
        conn = self._conn
        timer = TLS_TIMERS.pop(conn, None)
        if timer is not None and timer.active():
            timer.cancel()
        if delay is not None:
            TLS_TIMERS[conn] = self._reactor.callLater(delay, _timed_out, conn)

    def _ask_pull_producer(self) -> None:
        producer = self._producer
        if producer is None or self._flags & (_STREAMING | _CONNECTED) != _CONNECTED:
            return
        before = self._conn.bytes_written
        producer.resumeProducing()
        if _NOW.transport is self and _NOW.small:  # count what it wrote
            _write_small()
        if (
            self._producer is producer
            and self._conn.bytes_written != before
            and self._conn.state is _OPEN  # neither closing nor shut
        ):
            # Ask again once all of it was accepted by the kernel.
            self._conn.write(b"", self._pull_drained)

    def _pull_drained(self, exc: BaseException | None) -> None:
        if exc is None:
            self._ask_pull_producer()

    def _write_side_done(self, exc: BaseException | None) -> None:
        # Everything before write_eof() was sent; the core shuts the sending
        # side right after this. Tell the protocol once that happened: on the
        # next iteration, or in _lost if the connection ends first.
        if exc is None:
            self._flags |= _WRITE_SHUT_UNTOLD
            self._reactor.callLater(0, self._tell_write_shut)

    def _tell_write_shut(self) -> None:
        if not self._flags & _WRITE_SHUT_UNTOLD:
            return
        self._flags &= ~_WRITE_SHUT_UNTOLD
        protocol = self.protocol
        if protocol is not None and IHalfCloseableProtocol.providedBy(protocol):
            protocol.writeConnectionLost()


def _coalesced(items: list[bytes]) -> list[bytes]:
    """``items`` with each run of items shorter than SMALL_WRITE joined."""
    parts: list[bytes] = []
    run: list[bytes] = []
    for item in items:
        if len(item) < SMALL_WRITE:
            run.append(item)
            continue
        if run:
            parts.append(run[0] if len(run) == 1 else b"".join(run))
            run = []
        parts.append(item)
    if run:
        parts.append(run[0] if len(run) == 1 else b"".join(run))
    return parts


def _write_small() -> None:
    """Queue the small writes kept for this dispatch on its transport, as one."""
    now = _NOW
    small, transport = now.small, now.transport
    data = small[0] if len(small) == 1 else b"".join(small)
    small.clear()
    if transport is not None:
        transport._write_now(data)  # dropped once closing, shut or closed


def _timed_out(conn: Connection) -> None:
    TLS_TIMERS.pop(conn, None)
    conn.on_timeout()


def _reason(exc: Exception | None) -> failure.Failure:
    """The ``connectionLost`` reason Twisted's own transports would give."""
    if exc is None:
        return failure.Failure(error.ConnectionDone())
    if isinstance(exc, TLSHandshakeError):
        return failure.Failure(exc)
    if isinstance(exc, ConnectionAbortedError) and exc.errno == errno.ECONNABORTED:
        return failure.Failure(error.ConnectionAborted())
    if isinstance(exc, OSError):
        return failure.Failure(error.ConnectionLost(str(exc)))
    return failure.Failure(exc)
