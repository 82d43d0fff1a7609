"""The error classes are both bufkit errors and the closest builtins."""

from __future__ import annotations

from typing import assert_type

import bufkit


def handle(exc: BaseException) -> str:
    """Narrow an exception the way a user's handler would."""
    if isinstance(exc, bufkit.PoolExhausted):
        assert_type(exc, bufkit.PoolExhausted)
        return "exhausted"
    if isinstance(exc, bufkit.BufkitError):
        return "bufkit"
    return "other"


released: ValueError = bufkit.BufferReleasedError("buffer released")
closed: RuntimeError = bufkit.QueueClosedError("queue closed")
too_large: bufkit.FramingError = bufkit.FrameTooLarge("frame too large")
wrong: bufkit.QueueClosedError = bufkit.QueueFailedError("x")  # type: ignore[assignment]
too_big: ValueError = bufkit.BufferTooLarge("size 70000 exceeds 65536")
too_big_is_not_exhausted: bufkit.PoolExhausted = bufkit.BufferTooLarge("x")  # type: ignore[assignment]
foreign: ValueError = bufkit.ForeignBufferError("lent by another pool")
no_loop: RuntimeError = bufkit.UnsupportedLoopError("no add_reader")
failed: RuntimeError = bufkit.QueueFailedError("failed")
leak: ResourceWarning = bufkit.BufferLeakWarning("leaked")
not_os: OSError = bufkit.BufkitError("x")  # type: ignore[assignment]
not_bufkit: bufkit.BufkitError = ConnectionResetError()  # type: ignore[assignment]
