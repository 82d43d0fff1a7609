"""Run bufkit connections on :mod:`selectors`, or on any readiness loop.

:class:`Connection` joins a non-blocking socket, a :class:`bufkit.ReadinessReader`
and a :class:`bufkit.WriteQueue` to a protocol with asyncio's callback names.
Drive it from a loop you already have (call :meth:`Connection.on_readable` and
:meth:`Connection.on_writable`, follow its interest callback), or use the small
:class:`Loop` that ships here. Writes made during an event are flushed once,
after the handler returns; write interest is armed only while the kernel
refuses data (invariant 3 of the design).
"""

from __future__ import annotations

from bufkit.adapters._sel_conn import Connection
from bufkit.adapters._sel_listen import (
    BACKOFF_MAX,
    BACKOFF_START,
    Handle,
    Listener,
    ProtocolFactory,
)
from bufkit.adapters._sel_loop import Loop
from bufkit.adapters._sel_types import (
    CONNECTION_TRANSITIONS,
    ConnectionProtocol,
    ConnectionState,
    DeferCallback,
    Interest,
    InterestCallback,
    SelectableSocket,
    StreamSocket,
)

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_START",
    "CONNECTION_TRANSITIONS",
    "Connection",
    "ConnectionProtocol",
    "ConnectionState",
    "DeferCallback",
    "Handle",
    "Interest",
    "InterestCallback",
    "Listener",
    "Loop",
    "ProtocolFactory",
    "SelectableSocket",
    "StreamSocket",
]

for _cls in (
    Connection,
    ConnectionProtocol,
    ConnectionState,
    Handle,
    Interest,
    Listener,
    Loop,
    SelectableSocket,
    StreamSocket,
):
    _cls.__module__ = __name__
del _cls
