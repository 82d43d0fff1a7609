"""``PooledProtocol``: pooled receive buffers for any asyncio transport.

Theory of operation
-------------------
asyncio calls ``get_buffer(sizehint)`` just before it reads and
``buffer_updated(nbytes)`` once the read filled the buffer. On selector loops,
on uvloop (libuv's alloc and read callbacks) and inside ``SSLProtocol`` (CPython's
and uvloop's) both calls happen in the same loop callback, and only once the
socket is readable, so a chunk borrowed in ``get_buffer`` and given back in
``buffer_updated`` keeps an idle connection at zero pool bytes (docs/design.md
invariant 5) and the whole loop at one lent chunk, reused hot from the pool's
LIFO free list.

The corner case is a ``get_buffer`` that no ``buffer_updated`` follows: the read
hit EAGAIN, EOF or an error, or ``SSLProtocol`` found only a partial TLS record
or a post-handshake message (it asks for a buffer as soon as the handshake
completes). The chunk then comes back at the first of: the next
``get_buffer``, ``eof_received``, ``connection_lost``, or the end of the
current loop iteration, through a per-loop sweeper that runs at most once per
iteration (one ``call_soon`` however many connections read). No chunk is lent
twice and every lent chunk comes back (docs/design.md invariant 4).

The Windows proactor loop is different: it calls ``get_buffer`` when it
*posts* an overlapped read and ``buffer_updated`` when the read completes, one
or many iterations later, so the chunk must stay lent in between: there an
idle plain-TCP connection holds one chunk (the sweeper is off for proactor
transports; TLS over the proactor reads into ``SSLProtocol``'s own buffer and
is swept as usual).

We lend a fresh ``memoryview`` cast to ``'B'`` of the chunk, never the pool's
own view and never a ``bytearray``: uvloop keeps a buffer export on the lent
object until its read callback returns, and ``SSLProtocol`` slices what it is
given (a sliced ``bytearray`` is a copy, CPython gh-156275).

Cost model: per read, one ``acquire`` and one ``release`` of the pool and one
slice for the handler (none when the read filled the chunk); per connection
and loop iteration with reads, one list append for the sweeper; per loop
iteration with reads, one ``call_soon``.
"""

from __future__ import annotations

import asyncio
import weakref
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bufkit import BufferPool, PooledBuffer, ReadHandler

__all__ = ["PooledProtocol"]

_PROACTOR_MODULE: Final = "asyncio.proactor_events"


class _Sweeper:
    """Gives back, once per loop iteration, chunks that no read filled."""

    __slots__ = ("__weakref__", "_lent", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._lent: list[PooledProtocol] = []
        self._scheduled = False

    def watch(self, protocol: PooledProtocol) -> None:
        """Check ``protocol`` at the end of this iteration."""
        self._lent.append(protocol)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self._sweep)

    def _sweep(self) -> None:
        self._scheduled = False
        lent, self._lent = self._lent, []
        for protocol in lent:
            protocol._watched = False
            protocol._give_back()


_SWEEPERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Sweeper] = (
    weakref.WeakKeyDictionary()
)


def _sweeper_for(transport: asyncio.BaseTransport) -> _Sweeper | None:
    """The running loop's sweeper, or ``None`` where reads span iterations."""
    if type(transport).__module__ == _PROACTOR_MODULE:
        return None
    loop = asyncio.get_running_loop()
    sweeper = _SWEEPERS.get(loop)
    if sweeper is None:
        sweeper = _SWEEPERS[loop] = _Sweeper(loop)
    return sweeper


