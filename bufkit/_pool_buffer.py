"""The handle :class:`bufkit.BufferPool` lends: :class:`bufkit.PooledBuffer`."""

# Theory of operation: a PooledBuffer is either a chunk's carrier (made when
# the slab is carved, lent again and again by a plain pool) or a lease (made
# per acquire by a debug or free-threaded pool, pointing at the carrier). It
# is lent while its `_lent` slot is set; release() deletes that slot, an
# atomic test-and-clear under the GIL (one C call: exactly one of several
# racing releases gets past it), then pushes itself on `_free`: a carrier to
# its class's free deque, a lease or heap buffer to the pool's Returns, which
# takes the lock and checks once more (free-threaded builds need it). Cost:
# release() is one Python call, a slot delete and one deque append.

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Final, Protocol, final

from bufkit.errors import BufferReleasedError

if TYPE_CHECKING:
    import weakref
    from collections.abc import Callable

    from bufkit._pool import BufferPool
    from bufkit._pool_slabs import SizeClass

__all__ = ["PooledBuffer", "Returns", "carrier_maker", "new_lease"]


class _Sink(Protocol):
    """Where a released PooledBuffer goes: a class's free stack, or a pool."""

    def append(self, buf: PooledBuffer, /) -> None: ...


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

    __module__ = "bufkit"
    __slots__ = (
        "__weakref__",
        "_carrier",
        "_cls",
        "_filled",
        "_free",
        "_lent",
        "_mem",
        "_pool",
        "_size",
        "_tracker",
    )

    _lent: bool  # deleted while the buffer is not lent
    _filled: int  # valid bytes from the start; 0 whenever lent afresh
    _mem: memoryview
    _free: _Sink
    _size: int
    _pool: BufferPool
    _cls: SizeClass | None  # None: a heap fallback
    _carrier: PooledBuffer | None  # for a lease: the chunk's carrier
    _tracker: weakref.ref[PooledBuffer]

    def __init__(self) -> None:
        raise TypeError("PooledBuffer is lent by BufferPool.acquire(), not built")

    @property
    def view(self) -> memoryview:
        """A writable memoryview (format ``'B'``) of exactly the chunk.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        if not hasattr(self, "_lent"):
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
    def filled(self, nbytes: int) -> None:
        if not hasattr(self, "_lent"):
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
        return not hasattr(self, "_lent")

    @property
    def is_heap(self) -> bool:
        """Whether this is a heap fallback rather than a chunk of a slab."""
        return self._cls is None

    def release(self) -> None:
        """Give the chunk back to its pool; ``view`` is unusable afterwards.

        Raises:
            BufferReleasedError: The buffer was already released.
        """
        try:
            del self._lent  # atomic: only the first release gets past this
        except AttributeError:
            raise BufferReleasedError(f"{self!r} was already released") from None
        self._filled = 0
        self._free.append(self)
        if self._pool._release_callbacks:
            self._pool._run_release_callbacks()

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
        state = "lent" if hasattr(self, "_lent") else "released"
        return f"<PooledBuffer {self._size} bytes ({kind}) {state} at {id(self):#x}>"


new_buffer: Final = PooledBuffer.__new__


@final
class _Spent:
    """Where a lease goes after its first release: a second one raises."""

    __slots__ = ()

    def append(self, buf: PooledBuffer, /) -> None:
        raise BufferReleasedError(f"{buf!r} was already released")


_SPENT: Final = _Spent()


@final
class Returns:
    """Where leases and heap buffers of one pool go back, under its lock."""

    __slots__ = ("_pool",)

    def __init__(self, pool: BufferPool) -> None:
        self._pool = pool

    def append(self, buf: PooledBuffer, /) -> None:
        pool = self._pool
        with pool._lock:
            if buf._free is not self:  # lost a race with another release
                raise BufferReleasedError(f"{buf!r} was already released")
            buf._free = _SPENT
            pool._take_back(buf)


def new_lease(pool: BufferPool, mem: memoryview, cls: SizeClass | None) -> PooledBuffer:
    """A lent PooledBuffer of ``mem`` for one lease, given back to ``pool``."""
    lease = new_buffer(PooledBuffer)  # skips __init__, which refuses users
    lease._mem = mem
    lease._size = len(mem)
    lease._cls = cls
    lease._pool = pool
    lease._carrier = None
    lease._filled = 0
    lease._free = pool._returns
    lease._lent = True
    return lease


def carrier_maker(
    pool: BufferPool, cls: SizeClass
) -> Callable[[memoryview], PooledBuffer]:
    """What makes the carrier of each chunk of a new slab of ``cls``."""

    def make(mem: memoryview) -> PooledBuffer:
        buf = new_lease(pool, mem, cls)
        del buf._lent  # free until acquire() lends it
        buf._free = cls.free
        return buf

    return make
