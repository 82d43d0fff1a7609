"""A small ready-made readiness loop for :class:`~bufkit.adapters.selectors.Connection`.

Theory of operation
-------------------
One iteration of :class:`Loop` is: ``select`` (blocking only when there is no
ready callback, until the next timer), dispatch every event (a listener accepts,
a connection reads and/or writes), move due timers to the ready list, run the
callbacks that were ready when the iteration began, then run the deferred
flushes: every connection written to outside an event is flushed exactly once
here, so ``n`` writes from timers or other connections cost one ``sendmsg``.
Callbacks, timers and signal handlers live in ``_sel_callbacks`` (a base
class); signals and other threads wake the loop through ``_sel_wakeup``.

The loop keeps invariant 3 of DESIGN.md by construction: it registers a socket
for exactly the :class:`~bufkit.adapters.selectors.Interest` its connection
reported, and unregisters it when the interest is ``NONE`` (``selectors`` has
no empty registration), so a connection with nothing to send never gets write
events, and a paused one no read events. It owns one
:class:`~bufkit.BufferPool` shared by every connection (invariants 4 and 5:
read buffers are lent for one event at a time).

Failure policy: a protocol that raises is logged and its connection aborted by
the connection itself; a callback that raises is logged; a listener that hits
``EMFILE``/``ENFILE`` (or ``ENOBUFS``/``ENOMEM``) stops listening for a back-off
period that doubles up to a second and resets after a successful accept.

Cost model per event: one ``selector.select`` per iteration, one dict lookup and
one method call per ready socket, one ``selector.modify`` only when a
connection's interest changes.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
import time
from collections.abc import Callable
from typing import Final, cast, final

from bufkit import BufferPool
from bufkit.adapters._sel_callbacks import Callbacks
from bufkit.adapters._sel_conn import Connection
from bufkit.adapters._sel_listen import Handle, Listener, ProtocolFactory, _Connecting
from bufkit.adapters._sel_types import ConnectionProtocol, Interest, SelectableSocket
from bufkit.adapters._sel_wakeup import Wakeup

__all__ = ["Loop"]

LOGGER: Final = logging.getLogger("bufkit.adapters.selectors")
_EVENT_READ: Final = selectors.EVENT_READ
_EVENT_WRITE: Final = selectors.EVENT_WRITE


@final
class Loop(Callbacks):
    """A small readiness loop that runs :class:`Connection` objects.

    Args:
        selector: Any :class:`selectors.BaseSelector` (e.g. the fake
            selector of :mod:`bufkit.testing`); a ``DefaultSelector`` by
            default. The loop closes it only if it made it.
        pool: The buffer pool shared by every connection (default: a new
            :class:`bufkit.BufferPool`).
        clock: Monotonic time source used by :meth:`call_later`.
        high_water: Each connection's write-queue high watermark.
        low_water: Each connection's write-queue low watermark.
        read_budget: Reads per readable event per connection.
        accept_batch: Connections accepted per listener event at most.
    """

    def __init__(
        self,
        *,
        selector: selectors.BaseSelector | None = None,
        pool: BufferPool | None = None,
        clock: Callable[[], float] = time.monotonic,
        high_water: int = 65536,
        low_water: int = 16384,
        read_budget: int = 16,
        accept_batch: int = 128,
    ) -> None:
        self._owns_selector = selector is None
        self._selector = selectors.DefaultSelector() if selector is None else selector
        self._pool = BufferPool() if pool is None else pool
        self._clock = clock
        self._high_water = high_water
        self._low_water = low_water
        self._read_budget = read_budget
        self._accept_batch = accept_batch
        self._ready: list[Handle] = []
        self._timers: list[Handle] = []
        self._deferred: list[Callable[[], object]] = []
        # Each open connection -> whether its socket is registered.
        self._connections: dict[Connection, bool] = {}
        # One bound method each, shared by every connection (not one per
        # connection: they are a good part of an idle connection's memory).
        self._interest_hook = self._on_interest
        self._defer_hook = self._deferred.append
        self._listeners: set[Listener] = set()
        self._connecting: set[_Connecting] = set()
        self._wakeup: Wakeup | None = None  # made by the first signal handler
        self._running = False
        self._stopping = False
        self._closed = False

    # -- introspection ------------------------------------------------------

    @property
    def pool(self) -> BufferPool:
        """The pool that lends every connection's read buffers."""
        return self._pool

    @property
    def accept_batch(self) -> int:
        """Connections a listener accepts per readiness event, at most."""
        return self._accept_batch

    @property
    def connections(self) -> frozenset[Connection]:
        """The open connections."""
        return frozenset(self._connections)

    @property
    def listeners(self) -> frozenset[Listener]:
        """The open listeners."""
        return frozenset(self._listeners)

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    # -- sockets ------------------------------------------------------------

    def listen(
        self,
        host: str,
        port: int,
        protocol_factory: ProtocolFactory,
        *,
        backlog: int = 1024,
        reuse_port: bool = False,
    ) -> Listener:
        """Listen on ``(host, port)``; each accepted socket gets a new protocol.

        Args:
            host: Address to bind (a literal address or a name).
            port: Port to bind; 0 picks a free one (see :attr:`Listener.address`).
            protocol_factory: Called with no argument per accepted connection.
            backlog: The kernel's accept queue length.
            reuse_port: Set ``SO_REUSEPORT`` so several processes share the port.

        Returns:
            The listener; close it alone or with the loop.
        """
        self._check_open()
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
        sock = socket.socket(family, kind, proto)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if reuse_port:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            sock.bind(addr)
            sock.listen(backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        listener = Listener(self, sock, protocol_factory)
        self._listeners.add(listener)
        listener._register()
        return listener

    def connect(
        self,
        host: str,
        port: int,
        protocol_factory: ProtocolFactory,
        *,
        on_error: Callable[[OSError], object] | None = None,
    ) -> None:
        """Connect without blocking; the protocol's ``connection_made`` follows.

        Args:
            host: Peer address (names are resolved with a blocking lookup).
            port: Peer port.
            protocol_factory: Called once the connection is established.
            on_error: Called with the error if connecting fails (default: log).
        """
        self._check_open()
        family, kind, proto, _name, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM
        )[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(addr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            exc = OSError(code, f"connect failed: {errno.errorcode.get(code, code)}")
            if on_error is None:
                LOGGER.error("%s", exc)
            else:
                self.call_soon(on_error, exc)
            return
        pending = _Connecting(self, sock, protocol_factory, on_error)
        self._connecting.add(pending)
        self._selector.register(sock, selectors.EVENT_WRITE, pending)

    def add_socket(
        self, sock: SelectableSocket, protocol: ConnectionProtocol
    ) -> Connection:
        """Run ``protocol`` on an already connected socket (made non-blocking).

        Returns:
            The started connection.
        """
        self._check_open()
        sock.setblocking(False)
        return self._start(sock, protocol)

    def _adopt(self, sock: socket.socket, factory: ProtocolFactory) -> None:
        sock.setblocking(False)
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            protocol = factory()
        except Exception:
            LOGGER.exception("protocol factory %r raised", factory)
            sock.close()
            return
        self._start(sock, protocol)

    def _start(
        self, sock: SelectableSocket, protocol: ConnectionProtocol
    ) -> Connection:
        conn = Connection(
            sock,
            protocol,
            self._pool,
            on_interest=self._interest_hook,
            defer=self._defer_hook,
            high_water=self._high_water,
            low_water=self._low_water,
            read_budget=self._read_budget,
        )
        self._connections[conn] = False
        conn.start()
        return conn

    def _on_interest(self, conn: Connection, interest: Interest) -> None:
        sock = cast("SelectableSocket", conn._sock)
        registered = self._connections[conn]
        if interest:
            events = interest.value  # a plain int: enum arithmetic is slow
            if registered:
                self._selector.modify(sock, events, conn)
            else:
                self._selector.register(sock, events, conn)
                self._connections[conn] = True
        elif registered:
            self._selector.unregister(sock)
            self._connections[conn] = False
        if conn.closed:
            del self._connections[conn]
            LOGGER.info("closed %r after %d bytes in", conn, conn.bytes_received)

    # -- running ------------------------------------------------------------

    def run_once(self, timeout: float | None = None) -> None:
        """Run one iteration, waiting at most ``timeout`` seconds for events."""
        if self._wakeup is not None and self._wakeup.threadsafe:
            self._wakeup.drain()
        if self._ready or self._deferred:
            timeout = 0.0
        elif self._timers:
            wait = max(0.0, self._timers[0].when - self._clock())
            timeout = wait if timeout is None else min(timeout, wait)
        events = self._selector.select(timeout)
        for key, mask in events:
            target = key.data
            if type(target) is Connection:
                if mask & _EVENT_READ:
                    target.on_readable()
                if mask & _EVENT_WRITE:
                    target.on_writable()
            else:
                target._on_ready(mask)
        if self._timers or self._ready:
            self._run_due()
        if self._deferred:
            self._run_deferred()

    def _run_deferred(self) -> None:
        # Connections hold ``self._deferred.append``: keep the list object, and
        # run what the flushes themselves defer in this same pass.
        deferred = self._deferred
        i = 0
        while i < len(deferred):
            deferred[i]()
            i += 1
        deferred.clear()

    def run_forever(self) -> None:
        """Run iterations until :meth:`stop` is called.

        Raises:
            RuntimeError: If the loop is closed or already running.
        """
        self._enter()
        try:
            while not self._stopping:
                self.run_once()
        finally:
            self._running = self._stopping = False

    def run_until(
        self, predicate: Callable[[], bool], *, timeout: float | None = None
    ) -> bool:
        """Run iterations until ``predicate()`` is true, :meth:`stop`, or ``timeout``.

        Returns:
            Whether ``predicate()`` became true.

        Raises:
            RuntimeError: If the loop is closed or already running.
        """
        self._enter()
        deadline = None if timeout is None else self._clock() + timeout
        try:
            while not predicate():
                if self._stopping:
                    return False
                left = None if deadline is None else deadline - self._clock()
                if left is not None and left <= 0:
                    return False
                self.run_once(left)
            return True
        finally:
            self._running = self._stopping = False

    def stop(self) -> None:
        """Make :meth:`run_forever` or :meth:`run_until` return after this iteration."""
        self._stopping = True

    def close(self, *, grace: float = 0.0) -> None:
        """Close listeners, then every connection, then the selector it made.

        Args:
            grace: Seconds to let connections drain after a graceful
                :meth:`Connection.close`; those still open are aborted.

        Raises:
            RuntimeError: If the loop is running.
        """
        if self._running:
            raise RuntimeError("cannot close a running loop")
        if self._closed:
            return
        for listener in list(self._listeners):
            listener.close()
        if grace > 0:
            for conn in list(self._connections):
                conn.close()
            self.run_until(lambda: not self._connections, timeout=grace)
        for conn in list(self._connections):
            conn.abort()
        for pending in list(self._connecting):
            self._selector.unregister(pending.sock)
            pending.sock.close()
        self._connecting.clear()
        if self._wakeup is not None:
            self._wakeup.close()
        self._closed = True
        self._ready.clear()
        self._timers.clear()
        self._deferred.clear()
        if self._owns_selector:
            self._selector.close()

    def _enter(self) -> None:
        self._check_open()
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True
