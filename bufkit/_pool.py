"""The slab pool: :class:`bufkit.BufferPool` lends :class:`bufkit.PooledBuffer`."""

# Theory of operation
# -------------------
# Memory comes in slabs, one bytearray (or anonymous mmap) each, made lazily
# when a size class runs dry and never past max_bytes, and carved into equal
# chunks. Each chunk gets one PooledBuffer when its slab is carved (its
# "carrier", holding the chunk's one memoryview), kept on LIFO stacks of its
# class (_pool_slabs): the chunk given back last, still cache-hot, goes first.
#
# Hot path (plain pool, GIL build): no lock, no allocation. acquire() tests
# min_size by identity against the last int it mapped to the last class used
# (an int never changes, so that object is already validated), pops a
# carrier with next(cls.take), sets its `_lent` slot and returns the carrier
# itself; release() deletes `_lent` and pushes the carrier back with
# deque.append. Each step is one C call, atomic under the GIL; `del _lent`
# fails for every release but the first, so racing releases give a chunk back
# once. Anything else (another int, an empty stack, a debug mode, no GIL)
# takes the lock; debug and no-GIL pools lend a fresh PooledBuffer per lease.
#
# Guarantees, by DESIGN.md invariant:
#  4. A chunk is on one stack of its class or lent to one owner; every move
#     is one atomic deque operation or happens under the lock. Chunks are
#     disjoint slices of their slab, so lent chunks never overlap. In-use is
#     chunks minus both stacks: releasing everything brings it to zero.
#     Limit: a plain pool re-lends the same carrier, so a reference kept past
#     release() to a chunk lent again is the new lease (its release() ends
#     the new lease). Debug pools lend per-lease handles and catch that.
#  5. A chunk is in use only between acquire() and release().
#  6. bytes_reserved never exceeds max_bytes: a new slab is cut down to the
#     chunks that still fit; a request that cannot fit is refused
#     (PoolExhausted) or served by a counted heap buffer outside max_bytes.
#
# Exact counters, none on the hot path: acquires are counted by the repeat
# inside `take`; in-use is derived. For the peak the pool keeps `_active`,
# the bytes of chunks not in a reserve (lent, or on a fast stack) plus heap
# bytes in use. It changes only under the lock (a release pushes to `free`,
# leaving it unchanged), and `_active <= _peak` is kept by moving fast chunks
# back to the reserve before raising the peak. As bytes in use <= _active,
# no lock-free acquire passes the peak, and a raised peak is the bytes in use
# at that acquire: exact with one thread, never low with several.
#
# Cost model: a warm round trip is two Python calls and a few C calls (1/5 of
# bytearray(65536) on CPython 3.11; docs/reference/pool.md). The slow path is
# O(classes + chunks moved); carving O(chunks per slab), trim() O(chunks +
# slabs), stats() O(classes).

from __future__ import annotations

import logging
import sys
import threading
from bisect import bisect_left
from collections.abc import Callable, Sequence
from typing import Final, Literal, final

from bufkit._pool_buffer import PooledBuffer, Returns, carrier_maker, new_lease
from bufkit._pool_debug import _Debug, release_quietly
from bufkit._pool_slabs import SizeClass, positive_int
from bufkit._pool_stats import PoolStats
from bufkit.errors import BufferTooLarge, ForeignBufferError, PoolExhausted

__all__ = ["BufferPool", "PooledBuffer"]  # PooledBuffer: re-exported

# Default classes: 2 KiB (an Ethernet frame), 16 KiB (a TLS record), 64 KiB
# (a bulk read); 1 MiB slabs hold 512, 64 or 16 of them (docs/why.md).

LOGGER: Final = logging.getLogger("bufkit.pool")

_FALLBACKS: Final = ("raise", "heap")
_BACKINGS: Final = ("bytearray", "mmap")


