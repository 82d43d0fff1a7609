"""The selectors ``Loop``: callbacks, timers, listeners, and its failure policy."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import ssl
import threading
from pathlib import Path
from typing import Any

import pytest

from bufkit import BufferPool
from bufkit.adapters.selectors import (
    BACKOFF_START,
    Connection,
    ConnectionProtocol,
    Interest,
    Listener,
    Loop,
)
from bufkit.servers import Discard, Echo
from tests._tls import make_tls_contexts
from tests.adapters._selectors_support import Recorder


def test_call_soon_runs_in_order_and_cancel_skips() -> None:
    """``call_soon`` callbacks run in order, next iteration; cancelled ones don't."""
    loop = Loop()
    seen: list[int] = []
    loop.call_soon(seen.append, 1)
    handle = loop.call_soon(seen.append, 2)
    loop.call_soon(seen.append, 3)
    handle.cancel()
    assert handle.cancelled
    loop.run_once(0)
    assert seen == [1, 3]
    loop.close()


def test_call_later_runs_after_the_delay_with_a_fake_clock() -> None:
    """Timers fire once the loop's clock reaches them, earliest first."""
    now = [100.0]
    loop = Loop(clock=lambda: now[0])
    seen: list[str] = []
    loop.call_later(2.0, seen.append, "b")
    loop.call_later(1.0, seen.append, "a")
    loop.run_once(0)
    assert seen == []
    now[0] = 101.5
    assert loop.time() == 101.5
    loop.run_once(0)
    assert seen == ["a"]
    now[0] = 102.0
    loop.run_once(0)
    assert seen == ["a", "b"]
    loop.close()


def test_run_until_returns_false_on_timeout_and_true_on_predicate() -> None:
    """``run_until`` stops at its predicate or its timeout."""
    loop = Loop()
    assert loop.run_until(lambda: False, timeout=0.01) is False
    flag: list[bool] = []
    loop.call_later(0.01, flag.append, True)
    assert loop.run_until(lambda: bool(flag), timeout=5) is True
    loop.close()


def test_stop_ends_run_forever() -> None:
    """``stop`` from a callback makes ``run_forever`` return."""
    loop = Loop()
    loop.call_later(0.01, loop.stop)
    loop.run_forever()
    loop.close()
    assert loop.closed
    with pytest.raises(RuntimeError, match="closed"):
        loop.run_forever()


