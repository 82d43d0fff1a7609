"""A throwaway self-signed certificate and the TLS contexts around it."""

from __future__ import annotations

import datetime
import socket
import ssl
import time
from pathlib import Path


def self_signed(folder: Path) -> tuple[Path, Path]:
    """Write a certificate and key for ``localhost`` into ``folder``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def make_tls_contexts(folder: Path) -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """Server and client contexts around a fresh certificate in ``folder``."""
    cert, key = self_signed(folder)
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=str(cert))
    return server, client


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
