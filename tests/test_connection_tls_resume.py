"""Reading resumed over TLS delivers what the layer holds, with a quiet socket."""

from __future__ import annotations

import ssl

import pytest

from bufkit import Connection, TLSLayer
from bufkit.testing._tls_fake import MemorySocket
from tests._tls_drive import Duo, Peer

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


def _flight(duo: Duo, sizes: list[int]) -> bytes:
    """Send the server one record per size, all in its inbox before it reads."""
    duo.start()
    assert duo.run(lambda: duo.client_conn.tls is not None and _done(duo))
    duo.run(lambda: False)  # session tickets and flushes settle
    sent = bytearray()
    for i, size in enumerate(sizes):
        data = bytes((i * 7 + k) % 251 for k in range(size))
        duo.client.write(i, data)
        while duo.deferred:  # the client's flush: one record per write
            duo.deferred.pop(0)()
        sent += data
    return bytes(sent)


def _done(duo: Duo) -> bool:
    tls_c, tls_s = duo.client_conn.tls, duo.server_conn.tls
    return (
        tls_c is not None
        and tls_s is not None
        and tls_c.handshake_done
        and (tls_s.handshake_done)
    )


def _held_with_quiet_socket(duo: Duo, sent: bytes) -> None:
    """Check the situation under test: bytes held by TLS, nothing on the socket."""
    conn = duo.server_conn
    assert not conn.reading
    assert 0 < len(duo.server.data) < len(sent)
    assert not duo.socks[conn].readable()
    tls = conn.tls
    assert tls is not None
    assert tls.pending() > 0


@pytest.mark.parametrize("sizes", [[3000, 10], [3000, 500, 40]])
def test_resume_reading_delivers_records_held_by_tls(
    tls_contexts: Contexts, sizes: list[int]
) -> None:
    """pause_reading() in data_received, then resume_reading(): every byte arrives."""
    duo = Duo(tls_contexts, max_send=1 << 20, max_recv=1 << 20)

    def pause_once(conn: Connection, view: memoryview) -> None:
        conn.pause_reading()
        duo.server.on_data = None

    sent = _flight(duo, sizes)
    duo.server.on_data = pause_once
    duo.run(lambda: False)
    _held_with_quiet_socket(duo, sent)
    duo.server_conn.resume_reading()
    duo.server_conn.resume_reading()  # already reading: asks nothing more
    assert len(duo.deferred) == 1  # one read, no new readiness needed
    assert duo.run(lambda: len(duo.server.data) >= len(sent))
    assert bytes(duo.server.data) == sent
    duo.run(lambda: False)
    assert duo.pool.stats().buffers_in_use == 0
    duo.server_conn.pause_reading()
    duo.server_conn.resume_reading()
    assert duo.deferred == []  # nothing held: no read asked for


def test_resume_writing_delivers_records_held_by_tls(tls_contexts: Contexts) -> None:
    """Reading stopped by write back-pressure resumes with resume_writing."""
    duo = Duo(tls_contexts, max_send=1 << 20, max_recv=1 << 20)
    pauses: list[str] = []
    server_sock = duo.socks[duo.server_conn]

    def flood_once(conn: Connection, view: memoryview) -> None:
        server_sock.send_blocked = True  # the kernel refuses: writing pauses
        conn.write(b"r" * 200_000)
        pauses.append("paused" if conn.writing_paused else "not paused")
        duo.server.on_data = None

    sent = _flight(duo, [3000, 500, 40])
    duo.server.on_data = flood_once
    duo.run(lambda: False)
    assert pauses == ["paused"]
    _held_with_quiet_socket(duo, sent)
    server_sock.send_blocked = False
    assert duo.run(lambda: len(duo.server.data) >= len(sent))
    assert not duo.server_conn.writing_paused
    assert bytes(duo.server.data) == sent
    assert duo.run(lambda: len(duo.client.data) == 200_000)


def test_deferred_read_after_abort_does_nothing(tls_contexts: Contexts) -> None:
    """A read asked for by resume_reading() and run after abort() is a no-op."""
    duo = Duo(tls_contexts, max_send=1 << 20, max_recv=1 << 20)

    def pause_once(conn: Connection, view: memoryview) -> None:
        conn.pause_reading()
        duo.server.on_data = None

    sent = _flight(duo, [3000, 10])
    duo.server.on_data = pause_once
    duo.run(lambda: False)
    _held_with_quiet_socket(duo, sent)
    got = len(duo.server.data)
    duo.server_conn.resume_reading()
    duo.server_conn.abort()
    while duo.deferred:
        duo.deferred.pop(0)()
    assert len(duo.server.data) == got
    assert duo.server_conn.closed
    assert len(duo.server.lost) == 1


class _NoDeferServer(Duo):
    """A Duo whose server core has no ``defer``: it reads at once on resume."""

    def _make(self, sock: MemorySocket, peer: Peer, tls: TLSLayer) -> Connection:
        if not tls.server_side:
            return super()._make(sock, peer, tls)
        conn = Connection(
            self.pool,
            sock,
            peer,
            on_interest=lambda c, i: None,
            tls=tls,
            on_timer=self.timers.__setitem__,
        )
        self.socks[conn] = sock
        return conn


def test_resume_reading_without_defer_reads_at_once(tls_contexts: Contexts) -> None:
    """With defer=None, resume_reading() outside an event delivers held bytes."""
    duo = _NoDeferServer(tls_contexts, max_send=1 << 20, max_recv=1 << 20)

    def pause_once(conn: Connection, view: memoryview) -> None:
        conn.pause_reading()
        duo.server.on_data = None

    sent = _flight(duo, [3000, 500, 40])
    duo.server.on_data = pause_once
    duo.run(lambda: False)
    _held_with_quiet_socket(duo, sent)
    duo.server_conn.resume_reading()
    assert bytes(duo.server.data) == sent
    assert duo.deferred == []