def test_raising_callback_is_logged_and_loop_survives(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A callback that raises is logged; later callbacks still run."""
    loop = Loop()
    seen: list[int] = []

    def boom() -> None:
        raise RuntimeError("boom")

    loop.call_soon(boom)
    loop.call_soon(seen.append, 1)
    with caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"):
        loop.run_once(0)
    assert seen == [1]
    assert "boom" in caplog.text
    loop.close()


def test_add_socket_echoes_over_a_socketpair() -> None:
    """A connected socket added to the loop runs its protocol."""
    loop = Loop()
    a, b = socket.socketpair()
    with b:
        conn = loop.add_socket(a, Echo())
        b.sendall(b"hello")
        got = bytearray()
        b.setblocking(False)

        def received() -> bool:
            with contextlib.suppress(BlockingIOError):
                got.extend(b.recv(100))
            return bytes(got) == b"hello"

        assert loop.run_until(received, timeout=5)
        assert conn.bytes_received == 5
        assert loop.connections == frozenset({conn})
        loop.close()
        assert conn.closed
    assert loop.pool.stats().buffers_in_use == 0


def test_writes_from_a_timer_are_flushed_once_at_iteration_end() -> None:
    """Several writes made by a callback leave in one flush at iteration end."""
    loop = Loop()
    a, b = socket.socketpair()
    with b:
        conn = loop.add_socket(a, Recorder())

        def burst() -> None:
            for _ in range(20):
                conn.write(b"x" * 10)

        loop.call_soon(burst)
        loop.run_once(0)
        assert conn.flushes == 1
        assert b.recv(1000) == b"x" * 200
        loop.close()


def test_listener_accepts_several_connections_per_event() -> None:
    """One readiness event on a listener accepts every pending connection."""
    loop = Loop()
    listener = loop.listen(Discard, "127.0.0.1", 0)
    clients = [socket.create_connection(listener.address) for _ in range(5)]
    try:
        loop.run_once(5)
        assert listener.accepted == 5
        assert len(loop.connections) == 5
    finally:
        for c in clients:
            c.close()
        loop.close()
    assert listener.closed


def test_listen_socket_accepts_on_a_socket_made_elsewhere() -> None:
    """listen_socket serves a socket bound outside the loop, and closes it with it."""
    made = socket.create_server(("127.0.0.1", 0))
    loop = Loop()
    listener = loop.listen_socket(Echo, made)
    assert not made.getblocking()
    try:
        with socket.create_connection(made.getsockname()) as client:
            client.sendall(b"shared")
            client.setblocking(False)
            got = bytearray()

            def echoed() -> bool:
                with contextlib.suppress(BlockingIOError):
                    got.extend(client.recv(100))
                return len(got) >= 6

            assert loop.run_until(echoed, timeout=5)
            assert got == b"shared"
    finally:
        loop.close()
    assert listener.closed
    assert made.fileno() == -1


def test_listen_socket_speaks_tls_with_ssl(tmp_path: Path) -> None:
    """listen_socket with ssl= handshakes and echoes over TLS on a given socket."""
    server_ctx, client_ctx = make_tls_contexts(tmp_path)
    made = socket.create_server(("127.0.0.1", 0))
    loop = Loop()
    loop.listen_socket(Echo, made, ssl=server_ctx, ssl_handshake_timeout=5.0)
    raw = socket.create_connection(made.getsockname())
    raw.setblocking(False)
    client = client_ctx.wrap_socket(
        raw, server_hostname="localhost", do_handshake_on_connect=False
    )
    got = bytearray()
    state = {"shook": False, "sent": False}

    def echoed() -> bool:
        with contextlib.suppress(ssl.SSLWantReadError, ssl.SSLWantWriteError):
            if not state["shook"]:
                client.do_handshake()
                state["shook"] = True
            if not state["sent"]:
                client.send(b"over tls")
                state["sent"] = True
            got.extend(client.recv(100))
        return len(got) >= 8

    try:
        assert loop.run_until(echoed, timeout=10)
        assert got == b"over tls"
    finally:
        client.close()
        loop.close()


def test_listen_socket_refuses_a_bad_ssl_context() -> None:
    """listen_socket refuses an ssl= that is not an SSLContext, registering nothing."""
    loop = Loop()
    with socket.create_server(("127.0.0.1", 0)) as made:
        with pytest.raises(TypeError):
            loop.listen_socket(Echo, made, ssl="cert.pem")  # type: ignore[arg-type]
        assert loop.listeners == frozenset()
    loop.close()


def test_listen_socket_refuses_a_datagram_socket() -> None:
    """A UDP socket is refused with ValueError, and nothing is registered."""
    loop = Loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(ValueError, match="stream socket"):
            loop.listen_socket(Echo, udp)
        assert loop.listeners == frozenset()
    loop.close()


def test_factory_that_raises_is_logged_and_socket_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A protocol factory that raises closes the accepted socket; the loop lives."""

    def factory() -> ConnectionProtocol:
        raise RuntimeError("no protocol")

    loop = Loop()
    listener = loop.listen(factory, "127.0.0.1", 0)
    with (
        socket.create_connection(listener.address) as client,
        caplog.at_level(logging.ERROR, logger="bufkit.adapters.selectors"),
    ):
        loop.run_once(5)
        client.settimeout(5)
        assert client.recv(10) == b""
    assert "no protocol" in caplog.text
    assert not loop.connections
    loop.close()


def test_connect_reaches_a_listener_and_reports_errors() -> None:
    """``connect`` makes a connection; a refused one calls ``on_error``."""
    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0)
    client = Recorder()
    connector = loop.connect(lambda: client, *listener.address)
    assert loop.run_until(lambda: client.conn is not None, timeout=5)
    assert client.conn is not None
    assert connector.done
    assert connector.connection is client.conn
    client.conn.write(b"ping")
    assert loop.run_until(lambda: bytes(client.data) == b"ping", timeout=5)
    port = listener.address[1]
    listener.close()
    errors: list[OSError] = []
    loop.connect(Recorder, "127.0.0.1", port, on_error=errors.append)
    assert loop.run_until(lambda: bool(errors), timeout=5)
    assert isinstance(errors[0], OSError)
    loop.close()


