"""The soak over TLS: a throwaway certificate and the TLS scenarios.

Theory of operation: a TLS target is ``bufkit serve`` with ``--tls-cert`` and
``--tls-key`` pointing at a self-signed certificate for ``localhost`` that
``openssl req`` writes once per soak into a temporary folder (removed at
exit); without the ``openssl`` tool the TLS targets are skipped. The
scenarios use Python's :mod:`ssl` on the client side: byte-exact echo in
lock-step chunks (TLS has no half-close, so the client never sends more than
one chunk ahead of what came back), peers that handshake then send without
reading, plain HTTP and random bytes to the TLS port, and peers that send a
ClientHello and then nothing, which the server must drop at its handshake
timeout. Every exchange is bounded by a socket timeout.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import random
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Final

import attrs

__all__ = [
    "HANDSHAKE_TIMEOUT",
    "Certificate",
    "certificate",
    "client_hello",
    "echo_exchange",
    "wait_closed",
]

HANDSHAKE_TIMEOUT: Final = 2.0
"""The ``--tls-handshake-timeout`` the TLS targets run with (seconds)."""
CHUNK_MAX: Final = 16 * 1024


@attrs.frozen
class Certificate:
    """A certificate and key on disk, and a client context that trusts them."""

    cert: Path
    key: Path

    def client_context(self) -> ssl.SSLContext:
        """A client context that verifies the server's ``localhost`` name."""
        return ssl.create_default_context(cafile=str(self.cert))


@functools.cache
def certificate() -> Certificate | None:
    """Write a self-signed ``localhost`` certificate once; None without openssl."""
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    folder = Path(tempfile.mkdtemp(prefix="bufkit-soak-tls-"))
    atexit.register(shutil.rmtree, folder, True)
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost",
            "-days",
            "1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return Certificate(cert, key)


def connect(port: int, context: ssl.SSLContext, timeout: float) -> ssl.SSLSocket:
    """A TLS client connection to 127.0.0.1, handshake done (blocking)."""
    raw = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        return context.wrap_socket(raw, server_hostname="localhost")
    except BaseException:
        raw.close()
        raise


def echo_exchange(
    port: int,
    context: ssl.SSLContext,
    data: bytes,
    rng: random.Random,
    timeout: float,
) -> str | None:
    """Send ``data`` in random chunks, check each echoed byte; return a problem."""
    try:
        with connect(port, context, timeout) as sock:
            sent = 0
            while sent < len(data):
                chunk = data[sent : sent + rng.randint(1, CHUNK_MAX)]
                sock.sendall(chunk)
                got = bytearray()
                while len(got) < len(chunk):
                    more = sock.recv(len(chunk) - len(got))
                    if not more:
                        return f"end of stream after {sent + len(got)} bytes"
                    got += more
                if got != chunk:
                    return f"reply differs within bytes {sent}-{sent + len(chunk)}"
                sent += len(chunk)
    except (OSError, ssl.SSLError) as exc:  # ssl.SSLError is an OSError
        return f"{type(exc).__name__}: {exc}"
    return None


def echo_many(
    port: int,
    context: ssl.SSLContext,
    payloads: list[bytes],
    rng: random.Random,
    timeout: float,
) -> list[str | None]:
    """Run :func:`echo_exchange` for every payload at once, one thread each."""
    problems: list[str | None] = [None] * len(payloads)
    seeds = [rng.randrange(1 << 32) for _ in payloads]

    def one(i: int) -> None:
        problems[i] = echo_exchange(
            port, context, payloads[i], random.Random(seeds[i]), timeout
        )

    threads = [threading.Thread(target=one, args=(i,)) for i in range(len(payloads))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return problems


def client_hello() -> bytes:
    """The first flight of a TLS client: what a peer sends before it stalls."""
    context = ssl.create_default_context()
    outgoing = ssl.MemoryBIO()
    obj = context.wrap_bio(ssl.MemoryBIO(), outgoing, server_hostname="localhost")
    with contextlib.suppress(ssl.SSLWantReadError):
        obj.do_handshake()
    return outgoing.read()


def wait_closed(sock: socket.socket, timeout: float) -> float | None:
    """Read (and drop) until the peer closes; its delay, or None at ``timeout``."""
    started = time.monotonic()
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            if time.monotonic() - started > timeout:
                return None
    except ConnectionResetError:
        pass
    except TimeoutError:
        return None
    return time.monotonic() - started
