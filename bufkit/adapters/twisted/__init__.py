"""Unmodified Twisted protocols on bufkit connections.

A :class:`Transport` is an ``ITCPTransport`` driven by the running reactor's
``addReader``/``addWriter`` over one :class:`bufkit.Connection`: pooled reads
(an idle connection holds no buffer), every write of one event in one
``sendmsg``, producers paced by the write queue's watermarks. Start one with
the endpoints (:class:`ServerEndpoint`, :class:`ClientEndpoint`, or the
strings ``bufkit-tcp:8080`` and ``bufkit-tcp:host=H:port=P`` through
``serverFromString``/``clientFromString``), or with :func:`listen_tcp` and
:func:`connect_tcp`. Importing this module imports Twisted.
"""

from __future__ import annotations

from bufkit.adapters.twisted._endpoints import (
    ClientEndpoint,
    ClientParser,
    ServerEndpoint,
    ServerParser,
    TLSClientParser,
    TLSServerParser,
)
from bufkit.adapters.twisted._tcp import (
    ListeningPort,
    connect_tcp,
    default_pool,
    listen_tcp,
)
from bufkit.adapters.twisted._transport import IViewReceiver, Transport

__all__ = [
    "ClientEndpoint",
    "ClientParser",
    "IViewReceiver",
    "ListeningPort",
    "ServerEndpoint",
    "ServerParser",
    "TLSClientParser",
    "TLSServerParser",
    "Transport",
    "connect_tcp",
    "default_pool",
    "listen_tcp",
]

_obj: object
for _name in __all__:
    _obj = globals()[_name]
    # Interfaces keep theirs (zope makes it read-only).
    if isinstance(_obj, type) or (callable(_obj) and not hasattr(_obj, "providedBy")):
        _obj.__module__ = __name__
del _name, _obj
