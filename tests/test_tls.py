"""The TLS layer in the connection core: two real SSLObjects over memory."""

from __future__ import annotations

import logging
import ssl

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import (
    TLS_TRANSITIONS,
    BufkitError,
    Connection,
    Interest,
    TLSHandshakeError,
    TLSLayer,
    TLSState,
)
from bufkit.testing._tls_fake import memory_socketpair
from tests._tls_drive import Duo

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]

chunks = st.lists(st.binary(min_size=1, max_size=40_000), min_size=1, max_size=4)


def _both_open(duo: Duo) -> bool:
    tls_c, tls_s = duo.client_conn.tls, duo.server_conn.tls
    assert tls_c is not None
    assert tls_s is not None
    return tls_c.handshake_done and tls_s.handshake_done


@settings(max_examples=25)
@given(
    seed=st.integers(0, 2**32),
    max_send=st.sampled_from([1, 7, 1000, 65536]),
    max_recv=st.sampled_from([1, 5, 3000, 65536]),
    block_rate=st.sampled_from([0.0, 0.3]),
    up=chunks,
    down=chunks,
)
def test_plaintext_arrives_exact_both_ways(
    tls_contexts: Contexts,
    seed: int,
    max_send: int,
    max_recv: int,
    block_rate: float,
    up: list[bytes],
    down: list[bytes],
) -> None:
    """Under partial writes, EAGAIN and short reads, plaintext arrives byte-exact."""
    if max_send * 50 < sum(map(len, up + down)):
        max_send *= 1000  # keep one-byte writes to small payloads: bounded steps
    duo = Duo(
        tls_contexts,
        seed=seed,
        max_send=max_send,
        max_recv=max_recv,
        block_rate=block_rate,
    )
    duo.start()
    for i, data in enumerate(up):  # written before the handshake: queued
        duo.client.write(i, data)
    assert duo.run(lambda: _both_open(duo), steps=200_000)
    for i, data in enumerate(down):
        duo.server.write(i, data)
    want_up, want_down = b"".join(up), b"".join(down)
    for _ in range(400_000):
        if duo.client.data == want_down and duo.server.data == want_up:
            break
        duo.step()
        assert duo.pool.stats().buffers_in_use == 0
    assert bytes(duo.server.data) == want_up
    assert bytes(duo.client.data) == want_down
    assert duo.run(lambda: all(duo.client.done.values()), steps=400_000)
    assert all(done == [None] for done in duo.client.done.values())
    assert duo.run(lambda: all(duo.server.done.values()), steps=400_000)
    assert all(done == [None] for done in duo.server.done.values())
    duo.client_conn.close()
    assert duo.run(lambda: duo.client_conn.closed, steps=400_000)
    assert duo.client.lost == [None]
    assert duo.pool.stats().buffers_in_use == 0


@settings(max_examples=30)
@given(
    seed=st.integers(0, 2**32),
    steps=st.integers(0, 60),
    which=st.sampled_from(["client", "server"]),
    size=st.integers(1, 100_000),
)
def test_a_reset_anywhere_ends_both_cleanly(
    tls_contexts: Contexts, seed: int, steps: int, which: str, size: int
) -> None:
    """A reset mid-handshake or mid-record fails every completion exactly once."""
    duo = Duo(tls_contexts, seed=seed, max_send=3000, max_recv=2000)
    duo.start()
    duo.client.write(0, b"c" * size)
    duo.server.write(0, b"s" * size)
    for _ in range(steps):
        duo.step()
    victim = duo.client_conn if which == "client" else duo.server_conn
    duo.socks[victim].reset()
    victim.abort()
    other = duo.server_conn if victim is duo.client_conn else duo.client_conn
    other_peer = duo.server if victim is duo.client_conn else duo.client
    duo.run(lambda: other.closed, steps=100_000)
    if not other.closed:  # it got all its bytes before the reset: close it
        other.close()
        duo.run(lambda: other.closed, steps=100_000)
    assert other.closed
    assert victim.closed
    for peer in (duo.client, duo.server):
        assert len(peer.lost) == 1
        assert all(len(done) == 1 for done in peer.done.values())
    assert len(other_peer.lost) == 1
    assert duo.pool.stats().buffers_in_use == 0


