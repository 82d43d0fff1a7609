"""A small ready-made readiness loop for :class:`bufkit.Connection`.

Theory of operation
-------------------
One iteration of :class:`Loop` is: ``select`` (blocking only when there is no
ready callback, until the next timer), dispatch every event (a listener accepts,
a connection reads and/or writes, a connect completes), move due timers to the
ready list, run the callbacks that were ready when the iteration began, then
run the deferred flushes: every connection written to outside an event is
flushed exactly once here, so ``n`` writes from timers or other connections
cost one ``sendmsg``. (A write that takes a queue above its high watermark is
sent at once by the connection core, whatever the loop.)

The loop is a shim over the connection core: it registers a socket for
exactly the :class:`~bufkit.Interest` its connection reported, and
unregisters it when the interest is ``NONE`` (an empty registration would
still report hang-ups), which keeps docs/design.md invariant 3 by
construction. Where :func:`select.epoll` exists and no selector was given,
the loop polls it directly: a table from file descriptor to connection (or
listener, connector, wakeup) replaces the ``selectors`` module's key objects
and its ready list, and a registration is modified only when the core
reports a new interest. Elsewhere, or with ``selector=`` (the fake selector
of :mod:`bufkit.testing`), it goes through :mod:`selectors`. It owns
one :class:`~bufkit.BufferPool` shared by every connection (invariants 4 and 5:
read buffers are lent for one event at a time).

Failure policy: the connection core routes protocol errors, peer errors and
pool pressure (logger ``bufkit.connection``); a callback that raises is logged
here; a listener follows the one accept policy of ``bufkit._sockets``
(``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM``: stop listening for a back-off
that doubles up to a second and resets after a successful accept).
:meth:`Loop.connect` never blocks: a host name is resolved in a worker thread
and the result comes back through :meth:`Loop.call_soon_threadsafe`.

TLS (``ssl=`` on :meth:`Loop.listen` and :meth:`Loop.connect`) is the
connection core's :class:`~bufkit.TLSLayer`; the loop only gives each TLS
connection the one timer it asks for (``on_timer``: handshake and
graceful-close timeouts) with :meth:`Loop.call_later`. docs/design.md
invariant 7: an idle TLS connection holds no pool bytes.

Cost model per event: one ``epoll.poll`` (or ``selector.select``) per
iteration, one dict lookup and one method call per ready socket, one
``epoll.modify`` only when a connection's interest changes.
"""

from __future__ import annotations

import errno
import heapq
import logging
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol, final

from bufkit import BufferPool, Connection, ConnectionProtocol, Interest, StreamSocket
from bufkit._argtypes import Checked
from bufkit._sockets import AcceptAction, AcceptBackoff, set_nodelay
from bufkit.adapters.selectors._callbacks import LOGGER, Handle, Wakeup, check_signal

if TYPE_CHECKING:
    import ssl as _ssl

    from bufkit import TLSLayer

__all__ = ["Connector", "Listener", "Loop", "ProtocolFactory", "SelectableSocket"]

_EVENT_READ: Final = selectors.EVENT_READ
_EVENT_WRITE: Final = selectors.EVENT_WRITE
_EPOLLIN: Final[int] = getattr(select, "EPOLLIN", 1)  # where epoll exists
_EPOLLOUT: Final[int] = getattr(select, "EPOLLOUT", 4)
_EPOLL_OF: Final = (0, _EPOLLIN, _EPOLLOUT, _EPOLLIN | _EPOLLOUT)
"""epoll's event mask for each selectors-style mask (READ 1, WRITE 2, BOTH 3)."""

_AddrInfos = Sequence[tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]]

ProtocolFactory = Callable[[], ConnectionProtocol]
"""What makes each connection's protocol: called with no argument."""


