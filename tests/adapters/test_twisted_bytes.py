"""The Twisted transport's bytes mode: dataReceived gets bytes, copied at most once."""

from __future__ import annotations

import random
import socket
from typing import Any

import pytest

pytest.importorskip("twisted")

from twisted.internet import defer, protocol
from twisted.python.failure import Failure

from bufkit import BufferPool
from bufkit.adapters.twisted import listen_tcp
from tests.adapters._twisted_support import REACTORS, fresh_reactor, run

pytestmark = pytest.mark.timeout(60)

TOTAL = 300_000


class Collector(protocol.Protocol):
    """Keeps every chunk it gets, as given, and closes after TOTAL bytes."""

    transport: Any
    factory: Any

    def connectionMade(self) -> None:
        self.chunks: list[Any] = []
        self.total = 0
        self.factory.made.callback(self)

    def dataReceived(self, data: bytes) -> None:
        self.chunks.append(data)
        self.total += len(data)
        if self.total >= TOTAL:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure = protocol.connectionDone) -> None:
        self.factory.lost.callback([reason])


@pytest.mark.parametrize("kind", REACTORS)
def test_protocols_get_exact_bytes_and_full_reads_skip_the_pool(kind: str) -> None:
    """Every chunk is exactly bytes, byte-exact; reads after full ones skip the pool."""
    payload = random.Random(7).randbytes(TOTAL)
    pool = BufferPool()
    with fresh_reactor(kind) as reactor:
        factory: Any = protocol.Factory.forProtocol(Collector)
        factory.made = defer.Deferred()
        factory.lost = defer.Deferred()

        async def main() -> Collector:
            port = listen_tcp(reactor, 0, factory, interface="127.0.0.1", pool=pool)
            peer = socket.create_connection(("127.0.0.1", port.getHost().port))
            server: Collector = await factory.made
            peer.sendall(payload)
            await factory.lost
            peer.close()
            await port.stopListening()
            return server

        server = run(reactor, main)
    assert {type(chunk) for chunk in server.chunks} == {bytes}
    assert b"".join(server.chunks) == payload
    stats = pool.stats()
    assert stats.bytes_in_use == 0
    # Each pooled read borrows a chunk; bytes reads borrow none.
    assert stats.acquires < len(server.chunks)