def test_idle_tls_connection_holds_nothing(tls_contexts: Contexts) -> None:
    """After an exchange, no pool bytes, empty BIOs and no ciphertext are held."""
    duo = Duo(tls_contexts, seed=3)
    duo.start()
    duo.client.write(0, b"ping" * 5000)
    assert duo.run(lambda: len(duo.server.data) == 20000)
    duo.server.write(0, b"pong")
    assert duo.run(lambda: len(duo.client.data) == 4)
    duo.run(lambda: False)  # let every ticket and flush settle
    assert duo.pool.stats().buffers_in_use == 0
    assert duo.pool.stats().bytes_in_use == 0
    for conn in (duo.client_conn, duo.server_conn):
        tls = conn.tls
        assert tls is not None
        assert tls.cipher_pending == 0
        assert tls.pending() == 0
        assert conn.interest is Interest.READ


def test_write_before_the_handshake_waits_without_write_interest(
    tls_contexts: Contexts,
) -> None:
    """Plaintext written before the handshake arms no write interest (no busy loop)."""
    duo = Duo(tls_contexts)
    duo.server_conn.start()
    duo.server.write(0, b"early")
    while duo.deferred:
        duo.deferred.pop(0)()
    assert duo.server_conn.interest is Interest.READ
    assert duo.server_conn.pending_bytes == 5
    assert duo.server.done[0] == []
    duo.client_conn.start()
    assert duo.run(lambda: bytes(duo.client.data) == b"early")
    assert duo.server.done[0] == [None]


def test_completion_fires_when_the_ciphertext_was_accepted(
    tls_contexts: Contexts,
) -> None:
    """A write completes only once the kernel took all of its ciphertext."""
    duo = Duo(tls_contexts, seed=5, max_send=100)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    tls = duo.client_conn.tls
    assert tls is not None
    sock = duo.socks[duo.client_conn]
    before = len(sock.sent)
    seen: list[tuple[BaseException | None, int, int]] = []
    duo.client_conn.write(
        b"x" * 1000,
        lambda exc: seen.append((exc, tls.cipher_pending, len(sock.sent) - before)),
    )
    assert duo.run(lambda: bool(seen))
    ((exc, left, sent),) = seen
    assert exc is None
    assert left == 0
    assert sent > 1000  # the whole record: plaintext plus TLS overhead


def test_a_big_write_before_the_handshake_does_not_stall_it(
    tls_contexts: Contexts,
) -> None:
    """Writing past high water before the handshake pauses but still reads it."""
    duo = Duo(tls_contexts, seed=6)
    duo.start()
    duo.server.write(0, b"s" * 200_000)
    assert duo.server_conn.writing_paused
    assert duo.run(lambda: len(duo.client.data) == 200_000, steps=100_000)
    assert duo.server.done[0] == [None]
    assert not duo.server_conn.writing_paused


def test_connection_info_after_the_handshake(tls_contexts: Contexts) -> None:
    """Peer certificate, version, cipher and SNI are readable on conn.tls."""
    duo = Duo(tls_contexts)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    client, server = duo.client_conn.tls, duo.server_conn.tls
    assert client is not None
    assert server is not None
    cert = client.getpeercert()
    assert cert is not None
    assert ("DNS", "localhost") in cert["subjectAltName"]
    assert client.version() == server.version() == "TLSv1.3"
    cipher = client.cipher()
    assert cipher is not None
    assert cipher[1] == "TLSv1.3"
    assert client.server_hostname == "localhost"
    assert server.server_side
    assert not client.server_side
    assert client.selected_alpn_protocol() is None
    assert client.state is TLSState.OPEN


