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
read; ``fanout``: 32 writes of 100 bytes per byte read, as ``bufkit bench``;
``web``: a twisted.web ``Site`` answering ``GET /`` on a kept-alive
connection with a 7 KB page, the size then ignored), the request size and
the number of round trips. Both run on one epoll
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
    served: Any = Echo() if name == "echo" else Fanout()
    factory: Any = protocol.Factory.forProtocol(lambda: served)
    message = b"x" * size
    expect = size if name == "echo" else size * FANOUT_WRITES * len(CHUNK)
    if name == "web":
        factory, message, expect = _web(reactor)
        served = factory.buildProtocol(None)
    if kind == "bufkit":
        from bufkit import BufferPool
        from bufkit._sockets import set_nodelay
        from bufkit.adapters.twisted import Transport

        set_nodelay(server)  # as listen_tcp does
        Transport(reactor, server, served, BufferPool()).start()
    else:
        reactor.adoptStreamConnection(server.fileno(), socket.AF_INET, factory)
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

    if expect < 0:  # web: learn the whole response's size from the first one
        body, seen = -expect, bytearray()
        client.sendall(message)
        while (end := seen.find(b"\r\n\r\n")) < 0 or len(seen) < end + 4 + body:
            reactor.runUntilCurrent()
            reactor.doIteration(0)
            with contextlib.suppress(BlockingIOError):
                seen += client.recv(1 << 16, socket.MSG_DONTWAIT)
        expect = len(seen)
    trips(200)
    trips(count)
    client.close()


def _web(reactor: Any) -> tuple[Any, bytes, int]:
    """A twisted.web Site, its request, and minus the size of its page."""
    from twisted.web import resource, server

    page = b"<html><body>" + b"bufkit " * 1000 + b"</body></html>"

    class Page(resource.Resource):
        isLeaf = True

        def render_GET(self, request: Any) -> bytes:
            request.setHeader(b"content-type", b"text/html")
            return page

    make_site: Any = server.Site  # Twisted's classes carry no annotations
    site = make_site(cast(Any, Page)(), reactor=reactor)
    site.log = lambda request: None
    site.displayTracebacks = False
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    return site, request, -len(page)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
