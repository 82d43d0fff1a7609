"""bufkit: readiness for reads, completion for writes.

A slab :class:`BufferPool`, a gather-write :class:`WriteQueue` and a
:class:`ReadinessReader`, with adapters in :mod:`bufkit.adapters` and a hostile
fake socket in :mod:`bufkit.testing`. ``import bufkit`` needs attrs alone.
"""

from __future__ import annotations

from bufkit._connection import (
    CONNECTION_TRANSITIONS,
    Connection,
    ConnectionEvent,
    ConnectionProtocol,
    ConnectionState,
    DeferCallback,
    Interest,
    InterestCallback,
    StreamSocket,
)
from bufkit._framing import DelimiterFramer, LengthPrefixedFramer
from bufkit._pool import BufferPool, PooledBuffer
from bufkit._pool_stats import ClassStats, PoolStats
from bufkit._protocols import (
    CompletionCallback,
    ReadHandler,
    SupportsRecvInto,
    SupportsSend,
    SupportsSendmsg,
)
from bufkit._queuestate import QueueState
from bufkit._reader import ReadinessReader
from bufkit._version import __version__
from bufkit._writequeue import WriteQueue
from bufkit.errors import (
    BufferLeakWarning,
    BufferReleasedError,
    BufferTooLarge,
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
    "BufferLeakWarning",
    "BufferPool",
    "BufferReleasedError",
    "BufferTooLarge",
    "BufkitError",
    "CONNECTION_TRANSITIONS",
    "ClassStats",
    "CompletionCallback",
    "Connection",
    "ConnectionEvent",
    "ConnectionProtocol",
    "ConnectionState",
    "DeferCallback",
    "DelimiterFramer",
    "ForeignBufferError",
    "FrameTooLarge",
    "FramingError",
    "Interest",
    "InterestCallback",
    "LengthPrefixedFramer",
    "PoolExhausted",
    "PoolStats",
    "PooledBuffer",
    "QueueClosedError",
    "QueueFailedError",
    "QueueState",
    "ReadHandler",
    "ReadinessReader",
    "StreamSocket",
    "SupportsRecvInto",
    "SupportsSend",
    "SupportsSendmsg",
    "UnsupportedLoopError",
    "WriteQueue",
    "__version__",
]
