"""The TLS layer's reads, its pending bytes, and what it keeps between events."""

from __future__ import annotations

import ssl
from typing import TYPE_CHECKING

from bufkit import TLSLayer
from bufkit.testing._tls_fake import MemorySocket, memory_socketpair
from tests._tls_drive import Duo, Peer, handshake_layers

if TYPE_CHECKING:
    from typing_extensions import Buffer

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


def _layers(contexts: Contexts) -> tuple[TLSLayer, TLSLayer, MemorySocket]:
    """A client and a server layer, handshake done; also the server's socket."""
    server_ctx, client_ctx = contexts
    c_sock, s_sock = memory_socketpair(0, max_send=1 << 20, max_recv=1 << 20)
    client = TLSLayer(client_ctx, server_side=False, server_hostname="localhost")
    server = TLSLayer(server_ctx, server_side=True)
    client.attach(c_sock)
    server.attach(s_sock)
    handshake_layers(client, server)
    server.flush()  # session tickets
    return client, server, s_sock


def test_one_read_decrypts_every_whole_record_received(tls_contexts: Contexts) -> None:
    """Records that came in one receive fill one buffer; the end follows them."""
    client, server, _ = _layers(tls_contexts)
    for part in (b"a" * 100, b"b" * 200, b"c" * 300):
        assert client.sendmsg([part]) == len(part)  # one record each
    client.close_notify()
    client.flush()
    buf = memoryview(bytearray(65536))
    got = server.recv_into(buf)
    assert bytes(buf[:got]) == b"a" * 100 + b"b" * 200 + b"c" * 300
    assert server.pending() > 0  # the end of the stream, not reported yet
    assert server.recv_into(buf) == 0


def test_a_buffer_smaller_than_the_records_still_gets_every_byte(
    tls_contexts: Contexts,
) -> None:
    """A buffer smaller than the records: every byte still comes, in order."""
    client, server, _ = _layers(tls_contexts)
    for part in (b"x" * 600, b"y" * 600, b"z" * 600):
        client.sendmsg([part])
    buf = memoryview(bytearray(1000))
    out = bytearray()
    first = server.recv_into(buf)
    assert first == 600  # ciphertext is read into the same small buffer
    out += buf[:first]
    while server.pending():
        out += buf[: server.recv_into(buf)]
    assert bytes(out) == b"x" * 600 + b"y" * 600 + b"z" * 600


class _Writer(Peer):
    """A peer that records pause_writing and resume_writing."""

    def __init__(self) -> None:
        super().__init__()
        self.flow: list[str] = []

    def pause_writing(self) -> None:
        """Record the pause."""
        self.flow.append("pause")

    def resume_writing(self) -> None:
        """Record the resume."""
        self.flow.append("resume")


def test_pending_bytes_count_ciphertext_not_yet_sent(tls_contexts: Contexts) -> None:
    """pending_bytes and the watermarks count plaintext until its ciphertext left."""
    duo = Duo(tls_contexts, seed=3, max_send=65536, max_recv=65536)
    writer = _Writer()
    duo.server = writer
    duo.server_conn = duo._make(
        duo.socks.pop(duo.server_conn),
        writer,
        TLSLayer(tls_contexts[0], server_side=True),
    )
    duo.start()
    tls = duo.server_conn.tls
    assert tls is not None
    assert duo.run(lambda: tls.handshake_done and not tls.cipher_pending)
    sock = duo.socks[duo.server_conn]
    sock.send_blocked = True  # a peer that does not read: the kernel takes nothing
    total = 3 * 100_000
    for index in range(3):
        writer.write(index, bytes([65 + index]) * 100_000)
    duo.run(lambda: False, steps=5)
    assert tls.cipher_pending > 0  # encrypted, waiting for the kernel
    assert duo.server_conn.pending_bytes == total
    assert writer.flow == ["pause"]
    sock.send_blocked = False
    duo.run(lambda: len(duo.client.data) == total)
    assert duo.server_conn.pending_bytes == 0
    assert writer.flow == ["pause", "resume"]
    assert all(done == [None] for done in writer.done.values())


def test_ciphertext_leaves_the_outgoing_bio_record_by_record(
    tls_contexts: Contexts,
) -> None:
    """A 64 KiB write reaches the socket as one buffer per record, none bigger.

    OpenSSL never shrinks a memory BIO's buffer: emptying the outgoing BIO
    after each record keeps what an idle connection holds to one record.
    """
    client, server, s_sock = _layers(tls_contexts)
    seen: list[int] = []
    send = s_sock.sendmsg

    def recording(buffers: list[Buffer], /) -> int:
        seen.extend(memoryview(b).nbytes for b in buffers)
        return send(buffers)

    s_sock.sendmsg = recording  # type: ignore[method-assign]
    data = bytes(range(256)) * 256
    assert server.sendmsg([data]) == len(data)
    assert len(seen) == 4
    assert max(seen) <= 16384 + 256  # one record and its overhead
    buf = memoryview(bytearray(65536))
    got = bytearray()
    while len(got) < len(data):
        got += buf[: client.recv_into(buf)]
    assert bytes(got) == data
