"""The fake selector: readiness computed from the fakes' schedules.

Theory of operation: :class:`FakeSelector` is a :class:`selectors.BaseSelector`
whose ``select`` asks each registered :class:`FakeSocket` whether its next
call would make progress. A :class:`WouldBlock` step at the head of a schedule
*withholds* readiness: the select round consumes it, as time passing while the
kernel buffer is full. A :class:`Spurious` step is *reported* ready and then
fails the call with ``EAGAIN``: readiness that lies. ``select(None)`` runs
rounds until something is ready and raises :class:`DeadlockError` when nothing
ever can be; a timeout allows one round. The selector notices a busy loop: an
object reported ready ``busy_limit`` rounds in a row without being called.
This lets docs/design.md invariant 3 (write interest armed iff data is pending
after a blocked flush) be checked without a kernel. Cost: O(registered) per
round.
"""

from __future__ import annotations

import selectors
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, final

from bufkit.testing._errors import BusyLoopError, DeadlockError, StepBudgetExceeded
from bufkit.testing._fakebase import FakeSocketBase
from bufkit.testing._schedule import (
    Deliver,
    Eof,
    Fail,
    Interrupt,
    Short,
    Spurious,
    WouldBlock,
)

if TYPE_CHECKING:
    from selectors import SelectorKey

    from _typeshed import FileDescriptorLike

__all__ = ["FakeSelector"]

_READ, _WRITE = selectors.EVENT_READ, selectors.EVENT_WRITE


def _fd_of(fileobj: FileDescriptorLike) -> int:
    fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
    if fd < 0:
        raise ValueError(f"invalid file descriptor {fd} for {fileobj!r}")
    return fd


def _readable(sock: FakeSocketBase) -> bool | None:
    """Whether a receive would return now; ``None``: readiness withheld."""
    if sock._shut_rd or sock._eof_seen or sock._broken or sock._reset_pending:
        return True
    step = sock._recv_steps[0] if sock._recv_steps else None
    if isinstance(step, Deliver | Eof | Fail | Interrupt | Spurious):
        return True
    if step is None or isinstance(step, Short):
        at_end = step is None and sock._peer is None and sock.after_recv == "eof"
        return bool(sock._inbox) or sock._inbox_eof or at_end
    sock._recv_steps.popleft()  # WouldBlock: one round passes
    return None


def _writable(sock: FakeSocketBase) -> bool | None:
    """Whether a send would return now; ``None``: readiness withheld."""
    peer_gone = sock._peer is not None and sock._peer._closed
    if sock._shut_wr or sock._broken or peer_gone:
        return True
    if not sock._send_steps:
        return sock.after_send == "accept"
    step = sock._send_steps[0]
    if not isinstance(step, WouldBlock):
        return True
    sock._send_steps.popleft()  # one round passes
    return None


