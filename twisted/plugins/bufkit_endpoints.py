"""Twisted's string endpoints ``bufkit-tcp:...``, served by bufkit transports.

Twisted finds this module through its plugin system (``twisted.plugins``);
see :mod:`bufkit.adapters.twisted`.
"""

from __future__ import annotations

from bufkit.adapters.twisted._endpoints import ClientParser, ServerParser

bufkit_tcp_server = ServerParser()
bufkit_tcp_client = ClientParser()
