"""The TLS testing toolkit: memory streams, FakeTLSSocket, and their strategies."""

from __future__ import annotations

import contextlib
import errno
import ssl

import pytest
from hypothesis import given, settings

from bufkit.testing import FakeTLSSocket, MemorySocket, memory_socketpair
from bufkit.testing._tls_hyp import memory_socketpairs

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


def _pair(contexts: Contexts, **options: float) -> tuple[FakeTLSSocket, FakeTLSSocket]:
    server_ctx, client_ctx = contexts
    a, b = memory_socketpair(7, **options)  # type: ignore[arg-type]
    client = FakeTLSSocket(
        a, client_ctx, server_side=False, server_hostname="localhost"
    )
    server = FakeTLSSocket(b, server_ctx, server_side=True)
    return client, server


def _handshake(client: FakeTLSSocket, server: FakeTLSSocket) -> None:
    done = set()
    for _ in range(10_000):
        for side in (client, server):
            if side in done:
                continue
            try:
                side.do_handshake()
                done.add(side)
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                pass
        if len(done) == 2:
            return
    raise AssertionError("handshake did not complete")


def test_memory_streams_cut_and_block() -> None:
    """Sends take at most max_send; receives give at most max_recv, then EAGAIN."""
    a, b = memory_socketpair(3, max_send=2, max_recv=1)
    assert a.send(b"hello") <= 2
    buf = bytearray(10)
    assert b.recv_into(buf) == 1
    while b.inbox:
        b.recv_into(buf)
    with pytest.raises(BlockingIOError):
        b.recv_into(buf)
    a.reset()
    with pytest.raises(ConnectionResetError) as info:
        b.recv_into(buf)
    assert info.value.errno == errno.ECONNRESET


def test_memory_socketpair_refuses_bad_limits() -> None:
    """A zero maximum or a block rate of 1 is refused, naming the value."""
    with pytest.raises(ValueError, match="max_send 0"):
        memory_socketpair(max_send=0)
    with pytest.raises(ValueError, match=r"block_rate 1\.0"):
        memory_socketpair(block_rate=1.0)


def test_fake_tls_send_before_the_handshake_wants_read(tls_contexts: Contexts) -> None:
    """Like an SSLSocket, a send before the handshake raises SSLWantReadError."""
    client, _server = _pair(tls_contexts)
    with pytest.raises(ssl.SSLWantReadError):
        client.send(b"too early")


def test_fake_tls_recv_wants_write_when_the_stream_is_full(
    tls_contexts: Contexts,
) -> None:
    """Handshake bytes the stream refuses make a receive raise SSLWantWriteError."""
    client, server = _pair(tls_contexts, block_rate=0.0)
    with pytest.raises(ssl.SSLWantReadError):
        client.do_handshake()  # the ClientHello goes out
    server.stream.send_blocked = True
    while server.stream.inbox:  # the whole ClientHello, however it is cut
        with pytest.raises(ssl.SSLWantReadError):
            server.do_handshake()  # its flight stays unsent
    with pytest.raises(ssl.SSLWantWriteError):
        server.recv_into(bytearray(10))


def test_fake_tls_holds_decrypted_bytes_the_selector_cannot_see(
    tls_contexts: Contexts,
) -> None:
    """After a short read, pending() counts the rest of the record."""
    client, server = _pair(tls_contexts)
    _handshake(client, server)
    sent = 0
    while sent < 1000:
        with contextlib.suppress(ssl.SSLWantWriteError):
            sent += client.send(b"x" * (1000 - sent))
    buf = bytearray(10)
    got = 0
    while not got:
        with contextlib.suppress(ssl.SSLWantReadError):
            got = server.recv_into(buf)
    assert got == 10
    assert server.pending() == 990
    assert not server.stream.inbox  # nothing left for a selector to see


def test_fake_tls_drop_mid_record(tls_contexts: Contexts) -> None:
    """drop_mid_record() resets the stream: the peer's next receive fails."""
    client, server = _pair(tls_contexts, max_send=7)
    _handshake(client, server)
    client.stream.send_blocked = True
    assert client.send(b"y" * 5000) == 5000  # encrypted, not sent
    client.stream.send_blocked = False
    client.send(b"")  # part of the record goes out
    client.drop_mid_record()
    with pytest.raises(ConnectionResetError):
        server.recv_into(bytearray(100))


@settings(max_examples=20)
@given(pair=memory_socketpairs())
def test_strategy_pairs_deliver_every_byte_in_order(
    pair: tuple[MemorySocket, MemorySocket],
) -> None:
    """Whatever the drawn cuts and would-blocks, bytes arrive whole and in order."""
    a, b = pair
    data = bytes(range(256)) * 20
    sent, got = 0, bytearray()
    buf = bytearray(4096)
    for _ in range(100_000):
        if sent < len(data):
            with contextlib.suppress(BlockingIOError):
                sent += a.send(data[sent:])
        try:
            n = b.recv_into(buf)
            got += buf[:n]
        except BlockingIOError:
            if sent == len(data) and not b.inbox:
                break
    assert bytes(got) == data
