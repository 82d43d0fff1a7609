"""The slab pool: :class:`bufkit.BufferPool` lends :class:`bufkit.PooledBuffer`."""

# Theory of operation
# -------------------
# Memory comes in slabs, one bytearray (or anonymous mmap) each, made lazily
# when a size class runs dry and never past max_bytes, and cut into equal
# chunks. Each chunk gets one PooledBuffer when its slab is cut (its
# "carrier", holding the chunk's one memoryview). Free carriers wait on a LIFO
# list per class: the chunk given back last, still cache-hot, is lent first.
#
# On a build with a GIL, a plain pool lends and takes back a warm chunk
# without the lock: between the test of the free list (or of the `_lent`
# flag) and the pop (or the append) the code makes no call, and CPython
# switches threads and runs signal handlers only at calls and backward jumps,
# so the test and the change are atomic. Anything that reshapes the free
# lists (cutting a slab, reclaiming, trim) first turns that path off, under
# the lock. Debug pools and free-threaded builds take the lock every time.
# Under the lock, each state change below is atomic on every build:
#  - acquire() validates the size, picks the class by bisection, pops a free
#    carrier and marks it lent; an empty list cuts a slab, which may first
#    reclaim idle slabs of other classes; past max_bytes it refuses or lends
#    a counted heap buffer.
#  - release() tests and clears the buffer's `_lent` flag and pushes the
#    carrier back. The test and the clear happen under the lock, so of two
#    racing releases exactly one gives the chunk back.
# A plain pool lends a chunk's carrier itself: a round trip allocates no
# handle. A debug pool (poison, scrub, track) lends a fresh PooledBuffer per
# lease pointing at the carrier, so a stale reference is told apart from the
# next borrower.
#
# Guarantees, by docs/design.md invariant:
#  4. A chunk is on its class's free list or lent to one owner, never both:
#     both moves happen under the lock. Chunks are disjoint slices of their
#     slab, so lent chunks never overlap. Releasing everything brings the
#     in-use counters back to zero.
#     Limit: a plain pool re-lends the same carrier, so a reference kept past
#     release() to a chunk lent again is the new lease (its release() ends
#     the new lease). Debug pools lend per-lease handles and catch that.
#  5. A chunk is in use only between acquire() and release().
#  6. bytes_reserved never exceeds max_bytes: a new slab is cut down to the
#     chunks that still fit, after idle slabs of other classes are given
#     back; a request that still cannot fit is refused (PoolExhausted) or
#     served by a counted heap buffer outside max_bytes.
#
# Cost model: a warm round trip is two Python calls and a few counter updates
# (two lock round trips on a debug pool or a free-threaded build); no handle
# or buffer is allocated. Cutting a slab is
# O(chunks per slab); trim() and a reclaim are O(chunks + slabs); stats() is
# O(classes). Release callbacks cost a release one truth test when none wait.

from __future__ import annotations

import contextlib
import functools
import logging
import mmap
import os
import sys
import threading
import traceback
import warnings
import weakref
from bisect import bisect_left
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Final, Literal, final

from bufkit._argtypes import Checked
from bufkit._checks import positive_int
from bufkit._pool_stats import ClassStats, PoolStats
from bufkit.errors import (
    BufferLeakWarning,
    BufferReleasedError,
    BufferTooLarge,
    ForeignBufferError,
    PoolExhausted,
)

__all__ = ["POISON_BYTE", "TRACK_DEPTH", "BufferPool", "PooledBuffer"]

LOGGER: Final = logging.getLogger("bufkit.pool")

POISON_BYTE: Final = 0xDB
"""The byte a poisoning pool fills released chunks with."""

TRACK_DEPTH: Final = 24
"""How many frames of the acquiring stack a tracking pool keeps."""

# Default classes: 2 KiB (an Ethernet frame), 16 KiB (a TLS record), 64 KiB
# (a bulk read); 1 MiB slabs hold 512, 64 or 16 of them (docs/why.md).
_FALLBACKS: Final = ("raise", "heap")
_BACKINGS: Final = ("bytearray", "mmap")
_PRIVATE: Final = object()  # the key to PooledBuffer's constructor