@final
class _TLSOptions:
    """How a listener or connector makes each connection's TLS layer."""

    __slots__ = ("context", "handshake_timeout", "server_hostname", "server_side")

    def __init__(
        self,
        context: _ssl.SSLContext,
        server_side: bool,
        server_hostname: str | None,
        handshake_timeout: float,
    ) -> None:
        self.context = context
        self.server_side = server_side
        self.server_hostname = server_hostname
        self.handshake_timeout = handshake_timeout
        self.layer()  # refuse a bad context or timeout now, not per connection

    def layer(self) -> TLSLayer:
        from bufkit import TLSLayer

        return TLSLayer(
            self.context,
            server_side=self.server_side,
            server_hostname=self.server_hostname,
            handshake_timeout=self.handshake_timeout,
        )


class _Ready(Protocol):
    """What a listener, a connector and the wakeup have in common: ready once."""

    def _on_ready(self, mask: int) -> None: ...


_Target = Connection | _Ready  # what one registered descriptor wakes


def _new_epoll() -> select.epoll | None:
    """An epoll object where the platform has one, else None."""
    make: Callable[[], select.epoll] | None = getattr(select, "epoll", None)
    return None if make is None else make()


class SelectableSocket(StreamSocket, Protocol):
    """A :class:`bufkit.StreamSocket` a selector can watch, as :class:`Loop` needs."""

    def fileno(self) -> int:
        """Return the descriptor to watch."""
        ...

    def setblocking(self, flag: bool, /) -> None:
        """Switch blocking mode (the loop turns it off)."""
        ...


