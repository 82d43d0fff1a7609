"""The ready loop's helpers: scheduled callbacks, listeners, pending connects.

Theory of operation: a :class:`Handle` is one scheduled callback (a heap entry
for timers). A :class:`Listener` accepts up to ``Loop.accept_batch`` connections
per readiness event, until ``accept`` would block; on ``EMFILE``/``ENFILE``
(or ``ENOBUFS``/``ENOMEM``) it unregisters itself and re-registers after a
back-off that doubles from :data:`BACKOFF_START` to :data:`BACKOFF_MAX` and
resets after a successful accept, so a loop out of descriptors neither spins nor
dies. Cost: one ``accept`` syscall per connection plus one that would block per
event.
"""

from __future__ import annotations

import errno
import logging
import selectors
import socket
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, final

if TYPE_CHECKING:
    from bufkit.adapters._sel_loop import Loop
    from bufkit.adapters._sel_types import ConnectionProtocol

__all__ = ["BACKOFF_MAX", "BACKOFF_START", "Handle", "Listener", "ProtocolFactory"]

LOGGER: Final = logging.getLogger("bufkit.adapters.selectors")

ProtocolFactory = Callable[[], "ConnectionProtocol"]
"""What makes each connection's protocol: called with no argument."""

_ACCEPT_LIMIT_ERRNOS: Final = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}
)
_ACCEPT_SKIP_ERRNOS: Final = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
BACKOFF_START: Final = 0.05
"""Seconds a listener waits after the first ``EMFILE``-like accept error."""
BACKOFF_MAX: Final = 1.0
"""The longest listener back-off, in seconds (asyncio waits 1 s each time)."""


@final
class Handle:
    """A callback scheduled by :meth:`Loop.call_soon` or :meth:`Loop.call_later`."""

    __slots__ = ("_args", "_callback", "_cancelled", "when")

    def __init__(
        self, when: float, callback: Callable[..., object], args: tuple[object, ...]
    ) -> None:
        self.when = when
        self._callback = callback
        self._args = args
        self._cancelled = False

    @property
    def cancelled(self) -> bool:
        """Whether :meth:`cancel` was called."""
        return self._cancelled

    def cancel(self) -> None:
        """Do not run the callback (if it has not run yet)."""
        self._cancelled = True

    def _run(self) -> None:
        try:
            self._callback(*self._args)
        except Exception:
            LOGGER.exception("callback %r raised", self._callback)

    def __lt__(self, other: Handle) -> bool:
        return self.when < other.when


@final
class Listener:
    """A listening socket of a :class:`Loop`; made by :meth:`Loop.listen`."""

    def __init__(
        self, loop: Loop, sock: socket.socket, factory: ProtocolFactory
    ) -> None:
        self._loop = loop
        self._sock = sock
        self._factory = factory
        self._backoff = 0.0
        self._registered = False
        self._closed = False
        self._accepted = 0
        self._backoffs = 0

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
        return self._backoffs

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
        if not self._closed and not self._registered:
            self._loop._selector.register(self._sock, selectors.EVENT_READ, self)
            self._registered = True

    def _unregister(self) -> None:
        if self._registered:
            self._loop._selector.unregister(self._sock)
            self._registered = False

    def _on_ready(self, mask: int) -> None:
        """Accept every pending connection, up to the loop's batch size."""
        for _ in range(self._loop._accept_batch):
            if self._closed:  # closed by an earlier handler of this iteration
                return
            try:
                sock, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in _ACCEPT_LIMIT_ERRNOS:
                    self._back_off(exc)
                    return
                LOGGER.warning("accept failed on %s: %s", self.address, exc)
                if exc.errno in _ACCEPT_SKIP_ERRNOS:
                    continue  # that one connection died in the backlog
                return
            self._backoff = 0.0
            self._accepted += 1
            if LOGGER.isEnabledFor(logging.INFO):
                LOGGER.info("accepted %s on %s", _addr, self.address)
            self._loop._adopt(sock, self._factory)

    def _back_off(self, exc: OSError) -> None:
        self._backoff = min(BACKOFF_MAX, max(BACKOFF_START, self._backoff * 2))
        self._backoffs += 1
        LOGGER.error(
            "accept on %s failed (%s); not accepting for %.2f s",
            self.address,
            exc,
            self._backoff,
        )
        self._unregister()
        self._loop.call_later(self._backoff, self._register)


@final
class _Connecting:
    """A non-blocking connect in progress, registered for write readiness."""

    def __init__(
        self,
        loop: Loop,
        sock: socket.socket,
        factory: ProtocolFactory,
        on_error: Callable[[OSError], object] | None,
    ) -> None:
        self.loop = loop
        self.sock = sock
        self.factory = factory
        self.on_error = on_error

    def _on_ready(self, mask: int) -> None:
        loop = self.loop
        loop._selector.unregister(self.sock)
        loop._connecting.discard(self)
        code = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.sock.close()
            exc = OSError(code, f"connect failed: {errno.errorcode.get(code, code)}")
            if self.on_error is None:
                LOGGER.error("%s", exc)
            else:
                self.on_error(exc)
            return
        loop._adopt(self.sock, self.factory)