def test_alpn_is_negotiated(tls_contexts: Contexts) -> None:
    """Both ends agree on the protocol the client and server share."""
    server_ctx, client_ctx = tls_contexts
    server_ctx.set_alpn_protocols(["h2", "http/1.1"])
    client_ctx.set_alpn_protocols(["http/1.1"])
    try:
        duo = Duo(tls_contexts)
        duo.start()
        assert duo.run(lambda: _both_open(duo))
        for conn in (duo.client_conn, duo.server_conn):
            assert conn.tls is not None
            assert conn.tls.selected_alpn_protocol() == "http/1.1"
    finally:
        server_ctx.set_alpn_protocols([])
        client_ctx.set_alpn_protocols([])


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_session_resumption(tls_contexts: Contexts, version: ssl.TLSVersion) -> None:
    """A session kept from one connection resumes in the next (1.2 and 1.3)."""
    server_ctx, client_ctx = tls_contexts
    client_ctx.maximum_version = version
    try:
        first = Duo(tls_contexts)
        first.start()
        assert first.run(lambda: _both_open(first))
        first.run(lambda: False)  # TLS 1.3 tickets come after the handshake
        assert first.client_conn.tls is not None
        session = first.client_conn.tls.session
        assert session is not None
        c_sock, s_sock = memory_socketpair(1)
        pool = first.pool
        client_tls = TLSLayer(
            client_ctx, server_side=False, server_hostname="localhost", session=session
        )
        server_tls = TLSLayer(server_ctx, server_side=True)
        conns = [
            Connection(pool, sock, first.client, on_interest=lambda c, i: None, tls=t)
            for sock, t in ((c_sock, client_tls), (s_sock, server_tls))
        ]
        for conn in conns:
            conn.start()
        for _ in range(50):
            for conn, sock in zip(conns, (c_sock, s_sock), strict=True):
                if sock.readable():
                    conn.on_readable()
                if conn.interest & Interest.WRITE:
                    conn.on_writable()
        assert client_tls.handshake_done
        assert server_tls.handshake_done
        assert client_tls.session_reused
        assert server_tls.session_reused
        for conn in conns:
            conn.abort()
    finally:
        client_ctx.maximum_version = ssl.TLSVersion.MAXIMUM_SUPPORTED


