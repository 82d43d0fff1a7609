"""A Hypothesis state machine drives a BufferPool against a simple model."""

from __future__ import annotations

import itertools

import attrs
import pytest
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from bufkit import (
    BufferPool,
    BufferReleasedError,
    BufferTooLarge,
    PooledBuffer,
    PoolExhausted,
)


@attrs.define
class Lent:
    """A buffer the machine holds, the pattern it wrote, and its slab."""

    buf: PooledBuffer
    pattern: bytes
    cls: int | None  # None: a heap fallback
    slab: int | None


# Chunks per slab for each (class, slab_size) the machine draws, by hand:
# as many chunks as fit whole in the slab, and at least one.
PER_SLAB = {
    (16, 16): 1, (16, 64): 4, (16, 200): 12, (16, 512): 32,
    (32, 16): 1, (32, 64): 2, (32, 200): 6, (32, 512): 16,
    (64, 16): 1, (64, 64): 1, (64, 200): 3, (64, 512): 8,
    (100, 16): 1, (100, 64): 1, (100, 200): 2, (100, 512): 5,
    (256, 16): 1, (256, 64): 1, (256, 200): 1, (256, 512): 2,
}  # fmt: skip


@attrs.frozen
class Plan:
    """What the model expects acquire() to do."""

    kind: str  # "too large", "pooled", "cut" or "fallback"
    cls: int  # the class, or the size asked for when too large
    reclaim: tuple[int, ...] = ()  # idle slabs given back first, in order
    chunks: int = 0  # for "cut": the chunks of the new slab