class PooledProtocol(asyncio.BufferedProtocol):
    """An :class:`asyncio.BufferedProtocol` that reads into pooled chunks.

    Pass it (or a subclass, or a factory that builds one) wherever asyncio
    takes a protocol factory: ``loop.create_server``, ``loop.create_connection``,
    ``loop.start_tls``, with or without ``ssl=``, on the default loop or
    uvloop. ``get_buffer`` borrows a chunk from ``pool`` only when the loop is
    about to read, ``buffer_updated`` hands the bytes just read to
    :meth:`data_received` as a ``memoryview`` and gives the chunk back, so an
    idle connection holds no pool bytes.

    Received bytes go to ``handler`` (a :class:`bufkit.ReadHandler`, such as
    a :class:`bufkit.LengthPrefixedFramer`), or to a subclass's
    :meth:`data_received` and :meth:`eof_received`. The view is valid only
    during the call: keep ``bytes(view)``, never the view itself, and never
    pass it to ``transport.write``: since Python 3.12 and on uvloop the
    transport may keep a reference to unsent data rather than a copy.

    A subclass that overrides :meth:`connection_made` or
    :meth:`connection_lost` must call the base method.

    Args:
        pool: Lends the receive chunks; shared by many protocols.
        handler: Receives the bytes and the end of file. If it has a
            ``close()`` method (framers do), it is called on
            :meth:`connection_lost` so partial frames go back to the pool.
        read_size: Bytes to ask the pool for on each read. By default the
            loop's size hint, capped at the pool's largest class (selector
            loops give no hint, uvloop suggests 64 KiB). Lower it on the
            Windows proactor loop, where every idle connection holds one
            chunk.

    Raises:
        ValueError: ``read_size`` is not positive.
    """

    transport: asyncio.BaseTransport | None
    """The transport, from :meth:`connection_made` until the end.

    A plain attribute, as in asyncio code: a subclass may assign it.
    """

    def __init__(
        self,
        pool: BufferPool,
        handler: ReadHandler | None = None,
        *,
        read_size: int | None = None,
    ) -> None:
        if read_size is not None and read_size <= 0:
            raise ValueError(f"read_size must be positive, got {read_size}")
        self._pool = pool
        self._handler = handler
        self._read_size = read_size
        self._largest = pool.largest_class
        self._lent: PooledBuffer | None = None
        self._lent_view: memoryview | None = None
        self._sweeper: _Sweeper | None = None
        self._watched = False  # on the sweeper's list for this iteration
        self.transport = None

    @property
    def pool(self) -> BufferPool:
        """The pool this protocol borrows its receive chunks from."""
        return self._pool

    @property
    def lent_bytes(self) -> int:
        """Pool bytes this protocol holds right now (0 between reads)."""
        lent = self._lent
        return 0 if lent is None else lent.size

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        """Remember the transport; subclasses must call this first.

        Code ported from :class:`asyncio.Protocol` may go on assigning
        ``self.transport = transport`` after the call.
        """
        self.transport = transport
        self._sweeper = _sweeper_for(transport)

    def get_buffer(self, sizehint: int) -> memoryview:
        """Lend a pooled chunk for the read the loop is about to make.

        Called by asyncio, not by you.

        Raises:
            PoolExhausted: The pool has reached its ``max_bytes`` (the
                transport then closes the connection with this error).
        """
        want = self._read_size
        if want is None:
            want = sizehint if 0 < sizehint <= self._largest else self._largest
        lent = self._lent
        view = self._lent_view
        if lent is not None and view is not None and len(view) >= want:
            return view  # the last read was not filled: lend the chunk again
        self._give_back()
        lent = self._lent = self._pool.acquire(want)
        view = self._lent_view = lent.view.cast("B")
        if self._sweeper is not None and not self._watched:
            self._watched = True
            self._sweeper.watch(self)
        return view

    def buffer_updated(self, nbytes: int) -> None:
        """Hand the bytes just read to the handler, then give the chunk back.

        Called by asyncio, not by you.
        """
        lent, view = self._lent, self._lent_view
        self._lent = self._lent_view = None
        if lent is None or view is None:
            raise RuntimeError("buffer_updated() without a lent buffer")
        try:
            self.data_received(view if nbytes == len(view) else view[:nbytes])
        finally:
            lent.release()

    def data_received(self, view: memoryview) -> None:
        """Take the bytes just received; by default, pass them to the handler.

        Override it in a subclass (the migration path from
        :class:`asyncio.Protocol`, whose ``data_received`` gets ``bytes``).

        Args:
            view: The received bytes, valid only during the call.
        """
        if self._handler is not None:
            self._handler.data_received(view)

    def eof_received(self) -> bool | None:
        """The peer closed its side; by default, ask the handler.

        Returns:
            A true value to keep the writing side open (asyncio semantics).
        """
        self._give_back()
        if self._handler is not None:
            return self._handler.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        """Give back every chunk; subclasses must call this.

        Args:
            exc: The error that broke the connection, or ``None``.
        """
        self._give_back()
        close = getattr(self._handler, "close", None)
        if callable(close):
            close()

    def _give_back(self) -> None:
        """Return a chunk that no ``buffer_updated`` consumed."""
        lent = self._lent
        if lent is not None:
            self._lent = self._lent_view = None
            lent.release()
