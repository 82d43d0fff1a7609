"""How the TLS layer moves records: straight to the kernel, or queued while it waits."""

from __future__ import annotations

import contextlib
import gc
import ssl
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bufkit import TLSLayer, WriteQueue
from bufkit.testing._tls_fake import MemorySocket, memory_socketpair
from tests._tls import make_tls_contexts
from tests._tls_drive import handshake_layers

if TYPE_CHECKING:
    from typing_extensions import Buffer

Contexts = tuple[ssl.SSLContext, ssl.SSLContext]


def _pair(
    contexts: Contexts, seed: int = 0
) -> tuple[TLSLayer, TLSLayer, MemorySocket, MemorySocket]:
    """A client and a server layer over memory sockets, handshake not started."""
    server_ctx, client_ctx = contexts
    c_sock, s_sock = memory_socketpair(seed, max_send=1 << 20, max_recv=1 << 20)
    client = TLSLayer(client_ctx, server_side=False, server_hostname="localhost")
    server = TLSLayer(server_ctx, server_side=True)
    client.attach(c_sock)
    server.attach(s_sock)
    return client, server, c_sock, s_sock


def _handshake(client: TLSLayer, server: TLSLayer) -> None:
    """Drive both layers until their handshakes are done and nothing waits."""
    handshake_layers(client, server)
    assert server.flush()  # session tickets


def _read_all(layer: TLSLayer, size: int) -> bytes:
    """Read ``size`` bytes of plaintext from ``layer``."""
    buf = memoryview(bytearray(65536))
    out = bytearray()
    for _ in range(1000):
        if len(out) >= size:
            break
        with contextlib.suppress(BlockingIOError):
            out += buf[: layer.recv_into(buf)]
    return bytes(out)


def _queues(layer: TLSLayer) -> list[object]:
    """The write queues the layer refers to."""
    return [ref for ref in gc.get_referents(layer) if isinstance(ref, WriteQueue)]


def test_a_layer_that_sent_everything_holds_no_queue(tls_contexts: Contexts) -> None:
    """Once the kernel took every record, the layer keeps no ciphertext queue."""
    client, server, _, _ = _pair(tls_contexts)
    _handshake(client, server)
    assert server.sendmsg([memoryview(b"x" * 100)]) == 100
    assert server.sendmsg([memoryview(bytes(70_000))]) == 70_000
    assert server.cipher_pending == 0
    assert _queues(server) == []
    assert _queues(client) == []


def _accept(sock: MemorySocket, buffers: list[Buffer], limit: int) -> int:
    """Deliver up to ``limit`` bytes of ``buffers`` to the peer, as a kernel would."""
    data = b"".join(bytes(memoryview(b)) for b in buffers)[:limit]
    assert sock.peer is not None
    sock.peer.inbox += data
    sock.sent += data
    return len(data)


def test_batches_go_on_in_one_call_while_the_kernel_takes_them(
    tls_contexts: Contexts,
) -> None:
    """Plaintext past one batch is encrypted and sent in the same call."""
    client, server, _, s_sock = _pair(tls_contexts)
    _handshake(client, server)
    data = bytes(range(256)) * 1000  # about four batches
    parts = [memoryview(data[:100_000]), memoryview(data[100_000:])]
    sends: list[int] = []

    def counted(buffers: list[Buffer], /) -> int:
        sends.append(len(buffers))
        return _accept(s_sock, buffers, len(data))

    s_sock.sendmsg = counted  # type: ignore[method-assign]
    s_sock.send = lambda one: counted([one])  # type: ignore[method-assign]
    assert server.sendmsg(parts) == len(data)
    assert len(sends) == 4  # one gather write per batch of records
    assert server.cipher_pending == 0
    assert _queues(server) == []
    assert _read_all(client, len(data)) == data


def test_a_refused_batch_ends_the_call_with_one_batch_waiting(
    tls_contexts: Contexts,
) -> None:
    """When the kernel refuses part of a batch, no further batch is encrypted."""
    client, server, _, s_sock = _pair(tls_contexts)
    _handshake(client, server)
    data = bytes(range(256)) * 1000
    calls: list[int] = []

    def half_of_the_second(buffers: list[Buffer], /) -> int:
        calls.append(len(buffers))
        return _accept(s_sock, buffers, 30_000 if len(calls) == 2 else len(data))

    s_sock.sendmsg = half_of_the_second  # type: ignore[method-assign]
    s_sock.send = lambda one: half_of_the_second([one])  # type: ignore[method-assign]
    sent = server.sendmsg([memoryview(data)])
    assert sent == 65536 + 16384  # the first batch and the second's first record
    assert len(calls) == 2
    assert 0 < server.cipher_pending < 65536
    rest = memoryview(data)[sent:]
    for _ in range(10):
        if not rest:
            break
        with contextlib.suppress(BlockingIOError):
            rest = rest[server.sendmsg([rest]) :]
    assert not rest
    assert server.cipher_pending == 0
    assert _read_all(client, len(data)) == data