@final
class Loop:
    """A small readiness loop that runs :class:`bufkit.Connection` objects.

    Args:
        selector: Any :class:`selectors.BaseSelector` (e.g. the fake
            selector of :mod:`bufkit.testing`). By default the loop polls
            :func:`select.epoll` directly where it exists, else a
            ``DefaultSelector``. The loop closes it only if it made it.
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
        # Either an epoll object polled directly, or a selector: never both.
        self._epoll = _new_epoll() if selector is None else None
        self._selector: selectors.BaseSelector | None = selector
        if selector is None and self._epoll is None:  # pragma: no cover - not Linux
            self._selector = selectors.DefaultSelector()
        # With epoll: each registered descriptor -> what it wakes.
        self._targets: dict[int, _Target] = {}
        self._pool = BufferPool() if pool is None else pool
        self._clock = clock
        self._high_water = high_water
        self._low_water = low_water
        self._read_budget = read_budget
        self._accept_batch = accept_batch
        self._ready: list[Handle] = []
        self._timers: list[Handle] = []
        self._deferred: list[Callable[[], object]] = []
        # Each open connection -> its socket; the registered ones -> their fd.
        self._connections: dict[Connection, SelectableSocket] = {}
        self._registered: dict[Connection, int] = {}
        # One bound method each, shared by every connection (not one per
        # connection: they are a good part of an idle connection's memory).
        self._interest_hook = self._on_interest
        self._defer_hook = self._deferred.append
        self._timer_hook = self._on_timer
        self._timeouts: dict[Connection, Handle] = {}  # TLS connections only
        self._cancelled_timers = 0
        self._listeners: set[Listener] = set()
        self._connecting: set[Connector] = set()
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

    def time(self) -> float:
        """Return the loop's clock (what :meth:`call_later` counts from)."""
        return self._clock()

    # -- sockets ------------------------------------------------------------

    def listen(
        self,
        protocol_factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        backlog: int = 1024,
        reuse_port: bool = False,
        ssl: _ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = 60.0,
    ) -> Listener:
        """Listen on ``(host, port)``; each accepted socket gets a new protocol.

        With ``ssl``, every accepted connection speaks TLS through a
        :class:`bufkit.TLSLayer` (server side): ``connection_made`` comes at
        once, the protocol sees plaintext, writes made before the handshake
        completes are sent after it, and a failed or timed-out handshake
        closes that connection alone (``connection_lost`` with a
        :class:`bufkit.TLSHandshakeError`, one INFO line).

        Args:
            protocol_factory: Called with no argument per accepted connection.
            host: Address to bind (a literal address or a name, resolved
                here: binding happens before the loop runs).
            port: Port to bind; 0 picks a free one (see :attr:`Listener.address`).
            backlog: The kernel's accept queue length.
            reuse_port: Set ``SO_REUSEPORT`` so several processes share the port.
            ssl: A server :class:`ssl.SSLContext` to speak TLS.
            ssl_handshake_timeout: Seconds each handshake may take.

        Returns:
            The listener; close it alone or with the loop.

        Raises:
            RuntimeError: If the loop is closed.
            TypeError: ``ssl`` is not an :class:`ssl.SSLContext`, or the
                timeout is not a number.
            ValueError: The timeout is not positive.
            OSError: The address cannot be resolved or bound.
        """
        self._check_open()
        tls = None
        if ssl is not None:
            tls = _TLSOptions(ssl, True, None, ssl_handshake_timeout)
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
        listener = Listener(self, sock, protocol_factory, tls)
        self._listeners.add(listener)
        listener._register()
        return listener

    def listen_socket(
        self,
        protocol_factory: ProtocolFactory,
        sock: socket.socket,
        *,
        ssl: _ssl.SSLContext | None = None,
        ssl_handshake_timeout: float = 60.0,
    ) -> Listener:
        """Accept on ``sock``, a socket already bound and listening.

        For a socket made elsewhere: inherited, shared by worker processes
        (``bufkit serve --workers`` hands one to each), or set up with options
        :meth:`listen` does not offer. The loop makes it non-blocking, owns it
        from now on and closes it with the listener. ``ssl`` works as in
        :meth:`listen`.

        Args:
            protocol_factory: Called with no argument per accepted connection.
            sock: A bound, listening stream socket.
            ssl: A server :class:`ssl.SSLContext` to speak TLS.
            ssl_handshake_timeout: Seconds each handshake may take.

        Returns:
            The listener; close it alone or with the loop.

        Raises:
            RuntimeError: If the loop is closed.
            TypeError: ``ssl`` is not an :class:`ssl.SSLContext`, or the
                timeout is not a number.
            ValueError: ``sock`` is not a stream socket, or the timeout is
                not positive.
        """
        self._check_open()
        if sock.type != socket.SOCK_STREAM:
            raise ValueError(f"listen_socket needs a stream socket, not {sock!r}")
        tls = None
        if ssl is not None:
            tls = _TLSOptions(ssl, True, None, ssl_handshake_timeout)
        sock.setblocking(False)
        listener = Listener(self, sock, protocol_factory, tls)
        self._listeners.add(listener)
        listener._register()
        return listener

    def connect(
        self,
        protocol_factory: ProtocolFactory,
        host: str,
        port: int,
        *,
        on_error: Callable[[OSError], object] | None = None,
        ssl: _ssl.SSLContext | None = None,
        server_hostname: str | None = None,
        ssl_handshake_timeout: float = 60.0,
    ) -> Connector:
        """Connect without blocking; the protocol's ``connection_made`` follows.

        A numeric address is used at once; a host name is resolved with
        :func:`socket.getaddrinfo` in a worker thread, so the loop keeps
        serving other connections meanwhile.

        Args:
            protocol_factory: Called once the connection is established.
            host: Peer address or host name.
            port: Peer port.
            on_error: Called with the error if resolving or connecting fails
                (default: log one line).
            ssl: A client :class:`ssl.SSLContext` to speak TLS: the
                connection's ``connection_made`` follows the TCP connect,
                the handshake runs after it, and its failure reaches
                ``connection_lost`` as a :class:`bufkit.TLSHandshakeError`.
            server_hostname: The name sent as SNI and checked against the
                server's certificate (default: ``host``).
            ssl_handshake_timeout: Seconds the handshake may take.

        Returns:
            A handle: :attr:`Connector.connection` once connected,
            :meth:`Connector.cancel` to give up.

        Raises:
            RuntimeError: If the loop is closed.
            TypeError: ``ssl`` is not an :class:`ssl.SSLContext`, or the
                timeout is not a number.
            ValueError: The timeout is not positive, or the context checks
                host names and none was given.
        """
        self._check_open()
        tls = None
        if ssl is not None:
            name = host if server_hostname is None else server_hostname
            tls = _TLSOptions(ssl, False, name, ssl_handshake_timeout)
        connector = Connector(self, protocol_factory, on_error, tls)
        self._connecting.add(connector)
        try:
            infos = socket.getaddrinfo(
                host, port, type=socket.SOCK_STREAM, flags=socket.AI_NUMERICHOST
            )
        except socket.gaierror:  # a name: look it up off the loop's thread
            connector._resolve_in_thread(host, port)
        else:
            connector._connect(infos)
        return connector

    def add_socket(
        self, sock: SelectableSocket, protocol: ConnectionProtocol
    ) -> Connection:
        """Run ``protocol`` on an already connected socket (made non-blocking).

        Returns:
            The started connection.

        Raises:
            RuntimeError: If the loop is closed.
        """
        self._check_open()
        sock.setblocking(False)
        return self._start(sock, protocol)

    def _adopt(
        self,
        sock: socket.socket,
        factory: ProtocolFactory,
        tls: _TLSOptions | None = None,
    ) -> Connection | None:
        sock.setblocking(False)
        set_nodelay(sock)
        try:
            layer = None if tls is None else tls.layer()
            protocol = factory()
        except Exception:
            LOGGER.exception("protocol factory %r raised", factory)
            sock.close()
            return None
        return self._start(sock, protocol, layer)

    def _start(
        self,
        sock: SelectableSocket,
        protocol: ConnectionProtocol,
        tls: TLSLayer | None = None,
    ) -> Connection:
        conn = Connection(
            self._pool,
            sock,
            protocol,
            on_interest=self._interest_hook,
            defer=self._defer_hook,
            high_water=self._high_water,
            low_water=self._low_water,
            read_budget=self._read_budget,
            tls=tls,
            on_timer=None if tls is None else self._timer_hook,
        )
        self._connections[conn] = sock
        conn.start()
        return conn

    def _on_interest(self, conn: Connection, interest: Interest) -> None:
        # The core reports only changes: each call is one registration change.
        fd = self._registered.get(conn)
        if interest:
            events = interest.value  # a plain int: enum arithmetic is slow
            epoll = self._epoll
            if fd is not None:
                if epoll is not None:
                    epoll.modify(fd, _EPOLL_OF[events])
                else:
                    self._selector_of().modify(self._connections[conn], events, conn)
            else:
                sock = self._connections[conn]
                self._registered[conn] = self._watch(sock, events, conn)
        elif fd is not None:
            del self._registered[conn]
            self._unwatch(self._connections[conn], fd, conn)
        if conn.closed:
            del self._connections[conn]
            if LOGGER.isEnabledFor(logging.INFO):  # what `bufkit serve` shows
                LOGGER.info(
                    "closed %s after %d bytes in", repr(conn), conn.bytes_received
                )

    def _watch(self, sock: SelectableSocket, events: int, target: _Target) -> int:
        """Register ``sock`` for ``events`` (selectors' masks); return its fd."""
        fd = sock.fileno()
        epoll = self._epoll
        if epoll is None:
            self._selector_of().register(sock, events, target)
        else:
            epoll.register(fd, _EPOLL_OF[events])
            self._targets[fd] = target
        return fd

    def _unwatch(self, sock: SelectableSocket, fd: int, target: _Target) -> None:
        """Forget ``sock``, registered as ``fd`` for ``target``, before it closes."""
        epoll = self._epoll
        if epoll is None:
            self._selector_of().unregister(sock)
        elif self._targets.get(fd) is target:  # not if the fd was reused since
            del self._targets[fd]
            try:
                epoll.unregister(fd)
            except OSError:  # the socket was closed behind the loop's back
                LOGGER.debug("fd %d was closed before it was unregistered", fd)

    def _selector_of(self) -> selectors.BaseSelector:
        selector = self._selector
        assert selector is not None  # there is a selector when there is no epoll
        return selector

    def _on_timer(self, conn: Connection, delay: float | None) -> None:
        handle = self._timeouts.pop(conn, None)
        if handle is not None:
            handle.cancel()
            self._cancelled_timers += 1
            timers = self._timers
            if self._cancelled_timers > 64 and self._cancelled_timers * 2 > len(timers):
                # Most handshakes end long before their timeout: drop the
                # cancelled timers rather than keep them until due.
                timers[:] = [h for h in timers if not h.cancelled]
                heapq.heapify(timers)
                self._cancelled_timers = 0
        if delay is not None:
            self._timeouts[conn] = self.call_later(delay, self._timed_out, conn)

    def _timed_out(self, conn: Connection) -> None:
        self._timeouts.pop(conn, None)
        conn.on_timeout()

    # -- callbacks ----------------------------------------------------------

    def call_soon(self, callback: Callable[..., object], *args: object) -> Handle:
        """Run ``callback(*args)`` in the next iteration; return its handle."""
        handle = Handle(0.0, callback, args)
        self._ready.append(handle)
        return handle

    def call_later(
        self, delay: float, callback: Callable[..., object], *args: object
    ) -> Handle:
        """Run ``callback(*args)`` once ``delay`` seconds passed on :meth:`time`."""
        handle = Handle(self._clock() + delay, callback, args)
        heapq.heappush(self._timers, handle)
        return handle

    def call_soon_threadsafe(
        self, callback: Callable[..., object], *args: object
    ) -> Handle:
        """Like :meth:`call_soon`, from any thread: it also wakes the loop.

        Raises:
            RuntimeError: If the loop is closed.
        """
        self._check_open()
        handle = Handle(0.0, callback, args)
        self._waker().call_threadsafe(handle)
        return handle

    def add_signal_handler(
        self, sig: Checked[int], callback: Callable[..., object], *args: object
    ) -> None:
        """Run ``callback(*args)`` in the loop each time signal ``sig`` arrives.

        The callback runs as an ordinary callback of the next iteration, not
        inside the signal handler, so it may use the pool, connections and
        the loop freely. Adding a handler again replaces it. Needs a real
        selector (the signal wakes it through a socket pair).

        Raises:
            TypeError: If ``sig`` is not an int.
            ValueError: If ``sig`` is not a valid signal number.
            RuntimeError: If the loop is closed, this is not the main thread,
                or the signal cannot be caught (``SIGKILL``, ``SIGSTOP``).
        """
        signum = check_signal(sig)
        self._check_open()
        self._waker().add_signal(signum, Handle(0.0, callback, args))

    def remove_signal_handler(self, sig: Checked[int]) -> bool:
        """Remove the handler of ``sig``; the signal's earlier handler returns.

        Returns:
            Whether ``sig`` had a handler added by this loop.

        Raises:
            TypeError: If ``sig`` is not an int.
            ValueError: If ``sig`` is not a valid signal number.
            RuntimeError: If this is not the main thread.
        """
        signum = check_signal(sig)
        wakeup = self._wakeup
        return wakeup is not None and wakeup.remove_signal(signum)

    def _waker(self) -> Wakeup:
        wakeup = self._wakeup
        if wakeup is None:
            # _run_due replaces the ready list: look it up at each call.
            wakeup = Wakeup(self._watch, self._unwatch, lambda h: self._ready.append(h))
            self._wakeup = wakeup
        return wakeup

    def _run_due(self) -> None:
        timers = self._timers
        if timers:
            now = self._clock()
            while timers and timers[0].when <= now:
                self._ready.append(heapq.heappop(timers))
        ready, self._ready = self._ready, []
        for handle in ready:
            if not handle.cancelled:
                handle._run()

    # -- running ------------------------------------------------------------

    def run_once(self, timeout: float | None = None) -> None:
        """Run one iteration, waiting at most ``timeout`` seconds for events."""
        wakeup = self._wakeup
        if wakeup is not None and wakeup.threadsafe:
            wakeup.drain()
        if self._ready or self._deferred:
            timeout = 0.0
        elif self._timers:
            wait = max(0.0, self._timers[0].when - self._clock())
            timeout = wait if timeout is None else min(timeout, wait)
        epoll = self._epoll
        if epoll is None:
            self._select(timeout)
        else:
            targets = self._targets
            if timeout is None:
                timeout = -1.0
            elif timeout < 0:
                timeout = 0.0
            for fd, mask in epoll.poll(timeout, len(targets) or 1):
                target = targets.get(fd)  # None: closed by an earlier handler
                if type(target) is Connection:
                    if mask == _EPOLLIN:
                        target.on_readable()
                    elif mask == _EPOLLOUT:
                        target.on_writable()
                    else:
                        _hang_up(target, mask)
                elif target is not None:
                    target._on_ready(mask)
        if self._timers or self._ready:
            self._run_due()
        if self._deferred:
            self._run_deferred()

    def _select(self, timeout: float | None) -> None:
        """One iteration's wait and dispatch through the selector."""
        for key, mask in self._selector_of().select(timeout):
            target = key.data
            if type(target) is Connection:
                if mask & _EVENT_READ:
                    target.on_readable()
                if mask & _EVENT_WRITE:
                    target.on_writable()
            else:
                target._on_ready(mask)

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
        """Close listeners, pending connects, every connection, then the selector.

        Args:
            grace: Seconds to let connections drain after a graceful
                :meth:`bufkit.Connection.close`; those still open are aborted.

        Raises:
            RuntimeError: If the loop is running.
        """
        if self._running:
            raise RuntimeError("cannot close a running loop")
        if self._closed:
            return
        for listener in list(self._listeners):
            listener.close()
        for connector in list(self._connecting):
            connector.cancel()
        if grace > 0:
            for conn in list(self._connections):
                conn.close()
            self.run_until(lambda: not self._connections, timeout=grace)
        for conn in list(self._connections):
            conn.abort()
        if self._wakeup is not None:
            self._wakeup.close()
        self._closed = True
        self._ready.clear()
        self._timers.clear()
        self._deferred.clear()
        if self._epoll is not None:
            self._epoll.close()
        elif self._owns_selector:
            self._selector_of().close()

    def _enter(self) -> None:
        self._check_open()
        if self._running:
            raise RuntimeError("the loop is already running")
        self._running = True

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the loop is closed")


