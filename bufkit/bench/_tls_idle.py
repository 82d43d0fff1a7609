"""The idle scenario's TLS rows: server memory per idle TLS connection.

Theory of operation: each server (asyncio ``ssl=``, uvloop ``ssl=``, the
bufkit selectors ``Loop`` with ``ssl=``, and non-blocking ``ssl.SSLSocket``
objects on a selector, the floor for a Python TLS server) runs in its own
process, ``python -m bufkit.bench._tls_idle NAME CERT KEY``, echoes, prints
``READY PORT``, and answers ``pool`` on stdin with the pool bytes it has lent
(bufkit only). The bench opens the connections from its own process with
Python's :mod:`ssl`, completes each handshake and echoes one message, waits
one second, and reads the server's resident set size from ``/proc``: (RSS with
the idle connections - RSS before any) per connection. The certificate is a
self-signed one that ``openssl req`` writes into a temporary folder; without
the tool the rows are skipped. Targets are judged against the other rows of
the same run, by the bench, never by a test.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

__all__ = ["CONNECTIONS", "SERVERS", "main", "tls_idle_rows", "verdicts"]

SERVERS: Final = ("bufkit-selectors", "raw-sslsocket", "asyncio", "uvloop")
CONNECTIONS: Final = 500
"""Idle TLS connections per server (each costs a full handshake)."""
_SETTLE: Final = 1.0


def _context(cert: str, key: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert, key)
    return ctx


def _ready(port: int, pool: Callable[[], int | None]) -> None:
    os.write(1, f"READY {port}\n".encode())

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "pool":
                os.write(1, f"POOL {pool()}\n".encode())
        os._exit(0)

    threading.Thread(target=control, daemon=True).start()


def _serve_bufkit(ctx: ssl.SSLContext) -> None:
    from bufkit.adapters.selectors import Loop
    from bufkit.servers import Echo

    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=ctx)
    _ready(listener.address[1], lambda: loop.pool.stats().bytes_in_use)
    loop.run_forever()


def _serve_asyncio(ctx: ssl.SSLContext, use_uvloop: bool) -> None:
    import asyncio

    class EchoProtocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's TLS transport is not an asyncio.Transport subclass
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(EchoProtocol, "127.0.0.1", 0, ssl=ctx)
        _ready(server.sockets[0].getsockname()[1], lambda: None)
        await asyncio.Event().wait()

    if use_uvloop:
        import uvloop

        uvloop.run(main())
    else:
        asyncio.run(main())


def _serve_raw(ctx: ssl.SSLContext) -> None:
    sel = selectors.DefaultSelector()
    lsock = socket.create_server(("127.0.0.1", 0), backlog=4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    _ready(lsock.getsockname()[1], lambda: None)
    buf = bytearray(16384)
    while True:
        for key, _ in sel.select():
            if key.data is None:
                try:
                    raw, _addr = lsock.accept()
                except BlockingIOError:
                    continue
                raw.setblocking(False)
                tls = ctx.wrap_socket(
                    raw, server_side=True, do_handshake_on_connect=False
                )
                sel.register(tls, selectors.EVENT_READ, "handshake")
                continue
            sock = key.fileobj
            assert isinstance(sock, ssl.SSLSocket)
            try:
                if key.data == "handshake":
                    sock.do_handshake()
                    sel.modify(sock, selectors.EVENT_READ, "up")
                while True:  # a record may have come with the handshake
                    n = sock.recv_into(buf)
                    if not n:
                        sel.unregister(sock)
                        sock.close()
                        break
                    sock.sendall(buf[:n])
                    if not sock.pending():
                        break
            except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
                continue
            except OSError:
                sel.unregister(sock)
                sock.close()


def main(argv: list[str] | None = None) -> int:
    """Serve TLS echo as server ``NAME`` with ``CERT`` and ``KEY``."""
    from bufkit.bench._wire import raise_nofile_limit

    name, cert, key = argv if argv is not None else sys.argv[1:]
    raise_nofile_limit()
    ctx = _context(cert, key)
    if name == "bufkit-selectors":
        _serve_bufkit(ctx)
    elif name == "raw-sslsocket":
        _serve_raw(ctx)
    else:
        _serve_asyncio(ctx, use_uvloop=name == "uvloop")
    return 0


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _certificate(folder: Path) -> tuple[str, str] | None:
    openssl = shutil.which("openssl")
    if openssl is None:
        return None
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        [
            *(openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt"),
            *("ec_paramgen_curve:prime256v1", "-nodes", "-subj", "/CN=localhost"),
            *("-addext", "subjectAltName=DNS:localhost", "-days", "1"),
            *("-keyout", str(key), "-out", str(cert)),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return str(cert), str(key)


def _measure(name: str, cert: str, key: str, count: int) -> dict[str, Any]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bufkit.bench._tls_idle", name, cert, key],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        bufsize=1,
    )
    socks: list[ssl.SSLSocket] = []
    try:
        assert proc.stdout is not None
        assert proc.stdin is not None
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            return {"server": name, "skipped": f"did not start: {line.strip()!r}"}
        port = int(line.split()[1])
        time.sleep(0.3)
        before = _rss(proc.pid)
        client = ssl.create_default_context(cafile=cert)
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", port), timeout=30)
            tls = client.wrap_socket(raw, server_hostname="localhost")
            socks.append(tls)
            tls.sendall(b"ping")
            got = b""
            while len(got) < 4:
                more = tls.recv(4 - len(got))
                if not more:
                    raise ConnectionError(f"{name} closed a TLS connection")
                got += more
        time.sleep(_SETTLE)
        after = _rss(proc.pid)
        proc.stdin.write("pool\n")
        pool = proc.stdout.readline().split()[1]
        return {
            "server": name,
            "connections": count,
            "rss_per_conn": (after - before) / count,
            "pool_bytes_idle": None if pool == "None" else int(pool),
        }
    finally:
        for sock in socks:
            sock.close()
        proc.kill()
        proc.communicate(timeout=10)


def tls_idle_rows(count: int) -> list[dict[str, Any]]:
    """Measure every TLS server with ``count`` idle connections; one row each."""
    from bufkit.bench._wire import raise_nofile_limit

    raise_nofile_limit()
    with tempfile.TemporaryDirectory(prefix="bufkit-bench-tls-") as tmp:
        files = _certificate(Path(tmp))
        if files is None:
            return [{"server": n, "skipped": "no openssl tool"} for n in SERVERS]
        rows = []
        for name in SERVERS:
            if name == "uvloop" and importlib.util.find_spec("uvloop") is None:
                rows.append({"server": name, "skipped": "uvloop is not installed"})
                continue
            rows.append(_measure(name, *files, count))
    return rows


def verdicts(rows: list[dict[str, Any]]) -> list[str]:
    """The TLS idle targets, judged against the other rows of the same run."""
    per = {r["server"]: r["rss_per_conn"] for r in rows if "rss_per_conn" in r}
    ours = per.get("bufkit-selectors")
    if ours is None:
        return ["TLS idle: bufkit-selectors not measured"]
    out = []

    def judge(label: str, ok: bool, figure: str) -> None:
        out.append(f"{'met' if ok else 'MISSED'}: {label} ({figure})")

    if "raw-sslsocket" in per:
        ratio = ours / per["raw-sslsocket"]
        judge("within 1.2x of the raw SSLSocket floor", ratio <= 1.2, f"{ratio:.2f}x")
    if "asyncio" in per:
        ratio = ours / per["asyncio"]
        judge("at most 0.1x of asyncio ssl=", ratio <= 0.1, f"{ratio:.3f}x")
    if "uvloop" in per:
        judge(
            "below uvloop ssl=",
            ours < per["uvloop"],
            f"{ours / 1024:.1f} vs {per['uvloop'] / 1024:.1f} KiB",
        )
    pool = next(
        r.get("pool_bytes_idle") for r in rows if r["server"] == "bufkit-selectors"
    )
    judge("pool bytes held by idle TLS connections 0", pool == 0, f"{pool} bytes")
    return out


if __name__ == "__main__":
    sys.exit(main())