def test_a_refused_record_waits_and_is_never_encrypted_twice(
    tls_contexts: Contexts,
) -> None:
    """A record the kernel refused is queued, reported once sent, and sent once."""
    client, server, _, s_sock = _pair(tls_contexts)
    _handshake(client, server)
    data = memoryview(b"abc" * 30)
    s_sock.send_blocked = True
    with pytest.raises(BlockingIOError):
        server.sendmsg([data])
    assert server.cipher_pending > 0
    with pytest.raises(BlockingIOError):  # offered again: still waiting, no copy
        server.sendmsg([data])
    queued = server.cipher_pending
    s_sock.send_blocked = False
    assert server.sendmsg([data]) == len(data)
    assert server.cipher_pending == 0
    assert queued < 2 * len(data)  # one record, not two
    assert _read_all(client, len(data)) == bytes(data)
    assert not client.pending()


def test_a_partly_sent_batch_reports_only_whole_records(
    tls_contexts: Contexts,
) -> None:
    """Of several records, only those whose last byte left count as sent."""
    client, server, _, s_sock = _pair(tls_contexts)
    _handshake(client, server)
    parts = [memoryview(bytes([65 + i]) * 1000) for i in range(3)]
    offered = s_sock.send
    taken: list[int] = []

    def one_and_a_half_records(data: Buffer, /) -> int:
        size = memoryview(data).nbytes
        limit = 1500 if not taken else size
        taken.append(min(size, limit))
        return offered(memoryview(data)[:limit])

    s_sock.send = one_and_a_half_records  # type: ignore[method-assign]
    s_sock.sendmsg = lambda buffers: one_and_a_half_records(  # type: ignore[method-assign]
        b"".join(buffers)
    )
    assert server.sendmsg(parts) == 1000  # the first record alone went whole
    assert taken == [1500]  # no second send right after a short one
    assert server.cipher_pending > 0
    assert server.sendmsg(parts[1:]) == 2000  # the rest, never encrypted again
    assert server.sendmsg([memoryview(b"z")]) == 1
    assert _read_all(client, 3001) == b"A" * 1000 + b"B" * 1000 + b"C" * 1000 + b"z"


class _Recording:
    """Stands in for a memory BIO and records each write's size."""

    def __init__(self, bio: ssl.MemoryBIO) -> None:
        self.bio = bio
        self.writes: list[int] = []

    @property
    def pending(self) -> int:
        """The wrapped BIO's pending bytes."""
        return self.bio.pending

    def write(self, data: Buffer, /) -> int:
        """Record the size, then write to the wrapped BIO."""
        self.writes.append(memoryview(data).nbytes)
        return self.bio.write(data)

    def write_eof(self) -> None:
        """End the wrapped BIO."""
        self.bio.write_eof()


def test_handshake_bytes_reach_the_incoming_bio_in_small_steps(
    tls_contexts: Contexts,
) -> None:
    """A ClientHello and a server flight enter the BIO a few hundred bytes at a time.

    A memory BIO keeps the capacity of its largest write: small steps keep
    what an idle connection holds small.
    """
    client, server, _, _ = _pair(tls_contexts)
    recorders = []
    for layer in (client, server):
        rec = _Recording(layer._incoming)
        layer._incoming = rec  # type: ignore[assignment]
        recorders.append(rec)
    _handshake(client, server)
    for rec in recorders:
        assert rec.writes
        assert max(rec.writes) <= 128
    assert sum(recorders[1].writes) > 128  # the ClientHello took several steps


def test_plaintext_behind_the_last_handshake_message_arrives(
    tls_contexts: Contexts,
) -> None:
    """Finished and the first plaintext in one receive: the plaintext comes whole."""
    client, server, c_sock, _ = _pair(tls_contexts)
    client.begin()
    buf = memoryview(bytearray(65536))
    client.flush()
    with pytest.raises(BlockingIOError):
        server.recv_into(buf)  # the ClientHello
    server.flush()
    with pytest.raises(BlockingIOError):
        client.recv_into(buf)  # the server's flight: the client is done
    assert client.handshake_done
    data = bytes(range(256)) * 4
    with contextlib.suppress(BlockingIOError):
        client.sendmsg([memoryview(data)])
    client.flush()
    assert len(c_sock.peer.inbox if c_sock.peer else b"") > len(data)
    assert _read_all(server, len(data)) == data
    assert server.handshake_done


