"""Slabs and size classes: the memory behind :class:`bufkit.BufferPool`."""

# Theory of operation: a _SizeClass owns its slabs and a free list of chunk
# views. grow() carves a new slab into disjoint, equal chunks (one memoryview
# each, made once); trim() drops the slabs whose chunks are all free. The
# caller (BufferPool) holds its lock around every call and keeps the lent
# chunks, so these classes never see a chunk that is lent (invariant 4).

from __future__ import annotations

import contextlib
import mmap
from collections import Counter
from typing import final

from bufkit._pool_debug import release_quietly
from bufkit._pool_stats import ClassStats

__all__ = ["positive_int"]


def positive_int(name: str, value: object, minimum: int = 1) -> int:
    """Return ``value`` as an int, or raise if it is not an int >= ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < minimum:
        word = "positive" if minimum == 1 else f">= {minimum}"
        raise ValueError(f"{name} must be {word}, got {value}")
    return int(value)


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
class _SizeClass:
    """The slabs, free list and counters of one size class."""

    __slots__ = ("acquires", "chunks", "free", "in_use", "per_slab", "size", "slabs")

    def __init__(self, size: int, per_slab: int) -> None:
        self.size = size
        self.per_slab = per_slab
        self.free: list[memoryview] = []
        self.slabs: list[_Slab] = []
        self.chunks = 0
        self.in_use = 0
        self.acquires = 0

    def stats(self) -> ClassStats:
        """This class's counters as a frozen snapshot."""
        return ClassStats(
            size=self.size,
            slabs=len(self.slabs),
            chunks=self.chunks,
            buffers_in_use=self.in_use,
            acquires=self.acquires,
            releases=self.acquires - self.in_use,
        )

    def grow(self, count: int, *, use_mmap: bool) -> int:
        """Carve a new slab of ``count`` chunks onto the free list; return its bytes."""
        size = self.size
        nbytes = count * size
        slab = _Slab(mmap.mmap(-1, nbytes) if use_mmap else bytearray(nbytes), count)
        whole = slab.whole
        # Highest address pushed first, so the lowest is lent first.
        self.free.extend(whole[i : i + size] for i in range(nbytes - size, -1, -size))
        self.slabs.append(slab)
        self.chunks += count
        return nbytes

    def trim(self) -> int:
        """Drop the slabs with no chunk lent; return the bytes dropped."""
        free_in = Counter(id(chunk.obj) for chunk in self.free)
        idle = {
            id(s.memory): s for s in self.slabs if free_in[id(s.memory)] == s.chunks
        }
        if not idle:
            return 0
        keep = []
        for chunk in self.free:
            if id(chunk.obj) in idle:
                release_quietly(chunk)
            else:
                keep.append(chunk)
        self.free[:] = keep
        self.slabs = [s for s in self.slabs if id(s.memory) not in idle]
        for slab in idle.values():
            self.chunks -= slab.chunks
            slab.close()
        return sum(slab.nbytes for slab in idle.values())