def pattern_for(serial: int, size: int) -> bytes:
    """A byte pattern no other lease of the run writes."""
    unit = serial.to_bytes(4, "little")
    return (unit * (size // 4 + 1))[:size]


class PoolMachine(RuleBasedStateMachine):
    """Acquire, write, release, trim and check stats against a model."""

    def __init__(self) -> None:
        super().__init__()
        self.lent: list[Lent] = []
        self.released: list[PooledBuffer] = []
        self.serial = itertools.count(1)
        self.slabs: dict[int, tuple[int, int]] = {}  # id(memory) -> (class, chunks)
        self.reserved = self.in_use = self.peak = 0
        self.acquires = self.releases = self.heap = self.exhausted = 0
        self.reclaimed = 0

    @initialize(
        sizes=st.lists(
            st.sampled_from([16, 32, 64, 100, 256]), min_size=1, max_size=3, unique=True
        ),
        slab_size=st.sampled_from([16, 64, 200, 512]),
        max_bytes=st.none() | st.integers(0, 1500),
        heap=st.booleans(),
        poison=st.booleans(),
        scrub=st.booleans(),
        track=st.booleans(),
        mmap=st.booleans(),
    )
    def make_pool(
        self,
        sizes: list[int],
        slab_size: int,
        max_bytes: int | None,
        heap: bool,
        poison: bool,
        scrub: bool,
        track: bool,
        mmap: bool,
    ) -> None:
        """Build a small pool so that limits, slabs and fallbacks all come into play."""
        self.sizes = sorted(sizes)
        self.slab_size = slab_size
        self.max_bytes = max_bytes
        self.pool = BufferPool(
            size_classes=sizes,
            slab_size=slab_size,
            max_bytes=max_bytes,
            fallback="heap" if heap else "raise",
            backing="mmap" if mmap else "bytearray",
            poison=poison,
            scrub=scrub,
            track=track,
        )

    def chunks_of(self, cls: int) -> int:
        """Chunks the model's slabs of ``cls`` hold."""
        return sum(n for c, n in self.slabs.values() if c == cls)

    def idle_slabs(self) -> list[int]:
        """The model's slabs with no chunk lent, oldest first."""
        busy = {x.slab for x in self.lent}
        return [slab for slab in self.slabs if slab not in busy]

    def plan(self, size: int) -> Plan:
        """What acquire(size) should do, by the rules the docs state."""
        fits = [c for c in self.sizes if c >= size]
        if not fits:
            return Plan("too large", size)
        cls = fits[0]
        if sum(1 for x in self.lent if x.cls == cls) < self.chunks_of(cls):
            return Plan("pooled", cls)
        per_slab = PER_SLAB[cls, self.slab_size]
        if self.max_bytes is None:
            return Plan("cut", cls, chunks=per_slab)
        room = self.max_bytes - self.reserved
        reclaim = []
        if room < cls:  # give back idle slabs of other classes, smallest first
            for other in self.sizes:
                for slab in self.idle_slabs():
                    owner, chunks = self.slabs[slab]
                    if owner == other != cls and room < per_slab * cls:
                        reclaim.append(slab)
                        room += owner * chunks
        chunks = 0
        while chunks < per_slab and (chunks + 1) * cls <= room:
            chunks += 1
        return Plan("cut" if chunks else "fallback", cls, tuple(reclaim), chunks)

    @rule(size=st.integers(1, 600))
    def acquire(self, size: int) -> None:
        """Acquire, check the outcome against the model, write a fresh pattern."""
        plan = self.plan(size)
        for gone in plan.reclaim:
            owner, chunks = self.slabs.pop(gone)
            self.reserved -= owner * chunks
            self.reclaimed += 1
        if plan.kind == "too large" and self.pool.fallback == "raise":
            before = self.pool.stats()
            with pytest.raises(BufferTooLarge):
                self.pool.acquire(size)
            assert self.pool.stats() == before
            return
        if plan.kind == "fallback" and self.pool.fallback == "raise":
            with pytest.raises(PoolExhausted):
                self.pool.acquire(size)
            self.exhausted += 1
            return
        buf = self.pool.acquire(size)
        heap = plan.kind in ("too large", "fallback")
        assert buf.size == plan.cls
        assert buf.is_heap == heap
        slab = None if buf.is_heap else id(buf.view.obj)
        if plan.kind == "cut":
            assert slab is not None
            assert slab not in self.slabs
            self.slabs[slab] = (plan.cls, plan.chunks)
            self.reserved += plan.chunks * plan.cls
        elif plan.kind == "pooled":
            assert slab is not None
            assert self.slabs[slab][0] == plan.cls
        self.heap += heap
        pattern = pattern_for(next(self.serial), buf.size)
        buf.view[:] = pattern
        self.lent.append(Lent(buf, pattern, None if heap else plan.cls, slab))
        self.acquires += 1
        self.in_use += buf.size
        self.peak = max(self.peak, self.in_use)

    @precondition(lambda self: self.lent)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        """Release one lent buffer, in any order."""
        index = data.draw(st.integers(0, len(self.lent) - 1))
        entry = self.lent.pop(index)
        entry.buf.release()
        self.released.append(entry.buf)
        self.releases += 1
        self.in_use -= entry.buf.size

    @precondition(lambda self: self.lent)
    @rule(data=st.data())
    def rewrite(self, data: st.DataObject) -> None:
        """Write a new pattern into a lent buffer."""
        entry = data.draw(st.sampled_from(self.lent))
        entry.pattern = pattern_for(next(self.serial), entry.buf.size)
        entry.buf.view[:] = entry.pattern

    def idle_handles(self) -> list[PooledBuffer]:
        """Released buffers not lent again (a plain pool reuses the object)."""
        lent = {id(x.buf) for x in self.lent}
        return [buf for buf in self.released if id(buf) not in lent]

    @precondition(lambda self: self.idle_handles())
    @rule(data=st.data())
    def release_again(self, data: st.DataObject) -> None:
        """A second release raises and changes nothing."""
        buf = data.draw(st.sampled_from(self.idle_handles()))
        with pytest.raises(BufferReleasedError):
            buf.release()
        with pytest.raises(BufferReleasedError):
            buf.view  # noqa: B018

    @rule()
    def trim(self) -> None:
        """trim() frees exactly the model's slabs that hold no lent chunk."""
        idle = self.idle_slabs()
        expected = sum(c * n for c, n in (self.slabs.pop(s) for s in idle))
        assert self.pool.trim() == expected
        self.reserved -= expected

    @invariant()
    def patterns_intact(self) -> None:
        """No two lent chunks overlap: each still holds its own pattern."""
        for entry in getattr(self, "lent", []):
            assert bytes(entry.buf.view) == entry.pattern

    @invariant()
    def stats_match_model(self) -> None:
        """stats() agrees with the model, and max_bytes holds."""
        if not hasattr(self, "pool"):
            return
        stats = self.pool.stats()
        heap_lent = [x for x in self.lent if x.cls is None]
        assert stats.buffers_in_use == len(self.lent)
        assert stats.bytes_in_use == self.in_use
        assert stats.peak_bytes_in_use == self.peak
        assert stats.bytes_reserved == self.reserved
        assert stats.slabs == len(self.slabs)
        assert (stats.acquires, stats.releases) == (self.acquires, self.releases)
        assert (stats.heap_fallbacks, stats.exhausted) == (self.heap, self.exhausted)
        assert stats.slabs_reclaimed == self.reclaimed
        assert stats.heap_buffers_in_use == len(heap_lent)
        assert stats.heap_bytes_in_use == sum(x.buf.size for x in heap_lent)
        for cs in stats.per_class:
            assert cs.chunks == self.chunks_of(cs.size)
            assert cs.buffers_in_use == sum(1 for x in self.lent if x.cls == cs.size)
        if self.max_bytes is not None:
            assert stats.bytes_reserved <= self.max_bytes

    def teardown(self) -> None:
        """Releasing everything brings the pool back to zero in use."""
        if not hasattr(self, "pool"):
            return
        for entry in self.lent:
            entry.buf.release()
        stats = self.pool.stats()
        assert (stats.buffers_in_use, stats.bytes_in_use) == (0, 0)
        assert stats.releases == stats.acquires
        self.pool.trim()
        assert self.pool.stats().bytes_reserved == 0


TestPoolMachine = PoolMachine.TestCase
