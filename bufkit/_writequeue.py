"""The gather-write queue: completion for writes on a readiness socket.

Theory of operation. The user enqueues bytes with ``write``/``writelines``
and an optional completion; ``flush(sock)`` (or ``buffers`` + ``advance``
for callers that send themselves) moves them to the kernel. The bookkeeping
(cursor, coalescing tail, completion and ownership ledgers, the non-reentrant
dispatch loop) is ``QueueCore`` in ``_queuecore.py``; building gather lists
and the send call are in ``_gather.py``; the lifecycle table is in
``_queuestate.py``. This module holds the public contract (``QueueCore``
also carries the read-only views: ``pending``, ``state``, ``len()``...).

Guarantees (DESIGN.md invariants): 1. every byte reaches the wire once, in
order: a send that raises moves nothing, and ``advance`` moves the cursor by
exactly what was accepted. 2. each ``on_done`` fires exactly once, in write
order (``None``, or the failing exception: the very ``OSError`` object the
socket raised). 3. ``flush`` returns ``False`` exactly when bytes remain after
a would-block, so an adapter arms writable interest iff the queue is
non-empty. 6. ``on_pause`` fires when ``pending`` rises above ``high_water``
(``writelines`` included), ``on_resume`` when it falls to ``low_water``.

Coalescing (measured by ``benchmarks/test_bench_writequeue.py::
test_coalescing``: 64 KiB of equal writes flushed to a socketpair): a write
shorter than ``COALESCE_BELOW`` (2 KiB) bytes is copied into a shared tail
buffer. Copying won 1.75x at 64 B, 1.40x at 1 KiB, 1.00-1.16x at 2 KiB,
0.88-1.06x at 4 KiB (two runs) and lost 0.91x at 16 KiB: below 2 KiB the copy
is cheaper than the view object, the ledger entry and the iovec it replaces.
The 1 MiB gather byte cap: caps of 128 KiB-4 MiB drained 128 MiB over TCP
loopback within noise of each other; 1 MiB keeps each call far above the
per-call overhead and below what the kernel takes at most (4 MiB).

Cost model: ``write`` of a short ``bytes`` is a tail append and two integer
updates; a long one adds one view, never a copy of immutable data.
``pending`` is O(1). ``advance(n)`` is O(entries completed). ``flush`` makes
one ``sendmsg`` per round (at most IOV_MAX views and ``max_gather_bytes``
bytes) and stops at the first short send instead of paying for an EAGAIN.
When one buffer is pending on a plain :class:`socket.socket` (the usual case
of a small reply or a forwarded read), the round is one ``send`` of it: no
gather list, and the coalescing tail is sent without being sealed (about 8%
less time per 64-byte echo round trip on the selectors loop).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, cast, final

from bufkit._checks import require_int
from bufkit._gather import (
    COALESCE_BELOW,
    GATHER_BYTES,
    IOV_MAX,
    PLAIN,
    TAIL_LIMIT,
    Errors,
    byte_view,
    check_nbytes,
    gather,
    group,
    is_plain_socket,
    not_callable,
    raise_all,
    would_block,
)
from bufkit._pool import PooledBuffer
from bufkit._queuecore import QueueCore
from bufkit._queuestate import Event, QueueState

if TYPE_CHECKING:
    from typing_extensions import Buffer

    from bufkit._protocols import CompletionCallback, SupportsSend, SupportsSendmsg

__all__ = ["QueueState", "WriteQueue"]

_OPEN = QueueState.OPEN
_CLOSING = QueueState.CLOSING


@final
class WriteQueue(QueueCore):
    """A queue of pending bytes with a partial-write cursor and completions.

    Args:
        high_water: ``on_pause`` is called when :attr:`pending` rises above it.
        low_water: ``on_resume`` is called when :attr:`pending` falls back to it
            or below, after a pause.
        on_pause: called with no arguments at each pause.
        on_resume: called with no arguments at each resume.
        max_gather_bytes: byte cap of one gather list (and one send call).
        coalesce_below: writes shorter than this are copied into a shared tail
            buffer instead of taking an entry of their own; 0 turns it off.
        name: shown in the queue's repr and error messages.

    Callbacks (completions, ``on_pause``, ``on_resume``) may call back into
    the queue. If one raises, the other due completions still fire, the call
    finishes its work, and then the call that ran the callbacks raises that
    exception (an :class:`ExceptionGroup` if several raised). A queue is not
    thread-safe: use it from one thread, such as its event loop's.

    Raises:
        TypeError: A watermark, ``max_gather_bytes`` or ``coalesce_below`` is
            not an int, or ``on_pause``/``on_resume`` is not callable.
        ValueError: A watermark is negative, ``low_water > high_water``,
            ``max_gather_bytes < 1`` or ``coalesce_below < 0``.
    """

    __module__ = "bufkit"
    __slots__ = ()

    def __init__(
        self,
        *,
        high_water: int = 65536,
        low_water: int = 16384,
        on_pause: Callable[[], object] | None = None,
        on_resume: Callable[[], object] | None = None,
        max_gather_bytes: int = GATHER_BYTES,
        coalesce_below: int = COALESCE_BELOW,
        name: str | None = None,
    ) -> None:
        super().__init__(
            high_water, low_water, on_pause, on_resume, max_gather_bytes, coalesce_below
        )
        self._name = name

    # -- writing -------------------------------------------------------------
    def write(
        self,
        data: Buffer | PooledBuffer,
        on_done: CompletionCallback | None = None,
        *,
        nbytes: int | None = None,
        copy: bool = True,
    ) -> None:
        """Enqueue ``data``; call ``on_done`` once its last byte is accepted.

        ``bytes`` (and views of ``bytes``) are kept by reference; other buffers
        are copied unless ``copy=False`` hands them over (do not change them
        afterwards). A :class:`~bufkit.PooledBuffer` is owned by the queue once
        this returns and released when sent or when the queue fails. Writes
        shorter than ``coalesce_below`` are copied into a shared tail buffer.
        An empty write completes once everything before it has: at once, from
        inside this call, if nothing is pending.

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
            ValueError: ``nbytes`` is negative or larger than ``data``.
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        if self._state is not _OPEN:
            self._refuse()
        if on_done is not None and not callable(on_done):
            raise not_callable(on_done)
        if type(data) is bytes and nbytes is None:  # the hot path: locals only
            size = len(data)
            if size < self._coalesce:
                tail = self._tail
                tail += data
                if len(tail) >= TAIL_LIMIT:
                    self._seal()
            elif size:
                self._push(memoryview(data))
        elif isinstance(data, PooledBuffer):
            size = self._add_pooled(data, nbytes)
        else:
            view = byte_view(data, copy, self._coalesce)
            if nbytes is not None:
                view = view[: check_nbytes(nbytes, len(view))]
            size = self._add(view)
        written = self._written + size
        self._written = written
        if on_done is not None or (
            written - self._sent > self._high and not self._paused
        ):
            self._after_write(on_done)

    def writelines(
        self,
        iterable: Iterable[Buffer | PooledBuffer],
        on_done: CompletionCallback | None = None,
        *,
        copy: bool = True,
    ) -> None:
        """Enqueue each buffer of ``iterable``, as one write.

        All or nothing: every item is checked before any is enqueued. The
        watermarks are checked once, after the last item.

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
            Exception: whatever a callback raised, after every due
                completion fired (see the class notes).
        """
        if self._state is not _OPEN:
            self._refuse()
        if on_done is not None and not callable(on_done):
            raise not_callable(on_done)
        items: list[memoryview | PooledBuffer] = []
        for item in iterable:
            if isinstance(item, PooledBuffer):
                item.view  # noqa: B018 - raises BufferReleasedError if released
                items.append(item)
            else:
                items.append(byte_view(item, copy, self._coalesce))
        for item in items:
            if isinstance(item, PooledBuffer):
                self._written += self._add_pooled(item, None)
            else:
                self._written += self._add(item)
        self._after_write(on_done)

    # -- sending -------------------------------------------------------------
    def buffers(self, max_count: int | None = None) -> list[memoryview]:
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
        if max_count is not None:
            require_int("max_count", max_count)
        if max_count is None or max_count > IOV_MAX:
            max_count = IOV_MAX
        elif max_count < 1:
            raise ValueError(f"max_count must be at least 1, not {max_count}")
        if self._tail:
            self._seal()
        segs = self._segs
        if segs is None:
            return []
        pending = self._written - self._sent
        first, offset = self._first, self._head_off
        return gather(segs, first, offset, pending, max_count, self._max_gather)[0]

    def advance(self, n: int) -> None:
        """Consume ``n`` bytes that were sent, firing completed ``on_done`` s.

        The cost is O(number of entries completed); data is never re-sliced.
        Every due completion fires even if one raises (see the class notes).

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
        if n.__class__ is not int:
            require_int("n", n)
        if not 0 <= n <= self._written - self._sent:
            raise ValueError(
                f"cannot advance {n} bytes: {self._written - self._sent} pending"
            )
        errors = self._consume(n, None)
        if errors:
            raise_all(errors)

    def flush(self, sock: SupportsSendmsg | SupportsSend) -> bool:
        """Send until drained or the socket would block; return whether drained.

        One ``sendmsg`` per round (a plain ``send`` when a lone buffer is
        pending on a :class:`socket.socket`; ``send`` of joined small buffers
        where ``sendmsg`` is missing or raises :class:`NotImplementedError`,
        as on :class:`ssl.SSLSocket`); a short send ends the loop without
        another call. :class:`BlockingIOError` and ``ssl.SSLWantWriteError`` /
        ``SSLWantReadError`` mean "would block"; :class:`InterruptedError` is
        retried. Any other :class:`OSError` fails the queue (every pending
        ``on_done`` gets that very object, owned buffers are released) and is
        re-raised.

        Args:
            sock: Anything with ``sendmsg`` (a gather list) or ``send``.

        Returns:
            ``True`` if nothing is pending any more, ``False`` if the socket
            would block first (arm writable interest and flush again then).

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
        errors: Errors = None
        while self._written != self._sent:
            try:
                segs = self._segs
                plain = PLAIN.get(sock.__class__)
                if plain is None:
                    plain = is_plain_socket(sock.__class__)
                if plain and (
                    segs is None or (not self._tail and len(segs) == self._first + 1)
                ):
                    # One buffer pending: one plain send, no gather list. The
                    # tail goes unsealed (_consume reuses it once all sent).
                    one = self._tail if segs is None else segs[-1]
                    head = self._head_off
                    offered = len(one) - head
                    if head or offered > self._max_gather:
                        offered = min(offered, self._max_gather)
                        one = memoryview(one)[head : head + offered]
                    sent = cast("SupportsSend", sock).send(one)
                else:
                    sent, offered = self._send_gathered(sock)
            except InterruptedError:
                continue
            except OSError as exc:
                if would_block(exc):
                    break
                fatal = exc
            else:
                if not 0 <= sent <= offered:
                    raise ValueError(
                        f"{sock!r} reported {sent!r} bytes sent of {offered} offered"
                    )
                errors = self._consume(sent, errors)
                if sent < offered:
                    break
                continue
            errors = self._break(fatal, errors)
            if errors:
                fatal.__context__ = group(errors)
            raise fatal
        if self._comps:
            errors = self._dispatch(errors)
        if errors:
            raise_all(errors)
        return self._written == self._sent

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

    def fail(self, exc: BaseException) -> None:
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
            raise_all(errors)
