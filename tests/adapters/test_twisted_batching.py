"""Small writes made inside ``dataReceived`` are joined, in order, on their transport.

A protocol runs a script drawn by Hypothesis inside one ``dataReceived``:
small and large writes, ``writeSequence`` (on it and on a second transport,
whose items are coalesced outside any dispatch), a look at the connection's
counters, writes to a second transport, a pull producer, and an optional
``loseConnection``. Each peer must receive exactly its transport's bytes, in
order. The transports sit on socket pairs of a fresh epoll reactor that the
test turns by hand.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

pytest.importorskip("twisted")

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import protocol
from twisted.internet.interfaces import IPullProducer
from zope.interface import implementer

from bufkit import BufferPool
from bufkit.adapters.twisted import Transport
from bufkit.adapters.twisted._transport import SMALL_WRITE
from tests.adapters._twisted_support import fresh_reactor

pytestmark = pytest.mark.timeout(120)

Op = tuple[str, int]
OPS = st.one_of(
    st.tuples(st.just("small"), st.integers(0, SMALL_WRITE - 1)),
    st.tuples(st.just("big"), st.integers(SMALL_WRITE, 3 * SMALL_WRITE)),
    st.tuples(st.just("seq"), st.integers(0, 6)),
    st.tuples(st.just("oseq"), st.integers(0, 6)),
    st.tuples(st.just("peek"), st.just(0)),
    st.tuples(st.just("other"), st.integers(1, 300)),
    st.tuples(st.just("pull"), st.integers(1, 300)),
)


@implementer(IPullProducer)
class OnePull:
    """Writes one block when first asked, then unregisters."""

    def __init__(self, transport: Any, block: bytes) -> None:
        self.transport = transport
        self.block = block

    def resumeProducing(self) -> None:
        block, self.block = self.block, b""
        if block:
            self.transport.write(block)
            self.transport.unregisterProducer()

    def stopProducing(self) -> None:
        """Nothing to stop."""


class Scripted(protocol.Protocol):
    """Runs ``script`` in its first ``dataReceived``; records what it sent where."""

    transport: Any

    def __init__(self, script: list[Op], close: bool) -> None:
        self.script = script
        self.close = close
        self.other: Any = None
        self.sent = bytearray()
        self.sent_other = bytearray()
        self.counter = 0

    def _block(self, size: int) -> bytes:
        data = bytes((self.counter + i) % 251 for i in range(size))
        self.counter += size
        return data

    def dataReceived(self, data: bytes) -> None:
        for kind, size in self.script:
            if kind in ("small", "big"):
                block = self._block(size)
                self.transport.write(block)
                self.sent += block
            elif kind in ("seq", "oseq"):
                # Small and large items mixed: 1, 1501, 3001, 4501, 1001, ...
                parts = [self._block(i * 1500 % 5000 + 1) for i in range(size)]
                if kind == "seq":
                    self.transport.writeSequence(parts)
                    self.sent += b"".join(parts)
                else:
                    self.other.writeSequence(parts)
                    self.sent_other += b"".join(parts)
            elif kind == "peek":
                conn = self.transport.connection
                assert conn.bytes_written - conn.pending_bytes >= 0
                assert conn.bytes_written == len(self.sent)
            elif kind == "other":
                block = self._block(size)
                self.other.write(block)
                self.sent_other += block
            else:
                block = self._block(size)
                self.transport.registerProducer(OnePull(self.transport, block), False)
                self.sent += block
        if self.close:
            self.transport.loseConnection()
            self.transport.write(b"ignored after loseConnection")


@contextmanager
def _pairs(count: int) -> Iterator[list[tuple[socket.socket, socket.socket]]]:
    made = [socket.socketpair() for _ in range(count)]
    try:
        yield made
    finally:
        for ours, theirs in made:
            ours.close()
            theirs.close()


def _drain(reactor: Any, peer: socket.socket, want: int, eof: bool) -> bytes:
    got = bytearray()
    peer.setblocking(False)
    for _ in range(10_000):
        reactor.runUntilCurrent()
        reactor.doIteration(0)
        try:
            part = peer.recv(1 << 20)
        except BlockingIOError:
            continue
        if not part:
            break
        got += part
        if len(got) >= want and not eof:
            break
    return bytes(got)


@settings(max_examples=60, deadline=None)
@given(script=st.lists(OPS, max_size=25), close=st.booleans())
def test_writes_inside_data_received_arrive_in_order(
    script: list[Op], close: bool
) -> None:
    """Whatever the mix of writes in one dataReceived, each peer gets its bytes."""
    pool = BufferPool()
    with fresh_reactor("epoll") as reactor, _pairs(2) as pairs:
        (ours, peer), (ours2, peer2) = pairs
        main = Scripted(script, close)
        bystander = protocol.Protocol()
        other = Transport(reactor, ours2.dup(), bystander, pool)
        other.start()
        main.other = other
        transport = Transport(reactor, ours.dup(), main, pool)
        transport.start()
        peer.sendall(b"go")
        got = _drain(reactor, peer, len(main.sent) or 1, eof=close)
        got_other = _drain(reactor, peer2, len(main.sent_other), eof=False)
        transport.abortConnection()
        other.abortConnection()
        for _ in range(3):
            reactor.runUntilCurrent()
            reactor.doIteration(0)
    assert got == bytes(main.sent)
    assert got_other == bytes(main.sent_other)
    assert pool.stats().buffers_in_use == 0