def test_connect_resolves_a_name_without_blocking_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A host name is looked up off the loop: other connections run meanwhile."""
    lookups: list[int] = []
    real_getaddrinfo = socket.getaddrinfo

    def recording_getaddrinfo(host: str, *args: Any, **kwargs: Any) -> Any:
        numeric = kwargs.get("flags", 0) & socket.AI_NUMERICHOST
        if host == "localhost" and not numeric:  # a lookup that may block
            lookups.append(threading.get_ident())
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", recording_getaddrinfo)
    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0)
    a, b = socket.socketpair()
    echo = Recorder()
    echo.on_data = lambda conn, view: conn.write(bytes(view))
    loop.add_socket(a, echo)
    client = Recorder()
    connector = loop.connect(lambda: client, "localhost", listener.address[1])
    # connect() returned before the name was resolved: nothing connected yet,
    # and the other connection is served in the next iteration.
    assert (connector.connection, connector.done) == (None, False)
    b.sendall(b"meanwhile")
    assert loop.run_until(lambda: bytes(echo.data) == b"meanwhile", timeout=5)
    assert loop.run_until(lambda: connector.done, timeout=10)
    assert lookups
    assert threading.get_ident() not in lookups
    if connector.error is None:  # "localhost" may not resolve to 127.0.0.1 here
        assert connector.connection is not None
        assert client.conn is connector.connection
    b.close()
    loop.close()


def test_a_cancelled_connect_makes_no_protocol() -> None:
    """``Connector.cancel`` closes the socket being connected; no protocol is made."""
    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0)
    made: list[Recorder] = []

    def factory() -> Recorder:
        made.append(Recorder())
        return made[-1]

    connector = loop.connect(factory, *listener.address)
    connector.cancel()
    assert connector.done
    for _ in range(5):
        loop.run_once(0.01)
    assert made == []
    assert connector.connection is None
    loop.close()


def test_close_with_grace_drains_connections() -> None:
    """``close(grace=...)`` lets queued data leave before closing."""
    loop = Loop()
    a, b = socket.socketpair()
    with b:
        proto = Recorder()
        conn = loop.add_socket(a, proto)
        conn.write(b"last words")
        loop.close(grace=5)
        assert proto.lost == [None]
        assert b.recv(100) == b"last words"


def test_interest_none_unregisters_and_pause_resume_reregisters() -> None:
    """A paused connection with nothing to send is not watched at all."""
    loop = Loop()
    a, b = socket.socketpair()
    with b:
        conn: Connection = loop.add_socket(a, Recorder())
        conn.pause_reading()
        assert conn.interest is Interest.NONE
        b.sendall(b"data")
        loop.run_once(0.01)
        assert conn.bytes_received == 0
        conn.resume_reading()
        assert loop.run_until(lambda: conn.bytes_received == 4, timeout=5)
        loop.close()


def test_loop_shares_one_pool() -> None:
    """A pool given to the loop lends every connection's read buffers."""
    pool = BufferPool()
    loop = Loop(pool=pool)
    assert loop.pool is pool
    loop.close()


