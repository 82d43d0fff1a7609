"""The slab pool: :class:`bufkit.BufferPool` lends :class:`bufkit.PooledBuffer`."""

# Theory of operation
# -------------------
# Memory comes in slabs, one bytearray (or anonymous mmap) each, made lazily
# the first time a size class runs dry and never past max_bytes, and carved
# into equal chunks of that class. Each chunk gets one memoryview when its slab
# is carved, kept for the slab's life, in a Chunk record that also says where
# it goes back to. A class's free list is a plain list of those records used
# as a stack: LIFO, so the chunk released last, still hot in the CPU cache, is
# the one lent next.
#
# Guarantees, by DESIGN.md invariant:
#  4. A chunk is either on its free list or lent to exactly one PooledBuffer.
#     Every move between the two happens under the pool's lock, and a
#     PooledBuffer gives its chunk back at most once (its _view slot is tested
#     and cleared under that lock), so a double release raises instead of
#     putting a chunk on the free list twice. Chunks are disjoint slices of
#     their slab, so lent chunks never overlap. A class's chunks in use are
#     counted as its chunks minus its free list, so releasing everything
#     brings in-use back to zero by construction.
#  5. Nothing is held per connection: a chunk is in use only between
#     acquire() and release().
#  6. bytes_reserved never exceeds max_bytes: a new slab is cut down to the
#     chunks that still fit, and a request that cannot fit is refused
#     (PoolExhausted) or served by a counted heap buffer outside max_bytes.
#
# Cost model: acquire() is a bisect over the classes, a lock, list.pop() and
# one small slotted PooledBuffer handle; release() is a lock and list.append().
# The handle is the one object a warm round trip allocates (besides the ints
# of two counters): it is what makes a stale handle detectable, since a handle
# reused for the next lease could not tell its old owner from the new one.
# Each chunk's memoryview is made once, when its slab is carved (_pool_slabs).
# Carving is O(chunks per slab), trim() O(free chunks + slabs). Debug modes
# live in _pool_debug and cost one `is not None` test per call when off.

from __future__ import annotations

import threading
from bisect import bisect_left
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Final, Literal, final

from bufkit._pool_debug import _Debug, release_quietly
from bufkit._pool_slabs import Chunk, SizeClass, positive_int
from bufkit._pool_stats import PoolStats
from bufkit.errors import BufferReleasedError, ForeignBufferError, PoolExhausted

if TYPE_CHECKING:
    import weakref

__all__ = ["BufferPool", "PooledBuffer"]

# Default classes: 2 KiB (an Ethernet frame), 16 KiB (a TLS record), 64 KiB
# (a bulk read); 1 MiB slabs hold 512, 64 or 16 of them (docs/why.md).

_FALLBACKS: Final = ("raise", "heap")
_BACKINGS: Final = ("bytearray", "mmap")


@final
class PooledBuffer:
    """A chunk of memory lent by a :class:`BufferPool`, until :meth:`release`.

    Get one from :meth:`BufferPool.acquire`; never construct it yourself. Use it
    as a context manager to release it on exit::

        with pool.acquire(2048) as buf:
            n = sock.recv_into(buf.view)

    Whoever holds a ``PooledBuffer`` owns the chunk: hand the buffer itself
    (not a slice of its view) to a new owner, such as a write queue, and let
    that owner release it.
    """

    __module__ = "bufkit"
    __slots__ = ("__weakref__", "_chunk", "_tracker", "_view")

    _chunk: Chunk
    _view: memoryview | None  # None once released
    _tracker: weakref.ref[PooledBuffer]

    def __init__(self) -> None:
        raise TypeError("PooledBuffer is lent by BufferPool.acquire(), not built")

    @property
    def view(self) -> memoryview:
        """A writable memoryview (format ``'B'``) of exactly the chunk.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        view = self._view
        if view is None:
            raise BufferReleasedError(f"{self!r}: view of a released buffer")
        return view

    @property
    def size(self) -> int:
        """The size of the chunk in bytes, at least what was asked for."""
        return self._chunk.size

    @property
    def pool(self) -> BufferPool:
        """The pool that lent this buffer."""
        return self._chunk.pool

    @property
    def released(self) -> bool:
        """Whether :meth:`release` was called."""
        return self._view is None

    @property
    def is_heap(self) -> bool:
        """Whether this is a heap fallback rather than a chunk of a slab."""
        return self._chunk.cls is None

    def release(self) -> None:
        """Give the chunk back to its pool; ``view`` is unusable afterwards.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        chunk = self._chunk
        pool = chunk.pool
        lock = pool._lock
        lock.acquire()
        try:
            view = self._view
            if view is None:
                raise BufferReleasedError(f"{self!r} was already released")
            self._view = None
            if pool._debug is not None:
                pool._debug.on_release(self, view)
            if chunk.cls is not None:
                chunk.cls.free.append(chunk)
            else:
                pool._heap_in_use -= 1
                pool._heap_bytes -= chunk.size
                release_quietly(view)
            pool._bytes_in_use -= chunk.size
        finally:
            lock.release()

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
        chunk = self._chunk
        kind = "heap" if chunk.cls is None else f"class {chunk.cls.size}"
        state = "released" if self._view is None else "lent"
        return f"<PooledBuffer {chunk.size} bytes ({kind}) {state} at {id(self):#x}>"


