"""Scheduled callbacks, and how signals and other threads wake a selectors ``Loop``.

Theory of operation
-------------------
A :class:`Handle` is one scheduled callback (a heap entry for timers); the
loop keeps a ready list and a heap of them, and runs each as an ordinary
callback of an iteration, logging what raises.

Python runs a signal handler in the main thread between any two bytecodes,
perhaps in the middle of a read, a write or a lend of the pool: code there
sees half-updated state, and a lock taken there may already be held. So the
handler the loop installs does nothing; the interpreter's C-level handler
writes the signal's number to a socket pair given to
:func:`signal.set_wakeup_fd`, the loop's poller sees the read end
readable, and the loop runs the user's callback as an ordinary callback of
the next iteration. A byte 0 (no signal has that number) wakes the loop for
callbacks queued by other threads, kept in a deque (``append`` and
``popleft`` are thread-safe) that only the loop's thread drains: when the byte
arrives, and at the start of each iteration (so a fake selector, which never
sees the socket pair, still runs them).

The socket pair exists only while a signal handler or a thread-safe callback
needs it; its read end is registered with the loop like a listener. The
wakeup fd is one per process: the one it replaced is put back when the last
signal handler goes. Nothing here touches a connection: docs/design.md
invariants 1 to 6 are the connection core's, and callbacks reach connections
only from the loop's own thread.

Cost: ``call_soon`` is one object; nothing on an iteration without signals
or thread-safe callbacks; one ``recv`` per wakeup, one callback per signal
byte.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import selectors
import signal
import socket
import threading
from collections.abc import Callable
from types import FrameType
from typing import Final, Protocol, final

__all__ = ["LOGGER", "Handle", "Wakeup", "check_signal"]

LOGGER: Final = logging.getLogger("bufkit.adapters.selectors")

_WAKE: Final = b"\0"


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
        """Do not run the callback (if it has not run yet).

        The handle lets go of the callback and its arguments at once, so a
        cancelled timer does not keep them alive until its time.
        """
        self._cancelled = True
        self._callback = _nothing
        self._args = ()

    def _run(self) -> None:
        try:
            self._callback(*self._args)
        except Exception:
            LOGGER.exception("callback %r raised", self._callback)

    def __lt__(self, other: Handle) -> bool:
        return self.when < other.when


def _nothing(*args: object) -> None:
    """What a cancelled handle holds instead of its callback."""


class _Watch(Protocol):
    """The loop's ``_watch``: register a socket; return its fd."""

    def __call__(self, sock: socket.socket, events: int, target: Wakeup, /) -> int:
        """Register ``sock`` for ``events`` (selectors' masks) to wake ``target``."""
        ...


class _Unwatch(Protocol):
    """The loop's ``_unwatch``: forget a socket before it is closed."""

    def __call__(self, sock: socket.socket, fd: int, target: Wakeup, /) -> None:
        """Forget ``sock``, registered as ``fd`` for ``target``."""
        ...


_Previous = Callable[[int, FrameType | None], object] | int | None


def _ignore(signum: int, frame: FrameType | None) -> None:
    """The Python-level handler: the work happens in the loop."""


def _check_main_thread(what: str) -> None:
    if threading.current_thread() is not threading.main_thread():
        raise RuntimeError(f"signal handlers can only be {what} in the main thread")


def check_signal(sig: object) -> int:
    """Return ``sig`` as a signal number, or raise naming what is wrong."""
    if not isinstance(sig, int) or isinstance(sig, bool):
        raise TypeError(f"sig must be a signal number, got {type(sig).__name__}")
    if sig not in signal.valid_signals():
        raise ValueError(f"sig {sig} is not a valid signal number")
    return int(sig)


@final
class Wakeup:
    """A loop's self-pipe: signal callbacks and thread-safe callbacks."""

    def __init__(
        self,
        watch: _Watch,
        unwatch: _Unwatch,
        schedule: Callable[[Handle], None],
    ) -> None:
        self._watch = watch
        self._unwatch = unwatch
        self._fd = -1  # the read end's, while the pair is open
        self._schedule = schedule  # appends to the loop's ready list
        self._pair: tuple[socket.socket, socket.socket] | None = None
        self._handlers: dict[int, tuple[Handle, _Previous]] = {}
        self._old_fd: int | None = None  # the wakeup fd ours replaced
        self.threadsafe: collections.deque[Handle] = collections.deque()
        self._lock = threading.Lock()  # opening the pair from two threads

    def add_signal(self, sig: int, handle: Handle) -> None:
        """Run ``handle`` in the loop whenever ``sig`` arrives."""
        _check_main_thread("added")
        wsock = self._open()[1]
        if self._old_fd is None:
            old = signal.set_wakeup_fd(wsock.fileno(), warn_on_full_buffer=False)
            self._old_fd = old
        previous = self._handlers[sig][1] if sig in self._handlers else None
        try:
            old_handler = signal.signal(sig, _ignore)
        except OSError as exc:  # SIGKILL, SIGSTOP
            self._maybe_restore_fd()
            error = RuntimeError(f"sig {sig} cannot be caught: {exc}")
            error.__cause__ = exc  # `raise ... from exc`, which mypyc ignores
            raise error  # noqa: B904
        self._handlers[sig] = (handle, old_handler if previous is None else previous)

    def remove_signal(self, sig: int) -> bool:
        """Give ``sig`` back its earlier handler; False if it had none here."""
        _check_main_thread("removed")
        entry = self._handlers.pop(sig, None)
        if entry is None:
            return False
        signal.signal(sig, entry[1] if entry[1] is not None else signal.SIG_DFL)
        self._maybe_restore_fd()
        return True

    def call_threadsafe(self, handle: Handle) -> None:
        """Queue ``handle`` from any thread and wake the loop."""
        self.threadsafe.append(handle)
        wsock = self._open()[1]
        with contextlib.suppress(BlockingIOError, OSError):
            wsock.send(_WAKE)  # full: a wakeup is pending anyway; closed: too late

    def close(self) -> None:
        """Remove every signal handler and close the pair."""
        for sig in list(self._handlers):
            self.remove_signal(sig)
        with self._lock:
            pair, self._pair = self._pair, None
        if pair is not None:
            self._unwatch(pair[0], self._fd, self)
            pair[0].close()
            pair[1].close()
        self.threadsafe.clear()

    def _open(self) -> tuple[socket.socket, socket.socket]:
        with self._lock:
            if self._pair is None:
                rsock, wsock = socket.socketpair()
                rsock.setblocking(False)
                wsock.setblocking(False)
                self._fd = self._watch(rsock, selectors.EVENT_READ, self)
                self._pair = (rsock, wsock)
            return self._pair

    def _maybe_restore_fd(self) -> None:
        if not self._handlers and self._old_fd is not None:
            signal.set_wakeup_fd(self._old_fd)
            self._old_fd = None

    def _on_ready(self, mask: int) -> None:
        """The read end is readable: schedule what the bytes and the deque ask."""
        pair = self._pair
        assert pair is not None  # registered only while the pair is open
        while True:
            try:
                data = pair[0].recv(4096)
            except (BlockingIOError, InterruptedError):
                break
            if not data:
                break
            for signum in data:
                entry = self._handlers.get(signum)
                if entry is not None and not entry[0].cancelled:
                    self._schedule(entry[0])
        self.drain()

    def drain(self) -> None:
        """Schedule the callbacks other threads queued (the loop's thread only)."""
        queued = self.threadsafe
        while queued:
            self._schedule(queued.popleft())
