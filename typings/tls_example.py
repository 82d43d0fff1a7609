"""TLS in the connection core as an adapter author and a protocol author type it."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Mapping
from typing import Any, assert_type

from bufkit import (
    TLS_TRANSITIONS,
    BufferPool,
    BufkitError,
    Connection,
    ConnectionProtocol,
    Interest,
    TimerCallback,
    TLSEvent,
    TLSHandshakeError,
    TLSLayer,
    TLSState,
)
from bufkit.adapters.selectors import Connector, Listener, Loop
from bufkit.testing import FakeTLSSocket, MemorySocket, memory_socketpair


class Watcher(ConnectionProtocol):
    """Reads what the handshake negotiated."""

    def connection_lost(self, exc: Exception | None, /) -> None:
        if isinstance(exc, TLSHandshakeError):
            assert_type(exc.reason, str)
            _ssl_error: ssl.SSLError = exc
            _bufkit_error: BufkitError = exc


def timers(conn: Connection, delay: float | None) -> None:
    if delay is None:
        return
    conn.on_timeout()


def core(pool: BufferPool, sock: socket.socket, ctx: ssl.SSLContext) -> None:
    tls = TLSLayer(ctx, server_side=True, handshake_timeout=10.0)
    conn = Connection(
        pool, sock, Watcher(), on_interest=lambda c, i: None, tls=tls, on_timer=timers
    )
    hook: TimerCallback = timers
    assert_type(conn.tls, TLSLayer | None)
    assert_type(tls.state, TLSState)
    assert_type(tls.handshake_done, bool)
    assert_type(tls.version(), str | None)
    assert_type(tls.cipher(), tuple[str, str, int] | None)
    assert_type(tls.selected_alpn_protocol(), str | None)
    assert_type(tls.getpeercert(), Any)
    assert_type(tls.session, ssl.SSLSession | None)
    assert_type(tls.pending(), int)
    assert_type(conn.interest, Interest)
    table: Mapping[tuple[TLSState, TLSEvent], TLSState] = TLS_TRANSITIONS
    TLSLayer(ctx, server_side="yes")  # type: ignore[arg-type]
    TLSLayer(ctx)  # type: ignore[call-arg]
    Connection(pool, sock, Watcher(), on_interest=lambda c, i: None, tls=ctx)  # type: ignore[arg-type]
    del hook, table


def selectors(loop: Loop, server: ssl.SSLContext, client: ssl.SSLContext) -> None:
    assert_type(loop.listen(Watcher, "127.0.0.1", 0, ssl=server), Listener)
    assert_type(
        loop.connect(
            Watcher, "localhost", 443, ssl=client, server_hostname="localhost"
        ),
        Connector,
    )
    loop.listen(Watcher, "127.0.0.1", 0, ssl="cert.pem")  # type: ignore[arg-type]


def testing(ctx: ssl.SSLContext) -> None:
    a, b = memory_socketpair(1, max_recv=1)
    assert_type(a, MemorySocket)
    fake = FakeTLSSocket(b, ctx, server_side=True)
    assert_type(fake.pending(), int)
