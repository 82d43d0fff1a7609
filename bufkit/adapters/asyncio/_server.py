"""``StreamServer``: accept loop, handlers or protocols, and cleanup at loop shutdown.

Theory of operation
-------------------
Listening sockets are registered with ``add_reader``; each readable event
accepts up to ``backlog`` connections, makes each a
:class:`~bufkit.adapters.asyncio.Connection` and either runs the handler's
awaitable in a task (``start_server``) or hands the connection to a new
protocol (``start_protocol_server``). What an ``accept`` error means is the
shared policy of ``bufkit._sockets`` (back off with growing delays when out
of descriptors or memory, skip a connection that died in the backlog). A
factory that raises, or a handler that raises or returns no awaitable, is
reported to the loop's exception handler and its socket closed at once;
a protocol whose ``connection_made`` raises is aborted by the connection
itself. Either way nothing stays in :attr:`StreamServer.connections`.

Every server, and every connection of ``open_connection``, is also recorded
in a per-loop registry whose guard task is cancelled by ``asyncio.run`` (and
``uvloop.run``, ``asyncio.Runner``) at shutdown: it aborts whatever is still
open (a server aborts its own connections), so closing the loop leaves no
registration, socket or pool buffer behind (docs/design.md invariant 4).

Cost model: per accepted connection, one ``accept``, one ``setsockopt`` and
one connection; nothing per idle connection beyond the socket and its
registration.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeAlias, final

from bufkit._sockets import AcceptAction, AcceptBackoff, set_nodelay
from bufkit.adapters.asyncio._handlers import StreamProtocol
from bufkit.adapters.asyncio._stream import Connection
from bufkit.errors import UnsupportedLoopError

if TYPE_CHECKING:
    from types import TracebackType


__all__ = ["StreamServer"]

_MakeConnection: TypeAlias = Callable[
    [socket.socket, StreamProtocol | None], Connection
]
ClientCallback: TypeAlias = Callable[[Connection], Awaitable[object]]
ProtocolFactory: TypeAlias = Callable[[], StreamProtocol]

LOGGER: Final = logging.getLogger("bufkit.adapters.asyncio")


def _check_loop(loop: asyncio.AbstractEventLoop) -> None:
    """Raise ``UnsupportedLoopError`` for loops without ``add_reader``."""
    if type(loop).add_reader is asyncio.AbstractEventLoop.add_reader:
        raise UnsupportedLoopError(
            f"{type(loop).__module__}.{type(loop).__qualname__} has no add_reader(): "
            "bufkit's readiness stream needs a selector event loop or uvloop; "
            "use PooledProtocol on this loop instead"
        )


class _Registry:
    """What is open on one loop, and the guard that aborts it at shutdown."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._open: set[Connection | StreamServer] = set()
        self._guard: asyncio.Future[None] | None = None
        self._task: asyncio.Task[None] | None = None

    def add(self, item: Connection | StreamServer) -> None:
        self._open.add(item)
        if self._task is None:
            self._guard = self._loop.create_future()
            self._task = self._loop.create_task(
                self._watch(self._guard), name="bufkit.adapters.asyncio shutdown guard"
            )

    def discard(self, item: Connection | StreamServer) -> None:
        self._open.discard(item)
        if not self._open and self._guard is not None:
            if not self._guard.done():
                self._guard.set_result(None)
            self._guard = self._task = None

    def _connection_closed(self, conn: Connection) -> None:
        self.discard(conn)

    async def _watch(self, guard: asyncio.Future[None]) -> None:
        try:
            await guard
        except asyncio.CancelledError:
            for item in list(self._open):
                if isinstance(item, StreamServer):
                    item.close()
                else:
                    item.abort()
            self._open.clear()
            raise


_REGISTRIES: dict[asyncio.AbstractEventLoop, _Registry] = {}


def _registry(loop: asyncio.AbstractEventLoop) -> _Registry:
    registry = _REGISTRIES.get(loop)
    if registry is None:
        for old in [old for old in _REGISTRIES if old.is_closed()]:
            del _REGISTRIES[old]
        registry = _REGISTRIES[loop] = _Registry(loop)
    return registry


