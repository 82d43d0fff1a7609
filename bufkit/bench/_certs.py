"""The bench's throwaway TLS certificate, and the contexts around it.

A self-signed ECDSA P-256 certificate for ``localhost``, valid for a day,
written into a temporary folder: with :mod:`cryptography` when it is
installed, else with the ``openssl`` tool. Without either, the TLS rows and
cells of the bench are skipped with that reason.
"""

from __future__ import annotations

import datetime
import importlib.util
import shutil
import ssl
import subprocess
from pathlib import Path

import attrs

__all__ = [
    "CertFiles",
    "client_context",
    "self_signed",
    "server_context",
    "unavailable",
]


@attrs.frozen
class CertFiles:
    """Paths of a PEM certificate and its PEM private key."""

    cert: str
    key: str


def unavailable() -> str | None:
    """Return why no certificate can be made here, or ``None`` if one can."""
    if importlib.util.find_spec("cryptography") is not None:
        return None
    if shutil.which("openssl") is not None:
        return None
    return "neither the cryptography package nor the openssl tool is available"


def self_signed(folder: Path) -> CertFiles:
    """Write a certificate and key for ``localhost`` into ``folder``.

    Raises:
        RuntimeError: neither :mod:`cryptography` nor ``openssl`` is available.
    """
    cert, key = folder / "cert.pem", folder / "key.pem"
    if importlib.util.find_spec("cryptography") is not None:
        _with_cryptography(cert, key)
    elif shutil.which("openssl") is not None:
        _with_openssl(cert, key)
    else:
        raise RuntimeError(unavailable())
    return CertFiles(str(cert), str(key))


def server_context(files: CertFiles) -> ssl.SSLContext:
    """A server :class:`ssl.SSLContext` with ``files`` loaded."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(files.cert, files.key)
    return ctx


def client_context(cafile: str) -> ssl.SSLContext:
    """A client :class:`ssl.SSLContext` that trusts the certificate ``cafile``."""
    return ssl.create_default_context(cafile=cafile)


def _with_cryptography(cert_path: Path, key_path: Path) -> None:
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
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


def _with_openssl(cert: Path, key: Path) -> None:
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