def _normpath(path: str) -> str:
    """``path`` absolute and in the platform's case, to compare file names."""
    return os.path.normcase(os.path.abspath(path))


_CLASS_CACHE: Final = 64  # distinct request sizes remembered per pool

_GIL_ENABLED: Final = getattr(sys, "_is_gil_enabled", lambda: True)()
"""Whether this build has a GIL (free-threaded builds run without one)."""

_THIS_FILE: Final = _normpath(__file__)  # left out of the stacks `track` keeps


def _release_quietly(view: memoryview) -> None:
    """Release ``view``, unless something still holds an export of it."""
    with contextlib.suppress(BufferError):  # exported: it dies with its users
        view.release()


# --- slabs and size classes ----------------------------------------------------


@final
class _Slab:
    """One block of memory cut into the chunks of one size class."""

    __slots__ = ("chunks", "memory", "nbytes", "whole")

    def __init__(self, memory: bytearray | mmap.mmap, chunks: int) -> None:
        self.memory = memory
        self.whole = memoryview(memory)
        self.chunks = chunks
        self.nbytes = len(self.whole)

    def close(self) -> None:
        """Give the memory back (an mmap still exported is left to the GC)."""
        _release_quietly(self.whole)
        if isinstance(self.memory, mmap.mmap):
            with contextlib.suppress(BufferError):  # a stale slice is still alive
                self.memory.close()


@final
class _SizeClass:
    """The slabs, free carriers and counters of one size class (lock held)."""

    __slots__ = ("acquires", "chunks", "free", "per_slab", "size", "slabs")

    def __init__(self, size: int, per_slab: int) -> None:
        self.size = size
        self.per_slab = per_slab
        self.free: list[PooledBuffer] = []  # LIFO: the last one given back on top
        self.slabs: list[_Slab] = []
        self.chunks = 0  # on the free list or lent: lent = chunks - len(free)
        self.acquires = 0

    def stats(self) -> ClassStats:
        """This class's counters as a frozen snapshot."""
        lent = self.chunks - len(self.free)
        return ClassStats(
            size=self.size,
            slabs=len(self.slabs),
            chunks=self.chunks,
            buffers_in_use=lent,
            acquires=self.acquires,
            releases=self.acquires - lent,
        )

    def cut(self, pool: BufferPool, count: int, use_mmap: bool) -> int:
        """Cut a slab of ``count`` chunks onto the free list; return its bytes."""
        size = self.size
        nbytes = count * size
        slab = _Slab(mmap.mmap(-1, nbytes) if use_mmap else bytearray(nbytes), count)
        whole = slab.whole
        # Highest address pushed first, so the lowest is lent first.
        for start in range(nbytes - size, -1, -size):
            self.free.append(_new_buffer(pool, whole[start : start + size], self, slab))
        self.slabs.append(slab)
        self.chunks += count
        return nbytes

    def idle_slabs(self) -> list[_Slab]:
        """The slabs with no chunk lent, oldest first."""
        free_chunks: dict[_Slab, int] = {}
        for carrier in self.free:
            slab = carrier._slab
            if slab is not None:
                free_chunks[slab] = free_chunks.get(slab, 0) + 1
        return [s for s in self.slabs if free_chunks.get(s, 0) == s.chunks]

    def drop(self, slabs: list[_Slab]) -> int:
        """Give back ``slabs`` (idle slabs of this class); return their bytes."""
        if not slabs:
            return 0
        gone = set(slabs)
        keep = []
        for carrier in self.free:
            if carrier._slab in gone:
                _release_quietly(carrier._mem)
            else:
                keep.append(carrier)
        self.free = keep
        self.slabs = [s for s in self.slabs if s not in gone]
        freed = 0
        for slab in slabs:
            self.chunks -= slab.chunks
            freed += slab.nbytes
            slab.close()
        return freed


# --- the buffer -------------------------------------------------------------------


