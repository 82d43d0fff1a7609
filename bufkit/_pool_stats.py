"""Frozen snapshots of a :class:`bufkit.BufferPool`'s counters."""

# Theory of operation: these are plain values. BufferPool.stats() builds one
# under the pool's lock, so every field of a snapshot describes the same
# instant; later acquires and releases never change a snapshot already taken.

from __future__ import annotations

from typing import final

import attrs

__all__ = ["ClassStats", "PoolStats"]


@final
@attrs.frozen
class ClassStats:
    """The counters of one size class of a :class:`bufkit.BufferPool`.

    Attributes:
        size: The size of every chunk of this class, in bytes.
        slabs: Slabs currently carved into chunks of this class.
        chunks: Chunks those slabs hold, lent or free.
        buffers_in_use: Chunks lent now and not yet released.
        acquires: Chunks of this class lent since the pool was created.
        releases: Chunks of this class given back since the pool was created.
    """

    __module__ = "bufkit"

    size: int
    slabs: int
    chunks: int
    buffers_in_use: int
    acquires: int
    releases: int

    @property
    def bytes_reserved(self) -> int:
        """Bytes of the slabs of this class (``chunks * size``)."""
        return self.chunks * self.size

    @property
    def bytes_in_use(self) -> int:
        """Bytes lent from this class now (``buffers_in_use * size``)."""
        return self.buffers_in_use * self.size


@final
@attrs.frozen
class PoolStats:
    """A snapshot of a pool's counters, from :meth:`bufkit.BufferPool.stats`.

    "In use" counts every buffer lent and not yet released, heap fallbacks
    included; "reserved" counts slab memory only, which is what ``max_bytes``
    bounds. So ``bytes_in_use - heap_bytes_in_use <= bytes_reserved`` always.

    Attributes:
        buffers_in_use: Buffers lent now (pooled and heap).
        bytes_in_use: Their total size in bytes.
        peak_bytes_in_use: The largest ``bytes_in_use`` seen so far.
        bytes_reserved: Bytes of all slabs the pool holds (lent or free).
        slabs: Slabs the pool holds, over all size classes.
        acquires: Successful :meth:`~bufkit.BufferPool.acquire` calls so far
            (heap fallbacks included).
        releases: Buffers given back so far.
        heap_fallbacks: Heap buffers handed out so far, for oversize requests
            or because ``max_bytes`` was reached (``fallback="heap"``).
        heap_buffers_in_use: Heap buffers lent now.
        heap_bytes_in_use: Their total size in bytes.
        exhausted: Requests refused with :class:`~bufkit.PoolExhausted` so far.
        slabs_reclaimed: Idle slabs of one class given back so far to make
            room under ``max_bytes`` for a slab of another class
            (:meth:`~bufkit.BufferPool.trim` is not counted).
        per_class: One :class:`~bufkit.ClassStats` per size class, smallest first.
    """

    __module__ = "bufkit"

    buffers_in_use: int
    bytes_in_use: int
    peak_bytes_in_use: int
    bytes_reserved: int
    slabs: int
    acquires: int
    releases: int
    heap_fallbacks: int
    heap_buffers_in_use: int
    heap_bytes_in_use: int
    exhausted: int
    slabs_reclaimed: int
    per_class: tuple[ClassStats, ...]
