"""A throwaway self-signed certificate and the TLS contexts around it."""

from __future__ import annotations

import socket
import ssl
import time
from pathlib import Path

from bufkit.bench import _certs


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a certificate and key for ``localhost`` into ``folder``."""
    files = _certs.self_signed(folder)
    return Path(files.cert), Path(files.key)


def make_tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts around a fresh certificate in ``folder``."""
    files = _certs.self_signed(folder)
    return _certs.server_context(files), _certs.client_context(files.cert)


def handshake(*socks: ssl.SSLSocket, deadline: float = 30.0) -> None:
    """Drive both ends' non-blocking handshakes to completion."""
    todo = list(socks)
    started = time.monotonic()
    while todo:
        assert time.monotonic() - started < deadline, "TLS handshake hung"
        for sock in list(todo):
            try:
                sock.do_handshake()
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            todo.remove(sock)


def wrap_pair(
    contexts: tuple[ssl.SSLContext, ssl.SSLContext],
    client: socket.socket,
    server: socket.socket,
) -> tuple[ssl.SSLSocket, ssl.SSLSocket]:
    """Wrap both ends of a connected pair, handshake not yet done: (client, server)."""
    server_ctx, client_ctx = contexts
    return (
        client_ctx.wrap_socket(
            client, server_hostname="localhost", do_handshake_on_connect=False
        ),
        server_ctx.wrap_socket(server, server_side=True, do_handshake_on_connect=False),
    )
