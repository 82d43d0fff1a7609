"""Slabs and size classes: the memory behind :class:`bufkit.BufferPool`."""

# Theory of operation: a SizeClass owns its slabs and, for each chunk, one
# PooledBuffer made when the slab is carved and kept for the slab's life (the
# chunk's "carrier", holding the chunk's memoryview). A free carrier sits on
# one of two stacks:
#  - free: what acquire() pops without the pool's lock, a deque (its
#    append and pop are documented thread-safe, and unlike a list it does
#    not reallocate as it goes from one item to none and back). `take` is
#    map(deque.pop, repeat(free, N)): one next(take) pops the top carrier
#    (IndexError when empty) and counts the attempt inside the repeat, all in
#    C, so counting acquires costs the hot path nothing and stays exact when
#    threads race (each step is one atomic C call under the GIL).
#  - reserve: free carriers that only the lock holder touches. BufferPool
#    keeps chunks here so that the peak stays exact without any work on the
#    hot path (the rule is in _pool.py).
# A class's chunks in use are its chunks minus both stacks, so releasing
# everything brings in-use back to zero by construction (invariant 4).

from __future__ import annotations

import contextlib
import mmap
import sys
from collections import Counter, deque
from collections.abc import Callable
from itertools import repeat
from operator import length_hint
from typing import TYPE_CHECKING, Final, final

from bufkit._pool_debug import release_quietly
from bufkit._pool_stats import ClassStats

if TYPE_CHECKING:
    from collections.abc import Iterator

    from bufkit._pool import PooledBuffer

__all__ = ["SizeClass"]

_TAKES: Final = sys.maxsize  # next(take) attempts before the repeat runs out
_NO_KEY: Final = object()  # a SizeClass key no int is


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
    """The slabs, free stacks and counters of one size class."""

    __slots__ = (
        "_takes",
        "chunks",
        "free",
        "key",
        "misses",
        "per_slab",
        "reserve",
        "size",
        "slabs",
        "slow",
        "take",
    )

    def __init__(self, size: int, per_slab: int) -> None:
        self.size = size
        self.per_slab = per_slab
        self.free: deque[PooledBuffer] = deque()
        self.reserve: list[PooledBuffer] = []
        self._takes = repeat(self.free, _TAKES)
        self.take: Iterator[PooledBuffer] = map(deque.pop, self._takes)
        self.key: object = _NO_KEY  # the last int acquire() mapped to this class
        self.slabs: list[_Slab] = []
        self.chunks = 0
        self.misses = 0  # next(take) calls that found `free` empty
        self.slow = 0  # chunks lent from the reserve

    @property
    def in_use(self) -> int:
        """Chunks of this class lent now: its chunks minus both stacks."""
        return self.chunks - len(self.reserve) - len(self.free)

    @property
    def acquires(self) -> int:
        """Chunks of this class lent so far."""
        return _TAKES - length_hint(self._takes) - self.misses + self.slow

    def stats(self) -> ClassStats:
        """This class's counters as a frozen snapshot (lock held)."""
        in_use = self.in_use
        acquires = self.acquires
        return ClassStats(
            size=self.size,
            slabs=len(self.slabs),
            chunks=self.chunks,
            buffers_in_use=in_use,
            acquires=acquires,
            releases=acquires - in_use,
        )

    def grow(
        self, count: int, use_mmap: bool, make: Callable[[memoryview], PooledBuffer]
    ) -> int:
        """Carve a slab of ``count`` chunks onto the reserve; return its bytes."""
        size = self.size
        nbytes = count * size
        slab = _Slab(mmap.mmap(-1, nbytes) if use_mmap else bytearray(nbytes), count)
        whole = slab.whole
        # Highest address pushed first, so the lowest is lent first.
        self.reserve.extend(
            make(whole[i : i + size]) for i in range(nbytes - size, -1, -size)
        )
        self.slabs.append(slab)
        self.chunks += count
        return nbytes

    def to_reserve(self, limit: int) -> int:
        """Move up to ``limit`` carriers from free to reserve; return how many."""
        moved = 0
        while moved < limit:
            try:
                carrier = self.free.pop()
            except IndexError:  # empty, or emptied by a lock-free acquire
                break
            self.reserve.append(carrier)
            moved += 1
        return moved

    def to_free(self, limit: int) -> int:
        """Move up to ``limit`` carriers from reserve to free; return how many."""
        count = min(limit, len(self.reserve))
        if count > 0:
            moved = self.reserve[-count:]
            del self.reserve[-count:]
            self.free.extend(moved)
        return max(count, 0)

    def trim(self) -> int:
        """Drop the slabs whose chunks are all in the reserve; return their bytes."""
        free_in = Counter(id(c._mem.obj) for c in self.reserve)
        idle = {
            id(s.memory): s for s in self.slabs if free_in[id(s.memory)] == s.chunks
        }
        if not idle:
            return 0
        keep = []
        for carrier in self.reserve:
            if id(carrier._mem.obj) in idle:
                release_quietly(carrier._mem)
            else:
                keep.append(carrier)
        self.reserve[:] = keep
        self.slabs = [s for s in self.slabs if id(s.memory) not in idle]
        for slab in idle.values():
            self.chunks -= slab.chunks
            slab.close()
        return sum(slab.nbytes for slab in idle.values())