@final
class PooledBuffer:
    """A chunk of memory lent by a :class:`BufferPool`, until :meth:`release`.

    Get one from :meth:`BufferPool.acquire`; never construct it yourself. Use it
    as a context manager to release it on exit::

        with pool.acquire(2048) as buf:
            n = sock.recv_into(buf.view)

    Whoever holds a ``PooledBuffer`` owns the chunk: hand the buffer itself
    (not a slice of its view) to a new owner, such as a write queue, and let
    that owner release it. Drop it once released: a plain pool lends the same
    ``PooledBuffer`` object again for the same chunk (debug pools never do).
    """

    __slots__ = (
        "__weakref__",
        "_carrier",
        "_cls",
        "_filled",
        "_lent",
        "_mem",
        "_pool",
        "_size",
        "_slab",
        "_tracker",
    )

    _pool: BufferPool
    _mem: memoryview
    _size: int
    _cls: _SizeClass | None  # None: a heap fallback
    _slab: _Slab | None  # the slab of a carrier; None for leases and heap buffers
    _carrier: PooledBuffer | None  # a lease's carrier; None otherwise
    _tracker: set[None] | None  # a tracking pool's watch token (see _Debug)

    def __init__(self, key: object = None, /) -> None:
        if key is not _PRIVATE:
            raise TypeError("PooledBuffer is lent by BufferPool.acquire(), not built")
        self._lent = False  # True from acquire() to release(); under the lock
        self._filled = 0  # valid bytes from the start; 0 whenever lent afresh
        self._carrier = None
        self._slab = None
        self._tracker = None

    @property
    def view(self) -> memoryview:
        """A writable memoryview (format ``'B'``) of exactly the chunk.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        if not self._lent:
            raise BufferReleasedError(f"{self!r}: view of a released buffer")
        return self._mem

    @property
    def filled(self) -> int:
        """How many bytes from the start of :attr:`view` hold data.

        Set by whoever fills the buffer: the reader (and so
        :meth:`~bufkit.ReadinessReader.take_buffer`), the framers, or you after
        writing into :attr:`view` yourself. Writing a pooled buffer to a
        :class:`~bufkit.WriteQueue` sends its filled bytes by default, so bytes
        past them (which may hold another connection's data) never reach the
        wire unless asked for. It is 0 when the buffer is lent.

        Raises:
            BufferReleasedError: Set on a released buffer.
            TypeError: Set to something other than an ``int``.
            ValueError: Set below 0 or above :attr:`size`.
        """
        return self._filled

    @filled.setter
    def filled(self, nbytes: Checked[int]) -> None:
        if not self._lent:
            raise BufferReleasedError(f"{self!r}: filled set on a released buffer")
        if type(nbytes) is not int:
            raise TypeError(f"filled must be an int, not {type(nbytes).__name__}")
        if not 0 <= nbytes <= self._size:
            raise ValueError(f"filled {nbytes} is outside 0..{self._size} of {self!r}")
        self._filled = nbytes

    @property
    def size(self) -> int:
        """The size of the chunk in bytes, at least what was asked for."""
        return self._size

    @property
    def pool(self) -> BufferPool:
        """The pool that lent this buffer."""
        return self._pool

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return not self._lent

    @property
    def is_heap(self) -> bool:
        """Whether this is a heap fallback rather than a chunk of a slab."""
        return self._cls is None

    def release(self) -> None:
        """Give the chunk back to its pool; ``view`` is unusable afterwards.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        pool = self._pool
        cls = self._cls
        if pool._fast and cls is not None:
            # The warm path (a fast pool lends no leases, only carriers): from
            # the test of _lent to the append there is no call, so under the
            # GIL no other thread runs in between and of two racing releases
            # exactly one passes the test. The counters change before the
            # append, so a thread switched to after it sees them settled.
            if not self._lent:
                raise BufferReleasedError(f"{self!r} was already released")
            self._lent = False
            self._filled = 0
            pool._bytes_in_use -= self._size
            cls.free.append(self)
            if pool._release_callbacks:
                pool._run_release_callbacks()
            return
        lock = pool._lock
        lock.acquire()  # not `with`: measurably cheaper on this hot path
        try:
            if not self._lent:
                raise BufferReleasedError(f"{self!r} was already released")
            self._lent = False
            self._filled = 0
            pool._bytes_in_use -= self._size
            cls = self._cls
            if cls is not None and self._carrier is None:  # a plain pool's carrier
                cls.free.append(self)
            else:
                pool._take_back(cls, self)
        finally:
            lock.release()
        if pool._release_callbacks:
            pool._run_release_callbacks()

    def __enter__(self) -> PooledBuffer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        cls = self._cls
        kind = "heap" if cls is None else f"class {cls.size}"
        state = "lent" if self._lent else "released"
        return f"<PooledBuffer {self._size} bytes ({kind}) {state} at {id(self):#x}>"


def _new_buffer(
    pool: BufferPool, mem: memoryview, cls: _SizeClass | None, slab: _Slab | None
) -> PooledBuffer:
    """A PooledBuffer of ``mem``, not lent yet."""
    buf = PooledBuffer(_PRIVATE)
    buf._pool = pool
    buf._mem = mem
    buf._size = len(mem)
    buf._cls = cls
    buf._slab = slab
    return buf


# --- debug modes -------------------------------------------------------------------
#
# - poison: a released chunk is filled with POISON_BYTE, so code that reads a
#   chunk after giving it back sees 0xDB bytes instead of plausible data. Each
#   lease also gets its own memoryview of the chunk, released with the buffer,
#   so a `view` kept past release() raises ValueError when touched (slices
#   taken from it stay valid: memoryview cannot revoke them).
# - scrub: a released chunk is zeroed, so one connection's bytes never reach
#   the next borrower. With poison too, the chunk is poisoned (which erases it
#   just as well).
# - track: acquire() records its caller's stack and a weak reference to the
#   buffer; a buffer garbage-collected unreleased is reported as a
#   BufferLeakWarning naming that stack. Its chunk stays counted as in use:
#   slices of its view may still be alive, so it cannot be lent again safely.
# Cost: filling is one slice assignment per release; tracking is a stack
# capture per acquire (a debugging aid only).


@final
class _Debug:
    """What a debugging pool does besides lending (lock held)."""

    __slots__ = ("live", "poison", "scrub", "track")

    def __init__(self, *, poison: bool, scrub: bool, track: bool) -> None:
        self.poison = poison
        self.scrub = scrub
        self.track = track
        # id(token) -> (the weak reference watching it, buffer repr, stack)
        self.live: dict[int, tuple[weakref.ref[set[None]], str, str]] = {}

    def on_acquire(self, buf: PooledBuffer) -> None:
        """Give ``buf`` its own view (poison) and watch it (track)."""
        if self.poison and buf._carrier is not None:
            buf._mem = buf._carrier._mem[:]
        if self.track:
            # The buffer holds the only reference to a fresh token, watched
            # weakly: the token dies with the buffer. (A compiled
            # PooledBuffer cannot be weakly referenced; a set can.)
            token: set[None] = set()
            key = id(token)
            ref = weakref.ref(token, functools.partial(self._lost, key))
            self.live[key] = (ref, repr(buf), _acquiring_stack())
            buf._tracker = token

    def on_release(self, buf: PooledBuffer) -> None:
        """Forget ``buf``, wipe its chunk, and revoke its own view."""
        token = buf._tracker
        if token is not None:  # forget the watch first, then drop the token
            self.live.pop(id(token), None)
            buf._tracker = None
        view = buf._mem
        chunk = view if buf._carrier is None else buf._carrier._mem
        if self.poison:
            chunk[:] = bytes((POISON_BYTE,)) * buf._size
        elif self.scrub:
            chunk[:] = bytes(buf._size)
        if view is not chunk:
            _release_quietly(view)

    def _lost(self, key: int, ref: weakref.ref[set[None]]) -> None:
        """Report a buffer that was garbage-collected unreleased."""
        entry = self.live.pop(key, None)
        if entry is not None:
            _, what, stack = entry
            warnings.warn(
                f"{what} was garbage-collected without release(); "
                f"it was acquired at (most recent call last):\n{stack}",
                BufferLeakWarning,
                stacklevel=2,
            )


def _acquiring_stack() -> str:
    """The caller's stack, without this module's frames, formatted."""
    # From the current frame: a compiled build's functions have no frames.
    stack = traceback.extract_stack(limit=TRACK_DEPTH + 4)
    mine = [f for f in stack if _normpath(f.filename) != _THIS_FILE]
    return "".join(traceback.format_list(mine[-TRACK_DEPTH:]))


# --- the pool -----------------------------------------------------------------------


@final
class BufferPool:
    """A slab pool of buffers in a few size classes. Thread-safe.

    Args:
        size_classes: The chunk sizes in bytes, in any order (kept sorted).
        slab_size: Bytes per slab. A slab holds ``slab_size // size`` chunks
            of one class (at least one, so a class may exceed ``slab_size``).
        max_bytes: The most slab memory the pool may hold, or ``None`` for no
            limit. The last slab that fits is cut down to the chunks that fit.
        fallback: When a request is larger than the largest class or would
            exceed ``max_bytes``: ``"raise"`` (:class:`~bufkit.BufferTooLarge`
            or :class:`~bufkit.PoolExhausted`), or ``"heap"``: lend a fresh
            ``bytearray``, counted in
            :attr:`PoolStats.heap_fallbacks <bufkit.PoolStats>`.
        backing: ``"bytearray"`` slabs, or ``"mmap"`` (anonymous maps: pages
            are committed only when first touched, and returned to the
            system as soon as :meth:`trim` drops the slab).
        poison: Fill released chunks with ``0xDB``, and revoke each released
            buffer's ``view``, to expose use after release.
        scrub: Zero released chunks, so no data passes from one borrower to
            the next.
        track: Warn (:class:`~bufkit.BufferLeakWarning`, with the stack of the
            :meth:`acquire` call) when a buffer is garbage-collected unreleased.

    Raises:
        TypeError: A size is not an int (``bool`` is refused too).
        ValueError: A size is not positive, ``size_classes`` is empty or
            repeats a size, ``max_bytes`` is negative, or ``fallback`` or
            ``backing`` is not one of the allowed values.
    """

    __slots__ = (
        "__weakref__",
        "_bytes_in_use",
        "_class_of",
        "_classes",
        "_debug",
        "_exhausted",
        "_fallback",
        "_fast",
        "_fast_ok",
        "_heap_bytes",
        "_heap_fallbacks",
        "_heap_in_use",
        "_lock",
        "_max_bytes",
        "_mmap",
        "_peak",
        "_reclaimed",
        "_release_callbacks",
        "_reserved",
        "_sizes",
        "_slab_size",
    )

    def __init__(
        self,
        *,
        size_classes: Sequence[Checked[int]] = (2048, 16384, 65536),
        slab_size: Checked[int] = 1 << 20,
        max_bytes: Checked[int] | None = None,
        fallback: Checked[Literal["raise", "heap"]] = "raise",
        backing: Checked[Literal["bytearray", "mmap"]] = "bytearray",
        poison: Checked[bool] = False,
        scrub: Checked[bool] = False,
        track: Checked[bool] = False,
    ) -> None:
        sizes = sorted(positive_int("size class", size) for size in size_classes)
        if not sizes or len(set(sizes)) != len(sizes):
            raise ValueError(
                f"size_classes must be distinct and non-empty, got {sizes}"
            )
        self._slab_size = positive_int("slab_size", slab_size)
        if max_bytes is not None:
            max_bytes = positive_int("max_bytes", max_bytes, minimum=0)
        if fallback not in _FALLBACKS:
            raise ValueError(f"fallback must be 'raise' or 'heap', got {fallback!r}")
        if backing not in _BACKINGS:
            raise ValueError(f"backing must be 'bytearray' or 'mmap', got {backing!r}")
        self._sizes = tuple(sizes)
        self._classes = tuple(
            _SizeClass(s, max(1, self._slab_size // s)) for s in sizes
        )
        # Sizes asked for before, by value (validated ints only): most callers
        # ask for a few sizes again and again, and a dict hit beats bisecting.
        self._class_of: dict[int, _SizeClass] = {}
        self._max_bytes = max_bytes
        self._fallback = fallback
        self._mmap = backing == "mmap"
        self._debug = (
            _Debug(poison=bool(poison), scrub=bool(scrub), track=bool(track))
            if poison or scrub or track
            else None
        )
        # Reentrant: Python runs signal handlers (and GC callbacks) between
        # any two bytecodes of the main thread, maybe inside a locked region;
        # stats() from there must not deadlock on a lock its thread holds.
        self._lock = threading.RLock()
        # The warm path lends and takes back without the lock where the GIL
        # makes it atomic (see the module notes); debug pools and
        # free-threaded builds always take the lock.
        self._fast_ok = self._debug is None and _GIL_ENABLED
        self._fast = self._fast_ok
        self._reserved = self._bytes_in_use = self._peak = 0
        self._heap_fallbacks = self._heap_in_use = self._heap_bytes = 0
        self._exhausted = self._reclaimed = 0
        # One-shot callbacks for the next release, in registration order.
        self._release_callbacks: dict[Callable[[], object], None] = {}

    @property
    def size_classes(self) -> tuple[int, ...]:
        """The chunk sizes, ascending."""
        return self._sizes

    @property
    def largest_class(self) -> int:
        """The largest chunk size; bigger requests take the fallback policy."""
        return self._sizes[-1]

    @property
    def max_bytes(self) -> int | None:
        """The most slab memory the pool may hold, or ``None``."""
        return self._max_bytes

    @property
    def slab_size(self) -> int:
        """The bytes per slab asked for at construction."""
        return self._slab_size

    @property
    def fallback(self) -> Literal["raise", "heap"]:
        """What happens when the pool cannot lend a chunk."""
        return self._fallback

    def acquire(self, min_size: Checked[int]) -> PooledBuffer:
        """Lend a chunk of the smallest size class that holds ``min_size`` bytes.

        Args:
            min_size: The fewest bytes the buffer must hold.

        Returns:
            A :class:`PooledBuffer` of :attr:`~PooledBuffer.size` at least
            ``min_size``: a class's size, or exactly ``min_size`` for a heap
            buffer past the largest class.

        Raises:
            PoolExhausted: With ``fallback="raise"``: lending would take the
                pool past ``max_bytes``. Try again after a release
                (:meth:`add_release_callback`).
            BufferTooLarge: With ``fallback="raise"``: ``min_size`` is larger
                than the largest class. The pool is left unchanged.
            TypeError: ``min_size`` is not an int (``bool`` is refused too).
            ValueError: ``min_size`` is zero or negative.
        """
        if type(min_size) is not int or min_size <= 0:
            min_size = positive_int("min_size", min_size)
        cls = self._class_of.get(min_size)
        if cls is None:
            index = bisect_left(self._sizes, min_size)
            if index == len(self._sizes):
                return self._lend_oversize(min_size)
            cls = self._classes[index]
            if len(self._class_of) < _CLASS_CACHE:
                self._class_of[min_size] = cls
        # The warm path: no call between the test and the pop, so no other
        # thread (nor a signal handler) can run between them under the GIL.
        # The counters change before the pop, so a thread switched to after
        # it sees them settled.
        free = cls.free
        if self._fast and free:
            cls.acquires += 1
            in_use = self._bytes_in_use + cls.size
            self._bytes_in_use = in_use
            if in_use > self._peak:
                self._peak = in_use
            buf = free.pop()
            buf._lent = True
            return buf
        lock = self._lock
        lock.acquire()  # not `with`: measurably cheaper on this hot path
        self._fast = False  # other threads wait while slabs are cut or dropped
        try:
            free = cls.free
            if free and self._debug is None:
                cls.acquires += 1
                self._count_in_use(cls.size)
                buf = free.pop()
                buf._lent = True
                return buf
            carrier = self._take_carrier(cls)
            if carrier is not None:
                return self._lend(cls, carrier)
        finally:
            self._fast = self._fast_ok
            lock.release()
        return self._lend_heap(
            cls.size,
            f"size {min_size} (class {cls.size}) would take the pool past "
            f"max_bytes={self._max_bytes}",
        )

    def release(self, buffer: Checked[PooledBuffer]) -> None:
        """Give ``buffer`` back: the same as ``buffer.release()``, checked.

        Args:
            buffer: A buffer this pool lent.

        Raises:
            ForeignBufferError: ``buffer`` was lent by another pool.
            BufferReleasedError: ``buffer`` was already released.
            TypeError: ``buffer`` is not a :class:`PooledBuffer`.
        """
        if not isinstance(buffer, PooledBuffer):
            raise TypeError(f"release() needs a PooledBuffer, not {buffer!r}")
        if buffer._pool is not self:
            raise ForeignBufferError(
                f"{buffer!r} was lent by another pool, not {self!r}"
            )
        buffer.release()

    def add_release_callback(self, callback: Callable[[], object]) -> None:
        """Call ``callback()`` once, after the next buffer is given back.

        This is how a reader refused with :class:`~bufkit.PoolExhausted` learns
        when to try again. The callback runs on the releasing thread, after the
        buffer is back in the pool and outside the pool's lock, so it may
        acquire at once; then it is forgotten (register again to wait for
        another release). Callbacks run in the order they were added; one
        added twice runs once. One that raises is logged on the
        ``bufkit.pool`` logger and does not stop the others.

        A release on another thread may come between a refused acquire and
        this call: register first, then try to acquire once more.

        Args:
            callback: Called with no arguments; what it returns is ignored.

        Raises:
            TypeError: ``callback`` is not callable.
        """
        if not callable(callback):
            raise TypeError(f"callback must be callable, not {callback!r}")
        with self._lock:
            self._release_callbacks[callback] = None

    def remove_release_callback(self, callback: Callable[[], object]) -> None:
        """Forget ``callback`` if it is waiting for a release; else do nothing.

        A bound method registered earlier is found by an equal bound method
        (the same function of the same object), so an object that goes away
        can drop its own callback, and the pool keeps no reference to it.

        Args:
            callback: A callback passed to :meth:`add_release_callback`.
        """
        with self._lock:
            self._release_callbacks.pop(callback, None)

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's counters.

        Every field describes the same instant, taken under the pool's lock.
        It is safe to call from a signal handler: the lock is reentrant, so
        it never waits for a lock the interrupted code holds, though a
        snapshot taken in the middle of a lend may count that one buffer in
        some fields and not yet in others. Other pool methods belong in the
        code a handler defers to, such as the selectors loop's
        :meth:`~bufkit.adapters.selectors.Loop.add_signal_handler`.

        Returns:
            A :class:`~bufkit.PoolStats`; later activity never changes it.
        """
        with self._lock:
            per_class = tuple(cls.stats() for cls in self._classes)
            in_use = sum(c.buffers_in_use for c in per_class) + self._heap_in_use
            acquires = sum(c.acquires for c in per_class) + self._heap_fallbacks
            return PoolStats(
                buffers_in_use=in_use,
                bytes_in_use=self._bytes_in_use,
                peak_bytes_in_use=self._peak,
                bytes_reserved=self._reserved,
                slabs=sum(c.slabs for c in per_class),
                acquires=acquires,
                releases=acquires - in_use,
                heap_fallbacks=self._heap_fallbacks,
                heap_buffers_in_use=self._heap_in_use,
                heap_bytes_in_use=self._heap_bytes,
                exhausted=self._exhausted,
                slabs_reclaimed=self._reclaimed,
                per_class=per_class,
            )

    def trim(self) -> int:
        """Give back every slab that has no chunk lent.

        Returns:
            The bytes given back (the slabs' sizes).
        """
        with self._lock:
            self._fast = False  # no lock-free lend or return while slabs go
            try:
                freed = sum(cls.drop(cls.idle_slabs()) for cls in self._classes)
                self._reserved -= freed
            finally:
                self._fast = self._fast_ok
        return freed

    def __repr__(self) -> str:
        return (
            f"<BufferPool classes={self._sizes} in use={self._bytes_in_use} "
            f"reserved={self._reserved} max_bytes={self._max_bytes} at {id(self):#x}>"
        )

    # --- lending (lock held unless said otherwise) ---------------------------------

    def _count_in_use(self, nbytes: int) -> None:
        """Count ``nbytes`` more in use, and raise the peak with them."""
        in_use = self._bytes_in_use + nbytes
        self._bytes_in_use = in_use
        if in_use > self._peak:
            self._peak = in_use

    def _take_carrier(self, cls: _SizeClass) -> PooledBuffer | None:
        """Pop a free carrier of ``cls``, cutting a slab if needed; None if full."""
        if not cls.free and not self._cut(cls):
            return None
        return cls.free.pop()

    def _cut(self, cls: _SizeClass) -> bool:
        """Cut a slab for ``cls``; False when max_bytes leaves no room."""
        count = cls.per_slab
        if self._max_bytes is not None:
            if self._max_bytes - self._reserved < cls.size:
                self._reclaim(cls, self._max_bytes - cls.per_slab * cls.size)
            count = min(count, (self._max_bytes - self._reserved) // cls.size)
            if count <= 0:
                return False
        self._reserved += cls.cut(self, count, self._mmap)
        return True

    def _reclaim(self, cls: _SizeClass, reserved_goal: int) -> None:
        """Give back idle slabs of other classes until ``reserved_goal`` is met.

        Smallest class first, oldest slab first; slabs with a chunk lent stay.
        """
        for other in self._classes:
            if other is cls or self._reserved <= reserved_goal:
                continue
            victims = []
            for slab in other.idle_slabs():
                if self._reserved <= reserved_goal:
                    break
                victims.append(slab)
                self._reserved -= slab.nbytes
            other.drop(victims)
            self._reclaimed += len(victims)

    def _lend(self, cls: _SizeClass, carrier: PooledBuffer) -> PooledBuffer:
        """Lend ``carrier``, or a fresh lease of its chunk in a debug pool."""
        cls.acquires += 1
        self._count_in_use(cls.size)
        if self._debug is None:
            carrier._lent = True
            return carrier
        lease = _new_buffer(self, carrier._mem, cls, None)
        lease._carrier = carrier
        lease._lent = True
        self._debug.on_acquire(lease)
        return lease

    def _lend_oversize(self, min_size: int) -> PooledBuffer:
        """A request past the largest class (lock not held)."""
        why = f"size {min_size} exceeds the largest class {self._sizes[-1]}"
        if self._fallback == "raise":
            raise BufferTooLarge(why)
        return self._lend_heap(min_size, why)

    def _lend_heap(self, size: int, why: str) -> PooledBuffer:
        """Refuse with PoolExhausted, or lend a counted heap buffer (lock not held)."""
        if self._fallback == "raise":
            with self._lock:
                self._exhausted += 1
            raise PoolExhausted(why)
        buf = _new_buffer(self, memoryview(bytearray(size)), None, None)
        buf._lent = True
        with self._lock:
            self._heap_fallbacks += 1
            self._heap_in_use += 1
            self._heap_bytes += size
            self._count_in_use(size)
            if self._debug is not None:
                self._debug.on_acquire(buf)
        return buf

    # --- giving back (PooledBuffer.release() takes plain carriers back) -----------

    def _take_back(self, cls: _SizeClass | None, buf: PooledBuffer) -> None:
        """Take back a lease or a heap buffer (lock held)."""
        if self._debug is not None:
            self._debug.on_release(buf)
        if cls is None:
            self._heap_in_use -= 1
            self._heap_bytes -= buf._size
            _release_quietly(buf._mem)
            return
        carrier = buf._carrier
        if carrier is not None:
            buf._carrier = None
            cls.free.append(carrier)

    def _run_release_callbacks(self) -> None:
        """Call, outside the lock, the callbacks waiting for a release."""
        with self._lock:
            callbacks = self._release_callbacks
            self._release_callbacks = {}
        for callback in callbacks:
            try:
                callback()
            except Exception:
                LOGGER.exception("release callback %r raised", callback)


# Public under the package's name. Set after the classes, not in their bodies:
# a compiled class ignores a __module__ assigned in its body.
for _public in (PooledBuffer, BufferPool):
    _public.__module__ = "bufkit"
