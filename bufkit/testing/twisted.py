"""Hostile Twisted transports and ``check_twisted_protocol`` (needs Twisted).

Importing this module imports Twisted; ``import bufkit.testing`` and
``from bufkit.testing import *`` do not, so they work without it.

Example::

    from bufkit.testing.twisted import check_twisted_protocol

    check_twisted_protocol(MyProtocol, [b"ECHO a\\r\\n", b"QUIT\\r\\n"])
"""

from __future__ import annotations

from bufkit.testing._hostile_twisted import (
    HostileTwistedTransport,
    check_twisted_protocol,
    check_twisted_protocol_example,
    run_twisted_protocol,
)

__all__ = [
    "HostileTwistedTransport",
    "check_twisted_protocol",
    "check_twisted_protocol_example",
    "run_twisted_protocol",
]

for _name in __all__:
    globals()[_name].__module__ = __name__
del _name
