"""The readiness-to-read adapter: borrow a buffer only while a socket is readable.

Theory of operation
-------------------
:meth:`ReadinessReader.on_readable` is called when the event loop reports the
socket readable. Each read borrows one chunk from the :class:`~bufkit.BufferPool`,
``recv_into``\\ s it, hands exactly the filled slice to the handler and gives the
chunk back in a ``finally`` clause, so the buffer returns to the pool whatever
the handler or the socket raises (docs/design.md invariant 4). Between events
the reader holds no buffer at all: an idle connection costs zero pool bytes
(docs/design.md invariant 5). The one exception is
:meth:`ReadinessReader.take_buffer`, by which the handler takes the chunk and
the duty to release it (a zero-copy forward to a :class:`~bufkit.WriteQueue`).

The reader reads again only while the last read filled its buffer (more data is
likely waiting) and the per-event budget lasts; a short read ends the event
without another syscall, ``BlockingIOError`` ends it too (as do
``ssl.SSLWantReadError``/``SSLWantWriteError``: a TLS socket that got part of a
record). ``recv_into`` returning 0 is end of file: the handler's
``eof_received`` runs once and the reader never reads again. Socket errors
propagate unchanged; ``InterruptedError`` is retried.

The read size adapts like Netty's ``AdaptiveRecvByteBufAllocator``: it walks the
pool's size classes, one class up after a read that filled the buffer, one class
down after ``SHRINK_AFTER`` consecutive reads that would have fit in the class
below. So a bulk stream reads in the largest class and a chatty protocol in the
smallest, which matters when handlers keep buffers (``take_buffer``).

So that a connection can hand it the socket itself, with no wrapper frame
around each ``recv_into``, the reader also counts the bytes it hands over
(``bytes_received``), stops when the handler sets ``paused`` (checked before
each read), and says whether an error came from the socket
(``recv_failed``) rather than from the handler or the pool.

With ``read_bytes`` (for handlers that need :class:`bytes` anyway, such as
Twisted protocols) a read that follows a read that filled its buffer is made
with ``recv(2 * read_size)`` instead: the bytes object is the only allocation,
and it is mostly data, since the read is expected to come back big too. It
asks twice the read size so that a burst of about one read size, the usual
shape of a pipelined peer, ends in that one read: a read that returns less
than it asked ends the event, with no second read that would only block.
Bytes mode lasts while reads return at least ``read_size``. Its
``data_received`` gets ``memoryview(data)``, whose ``obj`` is ``data`` itself,
so the handler keeps it without another copy. Any other read keeps the pooled
path, so a read that may come back short never allocates the whole read size,
and an idle connection still holds nothing (invariant 5).

Cost model: per read, one ``acquire``/``release`` pair (O(1), LIFO), one
``recv_into`` syscall, one ``memoryview`` slice unless the read filled the
buffer, and one handler call. No per-connection memory besides this object.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Any, Final, final

from bufkit._checks import require_int, would_block
from bufkit._pool import BufferPool, PooledBuffer
from bufkit._protocols import ReadHandler, SupportsRecvInto

__all__ = [
    "DEFAULT_INITIAL_SIZE",
    "DEFAULT_READ_BUDGET",
    "SHRINK_AFTER",
    "ReadinessReader",
]

DEFAULT_READ_BUDGET: Final = 16
"""Reads per :meth:`ReadinessReader.on_readable` call, so one busy connection
cannot starve the others of a single-threaded loop."""

DEFAULT_INITIAL_SIZE: Final = 2048
"""The first read size when none is given (rounded up to a size class), as in
Netty: most requests fit, and a bulk stream climbs the classes in a few reads."""

SHRINK_AFTER: Final = 3
"""Consecutive small reads (ones that fit in the class below) before the read
size steps down a class. Netty steps down after two; bufkit's default classes
are 4 to 8 times apart, so it waits one read longer before a big step."""


@final
class ReadinessReader:
    """Read from a socket into pool buffers borrowed only while it is readable.

    Call :meth:`on_readable` whenever the event loop reports the socket
    readable. The handler's ``data_received(view)`` gets exactly the bytes
    received, in order; ``view`` points into a pool buffer that is released as
    soon as the call returns, so it is **valid only during the call**: copy
    what you keep, feed a framer (:class:`~bufkit.LengthPrefixedFramer`,
    :class:`~bufkit.DelimiterFramer`), or take the buffer with
    :meth:`take_buffer`.

    Args:
        pool: Where read buffers are borrowed from.
        handler: Receives ``data_received(view)`` and, once, ``eof_received()``.
        read_budget: The most ``recv_into`` calls per :meth:`on_readable`
            (``InterruptedError`` retries do not count).
        initial_size: The first read size, at most the pool's largest class.
            With ``adaptive`` it is rounded up to a size class of the pool;
            without, every read asks for exactly this many bytes. Defaults to
            the smallest class of at least 2048 bytes (or the largest class,
            if all are smaller).
        adaptive: Move the read size between the pool's classes as traffic
            changes: one class up after a read that fills the buffer, one
            down after 3 reads in a row that would fit in the class below
            (as Netty's adaptive allocator). ``False`` keeps it fixed.
        read_bytes: Read with ``sock.recv(2 * read_size)`` whenever the
            last read filled its buffer (a pooled one) or returned at least
            ``read_size`` (a bytes one), and hand the handler ``memoryview(data)``
            of the new :class:`bytes` object (its ``obj`` is that object,
            which the handler may keep); other reads stay pooled. The socket
            must then have ``recv``, and :meth:`take_buffer` refuses such a
            read.

    Raises:
        TypeError: ``handler`` lacks ``data_received`` or ``eof_received``,
            or ``read_budget`` or ``initial_size`` is not an int.
        ValueError: ``read_budget`` is below 1, or ``initial_size`` is below 1
            or above the pool's largest class.
    """

    __module__ = "bufkit"
    __slots__ = (
        "_adaptive",
        "_bytes_now",
        "_classes",
        "_eof",
        "_full",
        "_handler",
        "_index",
        "_keep_open",
        "_lent",
        "_paused",
        "_pool",
        "_read_budget",
        "_read_bytes",
        "_read_size",
        "_received",
        "_recv_failed",
        "_small_reads",
        "_small_size",
        "_trim",
    )

    def __init__(
        self,
        pool: BufferPool,
        handler: ReadHandler,
        *,
        read_budget: int = DEFAULT_READ_BUDGET,
        initial_size: int | None = None,
        adaptive: bool = True,
        read_bytes: bool = False,
    ) -> None:
        for method in ("data_received", "eof_received"):
            if not callable(getattr(handler, method, None)):
                raise TypeError(f"handler {handler!r} has no {method}() method")
        require_int("read_budget", read_budget)
        if initial_size is not None:
            require_int("initial_size", initial_size)
        if read_budget < 1:
            raise ValueError(f"read_budget must be at least 1, not {read_budget}")
        # Made once per connection (on its first read): no Python-level
        # loops here, the class is found by bisection.
        classes = tuple(pool.size_classes)
        largest = classes[-1]
        if initial_size is None:  # the smallest class that holds the default
            initial_size = classes[
                bisect_left(classes, min(DEFAULT_INITIAL_SIZE, largest))
            ]
        elif not 1 <= initial_size <= largest:
            raise ValueError(
                f"initial_size {initial_size} is outside 1..{largest}, the sizes "
                f"the pool's classes {classes} can serve"
            )
        self._pool = pool
        self._handler = handler
        self._read_budget = read_budget
        self._adaptive = adaptive
        self._classes = classes
        self._index = bisect_left(classes, initial_size)  # the smallest that fits
        self._read_size = classes[self._index] if adaptive else initial_size
        # Reads of at most _small_size bytes would fit the class below.
        self._small_size = classes[self._index - 1] if adaptive and self._index else 0
        # Only a fixed size between classes needs the chunk cut down to it.
        self._trim = self._read_size != classes[self._index]
        self._small_reads = 0
        self._eof = False
        self._keep_open = False
        self._lent: PooledBuffer | None = None
        self._paused = False
        self._received = 0
        self._recv_failed = False
        self._read_bytes = bool(read_bytes)
        self._full = False  # the last read that returned data filled its buffer
        self._bytes_now = False  # data_received runs on a bytes read

    def __repr__(self) -> str:
        state = "at EOF" if self._eof else "open"
        return f"<ReadinessReader {state} read_size={self._read_size}>"

    @property
    def at_eof(self) -> bool:
        """Whether end of file was seen; the reader never reads again then."""
        return self._eof

    @property
    def keep_open(self) -> bool:
        """Whether the handler's ``eof_received`` asked to keep writing.

        That is, it returned a true value (asyncio's semantics: the transport
        then stays open for writing). ``False`` before end of file.
        """
        return self._keep_open

    @property
    def paused(self) -> bool:
        """Whether reading is paused: :meth:`on_readable` then reads nothing.

        Set it from inside ``data_received`` to end the current
        :meth:`on_readable` call after that chunk (asyncio's
        ``pause_reading``); clear it to read again at the next call.
        """
        return self._paused

    @paused.setter
    def paused(self, value: bool) -> None:
        self._paused = bool(value)

    @property
    def bytes_received(self) -> int:
        """Bytes handed to ``data_received`` so far."""
        return self._received

    @property
    def recv_failed(self) -> bool:
        """Whether the last :meth:`on_readable` call raised the socket's error.

        True when ``recv_into`` raised (an :class:`OSError` that does not
        mean "would block"), so a caller can tell the socket's errors from
        the handler's and the pool's without wrapping the socket.
        """
        return self._recv_failed

    @property
    def read_bytes(self) -> bool:
        """Whether reads that follow a full read are made with ``recv``."""
        return self._read_bytes

    @property
    def read_size(self) -> int:
        """How many bytes the next ``recv_into`` asks for."""
        return self._read_size

    def on_readable(self, sock: SupportsRecvInto) -> bool:
        """Read what the socket has, handing each chunk to the handler.

        Reads again while the last read filled its buffer and the read budget
        lasts; stops at ``BlockingIOError`` (or a TLS socket's
        ``SSLWantReadError``/``SSLWantWriteError``) or after a read that did
        not fill the buffer (without another syscall). Every buffer goes back to the
        pool before this returns or raises, unless the handler took it.

        Args:
            sock: The readable socket (anything with ``recv_into``; with
                ``read_bytes``, also ``recv``).

        A TLS socket can hold decrypted bytes that the event loop does not
        see: if this returns ``True`` while ``sock.pending()`` is non-zero,
        call it again rather than waiting for readiness.

        Returns:
            ``True`` while the connection is open for reading; ``False`` once
            end of file was seen (then, or by an earlier call: the socket is
            not read again and ``eof_received`` is not called again).

        Raises:
            TypeError: ``read_bytes`` is on and ``sock`` has no ``recv``.
            PoolExhausted: The pool could not lend a read buffer.
            FramingError: From a framer used as the handler (any exception of
                the handler propagates unchanged, after the buffer went back).
            OSError: The socket's error (``ConnectionResetError`` ...), unchanged.
        """
        if self._eof:
            return False
        self._recv_failed = False
        # The hot path, kept in one function: locals instead of attribute
        # chains, no call per read besides acquire, recv_into, the handler
        # and release (benchmarks/test_bench_reader.py). Methods are called
        # on their objects (no bound method is made), and the chunk's memory
        # is read from the buffer just lent, not through its checked property.
        pool = self._pool
        handler = self._handler
        trim = self._trim
        budget = self._read_budget
        recv: Any = None
        if self._read_bytes:
            recv = getattr(sock, "recv", None)
            if not callable(recv):
                raise TypeError(f"read_bytes needs a socket with recv(), not {sock!r}")
        while budget:
            if self._paused:  # set by the handler: end this call here
                return True
            budget -= 1
            size = self._read_size
            if recv is not None and self._full:
                # Twice the read size: a burst that the last read showed to
                # be big usually ends within it, and a short answer then ends
                # the event with no read that would only block.
                asked = size + size
                got = self._read_into_bytes(recv, asked)
                if got < 0:
                    return True
                if got >= size:  # bytes mode again next time
                    if got < asked:
                        self._small_reads = 0
                        return True
                    if self._adaptive:
                        self._record_full()
                    continue
                self._full = False
            else:
                buf = pool.acquire(size)
                self._lent = buf
                try:
                    view = buf._mem[:size] if trim else buf._mem
                    try:
                        got = sock.recv_into(view)
                    except InterruptedError:
                        got = self._recv_after_eintr(sock, view)
                    except BlockingIOError:  # the usual end of a stream's reads
                        return True
                    except OSError as exc:  # raised unchanged unless it would block
                        if would_block(exc):
                            return True
                        self._recv_failed = True
                        raise
                    if got < 0:
                        return True
                    if got:
                        buf._filled = got  # what take_buffer() hands over
                        self._received += got
                        handler.data_received(view if got == size else view[:got])
                finally:
                    if self._lent is not None:
                        self._lent = None
                        buf.release()
                if recv is not None:
                    self._full = got == size
            if got < size:
                if got == 0:
                    return self._end_of_file()
                if got <= self._small_size:
                    self._record_small()
                elif self._small_reads:
                    self._small_reads = 0
                return True
            if self._adaptive:
                self._record_full()
        return True

    def _read_into_bytes(self, recv: Any, size: int) -> int:
        """One read into a new bytes object, handed over whole; -1 if it would block."""
        while True:
            try:
                data: bytes = recv(size)
                break
            except InterruptedError:
                continue
            except OSError as exc:  # raised unchanged unless it would block
                if would_block(exc):
                    return -1
                self._recv_failed = True
                raise
        got = len(data)
        if got:
            self._received += got
            self._bytes_now = True
            try:
                self._handler.data_received(memoryview(data))
            finally:
                self._bytes_now = False
        return got

    def _record_full(self) -> None:
        """A read filled its buffer: more is likely waiting, go up a class."""
        self._small_reads = 0
        if self._index + 1 < len(self._classes):
            self._set_class(self._index + 1)

    def _record_small(self) -> None:
        """A read fit the class below: after several in a row, go down."""
        self._small_reads += 1
        if self._small_reads >= SHRINK_AFTER:
            self._small_reads = 0
            self._set_class(self._index - 1)

    def _set_class(self, index: int) -> None:
        """Read in class ``index`` from now on."""
        self._index = index
        self._read_size = self._classes[index]
        self._small_size = self._classes[index - 1] if index else 0

    def _end_of_file(self) -> bool:
        """Remember end of file and tell the handler, once."""
        self._eof = True
        self._keep_open = bool(self._handler.eof_received())
        return False

    def take_buffer(self) -> PooledBuffer:
        """Take ownership of the buffer behind the current ``data_received`` view.

        Call it only from inside the handler's ``data_received``. The reader
        then does not release the buffer: you must, or hand it to something
        that will, such as :meth:`bufkit.WriteQueue.write`. The view's bytes
        are the first ``len(view)`` bytes of the buffer. A zero-copy echo::

            def data_received(self, view: memoryview) -> None:
                queue.write(reader.take_buffer(), nbytes=len(view))

        Returns:
            The :class:`~bufkit.PooledBuffer` holding the bytes just received.

        Raises:
            RuntimeError: No ``data_received`` call is in progress, its
                buffer was already taken, or its read came as bytes
                (``read_bytes``).
        """
        buf = self._lent
        if buf is None:
            if self._bytes_now:
                raise RuntimeError(
                    "take_buffer() has no pool buffer to hand over: this read came "
                    "as bytes (read_bytes=True); keep the view's obj instead"
                )
            raise RuntimeError(
                "take_buffer() works only inside data_received, once per call"
            )
        self._lent = None
        return buf

    def _recv_after_eintr(self, sock: SupportsRecvInto, view: memoryview) -> int:
        """Retry a read that ``EINTR`` interrupted; -1 when it would block."""
        while True:
            try:
                return sock.recv_into(view)
            except InterruptedError:
                continue
            except OSError as exc:
                if would_block(exc):
                    return -1
                self._recv_failed = True
                raise
