"""Two TLS connection cores over in-memory streams, driven by hand."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import Callable

from bufkit import BufferPool, Connection, ConnectionProtocol, Interest, TLSLayer
from bufkit.testing._tls_fake import MemorySocket, memory_socketpair


class Peer(ConnectionProtocol):
    """Record plaintext, EOF and the end; count completions per write."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.data = bytearray()
        self.eofs = 0
        self.lost: list[Exception | None] = []
        self.done: dict[int, list[BaseException | None]] = {}
        self.on_data: Callable[[Connection, memoryview], object] | None = None

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def data_received(self, view: memoryview, /) -> None:
        """Record the bytes."""
        self.data += view
        if self.on_data is not None and self.conn is not None:
            self.on_data(self.conn, view)

    def eof_received(self) -> bool | None:
        """Count EOF."""
        self.eofs += 1
        return None

    def connection_lost(self, exc: Exception | None, /) -> None:
        """Record the end."""
        self.lost.append(exc)

    def write(self, index: int, data: bytes) -> None:
        """Write ``data``, recording its completions under ``index``."""
        assert self.conn is not None
        self.done[index] = []
        self.conn.write(data, self.done[index].append)


class Duo:
    """A client and a server core over a memory stream pair, stepped by hand."""

    def __init__(
        self,
        contexts: tuple[ssl.SSLContext, ssl.SSLContext],
        *,
        seed: int = 0,
        max_send: int = 4096,
        max_recv: int = 4096,
        block_rate: float = 0.0,
        pool: BufferPool | None = None,
        server_hostname: str = "localhost",
    ) -> None:
        server_ctx, client_ctx = contexts
        self.pool = BufferPool() if pool is None else pool
        self.deferred: list[Callable[[], object]] = []
        self.timers: dict[Connection, float | None] = {}
        c_sock, s_sock = memory_socketpair(
            seed, max_send=max_send, max_recv=max_recv, block_rate=block_rate
        )
        self.socks: dict[Connection, MemorySocket] = {}
        self.client, self.server = Peer(), Peer()
        self.client_conn = self._make(
            c_sock,
            self.client,
            TLSLayer(client_ctx, server_side=False, server_hostname=server_hostname),
        )
        self.server_conn = self._make(
            s_sock, self.server, TLSLayer(server_ctx, server_side=True)
        )

    def _make(self, sock: MemorySocket, peer: Peer, tls: TLSLayer) -> Connection:
        conn = Connection(
            self.pool,
            sock,
            peer,
            on_interest=lambda c, i: None,
            defer=self.deferred.append,
            tls=tls,
            on_timer=self.timers.__setitem__,
        )
        self.socks[conn] = sock
        return conn

    def start(self) -> None:
        """Start both ends (the client sends its ClientHello)."""
        self.server_conn.start()
        self.client_conn.start()

    def step(self) -> bool:
        """Deliver one round of readiness to both ends; return whether any ran."""
        ran = False
        while self.deferred:
            self.deferred.pop(0)()
            ran = True
        for conn in (self.client_conn, self.server_conn):
            if conn.closed:
                continue
            sock = self.socks[conn]
            if conn.interest & Interest.READ and sock.readable():
                conn.on_readable()
                ran = True
            if conn.interest & Interest.WRITE and not conn.closed:
                conn.on_writable()
                ran = True
        return ran

    def run(self, until: Callable[[], bool], steps: int = 20000) -> bool:
        """Step until ``until()`` or nothing moves; return ``until()``."""
        for _ in range(steps):
            if until():
                return True
            if not self.step():
                return until()
        return until()


def handshake_layers(client: TLSLayer, server: TLSLayer) -> None:
    """Drive two attached layers until both handshakes are done; no plaintext."""
    client.begin()
    buf = memoryview(bytearray(65536))
    for _ in range(20):
        for layer in (client, server):
            layer.flush()
            with contextlib.suppress(BlockingIOError):
                assert layer.recv_into(buf) == 0, "no plaintext during the handshake"
        if client.handshake_done and server.handshake_done:
            break
    assert client.handshake_done
    assert server.handshake_done
