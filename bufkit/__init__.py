"""bufkit: readiness for reads, completion for writes.

A slab :class:`BufferPool`, a gather-write :class:`WriteQueue` and a
:class:`ReadinessReader`, with adapters in :mod:`bufkit.adapters` and a hostile
fake socket in :mod:`bufkit.testing`. ``import bufkit`` needs attrs alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

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
    TimerCallback,
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
from bufkit._reader import ReadinessReader
from bufkit._version import __version__
from bufkit._writequeue import QueueState, WriteQueue
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
    "TLSEvent",
    "TLSHandshakeError",
    "TLSLayer",
    "TLSState",
    "TLS_TRANSITIONS",
    "TimerCallback",
    "UnsupportedLoopError",
    "WriteQueue",
    "__version__",
]


if TYPE_CHECKING:
    from bufkit._tls import TLS_TRANSITIONS, TLSEvent, TLSLayer, TLSState
    from bufkit.errors import TLSHandshakeError

_TLS_NAMES: Final = frozenset(
    {"TLS_TRANSITIONS", "TLSEvent", "TLSHandshakeError", "TLSLayer", "TLSState"}
)


def __getattr__(name: str) -> Any:
    # The TLS names load ssl (hence socket and selectors): on first use only.
    if name not in _TLS_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import bufkit._tls
    import bufkit.errors

    module = bufkit.errors if name == "TLSHandshakeError" else bufkit._tls
    value = getattr(module, name)
    globals()[name] = value
    return value
