"""Slabs, chunks and size classes: the memory behind :class:`bufkit.BufferPool`."""

# Theory of operation: a SizeClass owns its slabs and a free list of Chunks.
# grow() carves a new slab into disjoint, equal chunks, each with one
# memoryview made then and kept for the slab's life; trim() drops the slabs
# whose chunks are all free. A Chunk record also carries what release() needs
# (its class, pool and size), so a PooledBuffer handle holds just two
# references. BufferPool holds its lock around every call here and keeps the
# lent chunks, so these classes never touch a lent chunk (invariant 4); a
# class's chunks in use are simply its chunks minus its free ones.

from __future__ import annotations

import contextlib
import mmap
from collections import Counter
from typing import TYPE_CHECKING, final

from bufkit._pool_debug import release_quietly
from bufkit._pool_stats import ClassStats

if TYPE_CHECKING:
    from bufkit._pool import BufferPool

__all__ = ["Chunk", "SizeClass", "positive_int", "require_int"]


def require_int(name: str, value: object) -> None:
    """Raise TypeError, naming ``name``, unless ``value`` is an int (not bool)."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an int >= ``minimum``."""
    require_int(name, value)
    assert isinstance(value, int)
    if value < minimum:
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value}")
    return int(value)


@final
class Chunk:
    """One lendable piece of memory: its view and where it goes back to."""

    __slots__ = ("cls", "pool", "size", "view")

    def __init__(
        self, view: memoryview, cls: SizeClass | None, pool: BufferPool
    ) -> None:
        self.view = view
        self.cls = cls  # None: a heap fallback, dropped on release
        self.pool = pool
        self.size = len(view)


@final
class _Slab:
    """One block of memory carved into the chunks of one size class."""

    __slots__ = ("chunks", "memory", "nbytes", "whole")

    def __init__(self, memory: bytearray | mmap.mmap, chunks: int) -> None:
        self.memory = memory
        self.whole = memoryview(memory)
        self.chunks = chunks
        self.nbytes = len(self.whole)

    def close(self) -> None:
        """Give the memory back (an mmap still exported is left to the GC)."""
        release_quietly(self.whole)
        if isinstance(self.memory, mmap.mmap):
            with contextlib.suppress(BufferError):  # a stale slice is still alive
                self.memory.close()


@final
class SizeClass:
    """The slabs, free list and counters of one size class."""

    __slots__ = ("acquires", "chunks", "free", "per_slab", "size", "slabs")

    def __init__(self, size: int, per_slab: int) -> None:
        self.size = size
        self.per_slab = per_slab
        self.free: list[Chunk] = []
        self.slabs: list[_Slab] = []
        self.chunks = 0
        self.acquires = 0

    def stats(self) -> ClassStats:
        """This class's counters as a frozen snapshot."""
        in_use = self.chunks - len(self.free)
        return ClassStats(
            size=self.size,
            slabs=len(self.slabs),
            chunks=self.chunks,
            buffers_in_use=in_use,
            acquires=self.acquires,
            releases=self.acquires - in_use,
        )

    def grow(self, count: int, *, use_mmap: bool, pool: BufferPool) -> int:
        """Carve a new slab of ``count`` chunks onto the free list; return its bytes."""
        size = self.size
        nbytes = count * size
        slab = _Slab(mmap.mmap(-1, nbytes) if use_mmap else bytearray(nbytes), count)
        whole = slab.whole
        # Highest address pushed first, so the lowest is lent first.
        self.free.extend(
            Chunk(whole[i : i + size], self, pool)
            for i in range(nbytes - size, -1, -size)
        )
        self.slabs.append(slab)
        self.chunks += count
        return nbytes

    def trim(self) -> int:
        """Drop the slabs with no chunk lent; return the bytes dropped."""
        free_in = Counter(id(chunk.view.obj) for chunk in self.free)
        idle = {
            id(s.memory): s for s in self.slabs if free_in[id(s.memory)] == s.chunks
        }
        if not idle:
            return 0
        keep = []
        for chunk in self.free:
            if id(chunk.view.obj) in idle:
                release_quietly(chunk.view)
            else:
                keep.append(chunk)
        self.free[:] = keep
        self.slabs = [s for s in self.slabs if id(s.memory) not in idle]
        for slab in idle.values():
            self.chunks -= slab.chunks
            slab.close()
        return sum(slab.nbytes for slab in idle.values())
