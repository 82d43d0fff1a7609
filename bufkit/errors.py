"""Every exception bufkit raises on purpose.

Each error subclasses :class:`BufkitError` and the closest builtin, so code that
already catches ``ValueError`` or ``RuntimeError`` keeps working. Socket errors
(:class:`OSError` and its subclasses) are never wrapped: the very object the
socket raised fails pending completions and reaches the caller.
"""

from __future__ import annotations

__all__ = [
    "BufferLeakWarning",
    "BufferReleasedError",
    "BufferTooLarge",
    "BufkitError",
    "ForeignBufferError",
    "FrameTooLarge",
    "FramingError",
    "PoolExhausted",
    "QueueClosedError",
    "QueueFailedError",
    "UnsupportedLoopError",
]


class BufkitError(Exception):
    """Base class of every error that bufkit raises on purpose.

    Catch it to handle any bufkit misuse or limit in one place. Errors of the
    operating system are not bufkit errors: they reach you as the original
    :class:`OSError`.
    """


class PoolExhausted(BufkitError, MemoryError):
    """Raised by :meth:`bufkit.BufferPool.acquire` when the pool cannot lend.

    That is when lending would take the pool past its ``max_bytes`` and the
    pool was built to raise rather than to fall back to a counted heap buffer.
    It is temporary: a buffer given back makes room again
    (:meth:`bufkit.BufferPool.add_release_callback` tells when). The message
    names the requested size and the limit that refused it. A request larger
    than the largest size class raises :class:`BufferTooLarge` instead.
    """


class BufferTooLarge(BufkitError, ValueError):
    """Raised by :meth:`bufkit.BufferPool.acquire` for a size no class holds.

    That is when ``min_size`` is larger than the pool's largest size class and
    the pool was built with ``fallback="raise"``. It is a :class:`ValueError`,
    not a :class:`PoolExhausted`: waiting for buffers to come back cannot
    help, since no release makes a class larger. The pool is left unchanged
    (the refusal is not counted in ``exhausted``). The message names the size
    and the largest class.
    """


class BufferReleasedError(BufkitError, ValueError):
    """Raised when a :class:`bufkit.PooledBuffer` is used after its release.

    That is a second :meth:`~bufkit.PooledBuffer.release`, or reading
    :attr:`~bufkit.PooledBuffer.view` of a buffer already given back. The message
    names the buffer.
    """


class ForeignBufferError(BufkitError, ValueError):
    """Raised when a buffer is given back to a pool that did not lend it."""


class QueueClosedError(BufkitError, RuntimeError):
    """Raised by a write to a :class:`bufkit.WriteQueue` after ``close()``.

    The queue was closed on purpose: pending data may still be flushed, but no
    new data is accepted. The message names the queue.
    """


class QueueFailedError(BufkitError, RuntimeError):
    """Raised by a write to a :class:`bufkit.WriteQueue` that has failed.

    The queue broke (a socket error, or :meth:`~bufkit.WriteQueue.fail`); the
    exception that broke it is this error's ``__cause__``.
    """


class FramingError(BufkitError, ValueError):
    """Raised by a framer when the peer's bytes break the framing rules.

    For example a length header that is negative or smaller than the header
    itself. The connection's byte stream cannot be trusted after it.
    """


class FrameTooLarge(FramingError):
    """Raised by a framer when a frame's payload would exceed its ``max_frame``.

    The payload is what ``on_frame`` would receive: the length header and the
    delimiter are not counted. A length framer raises it on reading a header
    that announces more; a delimiter framer once ``max_frame + len(delimiter)``
    bytes of a frame went by with no delimiter among them. Either way before
    the oversized data is buffered, so a hostile peer cannot make the process
    hold more than the limit. The message names the payload size when it is
    known, and the limit.
    """


class UnsupportedLoopError(BufkitError, RuntimeError):
    """Raised by an adapter when the event loop lacks what it needs.

    For example the readiness stream of :mod:`bufkit.adapters.asyncio` on a loop
    without ``add_reader`` (the Windows proactor loop). The message names the
    loop.
    """


class BufferLeakWarning(ResourceWarning):
    """Warned when a :class:`bufkit.PooledBuffer` is garbage-collected unreleased.

    Only pools built with ``track=True`` watch for it. The message names the
    buffer and shows the stack of the :meth:`~bufkit.BufferPool.acquire` call
    that lent it. It is a :class:`ResourceWarning`, so Python hides it unless
    warnings are enabled (``python -W default``, or pytest).
    """
