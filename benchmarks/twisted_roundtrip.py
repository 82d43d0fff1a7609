"""In-process round trips through one Twisted transport, for instruction counts.

Run from a checkout (Twisted installed), under callgrind::

    valgrind --tool=callgrind python benchmarks/twisted_roundtrip.py \
        bufkit fanout 1 1500
    valgrind --tool=callgrind python benchmarks/twisted_roundtrip.py \
        bufkit fanout 1 500

and take (total of the first - total of the second) / 1000: the instructions
of one round trip, client included, free of start-up and of the machine's
load. Arguments: the transport (``bufkit`` or ``twisted``: bufkit's
:class:`~bufkit.adapters.twisted.Transport`, or Twisted's own through
``adoptStreamConnection``), the protocol (``echo``: one write of what was
read; ``fanout``: 32 writes of 100 bytes per byte read, as ``bufkit bench``),
the request size and the number of round trips. Both run on one epoll
reactor, turned by hand between the client's ``sendall`` and its reads.
"""

from __future__ import annotations

import contextlib
import socket
import sys
from typing import Any, cast

CHUNK = b"x" * 100
FANOUT_WRITES = 32


def main(kind: str, name: str, size: int, count: int) -> None:
    """Make ``count`` round trips (after 200 to warm up)."""
    from twisted.internet import epollreactor

    cast(Any, epollreactor).install()
    from twisted.internet import protocol
    from twisted.internet import reactor as installed

    reactor: Any = installed

    class Echo(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            cast(Any, self.transport).write(data)

    class Fanout(protocol.Protocol):
        def dataReceived(self, data: bytes) -> None:
            write = cast(Any, self.transport).write
            for _ in range(len(data) * FANOUT_WRITES):
                write(CHUNK)

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    served = Echo() if name == "echo" else Fanout()
    if kind == "bufkit":
        from bufkit import BufferPool
        from bufkit.adapters.twisted import Transport

        Transport(reactor, server, served, BufferPool()).start()
    else:
        factory = protocol.Factory.forProtocol(lambda: served)
        reactor.adoptStreamConnection(server.fileno(), socket.AF_INET, factory)
    message = b"x" * size
    expect = size if name == "echo" else size * FANOUT_WRITES * len(CHUNK)
    into = bytearray(1 << 20)

    def trips(number: int) -> None:
        for _ in range(number):
            client.sendall(message)
            got = 0
            while got < expect:
                reactor.runUntilCurrent()
                reactor.doIteration(0)
                with contextlib.suppress(BlockingIOError):
                    got += client.recv_into(into, 0, socket.MSG_DONTWAIT)

    trips(200)
    trips(count)
    client.close()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
