"""The bookkeeping behind :class:`bufkit.WriteQueue`: cursor, tail, ledgers.

Theory of operation. Pending bytes live in a list of ``'B'`` memoryviews
(``_segs``) from index ``_first`` on, with an offset into that one
(``_head_off``), plus an open ``bytearray`` tail that absorbs writes shorter
than ``coalesce_below``. A sent view's slot is overwritten with an empty view
(so its memory goes at once) and the dead prefix is cut off once it is at
least ``_CUT_AFTER`` slots and as long as the live part (amortized O(1) per
view). The tail is sealed
into ``_segs`` (one view) before a long write, at ``TAIL_LIMIT`` bytes, and
when a gather list is built, so it is never resized while a view of it
exists. Positions are absolute stream offsets: ``_written`` counts every
byte enqueued, ``_sent`` every byte accepted, so ``pending`` is one
subtraction. Two ledgers (deques) hold ``(end, thing)`` in write order:
``_comps`` the callbacks, ``_owned`` the pooled buffers to release; an entry
is due once ``_sent >= end``. Writes with neither cost no entry.

Idle memory: ``_segs``, ``_comps`` and ``_owned`` are ``None`` while empty:
each is created by the write that needs it and dropped when it empties (an
empty deque still holds a 760-byte block), so an idle queue is its slots
and an empty ``bytearray``, about 0.25 KB.

Guarantees (DESIGN.md invariants): 1. ``_consume`` only drops views whose
bytes were all accepted and moves the offset; it never copies or re-slices
data, so bytes leave once, in order. 2. ``_dispatch`` is the only caller of
``on_done``; it is not re-entrant (a callback's own writes, advances or
``fail`` only append or change state; the running loop picks them up), pops
an entry before calling it, and passes ``None`` when the entry's bytes were
accepted, else the exception that failed the queue, so each fires exactly
once and in order. 4. Owned buffers are released exactly once: when sent,
or all at once on failure, before the callbacks learn of it. 6. Pause and
resume are decided right after each change of ``pending``.
Callbacks' exceptions are collected (``Errors``) and raised by the public
call once its work is done, so one failing callback never starves another.

Cost model: appending to the tail and two integer updates per short write;
one view per long write (plus a list or a deque when the queue was idle);
``_consume`` is O(entries completed); a failure is O(entries pending).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, NoReturn

from bufkit._checks import positive_int
from bufkit._gather import TAIL_LIMIT, Errors, check_nbytes, raise_all, send_once
from bufkit._pool import PooledBuffer
from bufkit._queuestate import TRANSITIONS, Event, QueueState
from bufkit.errors import QueueClosedError, QueueFailedError

if TYPE_CHECKING:
    from bufkit._protocols import CompletionCallback, SupportsSend, SupportsSendmsg

__all__ = ["QueueCore"]

_OPEN = QueueState.OPEN
_CLOSING = QueueState.CLOSING
_FAILED = QueueState.FAILED
_SENT = memoryview(b"")  # fills the slot of a sent view until the list is cut
_CUT_AFTER = 32  # dead slots tolerated before cutting the list's sent prefix


class QueueCore:
    """State, read-only views and internal operations of a write queue."""

    __slots__ = (
        "__weakref__",
        "_coalesce",
        "_comps",
        "_dispatching",
        "_exc",
        "_first",
        "_head_off",
        "_high",
        "_low",
        "_max_gather",
        "_name",
        "_on_pause",
        "_on_resume",
        "_owned",
        "_paused",
        "_segs",
        "_sent",
        "_state",
        "_tail",
        "_written",
    )

    def __init__(
        self,
        high: int,
        low: int,
        on_pause: Callable[[], object] | None,
        on_resume: Callable[[], object] | None,
        max_gather: int,
        coalesce: int,
    ) -> None:
        positive_int("high_water", high, minimum=0)
        positive_int("low_water", low, minimum=0)
        if low > high:
            raise ValueError(
                f"watermarks need 0 <= low_water <= high_water, "
                f"got low_water={low}, high_water={high}"
            )
        positive_int("max_gather_bytes", max_gather)
        positive_int("coalesce_below", coalesce, minimum=0)
        for what, callback in (("on_pause", on_pause), ("on_resume", on_resume)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{what} must be callable or None, not {callback!r}")
        self._high, self._low = high, low
        self._on_pause, self._on_resume = on_pause, on_resume
        self._max_gather, self._coalesce = max_gather, coalesce
        self._name: str | None = None
        self._segs: list[memoryview] | None = None
        self._tail = bytearray()
        self._first = self._head_off = self._written = self._sent = 0
        self._comps: deque[tuple[int, CompletionCallback]] | None = None
        self._owned: deque[tuple[int, PooledBuffer]] | None = None
        self._state = _OPEN
        self._exc: BaseException | None = None
        self._paused = self._dispatching = False

    # -- the public read-only views (documented under WriteQueue) --------------
    @property
    def pending(self) -> int:
        """Bytes written but not yet accepted by the socket (O(1))."""
        return self._written - self._sent

    @property
    def paused(self) -> bool:
        """Whether the last watermark crossing was a pause."""
        return self._paused

    @property
    def state(self) -> QueueState:
        """The lifecycle state (see :class:`~bufkit.QueueState`)."""
        return self._state

    @property
    def high_water(self) -> int:
        """The pause threshold in bytes."""
        return self._high

    @property
    def low_water(self) -> int:
        """The resume threshold in bytes."""
        return self._low

    def __len__(self) -> int:
        """The number of buffers pending: what a full gather would hold."""
        segs = self._segs
        count = 0 if segs is None else len(segs) - self._first
        return count + (1 if self._tail else 0)

    def __bool__(self) -> bool:
        """Whether bytes are pending, i.e. whether a flush is needed."""
        return self._written != self._sent

    def __repr__(self) -> str:
        name = "" if self._name is None else f" {self._name!r}"
        paused = " paused" if self._paused else ""
        return (
            f"<WriteQueue{name} {self._state.value} pending={self.pending} "
            f"buffers={len(self)}{paused}>"
        )

    def _add(self, view: memoryview) -> int:
        size = len(view)
        if size < self._coalesce:
            self._tail += view
            if len(self._tail) >= TAIL_LIMIT:
                self._seal()
        elif size:
            self._push(view)
        return size

    def _add_pooled(self, buf: PooledBuffer, nbytes: int | None) -> int:
        view = buf.view
        size = len(view) if nbytes is None else check_nbytes(nbytes, len(view))
        if size < self._coalesce or not size:  # an empty entry would never be due
            self._add(view[:size])
            buf.release()
            return size
        self._push(view[:size] if size < len(view) else view)
        if self._owned is None:
            self._owned = deque()
        self._owned.append((self._written + size, buf))
        return size

    def _push(self, view: memoryview) -> None:
        if self._tail:
            self._seal()
        if self._segs is None:
            self._segs = [view]
        else:
            self._segs.append(view)

    def _seal(self) -> None:
        view = memoryview(self._tail)
        self._tail = bytearray()
        if self._segs is None:
            self._segs = [view]
        else:
            self._segs.append(view)

    def _after_write(self, on_done: CompletionCallback | None) -> None:
        errors: Errors = None
        if on_done is not None:
            if self._comps is None:
                self._comps = deque()
            self._comps.append((self._written, on_done))
            if self._written == self._sent:
                errors = self._dispatch(errors)
        if not self._paused and self._written - self._sent > self._high:
            self._paused = True
            errors = self._call(self._on_pause, errors)
        if errors:
            raise_all(errors)

    def _refuse(self) -> NoReturn:
        if self._state is _FAILED:
            raise QueueFailedError(
                f"{self!r} failed ({self._exc!r}): no more writes"
            ) from self._exc
        raise QueueClosedError(f"{self!r} is closed: no more writes")

    def _move(self, event: Event) -> None:
        self._state = TRANSITIONS[self._state, event]

    def _send_gathered(self, sock: SupportsSendmsg | SupportsSend) -> tuple[int, int]:
        """One send call of the gather list; return (accepted, offered)."""
        if self._tail:
            self._seal()
        segs = self._segs
        assert segs is not None  # bytes pending, the tail sealed
        return send_once(
            sock,
            segs,
            self._first,
            self._head_off,
            self._written - self._sent,
            self._max_gather,
        )

    def _consume(self, n: int, errors: Errors) -> Errors:
        if n and n == self._written - self._sent:  # all of it: drop everything
            self._sent = self._written
            self._segs = None
            self._first = self._head_off = 0
            if self._tail:
                self._tail.clear()  # never exported while unsealed: reuse it
            if self._owned:
                errors = self._release(errors, None)
            if self._state is _CLOSING:
                self._move(Event.DRAIN)  # the only DRAIN that changes state
            if self._paused:
                self._paused = False
                errors = self._call(self._on_resume, errors)
        elif n:
            rest = self._head_off + n
            tail = self._tail
            if tail and n > self._written - self._sent - len(tail):  # no buffers()
                self._seal()  # part of the tail went: it becomes an entry
            self._sent += n
            segs = self._segs
            if segs is not None:  # inline: this is the hot path
                i, end = self._first, len(segs)
                while i < end and rest >= len(segs[i]):
                    rest -= len(segs[i])
                    segs[i] = _SENT  # let go of the sent bytes now
                    i += 1
                if i == end:
                    self._segs = None
                    i = 0
                elif i >= _CUT_AFTER and i + i >= end:  # costs at most what was sent
                    del segs[:i]
                    i = 0
                self._first = i
            self._head_off = rest
            if self._owned and self._owned[0][0] <= self._sent:
                errors = self._release(errors, self._sent)
            if self._paused and self._written - self._sent <= self._low:
                self._paused = False
                errors = self._call(self._on_resume, errors)
        if self._comps:
            errors = self._dispatch(errors)
        return errors

    def _release(self, errors: Errors, upto: int | None) -> Errors:
        owned = self._owned
        while owned and (upto is None or owned[0][0] <= upto):
            buf = owned.popleft()[1]
            try:
                buf.release()
            except Exception as exc:
                errors = [*(errors or ()), exc]
        if not owned:
            self._owned = None
        return errors

    def _break(self, exc: BaseException, errors: Errors) -> Errors:
        self._exc = exc
        self._move(Event.FAIL)
        self._segs = None
        self._tail = bytearray()
        self._first = self._head_off = 0
        self._written = self._sent
        errors = self._release(errors, None)
        return self._dispatch(errors)

    def _dispatch(self, errors: Errors) -> Errors:
        comps = self._comps
        if self._dispatching or comps is None:
            return errors
        self._dispatching = True
        try:
            while comps:
                end, on_done = comps[0]
                if end <= self._sent:
                    arg = None
                elif self._state is _FAILED:
                    arg = self._exc
                else:
                    break
                comps.popleft()
                try:
                    on_done(arg)
                except Exception as exc:
                    errors = [*(errors or ()), exc]
        finally:
            self._dispatching = False
            if not comps:
                self._comps = None
        return errors

    @staticmethod
    def _call(callback: Callable[[], object] | None, errors: Errors) -> Errors:
        if callback is not None:
            try:
                callback()
            except Exception as exc:
                errors = [*(errors or ()), exc]
        return errors