@final
class Listener:
    """A listening socket of a :class:`Loop`; made by :meth:`Loop.listen`."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        factory: ProtocolFactory,
        tls: _TLSOptions | None = None,
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._tls = tls
        self._policy = AcceptBackoff()
        self._fd = -1  # registered under this fd; -1 when not
        self._closed = False
        self._accepted = 0

    @property
    def address(self) -> tuple[str, int]:
        """The ``(host, port)`` the listener is bound to."""
        host, port = self._sock.getsockname()[:2]
        return str(host), int(port)

    @property
    def accepted(self) -> int:
        """Connections accepted so far."""
        return self._accepted

    @property
    def backoffs(self) -> int:
        """Times accepting was suspended after ``EMFILE``-like errors."""
        return self._policy.backoffs

    @property
    def closed(self) -> bool:
        """Whether :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """Stop listening and close the socket; accepted connections live on."""
        if self._closed:
            return
        self._closed = True
        self._unregister()
        self._sock.close()
        self._loop._listeners.discard(self)

    def _register(self) -> None:
        if not self._closed and self._fd < 0:
            self._fd = self._loop._watch(self._sock, _EVENT_READ, self)

    def _unregister(self) -> None:
        if self._fd >= 0:
            self._loop._unwatch(self._sock, self._fd, self)
            self._fd = -1

    def _on_ready(self, mask: int) -> None:
        """Accept every pending connection, up to the loop's batch size."""
        for _ in range(self._loop._accept_batch):
            if self._closed:  # closed by an earlier handler of this iteration
                return
            try:
                sock, addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                action = self._policy.failed(exc)
                if action is AcceptAction.BACK_OFF:
                    self._back_off(exc)
                    return
                LOGGER.warning("accept failed on %s: %s", self.address, exc)
                if action is AcceptAction.SKIP:
                    continue  # that one connection died in the backlog
                return
            self._policy.accepted()
            self._accepted += 1
            if LOGGER.isEnabledFor(logging.INFO):
                LOGGER.info("accepted %s on %s", addr, self.address)
            self._loop._adopt(sock, self._factory, self._tls)

    def _back_off(self, exc: OSError) -> None:
        delay = self._policy.delay
        LOGGER.error(
            "accept on %s failed (%s); not accepting for %.2f s",
            self.address,
            exc,
            delay,
        )
        self._unregister()
        self._loop.call_later(delay, self._register)