@final
class FakeSelector(selectors.BaseSelector):
    """A selector over fake sockets: deterministic, no kernel involved.

    Args:
        busy_limit: raise :class:`BusyLoopError` when a registered object is
            reported ready this many rounds in a row and the code makes no
            call on it in between (write interest armed with nothing to write,
            or readable data never read).
        step_budget: raise :class:`StepBudgetExceeded` after this many
            ``select`` calls (catches loops that never finish).

    Objects that are not fakes may be registered (an event loop's wake-up
    socket, say); they are never reported ready.
    """

    def __init__(self, *, busy_limit: int = 50, step_budget: int | None = None) -> None:
        self.busy_limit = busy_limit
        self.step_budget = step_budget
        self.rounds = 0
        self._keys: dict[int, SelectorKey] = {}
        self._idle: dict[tuple[int, int], int] = {}
        self._seen_calls: dict[int, int] = {}

    def register(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> SelectorKey:
        """Register ``fileobj`` for ``events`` (``EVENT_READ | EVENT_WRITE``).

        Raises:
            ValueError: for no events, unknown event bits or a closed object.
            KeyError: if it is already registered.
        """
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"invalid events: {events!r}")
        fd = _fd_of(fileobj)
        if fd in self._keys:
            raise KeyError(f"{fileobj!r} (fd {fd}) is already registered")
        key = selectors.SelectorKey(fileobj, fd, events, data)
        self._keys[fd] = key
        return key

    def unregister(self, fileobj: FileDescriptorLike) -> SelectorKey:
        """Stop watching ``fileobj`` and return its key.

        Raises:
            KeyError: if it is not registered.
        """
        fd = self._lookup(fileobj)
        self._idle.pop((fd, _READ), None)
        self._idle.pop((fd, _WRITE), None)
        self._seen_calls.pop(fd, None)
        return self._keys.pop(fd)

    def modify(
        self, fileobj: FileDescriptorLike, events: int, data: Any = None
    ) -> SelectorKey:
        """Change the events (and data) watched for ``fileobj``.

        Unlike unregistering and registering again, this keeps the busy-loop
        counts, so a loop that re-arms interest every round is still caught.

        Raises:
            ValueError: for no events or unknown event bits.
            KeyError: if it is not registered.
        """
        if not events or events & ~(_READ | _WRITE):
            raise ValueError(f"invalid events: {events!r}")
        fd = self._lookup(fileobj)
        key = self._keys[fd] = self._keys[fd]._replace(events=events, data=data)
        return key

    def _lookup(self, fileobj: FileDescriptorLike) -> int:
        if not isinstance(fileobj, int):
            for fd, key in self._keys.items():
                if key.fileobj is fileobj:
                    return fd
        fd = fileobj if isinstance(fileobj, int) else fileobj.fileno()
        if fd not in self._keys:
            raise KeyError(f"{fileobj!r} is not registered")
        return fd

    def get_key(self, fileobj: FileDescriptorLike) -> SelectorKey:
        """Return the key of a registered object.

        Raises:
            KeyError: if it is not registered.
        """
        return self._keys[self._lookup(fileobj)]

    def get_map(self) -> Mapping[FileDescriptorLike, SelectorKey]:
        """Return the registered keys by descriptor."""
        keys: dict[FileDescriptorLike, SelectorKey] = dict(self._keys.items())
        return keys

    def close(self) -> None:
        """Forget every registration."""
        self._keys.clear()

    def select(self, timeout: float | None = None) -> list[tuple[SelectorKey, int]]:
        """Return the ready objects with their ready events.

        With ``timeout`` ``None``, run rounds until something is ready; with a
        timeout, run one round (the fake time passes at once).

        Raises:
            DeadlockError: with no timeout, when nothing can become ready.
            BusyLoopError: see ``busy_limit``.
            StepBudgetExceeded: see ``step_budget``.
        """
        while True:
            self.rounds += 1
            if self.step_budget is not None and self.rounds > self.step_budget:
                raise StepBudgetExceeded(
                    f"select was called more than {self.step_budget} times"
                )
            ready, waited = self._round()
            if ready or timeout is not None:
                return ready
            if not waited:
                raise DeadlockError(
                    "select() without a timeout, and no registered fake can "
                    f"become ready: {list(self._keys.values())!r}"
                )

    def _round(self) -> tuple[list[tuple[SelectorKey, int]], bool]:
        ready, waited = [], False
        for fd, key in list(self._keys.items()):
            sock = key.fileobj
            if not isinstance(sock, FakeSocketBase) or sock._closed:
                continue
            events = 0
            for bit, probe in ((_READ, _readable), (_WRITE, _writable)):
                if key.events & bit:
                    state = probe(sock)
                    waited |= state is None
                    events |= bit if state else 0
            if events:
                self._note(fd, sock, events)
                sock.mark_waited()
                ready.append((key, events))
        return ready, waited

    def _note(self, fd: int, sock: FakeSocketBase, events: int) -> None:
        calls = sock.call_count
        active = calls != self._seen_calls.get(fd, -1)
        self._seen_calls[fd] = calls
        for bit, what in ((_READ, "readable"), (_WRITE, "writable")):
            count = (
                0 if active or not events & bit else self._idle.get((fd, bit), 0) + 1
            )
            self._idle[fd, bit] = count
            if count >= self.busy_limit:
                raise BusyLoopError(
                    f"{sock!r} was reported {what} {count + 1} times in a row and "
                    "no call was made on it: "
                    + (
                        "write interest is armed with nothing to write"
                        if bit == _WRITE
                        else "readable data is never read"
                    )
                )