def test_wrong_host_name_fails_the_handshake_on_both_ends(
    tls_contexts: Contexts, caplog: pytest.LogCaptureFixture
) -> None:
    """A certificate for another name ends both with a TLSHandshakeError."""
    duo = Duo(tls_contexts, server_hostname="example.org")
    with caplog.at_level(logging.DEBUG, "bufkit.connection"):
        duo.start()
        duo.run(lambda: duo.client_conn.closed and duo.server_conn.closed)
    assert duo.client_conn.closed
    assert duo.server_conn.closed
    (exc,) = duo.client.lost
    assert isinstance(exc, TLSHandshakeError)
    assert isinstance(exc, ssl.SSLError)
    assert isinstance(exc, BufkitError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(exc)
    assert isinstance(exc.__cause__, ssl.SSLCertVerificationError)
    (server_exc,) = duo.server.lost
    assert isinstance(server_exc, TLSHandshakeError)
    lines = [r for r in caplog.records if "TLS handshake failed" in r.getMessage()]
    assert len(lines) == 2
    assert all(r.levelno == logging.INFO and r.exc_info is None for r in lines)
    assert duo.pool.stats().buffers_in_use == 0


@pytest.mark.parametrize(
    "junk",
    [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", bytes(range(256)) * 4, b"\x16\x03\x01\xff"],
)
def test_garbage_to_a_tls_server_is_a_handshake_error(
    tls_contexts: Contexts, junk: bytes
) -> None:
    """Plain HTTP, random bytes or a broken record close the server end cleanly."""
    duo = Duo(tls_contexts, max_recv=1)
    duo.server_conn.start()
    peer = duo.socks[duo.client_conn]
    peer.send(junk)  # max_send default: all of it at once or in pieces
    peer.send(junk)
    peer.close()
    duo.run(lambda: duo.server_conn.closed)
    (exc,) = duo.server.lost
    assert isinstance(exc, TLSHandshakeError)
    assert duo.pool.stats().buffers_in_use == 0


def test_client_hello_one_byte_at_a_time(tls_contexts: Contexts) -> None:
    """A ClientHello split into 1-byte segments completes the handshake."""
    duo = Duo(tls_contexts, max_send=1, max_recv=1)
    duo.start()
    assert duo.run(lambda: _both_open(duo), steps=100_000)


def test_handshake_timeout_is_asked_for_and_fails_the_connection(
    tls_contexts: Contexts,
) -> None:
    """The core asks for a timer; on_timeout mid-handshake ends with an error."""
    duo = Duo(tls_contexts)
    duo.server_conn.start()
    assert duo.timers[duo.server_conn] == 60.0
    duo.server_conn.on_timeout()
    assert duo.server_conn.closed
    (exc,) = duo.server.lost
    assert isinstance(exc, TLSHandshakeError)
    assert "did not complete within 60 s" in str(exc)


def test_the_handshake_timer_is_cancelled_once_done(tls_contexts: Contexts) -> None:
    """A completed handshake cancels its timer; a late on_timeout does nothing."""
    duo = Duo(tls_contexts)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    assert duo.timers[duo.server_conn] is None
    assert duo.timers[duo.client_conn] is None
    duo.server_conn.on_timeout()
    assert not duo.server_conn.closed


def test_graceful_close_sends_close_notify(tls_contexts: Contexts) -> None:
    """close() drains, sends close_notify; the peer sees a clean end of stream."""
    duo = Duo(tls_contexts, seed=2, max_send=500)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    duo.client.write(0, b"bye" * 1000)
    duo.client_conn.close()
    assert duo.timers[duo.client_conn] == 30.0
    assert duo.run(lambda: duo.server.eofs == 1)
    assert bytes(duo.server.data) == b"bye" * 1000
    assert duo.client.done[0] == [None]
    assert duo.client.lost == [None]
    assert duo.timers[duo.client_conn] is None


def test_close_notify_alone_is_the_end_of_the_stream(tls_contexts: Contexts) -> None:
    """The peer's close_notify is end of file even while its socket stays open."""
    duo = Duo(tls_contexts)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    tls = duo.client_conn.tls
    assert tls is not None
    tls.close_notify()
    assert tls.flush()
    assert not duo.socks[duo.client_conn].closed
    assert duo.run(lambda: duo.server.eofs == 1)
    assert duo.run(lambda: duo.server_conn.closed)
    assert duo.server.lost == [None]


def test_shutdown_timeout_aborts_a_close_that_cannot_drain(
    tls_contexts: Contexts,
) -> None:
    """A close stuck behind a peer that reads nothing is aborted at the timeout."""
    duo = Duo(tls_contexts)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    duo.client.write(0, b"z" * 100)
    duo.client_conn.close()
    duo.client_conn.on_timeout()
    assert duo.client_conn.closed
    (exc,) = duo.client.lost
    assert isinstance(exc, TimeoutError)


def test_close_during_the_handshake_still_sends(tls_contexts: Contexts) -> None:
    """write() then close() before the handshake: the bytes go out, then the end."""
    duo = Duo(tls_contexts, seed=4, max_recv=7)
    duo.client_conn.start()
    duo.client.write(0, b"early and closing")
    duo.client_conn.close()
    assert duo.timers[duo.client_conn] == 60.0  # still the handshake's timer
    duo.server_conn.start()
    assert duo.run(lambda: duo.server.eofs == 1)
    assert bytes(duo.server.data) == b"early and closing"
    assert duo.client.done[0] == [None]
    assert duo.client.lost == [None]
    assert duo.client.data == b""


def test_write_eof_is_refused_over_tls(tls_contexts: Contexts) -> None:
    """write_eof() raises NotImplementedError and leaves the state unchanged."""
    duo = Duo(tls_contexts)
    duo.start()
    assert duo.run(lambda: _both_open(duo))
    state = duo.client_conn.state
    with pytest.raises(NotImplementedError, match="close"):
        duo.client_conn.write_eof()
    assert duo.client_conn.state is state
    duo.client.write(0, b"still")
    assert duo.run(lambda: bytes(duo.server.data) == b"still")


def test_tls_layer_refuses_bad_arguments(tls_contexts: Contexts) -> None:
    """A non-context, a bad timeout, or a wrong tls= are refused by name."""
    server_ctx, _ = tls_contexts
    with pytest.raises(TypeError, match="SSLContext"):
        TLSLayer("ctx", server_side=True)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="handshake_timeout"):
        TLSLayer(server_ctx, server_side=True, handshake_timeout=0)
    with pytest.raises(TypeError, match="shutdown_timeout"):
        TLSLayer(server_ctx, server_side=True, shutdown_timeout="1")  # type: ignore[arg-type]
    a, _b = memory_socketpair()
    with pytest.raises(TypeError, match="TLSLayer"):
        Connection(
            Duo(tls_contexts).pool,
            a,
            Duo(tls_contexts).client,
            on_interest=lambda c, i: None,
            tls=object(),  # type: ignore[arg-type]
        )


def test_tls_transitions_table_is_closed() -> None:
    """Every state reaches CLOSED and CLOSED leads nowhere."""
    assert {s for s, _ in TLS_TRANSITIONS} == set(TLSState) - {TLSState.CLOSED}
    assert all(
        (state, event) not in TLS_TRANSITIONS
        for state, event in TLS_TRANSITIONS
        if state is TLSState.CLOSED
    )
