"""The selectors adapter over TLS sockets: bytes the selector cannot see."""

from __future__ import annotations

import socket
import ssl

import pytest

from bufkit import BufferPool
from bufkit.adapters.selectors import Loop
from tests._tls import handshake, wrap_pair
from tests.adapters._selectors_support import Recorder

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("size", [1, 4000, 16384, 50_000])
def test_decrypted_bytes_past_the_read_budget_are_read(
    tls_contexts: tuple[ssl.SSLContext, ssl.SSLContext], size: int
) -> None:
    """A record bigger than the read budget covers arrives whole, not stalled."""
    client, server = wrap_pair(tls_contexts, *socket.socketpair())
    client.setblocking(False)
    server.setblocking(False)
    # One read of 1 KiB per event: a 16 KiB record leaves 15 KiB decrypted
    # inside the SSL object, and the kernel socket empty.
    pool = BufferPool(size_classes=[1024])
    loop = Loop(pool=pool, read_budget=1)
    try:
        handshake(client, server)
        recorder = Recorder()
        loop.add_socket(server, recorder)
        payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
        client.setblocking(True)
        client.sendall(payload)
        assert loop.run_until(lambda: len(recorder.data) == size, timeout=10)
        assert recorder.data == payload
        assert pool.stats().buffers_in_use == 0
    finally:
        loop.close()
        client.close()
