"""Run bufkit connections on :mod:`selectors`: a small ready-made loop.

:class:`Loop` runs :class:`bufkit.Connection` objects (re-exported here as
:class:`Connection`), the loop-agnostic connection core, with listeners,
non-blocking connects, timers, thread-safe callbacks and signal handlers. The
loop is a shim: it registers each socket for the :class:`Interest` its
connection reports and nothing else (docs/design.md invariant 3). To drive
connections from a loop you already have, use :class:`bufkit.Connection`
directly.
"""

from __future__ import annotations

from bufkit import (
    CONNECTION_TRANSITIONS,
    Connection,
    ConnectionProtocol,
    ConnectionState,
    DeferCallback,
    Interest,
    InterestCallback,
    StreamSocket,
)
from bufkit._sockets import BACKOFF_MAX, BACKOFF_START
from bufkit.adapters.selectors._callbacks import Handle
from bufkit.adapters.selectors._loop import (
    Connector,
    Listener,
    Loop,
    ProtocolFactory,
    SelectableSocket,
)

__all__ = [
    "BACKOFF_MAX",
    "BACKOFF_START",
    "CONNECTION_TRANSITIONS",
    "Connection",
    "ConnectionProtocol",
    "ConnectionState",
    "Connector",
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

for _cls in (Connector, Handle, Listener, Loop, SelectableSocket):
    _cls.__module__ = __name__
del _cls