_new_buffer: Final = PooledBuffer.__new__


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
            exceed ``max_bytes``: ``"raise"`` :class:`~bufkit.PoolExhausted`,
            or ``"heap"``: lend a fresh ``bytearray``, counted in
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
        self._lock = threading.Lock()
        self._reserved = self._bytes_in_use = self._peak = 0
        self._heap_fallbacks = self._heap_in_use = self._heap_bytes = 0
        self._exhausted = 0

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
            PoolExhausted: With ``fallback="raise"``: ``min_size`` is larger
                than the largest class, or lending would exceed ``max_bytes``.
            TypeError: ``min_size`` is not an int.
            ValueError: ``min_size`` is zero or negative.
        """
        if min_size.__class__ is not int or min_size <= 0:
            min_size = positive_int("min_size", min_size)
        try:
            cls = self._classes[bisect_left(self._sizes, min_size)]
        except IndexError:
            why = f"size {min_size} exceeds the largest class {self._sizes[-1]}"
            return self._lend_heap(min_size, why)
        lock = self._lock
        lock.acquire()
        try:
            free = cls.free
            chunk = free.pop() if free else self._carve(cls)
            if chunk is not None:
                cls.acquires += 1
                used = self._bytes_in_use = self._bytes_in_use + chunk.size
                if used > self._peak:
                    self._peak = used
        finally:
            lock.release()
        if chunk is None:
            why = (
                f"size {min_size} (class {cls.size}) would take the pool past "
                f"max_bytes={self._max_bytes}"
            )
            return self._lend_heap(cls.size, why)
        buf = _new_buffer(PooledBuffer)  # skips __init__, which refuses users
        buf._chunk = chunk
        buf._view = chunk.view
        if self._debug is not None:
            self._debug.on_acquire(buf)
        return buf

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
        if buffer._chunk.pool is not self:
            raise ForeignBufferError(
                f"{buffer!r} was lent by another pool, not {self!r}"
            )
        buffer.release()

    def stats(self) -> PoolStats:
        """A frozen snapshot of the pool's counters, all taken at one instant.

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
                per_class=per_class,
            )

    def trim(self) -> int:
        """Give back every slab that has no chunk lent.

        Returns:
            The bytes given back (the slabs' sizes).
        """
        with self._lock:
            freed = sum(cls.trim() for cls in self._classes)
            self._reserved -= freed
        return freed

    def __repr__(self) -> str:
        return (
            f"<BufferPool classes={self._sizes} in use={self._bytes_in_use} "
            f"reserved={self._reserved} max_bytes={self._max_bytes} at {id(self):#x}>"
        )

    def _carve(self, cls: SizeClass) -> Chunk | None:
        """Add a slab to ``cls`` and lend its first chunk (lock held)."""
        count = cls.per_slab
        if self._max_bytes is not None:
            count = min(count, (self._max_bytes - self._reserved) // cls.size)
            if count <= 0:
                return None
        self._reserved += cls.grow(count, use_mmap=self._mmap, pool=self)
        return cls.free.pop()

    def _lend_heap(self, size: int, why: str) -> PooledBuffer:
        """Refuse with PoolExhausted, or lend a counted heap buffer."""
        if self._fallback == "raise":
            with self._lock:
                self._exhausted += 1
            raise PoolExhausted(why)
        chunk = Chunk(memoryview(bytearray(size)), None, self)
        with self._lock:
            self._heap_fallbacks += 1
            self._heap_in_use += 1
            self._heap_bytes += size
            used = self._bytes_in_use = self._bytes_in_use + size
            if used > self._peak:
                self._peak = used
        buf = _new_buffer(PooledBuffer)  # skips __init__, which refuses users
        buf._chunk = chunk
        buf._view = chunk.view
        if self._debug is not None:
            self._debug.on_acquire(buf)
        return buf
