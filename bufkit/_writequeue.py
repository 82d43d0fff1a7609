"""The gather-write queue: completion for writes on a readiness socket.

Theory of operation. The user enqueues bytes with ``write``/``writelines``
and an optional completion; ``flush(sock)`` (or ``buffers`` + ``advance``
for callers that send themselves) moves them to the kernel.

Pending bytes live in a list of ``'B'`` memoryviews (``_segs``) from index
``_first`` on, with an offset into that one (``_head_off``), plus an open
``bytearray`` tail that absorbs writes shorter than ``coalesce_below``. A
sent view's slot is overwritten with an empty view (so its memory goes at
once) and the dead prefix is cut off once it is at least ``_CUT_AFTER``
slots and as long as the live part (amortized O(1) per view). The tail is
sealed into ``_segs`` (one view) before a long write, at ``TAIL_LIMIT``
bytes, and when a gather list is built, so it is never resized while a view
of it exists. Positions are absolute stream offsets: ``_written`` counts
every byte enqueued, ``_sent`` every byte accepted, so ``pending`` is one
subtraction. Two ledgers (deques) hold entries in write order: ``_comps``
the callbacks, ``_owned`` the pooled buffers to release; an entry is due
once ``_sent`` reaches its end. Writes with neither cost no entry.

Pinned memory: an owned pooled buffer keeps its whole chunk lent until its
last byte is sent, however few bytes it sends. The slack (what the owned
chunks hold beyond their unsent bytes) plus ``pending`` is ``held_bytes``,
the memory the queue keeps from the pool and the heap, and it is what the
watermarks count (docs/design.md invariant 6). The queue stores
``_pause_at``, ``high_water`` minus the slack, so that the write hot path
compares ``pending`` with one attribute, as it would without pooled
buffers; the slack changes only when an owned buffer comes or goes.

Guarantees (docs/design.md invariants): 1. ``_consume`` only drops views
whose bytes were all accepted and moves the offset; it never copies or
re-slices data, a send that raises moves nothing, and a pooled buffer sends
its filled bytes unless told otherwise, so exactly the bytes written leave,
once, in order. 2. ``_dispatch`` is the only caller of ``on_done``; it is
not re-entrant (a callback's own writes, advances or ``fail`` only append or
change state; the running loop picks them up), pops an entry before calling
it, and passes ``None`` when the entry's bytes were accepted, else the very
exception that failed the queue, so each fires exactly once and in order.
3. ``flush`` returns ``False`` exactly when bytes remain: after a
would-block, a short send, or ``write_spin`` send calls. 4. Owned buffers
are released exactly once: when their last byte is sent, on failure (all at
once, before the callbacks learn of it), or at once when a write refuses
them. 6. Pause and resume are decided right after each change of
``held_bytes``; a failed queue keeps no cycle through its error, so its
memory goes by reference counting. Callbacks' exceptions are collected and
raised by the public call once its work is done, so one failing callback
never starves another.

Cost model: a short ``bytes`` write is a tail append and two integer
updates; a long one adds one view, never a copy of immutable data.
``pending`` is O(1). ``advance(n)`` is O(entries completed); a failure is
O(entries pending). ``flush`` makes one ``sendmsg`` per round (at most
IOV_MAX views and ``max_gather_bytes`` bytes), stops at the first short send
instead of paying for an EAGAIN, and makes at most ``write_spin`` rounds.
When one buffer is pending on a plain :class:`socket.socket` the round is
one ``send`` of it: no gather list, and the tail goes unsealed. An idle
queue holds no containers: ``_segs``, ``_comps`` and ``_owned`` are ``None``
until a write needs them and again once they empty.

The solo buffer (the echo path): a pooled buffer written to an empty queue
is kept in ``_solo`` alone, with no view list and no ledger entry (the
watermark counts are updated as for any owned buffer); short writes after it
go to the tail as usual. A flush on a plain socket sends it with one
``send`` and, when the kernel takes it all, releases it with no container
made or dropped. Anything else -- a write that takes an entry, a sealed
tail, ``buffers``, ``advance``, a short send, a failure, another kind of
socket -- first moves it into ``_segs`` and ``_owned`` (``_spill``), where
the general rules above apply: the solo state is only ever a shorter
spelling of the same queue.
"""

from __future__ import annotations

import contextlib
import enum
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Final, NoReturn, TypeAlias, final

