"""The callback side of :class:`~bufkit.adapters.selectors.Loop`.

Theory of operation
-------------------
Callbacks wait in two places: a ready list (run in the next iteration, in the
order they were added) and a heap of timers keyed by when they are due. Each
iteration moves the due timers to the ready list, then runs the callbacks
that were ready when it began; callbacks they add wait for the next one, so a
callback that re-adds itself cannot starve I/O. Signals and other threads go
through :class:`~bufkit.adapters._sel_wakeup.Wakeup`, which only ever adds to
the ready list from the loop's own thread.

Cost: ``call_soon`` is one append; ``call_later`` one heap push; an iteration
with nothing due costs two truth tests.
"""

from __future__ import annotations

import heapq
import selectors
from collections.abc import Callable

from bufkit.adapters._sel_listen import Handle
from bufkit.adapters._sel_wakeup import Wakeup, check_signal

__all__ = ["Callbacks"]


class Callbacks:
    """Timers, callbacks, thread-safe callbacks and signal handlers of a loop."""

    _selector: selectors.BaseSelector
    _clock: Callable[[], float]
    _ready: list[Handle]
    _timers: list[Handle]
    _wakeup: Wakeup | None
    _closed: bool

    def time(self) -> float:
        """Return the loop's clock (what :meth:`call_later` counts from)."""
        return self._clock()

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

    # -- signals ------------------------------------------------------------

    def add_signal_handler(
        self, sig: int, callback: Callable[..., object], *args: object
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

    def remove_signal_handler(self, sig: int) -> bool:
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
            wakeup = Wakeup(self._selector, lambda h: self._ready.append(h))
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

    def _check_open(self) -> None:
        if self._closed:
            raise RuntimeError("the loop is closed")
