"""The selectors adapter on real loopback sockets, bounded in time and count."""

from __future__ import annotations

import functools
import hashlib
import random
import resource
import socket
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Iterator

import pytest

from bufkit import PooledBuffer
from bufkit.adapters.selectors import Connection, ConnectionProtocol, Loop
from bufkit.servers import Echo
from tests.adapters._selectors_support import Recorder

pytestmark = pytest.mark.slow

HIGH_WATER = 65536
LOW_WATER = 16384


@pytest.fixture
def loop() -> Iterator[Loop]:
    """A loop with the default watermarks, closed after the test."""
    loop = Loop(high_water=HIGH_WATER, low_water=LOW_WATER)
    yield loop
    loop.close()
    assert loop.pool.stats().buffers_in_use == 0


class _HashClient(ConnectionProtocol):
    """Send a payload, hash what comes back, close when it all came back."""

    def __init__(self, payload: bytes, results: list[bool]) -> None:
        self.payload = payload
        self.results = results
        self.digest = hashlib.sha256()
        self.got = 0

    def connection_made(self, conn: Connection, /) -> None:
        self.conn = conn
        conn.write(self.payload)

    def data_received(self, view: memoryview, /) -> None:
        self.digest.update(view)
        self.got += len(view)
        if self.got >= len(self.payload):
            expected = hashlib.sha256(self.payload).digest()
            self.results.append(self.digest.digest() == expected)
            self.conn.close()


def test_thousand_concurrent_echo_clients(loop: Loop) -> None:
    """1000 clients with random payloads all get their exact bytes back."""
    rng = random.Random(1234)
    listener = loop.listen(Echo, "127.0.0.1", 0, backlog=2048)
    results: list[bool] = []
    for _ in range(1000):
        payload = rng.randbytes(rng.randint(1, 32768))
        loop.connect(
            functools.partial(_HashClient, payload, results), *listener.address
        )
    assert loop.run_until(lambda: len(results) == 1000, timeout=40)
    assert all(results)
    assert loop.run_until(lambda: not loop.connections, timeout=10)
    assert loop.pool.stats().buffers_in_use == 0


