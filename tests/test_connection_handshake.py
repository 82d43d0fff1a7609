"""The core's ``on_handshake`` hook: once per completed TLS handshake, else never."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import (
    BufferPool,
    Connection,
    ConnectionProtocol,
    TLSHandshakeError,
    TLSLayer,
)
from bufkit.testing import Deliver, FakeSocket
from bufkit.testing._tls_fake import MemorySocket
from tests._tls_drive import Duo, Peer

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


class _Told(Peer):
    """A peer that logs handshakes and data into one ordered list."""

    def __init__(self, events: list[str], name: str) -> None:
        super().__init__()
        self.events = events
        self.name = name

    def data_received(self, view: memoryview, /) -> None:
        """Log, then record."""
        self.events.append(f"{self.name} data")
        super().data_received(view)


class _HookedDuo(Duo):
    """A Duo whose cores report handshakes, with a replaceable hook."""

    def __init__(self, contexts: Contexts, **kwargs: object) -> None:
        self.events: list[str] = []
        self.hook: Callable[[Connection], object] = self._log
        super().__init__(contexts, **kwargs)  # type: ignore[arg-type]
        self.client = self._retell(self.client_conn, "client")
        self.server = self._retell(self.server_conn, "server")

    def _retell(self, conn: Connection, name: str) -> _Told:
        told = _Told(self.events, name)
        conn._protocol = told  # before start(): the protocol the core calls
        return told

    def _log(self, conn: Connection) -> None:
        assert conn.tls is not None
        assert conn.tls.handshake_done
        self.events.append("client hook" if conn is self.client_conn else "server hook")

    def _make(self, sock: MemorySocket, peer: Peer, tls: TLSLayer) -> Connection:
        conn = Connection(
            self.pool,
            sock,
            peer,
            on_interest=lambda c, i: None,
            defer=self.deferred.append,
            tls=tls,
            on_timer=self.timers.__setitem__,
            on_handshake=lambda c: self.hook(c),
        )
        self.socks[conn] = sock
        return conn


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**32),
    max_send=st.sampled_from([1, 7, 1000, 65536]),
    max_recv=st.sampled_from([1, 5, 3000, 65536]),
    block_rate=st.sampled_from([0.0, 0.3]),
    early=st.booleans(),
)
def test_hook_fires_once_per_side_before_any_plaintext(
    tls_contexts: Contexts,
    seed: int,
    max_send: int,
    max_recv: int,
    block_rate: float,
    early: bool,
) -> None:
    """Each side is told once, before its first data_received, whatever the cuts."""
    duo = _HookedDuo(
        tls_contexts,
        seed=seed,
        max_send=max_send,
        max_recv=max_recv,
        block_rate=block_rate,
    )
    duo.start()
    if early:  # written before the handshake: arrives with its last flight
        duo.client.write(0, b"ping")
    assert duo.run(lambda: len(duo.events) >= 2 and "client hook" in duo.events)
    duo.client.write(1, b"pong")
    duo.server.write(2, b"back")
    assert duo.run(lambda: bytes(duo.server.data).endswith(b"pong"))
    assert duo.run(lambda: duo.client.data == b"back")
    assert duo.events.count("client hook") == 1
    assert duo.events.count("server hook") == 1
    for side in ("client", "server"):
        assert duo.events.index(f"{side} hook") < duo.events.index(f"{side} data")
    duo.client_conn.close()
    duo.server_conn.close()
    duo.run(lambda: duo.client_conn.closed and duo.server_conn.closed)
    assert duo.events.count("client hook") == 1
    assert duo.events.count("server hook") == 1


def test_hook_is_never_called_after_a_failed_handshake(
    tls_contexts: Contexts,
) -> None:
    """A refused certificate ends both sides without telling either hook."""
    duo = _HookedDuo(tls_contexts, server_hostname="example.org")
    duo.start()
    duo.run(lambda: duo.client_conn.closed and duo.server_conn.closed)
    assert duo.client_conn.closed
    assert isinstance(duo.client.lost[0], TLSHandshakeError)
    assert duo.events == []


def test_hook_is_never_called_after_a_handshake_timeout(
    tls_contexts: Contexts,
) -> None:
    """A handshake that timed out is never reported, even if bytes arrive late."""
    duo = _HookedDuo(tls_contexts)
    duo.start()
    duo.server_conn.on_timeout()
    duo.run(lambda: duo.client_conn.closed)
    assert duo.server_conn.closed
    assert "server hook" not in duo.events


def test_hook_that_raises_aborts_like_a_protocol_error(
    tls_contexts: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    """An exception from on_handshake is logged once and ends the connection."""
    duo = _HookedDuo(tls_contexts)
    boom = RuntimeError("hook broke")

    def hook(conn: Connection) -> None:
        if conn is duo.server_conn:
            raise boom

    duo.hook = hook
    with caplog.at_level(logging.ERROR, "bufkit.connection"):
        duo.start()
        duo.client.write(0, b"never delivered")
        duo.run(lambda: duo.server_conn.closed)
    assert duo.server.lost == [boom]
    assert duo.server.data == b""
    assert [r.exc_info[1] for r in caplog.records if r.exc_info] == [boom]
    assert duo.pool.stats().buffers_in_use == 0


def test_hook_that_aborts_gets_no_plaintext_after(tls_contexts: Contexts) -> None:
    """Aborting from on_handshake drops what arrived with the handshake."""
    duo = _HookedDuo(tls_contexts)
    duo.hook = lambda conn: conn.abort() if conn is duo.server_conn else None
    duo.start()
    duo.client.write(0, b"early bytes")
    duo.run(lambda: duo.server_conn.closed)
    assert duo.server.data == b""
    assert len(duo.server.lost) == 1
    assert duo.pool.stats().buffers_in_use == 0


def test_hook_can_write_and_the_bytes_follow_the_handshake(
    tls_contexts: Contexts,
) -> None:
    """A write made by on_handshake is sent in the same event's flush."""
    duo = _HookedDuo(tls_contexts)
    duo.hook = lambda conn: conn.write(b"hello") if conn is duo.server_conn else None
    duo.start()
    assert duo.run(lambda: duo.client.data == b"hello")


def test_hook_is_never_called_for_plain_tcp() -> None:
    """Without tls=, on_handshake is accepted and never called."""
    calls: list[Connection] = []
    sock = FakeSocket(recv=[Deliver(b"plain bytes")])
    conn = Connection(
        BufferPool(),
        sock,
        Peer(),
        on_interest=lambda c, i: None,
        on_handshake=calls.append,
    )
    conn.start()
    conn.on_readable()
    conn.write(b"reply")
    conn.close()
    assert conn.closed
    assert calls == []


def test_a_hook_that_cannot_be_called_is_refused() -> None:
    """on_handshake must be callable or None: TypeError naming the value."""
    with pytest.raises(
        TypeError, match="on_handshake must be callable or None, not 42"
    ):
        Connection(
            BufferPool(),
            FakeSocket(),
            ConnectionProtocol.__new__(Peer),
            on_interest=lambda c, i: None,
            on_handshake=42,  # type: ignore[arg-type]
        )
