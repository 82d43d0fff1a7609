"""Twisted string endpoints ``bufkit-tcp:...`` and ``bufkit-tls:...``.

Twisted finds this module through its plugin system (``twisted.plugins``);
see :mod:`bufkit.adapters.twisted`.
"""

from __future__ import annotations

from bufkit.adapters.twisted._endpoints import (
    ClientParser,
    ServerParser,
    TLSClientParser,
    TLSServerParser,
)

bufkit_tcp_server = ServerParser()
bufkit_tcp_client = ClientParser()
bufkit_tls_server = TLSServerParser()
bufkit_tls_client = TLSClientParser()
