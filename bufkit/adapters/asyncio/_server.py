"""``StreamServer``: accept loop, client callbacks, and cleanup at loop shutdown.

Theory of operation
-------------------
Listening sockets are registered with ``add_reader``; each readable event
accepts up to ``backlog`` connections, makes each a
:class:`~bufkit.adapters.asyncio.Connection` and either calls its
:class:`~bufkit.adapters.asyncio.StreamProtocol` or runs the client callback
in a task. ``EMFILE`` and its kin pause accepting for a second, as asyncio
does. Every server, and every connection of ``open_connection``, is also
recorded in a per-loop registry whose guard task is cancelled by
``asyncio.run`` (and ``uvloop.run``, ``asyncio.Runner``) at shutdown: it
aborts whatever is still open (a server aborts its own connections), so
closing the loop leaves no registration, socket or pool buffer behind
(invariant 4).

Cost model: per accepted connection, one ``accept`` and one object; nothing
per idle connection beyond the socket and its registration.
"""

from __future__ import annotations

import asyncio
import errno
import inspect
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Final, TypeAlias, final

from bufkit.adapters.asyncio._handlers import StreamProtocol
from bufkit.adapters.asyncio._stream import Connection
from bufkit.errors import UnsupportedLoopError

if TYPE_CHECKING:
    from types import TracebackType


__all__ = ["StreamServer"]

_MakeConnection: TypeAlias = Callable[
    [socket.socket, StreamProtocol | None], Connection
]
ClientCallback: TypeAlias = Callable[[Connection], Awaitable[None]]
ProtocolFactory: TypeAlias = Callable[[], StreamProtocol]

ACCEPT_RETRY_DELAY: Final = 1.0
"""Seconds accepting pauses after ``EMFILE``/``ENFILE``/``ENOBUFS``/``ENOMEM``."""

_OUT_OF_RESOURCES: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)


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

    Made by :func:`bufkit.adapters.asyncio.start_server`. ``async with``
    closes it and waits.
    """

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sockets: list[socket.socket],
        handler: ClientCallback | ProtocolFactory,
        make: _MakeConnection,
        backlog: int,
    ) -> None:
        self._loop = loop
        self._sockets = sockets
        self._handler = handler
        self._is_callback = inspect.iscoroutinefunction(handler)
        self._make = make
        self._backlog = backlog
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
        """Stop listening and abort every connection and callback task.

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
        """Wait until closed and every connection and callback is done."""
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

    def _accept(self, listener: socket.socket) -> None:
        for _ in range(self._backlog):
            if not self._serving:
                return
            try:
                sock, _addr = listener.accept()
            except (BlockingIOError, InterruptedError, ConnectionAbortedError):
                return
            except OSError as exc:
                self._accept_failed(listener, exc)
                return
            self._serve(sock)

    def _accept_failed(self, listener: socket.socket, exc: OSError) -> None:
        self._loop.call_exception_handler(
            {"message": "accept() failed", "exception": exc, "socket": listener}
        )
        if exc.errno in _OUT_OF_RESOURCES:
            self._loop.remove_reader(listener.fileno())
            self._loop.call_later(ACCEPT_RETRY_DELAY, self._resume_accepting, listener)

    def _resume_accepting(self, listener: socket.socket) -> None:
        if self._serving:
            self._loop.add_reader(listener.fileno(), self._accept, listener)

    def _serve(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        _nodelay(sock)
        if self._is_callback:
            conn = self._make(sock, None)
        else:
            factory: ProtocolFactory = self._handler  # type: ignore[assignment]
            conn = self._make(sock, factory())
        self._connections.add(conn)
        conn._owner = self
        conn._start()
        if self._is_callback:
            callback: ClientCallback = self._handler  # type: ignore[assignment]
            task = self._loop.create_task(self._run(callback, conn))
            self._tasks.add(task)
            task.add_done_callback(self._task_done)

    async def _run(self, callback: ClientCallback, conn: Connection) -> None:
        try:
            await callback(conn)
        except Exception as exc:
            if exc is not conn._exc:
                self._loop.call_exception_handler(
                    {
                        "message": "Unhandled exception in a client callback",
                        "exception": exc,
                        "connection": conn,
                    }
                )
            conn.abort()
        finally:
            conn.close()

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


def _nodelay(sock: socket.socket) -> None:
    if sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