from bufkit._argtypes import Checked
from bufkit._checks import (
    check_nbytes,
    not_callable,
    positive_int,
    require_int,
    send_would_block,
)
from bufkit._gather import (
    GATHER_BYTES,
    IOV_MAX,
    PLAIN,
    gather,
    is_plain_socket,
    send_once,
)
from bufkit._pool import PooledBuffer
from bufkit.errors import QueueClosedError, QueueFailedError

if TYPE_CHECKING:
    from types import TracebackType

    from typing_extensions import Buffer

    from bufkit._protocols import CompletionCallback, SupportsSend, SupportsSendmsg

__all__ = [
    "COALESCE_BELOW",
    "TAIL_LIMIT",
    "TRANSITIONS",
    "WRITE_SPIN",
    "Event",
    "QueueState",
    "WriteQueue",
    "next_state",
]

COALESCE_BELOW: Final = 2048
"""Writes shorter than this are copied into a shared tail buffer (measured)."""

TAIL_LIMIT: Final = 65536
"""The shared tail buffer is sealed into its own entry once this large."""

WRITE_SPIN: Final = 16
"""Send calls one :meth:`WriteQueue.flush` makes at most (Netty's writeSpinCount)."""


# -- the lifecycle, as data ------------------------------------------------------
class QueueState(enum.Enum):
    """Where a :class:`~bufkit.WriteQueue` is in its life.

    ``OPEN`` accepts writes. ``CLOSING`` was closed with data pending: it takes
    no writes but still flushes. ``CLOSED`` was closed and has drained.
    ``FAILED`` broke (a socket error or :meth:`~bufkit.WriteQueue.fail`): its
    pending data was dropped and its completions got the exception.
    """

    OPEN = "open"
    CLOSING = "closing"
    CLOSED = "closed"
    FAILED = "failed"


class Event(enum.Enum):
    """What can happen to a queue."""

    CLOSE = "close()"
    DRAIN = "pending reaches 0"
    FAIL = "fail() or a fatal socket error"


# Final: a compiled build reads them as constants, not from the module's dict.
_OPEN: Final = QueueState.OPEN
_CLOSING: Final = QueueState.CLOSING
_CLOSED: Final = QueueState.CLOSED
_FAILED: Final = QueueState.FAILED

TRANSITIONS: Final[Mapping[tuple[QueueState, Event], QueueState]] = {
    (_OPEN, Event.CLOSE): _CLOSING,
    (_OPEN, Event.DRAIN): _OPEN,
    (_OPEN, Event.FAIL): _FAILED,
    (_CLOSING, Event.CLOSE): _CLOSING,
    (_CLOSING, Event.DRAIN): _CLOSED,
    (_CLOSING, Event.FAIL): _FAILED,
    (_CLOSED, Event.CLOSE): _CLOSED,
    (_CLOSED, Event.DRAIN): _CLOSED,
    (_CLOSED, Event.FAIL): _CLOSED,
    (_FAILED, Event.CLOSE): _FAILED,
    (_FAILED, Event.DRAIN): _FAILED,
    (_FAILED, Event.FAIL): _FAILED,
}
"""Every (state, event) pair and the state it leads to."""


def next_state(
    table: Mapping[tuple[QueueState, Event], QueueState],
    state: QueueState,
    event: Event,
) -> QueueState:
    """The state ``event`` leads to from ``state``; raise if ``table`` forbids it.

    Raises:
        RuntimeError: ``(state, event)`` is not in ``table``.
    """
    try:
        return table[state, event]
    except KeyError:
        error = RuntimeError(f"no transition for {event.name} in {state.name}")
        error.__cause__ = None  # `raise ... from None`, which mypyc ignores
        raise error  # noqa: B904 - from None, spelled out on the line above


# -- small helpers ---------------------------------------------------------------
Errors: TypeAlias = list[Exception] | None
"""Exceptions raised by callbacks during one queue call, collected in order."""

_SENT: Final = memoryview(b"")  # fills the slot of a sent view until the list is cut
_CUT_AFTER: Final = 32  # dead slots tolerated before cutting the sent prefix


def _group(errors: list[Exception]) -> Exception:
    """The one error, or an :class:`ExceptionGroup` of several."""
    if len(errors) == 1:
        return errors[0]
    return ExceptionGroup("WriteQueue callbacks raised", errors)