def _gil_enabled() -> bool:
    """Whether this interpreter runs with a GIL (False on free-threaded builds)."""
    return bool(getattr(sys, "_is_gil_enabled", lambda: True)())


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

    __module__ = "bufkit"
    __slots__ = (
        "__weakref__",
        "_active",
        "_classes",
        "_debug",
        "_exhausted",
        "_fallback",
        "_heap_bytes",
        "_heap_fallbacks",
        "_heap_in_use",
        "_hot",
        "_leases",
        "_lock",
        "_max_bytes",
        "_mmap",
        "_peak",
        "_release_callbacks",
        "_reserved",
        "_returns",
        "_sizes",
        "_slab_size",
    )

    def __init__(
        self,
        *,
        size_classes: Sequence[int] = (2048, 16384, 65536),
        slab_size: int = 1 << 20,
        max_bytes: int | None = None,
        fallback: Literal["raise", "heap"] = "raise",
        backing: Literal["bytearray", "mmap"] = "bytearray",
        poison: bool = False,
        scrub: bool = False,
        track: bool = False,
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
        self._classes = tuple(SizeClass(s, max(1, slab_size // s)) for s in sizes)
        self._max_bytes = max_bytes
        self._fallback = fallback
        self._mmap = backing == "mmap"
        self._debug = (
            _Debug(poison=poison, scrub=scrub, track=track)
            if poison or scrub or track
            else None
        )
        # Leases (a fresh PooledBuffer per lend, all under the lock) for debug
        # modes and where list operations are not atomic (no GIL).
        self._leases = self._debug is not None or not _gil_enabled()
        self._returns = Returns(self)
        # Reentrant: Python runs signal handlers (and GC callbacks) between
        # any two bytecodes of the main thread, maybe inside a locked region;
        # stats() from there must not deadlock on a lock its thread holds.
        self._lock = threading.RLock()
        self._hot = self._classes[0]  # the class acquire() used last
        self._reserved = self._active = self._peak = 0
        self._heap_fallbacks = self._heap_in_use = self._heap_bytes = 0
        self._exhausted = 0
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

    def acquire(self, min_size: int) -> PooledBuffer:
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
            TypeError: ``min_size`` is not an int.
            ValueError: ``min_size`` is zero or negative.
        """
        cls = self._hot
        if min_size is cls.key:  # the very int object validated last time
            try:
                buf = next(cls.take)
            except IndexError:
                return self._restock(cls, min_size)
            buf._lent = True
            return buf
        return self._acquire_cold(min_size)

    def release(self, buffer: PooledBuffer) -> None:
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

        With one thread every field is exact. While other threads acquire and
        release, each field is still consistent (never negative, in-use never
        above reserved plus heap), taken within the call. It is safe to call
        from a signal handler: it never waits for a lock the interrupted code
        holds, though a snapshot taken in the middle of a lend may count that
        one buffer in some fields and not yet in others. Other pool methods
        belong in the code a handler defers to, such as the selectors loop's
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
                bytes_in_use=sum(c.bytes_in_use for c in per_class) + self._heap_bytes,
                peak_bytes_in_use=self._peak,
                bytes_reserved=self._reserved,
                slabs=sum(c.slabs for c in per_class),
                acquires=acquires,
                releases=acquires - in_use,
                heap_fallbacks=self._heap_fallbacks,
                heap_buffers_in_use=self._heap_in_use,
                heap_bytes_in_use=self._heap_bytes,
                exhausted=self._exhausted,
                per_class=per_class,
            )

    def trim(self) -> int:
        """Give back every slab that has no chunk lent.

        Returns:
            The bytes given back (the slabs' sizes).
        """
        with self._lock:
            freed = 0
            for cls in self._classes:
                self._active -= cls.to_reserve(cls.chunks) * cls.size
                freed += cls.trim()
            self._reserved -= freed
        return freed

    def __repr__(self) -> str:
        in_use = self._heap_bytes + sum(c.size * c.in_use for c in self._classes)
        return (
            f"<BufferPool classes={self._sizes} in use={in_use} "
            f"reserved={self._reserved} max_bytes={self._max_bytes} at {id(self):#x}>"
        )

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

    def _acquire_cold(self, min_size: int) -> PooledBuffer:
        """acquire() for an int not seen last: validate, find the class, lend."""
        if min_size.__class__ is not int or min_size <= 0:
            min_size = positive_int("min_size", min_size)
        try:
            cls = self._classes[bisect_left(self._sizes, min_size)]
        except IndexError:
            why = f"size {min_size} exceeds the largest class {self._sizes[-1]}"
            if self._fallback == "raise":
                raise BufferTooLarge(why) from None
            return self._lend_heap(min_size, why)
        if self._leases:
            return self._lend_lease(cls, min_size)
        cls.key = min_size  # validated for this class: any reader may trust it
        self._hot = cls
        try:
            buf = next(cls.take)
        except IndexError:
            return self._restock(cls, min_size)
        buf._lent = True
        return buf

    def _restock(self, cls: SizeClass, min_size: int) -> PooledBuffer:
        """Lend a carrier when ``cls``'s fast stack was empty (plain pools)."""
        with self._lock:
            cls.misses += 1  # the failed next(take) counted an attempt
            buf = self._lend_chunk(cls)
        if buf is None:
            return self._lend_heap(cls.size, self._too_full(cls, min_size))
        buf._lent = True
        return buf

    def _lend_lease(self, cls: SizeClass, min_size: int) -> PooledBuffer:
        """Lend a chunk through a fresh PooledBuffer (debug and no-GIL pools)."""
        with self._lock:
            carrier = self._lend_chunk(cls)
        if carrier is None:
            return self._lend_heap(cls.size, self._too_full(cls, min_size))
        lease = new_lease(self, carrier._mem, cls)
        lease._carrier = carrier
        if self._debug is not None:
            self._debug.on_acquire(lease)
        return lease

    def _lend_chunk(self, cls: SizeClass) -> PooledBuffer | None:
        """Pop a carrier of ``cls``, or None at max_bytes (lock held)."""
        try:
            return next(cls.take)
        except IndexError:
            cls.misses += 1
        if not cls.reserve and not self._carve(cls):
            return None
        carrier = cls.reserve.pop()
        cls.slow += 1
        self._grow_active(cls.size)
        self._active += cls.to_free((self._peak - self._active) // cls.size) * cls.size
        return carrier

    def _grow_active(self, nbytes: int) -> None:
        """Count ``nbytes`` more as active; keep ``_active <= _peak`` (lock held)."""
        self._active += nbytes
        for cls in self._classes:
            if self._active <= self._peak:
                return
            excess = self._active - self._peak
            moved = cls.to_reserve(-(-excess // cls.size))
            self._active -= moved * cls.size
        self._peak = max(self._peak, self._active)

    def _take_back(self, buf: PooledBuffer) -> None:
        """Account for a lease or heap buffer given back (lock held)."""
        if self._debug is not None:
            self._debug.on_release(buf)
        carrier = buf._carrier
        if carrier is not None:
            buf._carrier = None
            carrier._free.append(carrier)
        else:
            self._heap_in_use -= 1
            self._heap_bytes -= buf._size
            self._active -= buf._size
            release_quietly(buf._mem)

    def _too_full(self, cls: SizeClass, min_size: int) -> str:
        return (
            f"size {min_size} (class {cls.size}) would take the pool past "
            f"max_bytes={self._max_bytes}"
        )

    def _carve(self, cls: SizeClass) -> bool:
        """Add a slab to ``cls``'s reserve; False at max_bytes (lock held)."""
        count = cls.per_slab
        if self._max_bytes is not None:
            count = min(count, (self._max_bytes - self._reserved) // cls.size)
            if count <= 0:
                return False
        self._reserved += cls.grow(count, self._mmap, carrier_maker(self, cls))
        return True

    def _lend_heap(self, size: int, why: str) -> PooledBuffer:
        """Refuse with PoolExhausted, or lend a counted heap buffer."""
        if self._fallback == "raise":
            with self._lock:
                self._exhausted += 1
            raise PoolExhausted(why)
        lease = new_lease(self, memoryview(bytearray(size)), None)
        with self._lock:
            self._heap_fallbacks += 1
            self._heap_in_use += 1
            self._heap_bytes += size
            self._grow_active(size)
        if self._debug is not None:
            self._debug.on_acquire(lease)
        return lease
