"""bufkit: readiness for reads, completion for writes.

A slab :class:`BufferPool`, a gather-write :class:`WriteQueue` and a
:class:`ReadinessReader`, with adapters in :mod:`bufkit.adapters` and a hostile
fake socket in :mod:`bufkit.testing`. ``import bufkit`` needs attrs alone.
"""

from __future__ import annotations

from bufkit._protocols import (
    CompletionCallback,
    ReadHandler,
    SupportsRecvInto,
    SupportsSend,
    SupportsSendmsg,
)
from bufkit._version import __version__
from bufkit.errors import (
    BufferReleasedError,
    BufkitError,
    ForeignBufferError,
    FrameTooLarge,
    FramingError,
    PoolExhausted,
    QueueClosedError,
    QueueFailedError,
    UnsupportedLoopError,
)

__all__ = [
    "BufferReleasedError",
    "BufkitError",
    "CompletionCallback",
    "ForeignBufferError",
    "FrameTooLarge",
    "FramingError",
    "PoolExhausted",
    "QueueClosedError",
    "QueueFailedError",
    "ReadHandler",
    "SupportsRecvInto",
    "SupportsSend",
    "SupportsSendmsg",
    "UnsupportedLoopError",
    "__version__",
]