class _FlakyAccept:
    """A listening socket whose first accepts fail with chosen errors."""

    def __init__(self, sock: socket.socket, errors: list[int]) -> None:
        self.sock = sock
        self.errors = errors

    def accept(self) -> tuple[socket.socket, object]:
        """Fail while errors are left, then accept for real."""
        if self.errors:
            code = self.errors.pop(0)
            raise OSError(code, os.strerror(code))
        return self.sock.accept()

    def fileno(self) -> int:
        """Delegate."""
        return self.sock.fileno()

    def getsockname(self) -> tuple[str, int]:
        """Delegate."""
        host, port = self.sock.getsockname()[:2]
        return host, port

    def close(self) -> None:
        """Delegate."""
        self.sock.close()


def _registered(listener: Listener) -> bool:
    return listener._fd >= 0


def test_listener_backs_off_on_emfile_then_accepts(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """EMFILE stops accepting for a doubling back-off; success resets it."""
    now = [0.0]
    loop = Loop(clock=lambda: now[0])
    listener = loop.listen(Discard, "127.0.0.1", 0)
    flaky = _FlakyAccept(
        listener._sock, [errno.EMFILE, errno.ENFILE, errno.ECONNABORTED]
    )
    listener._sock = flaky  # type: ignore[assignment]
    with (
        socket.create_connection(listener.address) as client,
        caplog.at_level(logging.WARNING, logger="bufkit.adapters.selectors"),
    ):
        loop.run_once(5)
        assert listener.backoffs == 1
        assert not _registered(listener)
        now[0] += BACKOFF_START
        loop.run_once(0)
        assert _registered(listener)
        loop.run_once(5)
        assert listener.backoffs == 2
        assert not _registered(listener)
        now[0] += 2 * BACKOFF_START
        loop.run_once(0)
        loop.run_once(5)
        assert listener.accepted == 1
        assert listener._policy.delay == 0.0
        client.sendall(b"x")
    assert "Too many open files" in caplog.text
    assert "accept failed" in caplog.text
    loop.close()


def test_listener_closed_by_an_earlier_handler_accepts_nothing() -> None:
    """A listener closed in the iteration that reported it ready stays quiet."""
    loop = Loop()
    listener = loop.listen(Discard, "127.0.0.1", 0)
    flaky = _FlakyAccept(listener._sock, [errno.EBADF] * 5)
    listener._sock = flaky  # type: ignore[assignment]
    with socket.create_connection(listener.address):
        loop.run_once(5)
        assert flaky.errors == [errno.EBADF] * 4  # one failure, no retry loop
        listener.close()
        listener._on_ready(1)
        assert flaky.errors == [errno.EBADF] * 4
    loop.close()


class _Subscriber(ConnectionProtocol):
    """Counts pause_writing calls."""

    def __init__(self) -> None:
        self.conn: Connection | None = None
        self.pauses = 0

    def connection_made(self, conn: Connection, /) -> None:
        """Keep the connection."""
        self.conn = conn

    def pause_writing(self) -> None:
        """Count."""
        self.pauses += 1


def test_a_burst_published_to_a_fast_subscriber_does_not_pause_it() -> None:
    """A write from another connection's event, past high water, is sent first."""
    loop = Loop()
    pub_ours, pub_theirs = socket.socketpair()
    sub_ours, sub_theirs = socket.socketpair()
    sub_ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
    subscriber = _Subscriber()
    burst = bytes(100_000)  # above the 64 KiB high watermark
    publisher = Recorder()

    def publish(conn: Connection, view: memoryview) -> None:
        assert subscriber.conn is not None
        subscriber.conn.write(burst)

    publisher.on_data = publish
    try:
        loop.add_socket(pub_ours, publisher)
        loop.add_socket(sub_ours, subscriber)
        pub_theirs.sendall(b"go")
        loop.run_once(1.0)
        assert subscriber.pauses == 0
        sub_theirs.settimeout(5)
        got = bytearray()
        while len(got) < len(burst):
            got += sub_theirs.recv(65536)
        assert got == burst
    finally:
        loop.close()
        pub_theirs.close()
        sub_theirs.close()