def _byte_view(data: Buffer, copy: object, coalesce: int) -> memoryview:
    """A one-dimensional ``'B'`` view of ``data``'s raw bytes, copied if needed.

    Copied when not C-contiguous, or when ``copy`` is true, the view is at
    least ``coalesce`` bytes (shorter ones are copied into the tail anyway)
    and its exporter is not ``bytes``. An empty buffer of any shape is
    ``b""``.

    Raises:
        TypeError: ``data`` does not support the buffer protocol.
    """
    try:
        view = memoryview(data)
    except TypeError:
        error = TypeError(
            f"write() needs a bytes-like object or a PooledBuffer, "
            f"not {type(data).__name__!r}"
        )
        error.__cause__ = None  # `raise ... from None`, which mypyc ignores
        raise error  # noqa: B904 - from None, spelled out on the line above
    if not view.nbytes:
        return _SENT
    if not view.c_contiguous:
        return memoryview(view.tobytes())
    if view.format != "B" or view.ndim != 1:
        view = view.cast("B")
    if copy and len(view) >= coalesce and not isinstance(view.obj, bytes):
        return memoryview(view.tobytes())
    return view


def _release_all(items: Iterable[object]) -> None:
    """Release every lent :class:`PooledBuffer` in ``items``: ownership is consumed."""
    for item in items:
        if type(item) is PooledBuffer and not item.released:
            item.release()


def _drop_locals(exc: BaseException) -> None:
    """Clear the local variables of the finished frames ``exc`` still reaches.

    Those are the frames of its traceback, and the finished callers of the
    frame that caught it (a frame keeps its caller once it outlives its
    call). The frames stay, so the traceback still prints; their locals,
    which hold the queue and its views, go. Running frames are left alone.
    """
    tb: TracebackType | None = exc.__traceback__
    if tb is None:
        return
    caller = tb.tb_frame.f_back
    while caller is not None:
        try:
            caller.clear()
        except RuntimeError:  # still running: so are its callers
            break
        caller = caller.f_back
    while tb is not None:
        with contextlib.suppress(RuntimeError):  # a frame still running stays
            tb.tb_frame.clear()
        tb = tb.tb_next


