"""Hybrid sockets: scheduled faults over real descriptors, truthful bytes."""

from __future__ import annotations

import selectors
import socket
from typing import cast

import pytest

from bufkit.testing import (
    Accept,
    Deliver,
    HybridSocket,
    SendStep,
    Short,
    Spurious,
    WouldBlock,
    hybrid_socketpair,
)


def _drain(sock: socket.socket | HybridSocket) -> bytes:
    out = bytearray()
    while True:
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            return bytes(out)
        if not data:
            return bytes(out)
        out += data


def test_partial_sends_hand_only_the_accepted_bytes_to_the_kernel() -> None:
    """What a partial send accepted is exactly what the peer receives."""
    a, b = hybrid_socketpair(a_send=[Accept(3), WouldBlock()])
    with a, b:
        assert a.sendmsg([b"he", b"llo"]) == 3
        assert _drain(b.real) == b"hel"
        with pytest.raises(BlockingIOError):
            a.send(b"lo")
        assert _drain(b.real) == b""
        assert a.send(b"lo") == 2
        assert _drain(b) == b"lo"
        assert a.wire == b"hello"


def test_receives_read_the_kernel_split_by_short_steps() -> None:
    """``Short`` caps a real read; ``Deliver`` injects bytes."""
    a, b = hybrid_socketpair(b_recv=[Short(2), Deliver(b"!"), WouldBlock()])
    with a, b:
        a.real.sendall(b"abcdef")
        assert b.recv(10) == b"ab"
        assert b.recv(10) == b"!"
        with pytest.raises(BlockingIOError):
            b.recv(10)
        assert b.recv(10) == b"cdef"
        with pytest.raises(BlockingIOError):
            b.recv(10)
        a.shutdown(socket.SHUT_WR)
        assert b.recv(10) == b""


def test_real_selectors_see_the_real_descriptor() -> None:
    """A hybrid registers with a real selector and reports real readiness."""
    a, b = hybrid_socketpair()
    with a, b, selectors.DefaultSelector() as sel:
        sel.register(b, selectors.EVENT_READ)
        assert sel.select(0) == []
        a.send(b"x")
        [(key, events)] = sel.select(1.0)
        assert key.fileobj is b
        assert events == selectors.EVENT_READ
        sel.unregister(b)
    assert a.fileno() == -1
    assert a.closed


def test_hybrid_is_non_blocking_only() -> None:
    """Blocking mode is refused; a non-stream socket is refused."""
    a, b = hybrid_socketpair()
    with a, b:
        a.setblocking(False)
        a.settimeout(0.0)
        with pytest.raises(ValueError, match="non-blocking only"):
            a.setblocking(True)
        with pytest.raises(ValueError, match="non-blocking only"):
            a.settimeout(1.0)
        assert "HybridSocket(<real fd" in repr(a)
        assert a.getpeername() == b.getsockname()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp,
        pytest.raises(ValueError, match="stream socket"),
    ):
        HybridSocket(udp)


def test_asyncio_drives_a_hybrid_through_partial_sends_and_eagain() -> None:
    """asyncio's ``sock_sendall`` over a hybrid survives injected faults."""
    import asyncio

    payload = bytes(range(256)) * 200
    schedule: list[SendStep] = [Accept(3), WouldBlock(), Spurious(), Accept(1000)]

    async def main() -> bytes:
        loop = asyncio.get_running_loop()
        a, b = hybrid_socketpair(a_send=schedule * 3)
        with a, b:
            # asyncio duck-types the socket: send, recv, fileno, gettimeout.
            real_a, real_b = cast(socket.socket, a), cast(socket.socket, b)
            sending = loop.create_task(loop.sock_sendall(real_a, payload))
            received = bytearray()
            while len(received) < len(payload):
                received += await loop.sock_recv(real_b, 65536)
            await sending
            assert a.wire == payload
            assert "EAGAIN on send" in a.faults_seen
        return bytes(received)

    assert asyncio.run(main()) == payload