def _poll(loop: Loop, predicate: Callable[[], bool], timeout: float = 5) -> bool:
    """Run short iterations until ``predicate()``: it may watch non-loop sockets."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        loop.run_once(0.005)
    return True


def _server_conn(loop: Loop, client: socket.socket) -> Connection:
    port = client.getsockname()[1]
    for conn in loop.connections:
        sock = conn.socket
        assert isinstance(sock, socket.socket)
        if sock.getpeername()[1] == port:
            return conn
    raise AssertionError("no server connection for the client")


def test_slow_reader_is_bounded_by_the_watermark(loop: Loop) -> None:
    """A peer that does not read pauses the echo; pending stays bounded."""
    listener = loop.listen(Echo, "127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    with client:
        client.connect(listener.address)
        client.setblocking(False)
        assert loop.run_until(lambda: bool(loop.connections), timeout=5)
        server = _server_conn(loop, client)
        chunk = b"s" * 65536
        sent = max_pending = 0
        paused_seen = False
        for _ in range(2000):
            try:
                sent += client.send(chunk)
            except BlockingIOError:
                if paused_seen:
                    break
            loop.run_once(0.001)
            max_pending = max(max_pending, server.pending_bytes)
            paused_seen = paused_seen or server.writing_paused
        assert paused_seen
        assert not server.reading
        assert max_pending <= HIGH_WATER + loop.pool.largest_class
        received = 0
        for _ in range(20000):
            try:
                received += len(client.recv(1 << 20))
            except BlockingIOError:
                loop.run_once(0.001)
            if received == sent:
                break
        assert received == sent
        assert not server.writing_paused
        assert server.reading


class _Flood(ConnectionProtocol):
    """Write pool buffers without end until the connection breaks."""

    def __init__(self, loop: Loop) -> None:
        self.loop = loop
        self.done: list[BaseException | None] = []
        self.lost: list[BaseException | None] = []

    def connection_made(self, conn: Connection, /) -> None:
        for _ in range(64):
            buf: PooledBuffer = self.loop.pool.acquire(65536)
            buf.filled = 65536
            conn.write(buf, self.done.append)

    def connection_lost(self, exc: BaseException | None, /) -> None:
        self.lost.append(exc)


def test_peer_reset_mid_write_fails_completions(loop: Loop) -> None:
    """A reset peer: ``connection_lost`` gets the error, completions fail, no leak."""
    flood = _Flood(loop)
    listener = loop.listen(lambda: flood, "127.0.0.1", 0)
    client = socket.socket()
    client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    client.connect(listener.address)
    assert loop.run_until(lambda: bool(loop.connections), timeout=5)
    server = next(iter(loop.connections))
    assert server.pending_bytes > 0
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()
    assert loop.run_until(lambda: bool(flood.lost), timeout=5)
    exc = flood.lost[0]
    assert isinstance(exc, OSError)
    assert len(flood.done) == 64
    failed = [e for e in flood.done if e is not None]
    assert failed
    assert all(e is exc for e in failed)
    assert loop.pool.stats().buffers_in_use == 0


def test_half_close_still_gets_the_reply(loop: Loop) -> None:
    """Peer shuts its write side; ``eof_received`` true; the reply arrives."""

    def make() -> Recorder:
        proto = Recorder(keep_open=True)

        def reply(conn: Connection) -> None:
            conn.write(b"got:" + bytes(proto.data))
            conn.close()

        proto.on_eof = reply
        return proto

    listener = loop.listen(make, "127.0.0.1", 0)
    with socket.create_connection(listener.address) as client:
        client.sendall(b"hello")
        client.shutdown(socket.SHUT_WR)
        client.setblocking(False)
        reply = bytearray()
        eof = []

        def done() -> bool:
            try:
                data = client.recv(100)
            except BlockingIOError:
                return False
            if not data:
                eof.append(True)
            reply.extend(data)
            return bool(eof)

        assert _poll(loop, done)
    assert bytes(reply) == b"got:hello"


_EMFILE_SERVER = textwrap.dedent(
    """
    import logging, resource, sys
    from bufkit.adapters.selectors import Loop
    from bufkit.servers import Echo
    logging.basicConfig(level=logging.ERROR)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (48, hard))
    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0)
    print(listener.address[1], flush=True)
    loop.call_later(30, loop.stop)
    loop.run_forever()
    """
)


def test_listener_survives_emfile() -> None:
    """Accept hitting EMFILE backs off and serves again once fds are free."""
    with subprocess.Popen(
        [sys.executable, "-c", _EMFILE_SERVER],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as server:
        try:
            assert server.stdout is not None
            port = int(server.stdout.readline())
            clients = [
                socket.create_connection(("127.0.0.1", port), timeout=5)
                for _ in range(80)
            ]
            clients[0].sendall(b"first")
            assert clients[0].recv(10) == b"first"
            for c in clients:
                c.close()
            with socket.create_connection(("127.0.0.1", port), timeout=10) as late:
                late.sendall(b"still alive")
                assert late.recv(20) == b"still alive"
            assert server.poll() is None
        finally:
            server.terminate()
            _out, err = server.communicate(timeout=10)
    assert "Too many open files" in err


_IDLE_CLIENTS = textwrap.dedent(
    """
    import resource, socket, sys
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    port, count = int(sys.argv[1]), int(sys.argv[2])
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(count)]
    print("ready", flush=True)
    sys.stdin.read()
    for s in socks:
        s.close()
    """
)


@pytest.fixture
def many_fds() -> Iterator[None]:
    """Raise this process's descriptor limit to the hard limit, then restore."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < 10500:
        pytest.skip(f"hard RLIMIT_NOFILE {hard} is too low for 10,000 connections")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.usefixtures("many_fds")
def test_ten_thousand_idle_connections_hold_no_pool_bytes(loop: Loop) -> None:
    """10,000 idle connections hold zero pool bytes (invariant 5)."""
    count = 10_000
    listener = loop.listen(Echo, "127.0.0.1", 0, backlog=4096)
    with subprocess.Popen(
        [sys.executable, "-c", _IDLE_CLIENTS, str(listener.address[1]), str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as clients:
        try:
            assert loop.run_until(lambda: listener.accepted == count, timeout=60)
            assert len(loop.connections) == count
            stats = loop.pool.stats()
            assert stats.bytes_in_use == 0
            assert stats.buffers_in_use == 0
            assert clients.stdout is not None
            assert clients.stdout.readline().strip() == "ready"
        finally:
            clients.communicate("", timeout=60)
    assert loop.run_until(lambda: not loop.connections, timeout=60)
    assert loop.pool.stats().buffers_in_use == 0