# -- the queue ---------------------------------------------------------------------
@final
class WriteQueue:
    """A queue of pending bytes with a partial-write cursor and completions.

    Args:
        high_water: ``on_pause`` is called when :attr:`held_bytes` rises
            above it.
        low_water: ``on_resume`` is called when :attr:`held_bytes` falls back
            to it or below, after a pause.
        on_pause: called with no arguments at each pause.
        on_resume: called with no arguments at each resume.
        max_gather_bytes: byte cap of one gather list (and one send call).
        coalesce_below: writes shorter than this are copied into a shared tail
            buffer instead of taking an entry of their own; 0 turns it off.
        write_spin: the most send calls one :meth:`flush` makes before it
            returns ``False`` to let the event loop serve other connections.
        name: shown in the queue's repr and error messages.

    Callbacks (completions, ``on_pause``, ``on_resume``) may call back into
    the queue. If one raises, the other due completions still fire, the call
    finishes its work, and then the call that ran the callbacks raises that
    exception (an :class:`ExceptionGroup` if several raised). A queue is not
    thread-safe: use it from one thread, such as its event loop's.

    ``bool(queue)`` is whether bytes are pending (whether a flush is needed);
    a queue has no ``len()``: use :attr:`pending` or :attr:`held_bytes`.

    Raises:
        TypeError: A watermark, ``max_gather_bytes``, ``coalesce_below`` or
            ``write_spin`` is not an int, or ``on_pause``/``on_resume`` is not
            callable.
        ValueError: A watermark is negative, ``low_water > high_water``,
            ``max_gather_bytes < 1``, ``coalesce_below < 0`` or
            ``write_spin < 1``.
    """

    __slots__ = (
        "__weakref__",
        "_base",
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
        "_pause_at",
        "_paused",
        "_segs",
        "_sent",
        "_solo",
        "_spin",
        "_state",
        "_tail",
        "_written",
    )

    def __init__(
        self,
        *,
        high_water: Checked[int] = 65536,
        low_water: Checked[int] = 16384,
        on_pause: Callable[[], object] | None = None,
        on_resume: Callable[[], object] | None = None,
        max_gather_bytes: Checked[int] = GATHER_BYTES,
        coalesce_below: Checked[int] = COALESCE_BELOW,
        write_spin: Checked[int] = WRITE_SPIN,
        name: str | None = None,
    ) -> None:
        high = positive_int("high_water", high_water, minimum=0)
        low = positive_int("low_water", low_water, minimum=0)
        if low > high:
            raise ValueError(
                f"watermarks need 0 <= low_water <= high_water, "
                f"got low_water={low_water}, high_water={high_water}"
            )
        max_gather = positive_int("max_gather_bytes", max_gather_bytes)
        coalesce = positive_int("coalesce_below", coalesce_below, minimum=0)
        spin = positive_int("write_spin", write_spin)
        for what, callback in (("on_pause", on_pause), ("on_resume", on_resume)):
            if callback is not None and not callable(callback):
                raise TypeError(f"{what} must be callable or None, not {callback!r}")
        self._high, self._low = high, low
        self._on_pause, self._on_resume = on_pause, on_resume
        self._max_gather, self._coalesce = max_gather, coalesce
        self._spin = spin
        self._name = name
        self._segs: list[memoryview] | None = None
        # The one pooled buffer written to an empty queue, before any other
        # write: its bytes are all that is pending (see _spill).
        self._solo: PooledBuffer | None = None
        self._tail = bytearray()
        self._first = self._head_off = self._written = self._sent = 0
        self._pause_at = high  # high_water - (held_bytes - pending)
        self._base = 0  # the owned chunks' bytes that were never to be sent
        self._comps: deque[tuple[int, CompletionCallback]] | None = None
        # (end, start, chunk size - bytes sent from it, buffer)
        self._owned: deque[tuple[int, int, int, PooledBuffer]] | None = None
        self._state = _OPEN
        self._exc: BaseException | None = None
        self._paused = self._dispatching = False

    # -- read-only views -----------------------------------------------------
    @property
    def pending(self) -> int:
        """Bytes written but not yet accepted by the socket (O(1))."""
        return self._written - self._sent

    @property
    def held_bytes(self) -> int:
        """The memory the queue holds for pending data, in bytes (O(1)).

        :attr:`pending`, plus the rest of every pooled chunk the queue owns:
        a chunk stays lent until its last byte is sent, so 3,000 bytes
        written from a 64 KiB chunk hold 64 KiB. The watermarks count this.
        """
        return self._written - self._sent + self._high - self._pause_at

    @property
    def paused(self) -> bool:
        """Whether writers should hold off.

        True from a pause (``on_pause``) until the matching resume
        (``on_resume``), and for good once the queue has failed: writes are
        refused then, and no ``on_resume`` will come (the failure reaches
        the completions instead).
        """
        return self._paused or self._state is _FAILED

    @property
    def state(self) -> QueueState:
        """The lifecycle state (see :class:`~bufkit.QueueState`)."""
        return self._state

    @property
    def high_water(self) -> int:
        """The pause threshold in bytes of :attr:`held_bytes`."""
        return self._high

    @property
    def low_water(self) -> int:
        """The resume threshold in bytes of :attr:`held_bytes`."""
        return self._low

    def __bool__(self) -> bool:
        """Whether bytes are pending, i.e. whether a flush is needed."""
        return self._written != self._sent

    def __repr__(self) -> str:
        name = "" if self._name is None else f" {self._name!r}"
        paused = " paused" if self._paused else ""
        held = self._written - self._sent + self._high - self._pause_at
        return (
            f"<WriteQueue{name} {self._state.value} pending={self.pending} "
            f"held={held}{paused}>"
        )

    # -- writing -------------------------------------------------------------
    def write(
        self,
        data: Buffer | PooledBuffer,
        on_done: CompletionCallback | None = None,
        *,
        nbytes: Checked[int] | None = None,
        copy: Checked[bool] = True,
    ) -> None:
        """Enqueue ``data``; call ``on_done`` once its last byte is accepted.

        ``bytes`` (and views of ``bytes``) are kept by reference; other buffers
        are copied unless ``copy=False`` hands them over (do not change them
        afterwards). A :class:`~bufkit.PooledBuffer` sends its
        :attr:`~bufkit.PooledBuffer.filled` bytes (``nbytes`` asks for another
        count, up to its size), and is the queue's from this call on: it is
        released once sent, when the queue fails, or before this call raises.
        Writes shorter than ``coalesce_below`` are copied into a shared tail
        buffer. An empty write (of any shape) completes once everything
        before it has: at once, from inside this call, if nothing is pending.

        Args:
            data: a bytes-like object (any format, sent as its raw bytes) or a
                :class:`~bufkit.PooledBuffer`.
            on_done: called with ``None`` after the last byte was accepted, or
                with the exception that failed the queue first.
            nbytes: send only the first ``nbytes`` bytes of ``data``.
            copy: copy mutable data (the default), or take it as handed over.

        Raises:
            QueueClosedError: after :meth:`close`; nothing was enqueued.
            QueueFailedError: after a failure; its ``__cause__`` is the error.
            BufferReleasedError: ``data`` is a released pooled buffer.
            TypeError: ``data`` is not bytes-like (``str``, for instance),
                ``nbytes`` is not an int or ``on_done`` is not callable.
            ValueError: ``nbytes`` is negative or larger than ``data``, or
                ``data`` is a pooled buffer with nothing filled and no
                ``nbytes``.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        if self._state is not _OPEN or (on_done is not None and not callable(on_done)):
            self._refuse((data,), on_done)
        if type(data) is bytes and nbytes is None:  # the hot path: locals only
            size = len(data)
            if size < self._coalesce:
                tail = self._tail
                tail += data
                if len(tail) >= TAIL_LIMIT:
                    self._seal()
            elif size:
                self._push(memoryview(data))
        elif type(data) is PooledBuffer:
            # Forwarding a read buffer (echo): inline while the buffer is lent
            # and the count is plain, else _add_pooled checks and refuses.
            mem = data._mem
            chunk = len(mem)
            if nbytes is None:
                size = data._filled
            elif nbytes.__class__ is not int:  # faster than type() in CPython
                size = 0  # not a count: _add_pooled refuses it
            else:  # last, so the usual case runs straight on
                size = nbytes  # type: ignore[assignment, unused-ignore]
            if not data._lent or not 0 < size <= chunk:
                size = self._add_pooled(data, nbytes)
            elif size < self._coalesce:
                tail = self._tail
                tail += mem[:size]
                data.release()
                if len(tail) >= TAIL_LIMIT:
                    self._seal()
            else:
                if self._written == self._sent:  # nothing pending: no container
                    self._solo = data
                else:
                    self._own(data, mem[:size] if size < chunk else mem, size)
                self._base += chunk - size
                self._pause_at -= chunk - size
        else:
            view = _byte_view(data, copy, self._coalesce)
            if nbytes is not None:
                view = view[: check_nbytes(nbytes, len(view))]
            size = self._add(view)
        written = self._written + size
        self._written = written
        if on_done is not None or (
            written - self._sent > self._pause_at and not self._paused
        ):
            self._after_write(on_done)

    def writelines(
        self,
        iterable: Iterable[Buffer | PooledBuffer],
        on_done: CompletionCallback | None = None,
        *,
        copy: Checked[bool] = True,
    ) -> None:
        """Enqueue each buffer of ``iterable``, as one write.

        All or nothing: every item is checked before any is enqueued, and a
        refused call releases every pooled buffer among the items. Each
        pooled buffer sends its :attr:`~bufkit.PooledBuffer.filled` bytes.
        The watermarks are checked once, after the last item.

        Args:
            iterable: bytes-like objects and :class:`~bufkit.PooledBuffer` s.
            on_done: called once, after the last byte of the last item.
            copy: as for :meth:`write`.

        Raises:
            QueueClosedError: after :meth:`close`; nothing was enqueued.
            QueueFailedError: after a failure; its ``__cause__`` is the error.
            BufferReleasedError: an item is a released pooled buffer.
            TypeError: an item is not bytes-like, or ``on_done`` is not
                callable.
            ValueError: a pooled item has nothing filled, or appears twice.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        items = list(iterable)
        if self._state is not _OPEN or (on_done is not None and not callable(on_done)):
            self._refuse(items, on_done)
        try:
            parts = [self._check_item(item, copy) for item in items]
            owned = [item for item in items if type(item) is PooledBuffer]
            if len(set(map(id, owned))) != len(owned):
                raise ValueError("writelines() got the same PooledBuffer twice")
        except BaseException:
            _release_all(items)
            raise
        written = self._written
        for part in parts:
            # Up to date before each item: owned entries end at absolute
            # offsets, and spilling the solo buffer measures it from here.
            self._written = written
            if type(part) is memoryview:
                written += self._add(part)
            else:
                buf, size = part
                written += self._add_pooled(buf, size)
        self._written = written
        self._after_write(on_done)

    def _check_item(
        self, item: Buffer | PooledBuffer, copy: object
    ) -> memoryview | tuple[PooledBuffer, int]:
        if type(item) is PooledBuffer:
            filled = item.filled
            if not filled or item.released:
                item.view  # noqa: B018 - raises BufferReleasedError if released
                raise ValueError(f"writelines() of {item!r}: filled is 0")
            return item, filled
        return _byte_view(item, copy, self._coalesce)

    def _refuse(self, items: Iterable[object], on_done: object) -> NoReturn:
        """Consume the pooled buffers among ``items``, then raise why."""
        _release_all(items)
        if self._state is _FAILED:
            error = QueueFailedError(f"{self!r} failed ({self._exc!r}): no more writes")
            error.__cause__ = self._exc  # `raise ... from`, which mypyc ignores
            raise error
        if self._state is not _OPEN:
            raise QueueClosedError(f"{self!r} is closed: no more writes")
        raise not_callable(on_done)

    def _add(self, view: memoryview) -> int:
        size = len(view)
        if size < self._coalesce:
            self._tail += view
            if len(self._tail) >= TAIL_LIMIT:
                self._seal()
        elif size:
            self._push(view)
        return size

    def _add_pooled(self, buf: PooledBuffer, nbytes: object) -> int:
        """Enqueue ``buf``'s first ``nbytes`` (default: its fill); own or release it."""
        view = buf.view  # BufferReleasedError if released: nothing to consume
        chunk = len(view)
        if nbytes is None:
            size = buf.filled
            if not size:
                error = ValueError(
                    f"write() of {buf!r}: filled is 0 and no nbytes given "
                    f"(set filled to the bytes written into its view)"
                )
                buf.release()
                raise error
        elif type(nbytes) is int and 0 <= nbytes <= chunk:
            size = nbytes
        else:
            try:
                size = check_nbytes(nbytes, chunk)
            except (TypeError, ValueError):
                buf.release()
                raise
        if size < self._coalesce or not size:  # an empty entry would never be due
            self._add(view[:size])
            buf.release()
            return size
        self._own(buf, view[:size] if size < chunk else view, size)
        self._base += chunk - size
        self._pause_at -= chunk - size
        return size

    def _own(self, buf: PooledBuffer, view: memoryview, size: int) -> None:
        """Enqueue ``view`` (``size`` bytes of ``buf``) as written at ``_written``."""
        self._push(view)
        if self._owned is None:
            self._owned = deque()
        start = self._written
        self._owned.append((start + size, start, len(buf._mem) - size, buf))

    def _spill(self) -> None:
        """Move the solo buffer into the general ledgers, before anything else.

        The solo buffer holds the first pending bytes, none of them sent (a
        partial send spills first), and the tail the rest: it becomes the
        first view and the one owned entry; the watermarks count it already.
        """
        buf = self._solo
        assert buf is not None
        self._solo = None
        mem = buf._mem
        size = self._written - self._sent - len(self._tail)
        self._segs = [mem[:size] if size < len(mem) else mem]
        start = self._sent
        self._owned = deque(((start + size, start, len(mem) - size, buf),))

    def _push(self, view: memoryview) -> None:
        if self._solo is not None:
            self._spill()
        if self._tail:
            self._seal()
        if self._segs is None:
            self._segs = [view]
        else:
            self._segs.append(view)

    def _seal(self) -> None:
        if self._solo is not None:
            self._spill()
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
        if not self._paused and self._written - self._sent > self._pause_at:
            self._paused = True
            errors = self._call(self._on_pause, errors)
        if errors:
            raise _group(errors)

    # -- sending -------------------------------------------------------------
    def buffers(self, max_count: Checked[int] | None = None) -> list[memoryview]:
        """Return the next gather list, without copying.

        Send the views, then report how many bytes were accepted with
        :meth:`advance`.

        Args:
            max_count: The most views to return; ``None`` (the default) and
                anything above it mean IOV_MAX.

        Returns:
            At most ``max_count`` views and ``max_gather_bytes`` bytes, in
            order, the first one already past the cursor; ``[]`` when
            nothing is pending.

        Raises:
            TypeError: ``max_count`` is not an int or ``None``.
            ValueError: ``max_count`` is below 1.
        """
        count = IOV_MAX
        if max_count is not None:
            count = require_int("max_count", max_count)
            if count > IOV_MAX:
                count = IOV_MAX
            elif count < 1:
                raise ValueError(f"max_count must be at least 1, not {max_count}")
        if self._solo is not None:
            self._spill()
        if self._tail:
            self._seal()
        segs = self._segs
        if segs is None:
            return []
        pending = self._written - self._sent
        first, offset = self._first, self._head_off
        return gather(segs, first, offset, pending, count, self._max_gather)[0]

    def advance(self, n: Checked[int]) -> None:
        """Consume ``n`` bytes that were sent, firing completed ``on_done`` s.

        The cost is O(number of entries completed); data is never re-sliced.
        Pooled buffers whose last byte this sends are released before it
        returns. Every due completion fires even if one raises (see the
        class notes).

        Args:
            n: How many bytes of the last :meth:`buffers` list were accepted.

        Raises:
            TypeError: ``n`` is not an int; the queue is unchanged.
            ValueError: ``n`` is negative or more than :attr:`pending`; the
                queue is unchanged.
            BufferReleasedError: an owned pooled buffer had been released
                behind the queue's back.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        # n.__class__ is the fastest check in CPython, but type checkers do
        # not narrow on it: where Checked[int] is object (the compiled
        # build), the two uses of n below need their ignores.
        if n.__class__ is not int:
            require_int("n", n)
        if not 0 <= n <= self._written - self._sent:  # type: ignore[operator, unused-ignore]
            raise ValueError(
                f"cannot advance {n} bytes: {self._written - self._sent} pending"
            )
        if self._solo is not None:
            self._spill()
        errors = self._consume(n, None)  # type: ignore[arg-type, unused-ignore]
        if errors:
            raise _group(errors)

    def flush(self, sock: SupportsSendmsg | SupportsSend) -> bool:
        """Send until drained, the socket would block, or ``write_spin`` calls.

        One ``sendmsg`` per round (a plain ``send`` when a lone buffer is
        pending on a :class:`socket.socket`; ``send`` of joined small buffers
        where ``sendmsg`` is missing or raises :class:`NotImplementedError`,
        as on :class:`ssl.SSLSocket`); a short send ends the loop without
        another call, and so does the ``write_spin``-th call (completions that
        keep writing cannot hold the event loop). :class:`BlockingIOError`,
        ``ENOBUFS`` and ``ssl.SSLWantWriteError`` / ``SSLWantReadError`` mean
        "would block"; :class:`InterruptedError` is retried (it counts as a
        call). Any other :class:`OSError` fails the queue (every pending
        ``on_done`` gets that very object, owned buffers are released first)
        and is re-raised; its traceback keeps its frames but not their local
        variables, so the failed queue holds no cycle.

        Args:
            sock: Anything with ``sendmsg`` (a gather list) or ``send``.

        Returns:
            ``True`` if nothing is pending any more, ``False`` if bytes remain
            (arm writable interest and flush again once writable).

        Raises:
            OSError: the socket's fatal error, unchanged (callback errors
                raised while failing the queue are its ``__context__``).
            ValueError: the socket reported accepting more bytes than it was
                offered (or a negative count); nothing was consumed.
            BufferReleasedError: an owned pooled buffer had been released
                behind the queue's back.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        fatal = self._send_rounds(sock)
        if fatal is None:
            return self._written == self._sent
        _drop_locals(fatal)
        try:
            raise fatal
        finally:
            del self, fatal  # this frame joins the traceback: no cycle through it

    def _send_rounds(self, sock: SupportsSendmsg | SupportsSend) -> OSError | None:
        """Make up to ``write_spin`` send calls; return the fatal error, if any."""
        errors: Errors = None
        spins = self._spin
        while self._written != self._sent and spins:
            spins -= 1
            try:
                solo = self._solo
                if solo is not None and self._tail:
                    self._spill()  # two buffers pending: the general path
                    solo = None
                offered = self._written - self._sent
                if (
                    self._segs is None
                    and offered <= self._max_gather
                    and PLAIN.get(sock.__class__)
                ):
                    # All that is pending is in one buffer, from its start:
                    # the solo buffer or the tail. One send of it, no list
                    # (PLAIN: the class is socket.socket, which has send).
                    one = self._tail if solo is None else solo._mem[:offered]
                    sent = sock.send(one)  # type: ignore[union-attr]
                    if sent == offered:  # the usual end: all of it went
                        self._sent = self._written
                        if solo is None:
                            self._tail.clear()  # never exported: reuse it
                        else:
                            self._solo = None
                            self._base = 0
                            self._pause_at = self._high
                            try:
                                solo.release()
                            except Exception as exc:  # released behind our back
                                errors = [*(errors or ()), exc]
                        if self._paused or self._state is not _OPEN:
                            errors = self._after_drain(errors)
                        break
                    if solo is not None:
                        self._spill()  # partly sent: _consume moves the cursor
                else:
                    if solo is not None:
                        self._spill()
                    segs = self._segs
                    if is_plain_socket(sock) and (
                        segs is None
                        or (not self._tail and len(segs) == self._first + 1)
                    ):
                        # One buffer pending: one plain send, no gather list. The
                        # tail goes unsealed (_consume reuses it once all sent).
                        one = self._tail if segs is None else segs[-1]
                        head = self._head_off
                        offered = len(one) - head
                        if head or offered > self._max_gather:
                            offered = min(offered, self._max_gather)
                            one = memoryview(one)[head : head + offered]
                        sent = sock.send(one)
                    else:
                        sent, offered = self._send_gathered(sock)
            except InterruptedError:
                continue
            except OSError as exc:
                if send_would_block(exc):
                    break
                errors = self._break(exc, errors)
                if errors:
                    for error in errors:  # their frames hold the queue too
                        _drop_locals(error)
                    exc.__context__ = _group(errors)
                return exc
            if not 0 <= sent <= offered:
                raise ValueError(
                    f"{sock!r} reported {sent!r} bytes sent of {offered} offered"
                )
            errors = self._consume(sent, errors)
            if sent < offered:
                break
        if self._comps:
            errors = self._dispatch(errors)
        if errors:
            raise _group(errors)
        return None

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
            if self._paused or self._state is _CLOSING:
                errors = self._after_drain(errors)
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
            if self._owned:
                errors = self._release(errors, self._sent)
            if (
                self._paused
                and self._written - self._sent + self._high - self._pause_at
                <= self._low
            ):
                self._paused = False
                errors = self._call(self._on_resume, errors)
        if self._comps:
            errors = self._dispatch(errors)
        return errors

    def _after_drain(self, errors: Errors) -> Errors:
        """Nothing is pending any more: finish closing, resume the writer."""
        if self._state is _CLOSING:
            self._move(Event.DRAIN)  # the only DRAIN that changes state
        if self._paused:
            self._paused = False
            errors = self._call(self._on_resume, errors)
        return errors

    def _release(self, errors: Errors, upto: int | None) -> Errors:
        """Release the owned buffers sent by ``upto`` (all if None); recount."""
        owned = self._owned
        assert owned is not None
        while owned and (upto is None or owned[0][0] <= upto):
            _, _, extra, buf = owned.popleft()
            self._base -= extra
            try:
                buf.release()
            except Exception as exc:
                errors = [*(errors or ()), exc]
        if owned:  # the first one may be partly sent: that part stays held
            self._pause_at = self._high - self._base - max(0, self._sent - owned[0][1])
        else:
            self._owned = None
            self._base = 0
            self._pause_at = self._high
        return errors

    def _break(self, exc: BaseException, errors: Errors) -> Errors:
        if self._solo is not None:
            self._spill()
        self._exc = exc
        self._move(Event.FAIL)
        self._segs = None
        self._tail = bytearray()
        self._first = self._head_off = 0
        self._written = self._sent
        if self._owned:
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

    def _move(self, event: Event) -> None:
        self._state = next_state(TRANSITIONS, self._state, event)

    @staticmethod
    def _call(callback: Callable[[], object] | None, errors: Errors) -> Errors:
        if callback is not None:
            try:
                callback()
            except Exception as exc:
                errors = [*(errors or ()), exc]
        return errors

    # -- ending --------------------------------------------------------------
    def close(self) -> None:
        """Refuse further writes; pending data can still be flushed.

        The state becomes ``CLOSING``, then ``CLOSED`` once drained (at once if
        nothing is pending). Closing a closed or failed queue does nothing.
        """
        if self._state is _OPEN:
            self._move(Event.CLOSE)
            if self._written == self._sent:
                self._move(Event.DRAIN)

    def fail(self, exc: Checked[BaseException]) -> None:
        """Drop pending data and fail every pending ``on_done`` with ``exc``.

        Owned pooled buffers are released first. The queue ends ``FAILED``
        unless it had already drained and closed (then this does nothing).

        Args:
            exc: What every pending ``on_done`` is called with; later writes
                raise :class:`~bufkit.QueueFailedError` with it as cause.

        Raises:
            TypeError: ``exc`` is not an exception instance.
            BufferReleasedError: an owned pooled buffer had been released
                behind the queue's back.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        if not isinstance(exc, BaseException):
            raise TypeError(f"fail() needs an exception, not {type(exc).__name__!r}")
        errors: Errors = None
        if self._state is _OPEN or self._state is _CLOSING:
            errors = self._break(exc, errors)
        elif self._comps:
            errors = self._dispatch(errors)
        if errors:
            raise _group(errors)


# Public under the package's name. Set after the classes, not in their bodies:
# a compiled class ignores a __module__ assigned in its body.
for _public in (QueueState, WriteQueue):
    _public.__module__ = "bufkit"