@final
class StreamServer:
    """Listening sockets that turn accepted sockets into connections.

    Made by :func:`bufkit.adapters.asyncio.start_server` and
    :func:`bufkit.adapters.asyncio.start_protocol_server`. ``async with``
    closes it and waits.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        make: _MakeConnection,
        *,
        handler: ClientCallback | None = None,
        factory: ProtocolFactory | None = None,
        backlog: int = 100,
    ) -> None:
        self._loop = loop
        self._sockets = sockets
        self._make = make
        self._handler = handler
        self._factory = factory
        self._backlog = backlog
        self._backoffs = {sock: AcceptBackoff() for sock in sockets}
        self._connections: set[Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._serving = False
        self._closed: asyncio.Future[None] = loop.create_future()
        self._registry = _registry(loop)

    def __repr__(self) -> str:
        state = "serving" if self._serving else "closed"
        return f"<StreamServer {state} connections={len(self._connections)}>"

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        """The listening sockets (empty once closed)."""
        return tuple(self._sockets)

    @property
    def connections(self) -> frozenset[Connection]:
        """The connections accepted and not yet closed."""
        return frozenset(self._connections)

    def is_serving(self) -> bool:
        """Whether the server still accepts connections."""
        return self._serving

    def _start(self) -> None:
        self._serving = True
        self._registry.add(self)
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock)

    def close(self) -> None:
        """Stop listening and abort every connection and handler task.

        Queued data of the connections is dropped, their pending sends fail
        and their buffers go back to the pool. Use each connection's
        :meth:`~bufkit.adapters.asyncio.Connection.close` first for a
        graceful shutdown.
        """
        if not self._serving:
            return
        self._serving = False
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
            sock.close()
        self._sockets = []
        self._abort_all()
        self._registry.discard(self)
        self._maybe_closed()

    async def wait_closed(self) -> None:
        """Wait until closed and every connection and handler is done."""
        await asyncio.shield(self._closed)

    async def serve_forever(self) -> None:
        """Wait until the server is closed; closes it when cancelled."""
        try:
            await self.wait_closed()
        finally:
            self.close()

    async def __aenter__(self) -> StreamServer:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
        await self.wait_closed()

    def _abort_all(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for conn in list(self._connections):
            conn.abort()

    # -- accepting ---------------------------------------------------------

    def _accept(self, listener: socket.socket) -> None:
        backoff = self._backoffs[listener]
        for _ in range(self._backlog):
            if not self._serving:
                return
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if self._accept_failed(listener, backoff, exc):
                    continue
                return
            backoff.accepted()
            self._serve(sock)

    def _accept_failed(
        self, listener: socket.socket, backoff: AcceptBackoff, exc: OSError
    ) -> bool:
        """Apply the shared accept policy; whether to accept the next one."""
        action = backoff.failed(exc)
        if action is AcceptAction.SKIP:
            LOGGER.debug("accept() skipped a dead connection: %s", exc)
            return True
        self._loop.call_exception_handler(
            {"message": "accept() failed", "exception": exc, "socket": listener}
        )
        exc.__traceback__ = None
        if action is AcceptAction.BACK_OFF:
            self._loop.remove_reader(listener.fileno())
            self._loop.call_later(backoff.delay, self._resume_accepting, listener)
        return False

    def _resume_accepting(self, listener: socket.socket) -> None:
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _serve(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        set_nodelay(sock)
        factory = self._factory
        try:
            conn = self._make(sock, None if factory is None else factory())
        except Exception as exc:
            sock.close()
            self._report(f"Exception in the protocol factory {factory!r}", exc)
            return
        self._connections.add(conn)
        conn._owner = self
        conn._start()  # a connection_made that raises aborts it: _connection_closed
        if self._handler is not None and not conn.is_closing():
            self._run_handler(self._handler, conn)

    def _run_handler(self, handler: ClientCallback, conn: Connection) -> None:
        try:
            awaitable = handler(conn)
            if not inspect.isawaitable(awaitable):
                raise TypeError(
                    f"the connection handler {handler!r} returned {awaitable!r}, "
                    "not an awaitable: start_server() awaits handler(conn); "
                    "serve a protocol factory with start_protocol_server()"
                )
        except Exception as exc:
            self._report("Exception in the connection handler", exc, conn)
            conn.abort()
            return
        task = self._loop.create_task(self._run(awaitable, conn))
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    async def _run(self, awaitable: Awaitable[object], conn: Connection) -> None:
        try:
            await awaitable
        except Exception as exc:
            if exc is not conn._exc:
                self._report("Unhandled exception in a connection handler", exc, conn)
            conn.abort()
        finally:
            conn.close()

    def _report(
        self, message: str, exc: Exception, conn: Connection | None = None
    ) -> None:
        context: dict[str, object] = {"message": message, "exception": exc}
        if conn is not None:
            context["connection"] = conn
        self._loop.call_exception_handler(context)
        exc.__traceback__ = None  # reported; its frames would hold the connection

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        self._maybe_closed()

    def _connection_closed(self, conn: Connection) -> None:
        self._connections.discard(conn)
        self._maybe_closed()

    def _maybe_closed(self) -> None:
        idle = not (self._serving or self._connections or self._tasks)
        if idle and not self._closed.done():
            self._closed.set_result(None)