@final
class Connector:
    """A connection being made by :meth:`Loop.connect`.

    Hold it to learn the :attr:`connection` once made, or to :meth:`cancel`.
    """

    def __init__(
        self,
        loop: Loop,
        factory: ProtocolFactory,
        on_error: Callable[[OSError], object] | None,
        tls: _TLSOptions | None = None,
    ) -> None:
        self._loop = loop
        self._factory = factory
        self._tls = tls
        self._on_error = on_error
        self._sock: socket.socket | None = None
        self._fd = -1  # the socket's, while connecting
        self._connection: Connection | None = None
        self._error: OSError | None = None
        self._done = False

    @property
    def connection(self) -> Connection | None:
        """The connection once established (``connection_made`` was called)."""
        return self._connection

    @property
    def error(self) -> OSError | None:
        """Why resolving or connecting failed, if it did."""
        return self._error

    @property
    def done(self) -> bool:
        """Whether the attempt ended: connected, failed or cancelled."""
        return self._done

    def cancel(self) -> None:
        """Give up: close the socket being connected (no protocol is made).

        Does nothing once :attr:`done`.
        """
        if self._done:
            return
        self._done = True
        self._drop_socket()
        self._loop._connecting.discard(self)

    def _resolve_in_thread(self, host: str, port: int) -> None:
        thread = threading.Thread(
            target=self._lookup,
            args=(host, port),
            name=f"bufkit-getaddrinfo-{host}",
            daemon=True,
        )
        thread.start()

    def _lookup(self, host: str, port: int) -> None:
        # The worker thread: blocking lookup, then back to the loop's thread.
        result: _AddrInfos | OSError
        try:
            result = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            result = exc
        try:
            self._loop.call_soon_threadsafe(self._resolved, result)
        except RuntimeError:  # the loop was closed meanwhile
            return

    def _resolved(self, result: _AddrInfos | OSError) -> None:
        if self._done:
            return
        if isinstance(result, OSError):
            self._fail(result)
        else:
            self._connect(result)

    def _connect(self, infos: _AddrInfos) -> None:
        family, kind, proto, _name, addr = infos[0]
        sock = socket.socket(family, kind, proto)
        sock.setblocking(False)
        code = sock.connect_ex(addr)
        if code not in (0, errno.EINPROGRESS, errno.EWOULDBLOCK):
            sock.close()
            self._fail(
                OSError(code, f"connect failed: {errno.errorcode.get(code, code)}")
            )
            return
        self._sock = sock
        self._fd = self._loop._watch(sock, _EVENT_WRITE, self)

    def _on_ready(self, mask: int) -> None:
        sock = self._sock
        assert sock is not None  # registered only while connecting
        self._loop._unwatch(sock, self._fd, self)
        self._sock = None
        code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            sock.close()
            self._fail(
                OSError(code, f"connect failed: {errno.errorcode.get(code, code)}")
            )
            return
        self._done = True
        self._loop._connecting.discard(self)
        self._connection = self._loop._adopt(sock, self._factory, self._tls)

    def _fail(self, exc: OSError) -> None:
        self._done = True
        self._error = exc
        self._loop._connecting.discard(self)
        if self._on_error is None:
            LOGGER.warning("%s", exc)
        else:
            self._loop.call_soon(self._on_error, exc)

    def _drop_socket(self) -> None:
        sock, self._sock = self._sock, None
        if sock is not None:
            self._loop._unwatch(sock, self._fd, self)
            sock.close()


def _hang_up(conn: Connection, mask: int) -> None:
    """Dispatch an epoll mask other than IN or OUT alone (both, ERR, HUP).

    As :mod:`selectors` does: an error or hang-up wakes whatever the
    connection is registered for, read first.
    """
    wanted = conn.interest.value
    if mask & ~_EPOLLOUT and wanted & _EVENT_READ:
        conn.on_readable()
    if mask & ~_EPOLLIN and wanted & _EVENT_WRITE:
        conn.on_writable()