class _CountingObject(ssl.SSLObject):
    """An SSLObject subclass that counts reads and writes."""

    reads = 0
    writes = 0

    def read(self, len: int = 1024, buffer: Buffer | None = None) -> bytes:
        """Count, then read."""
        type(self).reads += 1
        return super().read(len, buffer)

    def write(self, data: Buffer) -> int:
        """Count, then write."""
        type(self).writes += 1
        return super().write(data)


def test_a_contexts_own_sslobject_class_is_called(tmp_path: Path) -> None:
    """With ``sslobject_class`` set, the layer calls that class's read and write."""
    server_ctx, client_ctx = make_tls_contexts(tmp_path)
    server_ctx.sslobject_class = _CountingObject
    client, server, _, _ = _pair((server_ctx, client_ctx))
    _handshake(client, server)
    assert server.sendmsg([memoryview(b"ping")]) == 4
    assert client.sendmsg([memoryview(b"pong")]) == 4
    assert _read_all(server, 4) == b"pong"
    assert _CountingObject.writes == 1
    assert _CountingObject.reads >= 1


def _send_records(client: TLSLayer, sizes: list[int]) -> bytes:
    """Send one record per size (distinct bytes each); return the plaintext."""
    sent = bytearray()
    for index, size in enumerate(sizes):
        part = memoryview(bytes([index % 251]) * size)
        done = 0
        for _ in range(1000):  # the memory socket may take part of a record
            if done == size:
                break
            with contextlib.suppress(BlockingIOError):
                done += client.sendmsg([part[done:]])
        assert done == size
        sent += part
    assert client.flush()
    return bytes(sent)


def _receive(server: TLSLayer, size: int, buffer_size: int) -> tuple[bytes, bool]:
    """Read plaintext until ``size`` bytes and the end, or nothing moves."""
    buf = memoryview(bytearray(buffer_size))
    out = bytearray()
    for _ in range(10_000):
        try:
            got = server.recv_into(buf)
        except BlockingIOError:
            if len(out) >= size:
                return bytes(out), False
            continue
        if not got:
            return bytes(out), True
        out += buf[:got]
    raise AssertionError("the reads never ended")


@pytest.mark.parametrize(
    "sizes",
    [
        [16384] * 4 + [100],
        [100] * 600,
        [16384, 5, 16384, 7000, 16384, 1],
    ],
)
@pytest.mark.parametrize("ended", [False, True])
def test_a_big_read_enters_the_bio_in_steps(
    tls_contexts: Contexts, sizes: list[int], ended: bool
) -> None:
    """A 64 KiB read of ciphertext reaches the BIO in steps; plaintext stays exact."""
    client, server, _, _ = _pair(tls_contexts)
    _handshake(client, server)
    rec = _Recording(server._incoming)
    server._incoming = rec  # type: ignore[assignment]
    data = _send_records(client, sizes)
    if ended:
        client.close_notify()
        client.flush()
    got, saw_end = _receive(server, len(data), 65536)
    assert got == data
    assert saw_end is ended
    assert max(rec.writes) <= 8192
    assert rec.writes.count(8192) >= 2  # big reads did go in steps


@settings(max_examples=20, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 16384), min_size=1, max_size=12),
    buffer_size=st.sampled_from([2048, 16384, 65536]),
    ended=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_records_of_any_size_arrive_exact_through_any_buffer(
    tls_contexts: Contexts,
    sizes: list[int],
    buffer_size: int,
    ended: bool,
    seed: int,
) -> None:
    """Records of drawn sizes, read with a drawn buffer and split: exact, in order."""
    client, server, _, _ = _pair(tls_contexts, seed)
    _handshake(client, server)
    data = _send_records(client, sizes)
    if ended:
        client.close_notify()
        client.flush()
    got, saw_end = _receive(server, len(data), buffer_size)
    assert got == data
    assert saw_end is ended


@pytest.mark.parametrize("damaged", [0, 1, 3])
def test_a_damaged_record_fails_after_the_plaintext_before_it(
    tls_contexts: Contexts, damaged: int
) -> None:
    """Records before a damaged one are delivered; the next read raises SSLError."""
    client, server, _, s_sock = _pair(tls_contexts)
    _handshake(client, server)
    data = _send_records(client, [16384] * 4)
    record = len(s_sock.inbox) // 4
    s_sock.inbox[damaged * record + record // 2] ^= 0xFF
    buf = memoryview(bytearray(65536))
    out = bytearray()
    failure: ssl.SSLError | None = None
    for _ in range(100):
        try:
            out += buf[: server.recv_into(buf)]
        except BlockingIOError:
            continue
        except ssl.SSLError as exc:
            failure = exc
            break
    assert failure is not None
    assert bytes(out) == data[: damaged * 16384]
