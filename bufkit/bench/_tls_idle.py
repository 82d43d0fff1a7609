"""The idle scenario's TLS rows: server memory per idle TLS connection.

Theory of operation: each server runs in its own process, ``python -m
bufkit.bench._tls_idle NAME CERT KEY``, echoes over TLS, prints ``READY
PORT``, and answers ``pool`` on stdin with the pool bytes it has lent (bufkit
only). The servers (:data:`SERVERS`): asyncio ``ssl=``, uvloop ``ssl=``,
Twisted's own TLS (pyOpenSSL, ``TLSMemoryBIOFactory``), the bufkit selectors
``Loop`` and bufkit's Twisted transports with ``ssl=``, and non-blocking
``ssl.SSLSocket`` objects on a selector, the floor for a Python TLS server;
:data:`EXTRA_SERVERS` adds the asyncio drop-in on asyncio and on uvloop.

The bench opens the connections from its own process with Python's
:mod:`ssl`, :data:`BATCH` at a time (non-blocking handshakes, then one echoed
message each), waits half a second, and reads the server's resident set size
from ``/proc``: (RSS with the idle connections - RSS before any) per
connection. The certificate is a throwaway one (:mod:`bufkit.bench._certs`).
Targets are judged against the other rows of the same run, by the bench,
never by a test. ``benchmarks/tls_idle_rss.py`` is a command line over this
module.
"""

from __future__ import annotations

import importlib.util
import os
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from bufkit.bench._certs import CertFiles

__all__ = [
    "BATCH",
    "CONNECTIONS",
    "EXTRA_SERVERS",
    "FLOOR",
    "SERVERS",
    "main",
    "measure",
    "tls_idle_rows",
    "verdicts",
]

FLOOR: Final = "raw-sslsocket"
SERVERS: Final = (
    "bufkit-selectors",
    FLOOR,
    "asyncio",
    "uvloop",
    "twisted",
    "bufkit-twisted",
)
"""The servers of the idle scenario's TLS rows, in order."""
EXTRA_SERVERS: Final = ("bufkit-asyncio", "bufkit-asyncio-uvloop")
"""The asyncio drop-in (``create_server(ssl=)``) on asyncio and on uvloop."""
CONNECTIONS: Final = 300
"""Idle TLS connections per server (each costs a full handshake)."""
BATCH: Final = 16
"""Handshakes the client runs at once."""
_SETTLE: Final = 0.5
_NEEDS: Final = {
    "uvloop": "uvloop",
    "bufkit-asyncio-uvloop": "uvloop",
    "twisted": "OpenSSL",
    "bufkit-twisted": "twisted",
}


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


def _serve_twisted(cert: str, key: str, ours: bool) -> None:
    from bufkit.bench._certs import CertFiles
    from bufkit.bench._peers import twisted_peer, twisted_tls_factory

    reactor, echo, _fanout = twisted_peer()
    if ours:
        from bufkit.adapters.twisted import listen_tcp

        pool = _pool()
        port = listen_tcp(
            reactor, 0, echo, interface="127.0.0.1", ssl=_context(cert, key), pool=pool
        )
        _ready(port.getHost().port, lambda: pool.stats().bytes_in_use)
    else:
        wrapped = twisted_tls_factory(echo, CertFiles(cert, key))
        port = reactor.listenTCP(0, wrapped, interface="127.0.0.1")
        _ready(port.getHost().port, lambda: None)
    reactor.run()


def _serve_drop_in(ctx: ssl.SSLContext, use_uvloop: bool) -> None:
    from bufkit.adapters.asyncio import create_server
    from bufkit.bench._peers import echo_protocols, new_loop

    loop = new_loop(use_uvloop)
    pool = _pool()
    echo, _fanout = echo_protocols()
    server = loop.run_until_complete(
        create_server(echo, "127.0.0.1", 0, ssl=ctx, pool=pool)
    )
    _ready(server.sockets[0].getsockname()[1], lambda: pool.stats().bytes_in_use)
    loop.run_forever()


def _pool() -> Any:
    from bufkit import BufferPool

    return BufferPool()


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
    if name in ("twisted", "bufkit-twisted"):
        _serve_twisted(cert, key, ours=name == "bufkit-twisted")
        return 0
    ctx = _context(cert, key)
    if name == "bufkit-selectors":
        _serve_bufkit(ctx)
    elif name == FLOOR:
        _serve_raw(ctx)
    elif name.startswith("bufkit-asyncio"):
        _serve_drop_in(ctx, use_uvloop=name.endswith("-uvloop"))
    else:
        _serve_asyncio(ctx, use_uvloop=name == "uvloop")
    return 0


def _rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def _open(port: int, cafile: str, count: int) -> list[ssl.SSLSocket]:
    """Open ``count`` TLS connections, each with one message echoed."""
    ctx = ssl.create_default_context(cafile=cafile)
    socks: list[ssl.SSLSocket] = []
    try:
        with selectors.DefaultSelector() as sel:
            while len(socks) < count:
                batch = []
                for _ in range(min(BATCH, count - len(socks))):
                    raw = socket.create_connection(("127.0.0.1", port), timeout=30)
                    tls = ctx.wrap_socket(
                        raw, server_hostname="localhost", do_handshake_on_connect=False
                    )
                    socks.append(tls)
                    tls.setblocking(False)
                    batch.append(tls)
                _settle(sel, batch)
    except BaseException:
        for sock in socks:
            sock.close()
        raise
    return socks


def _settle(sel: selectors.BaseSelector, batch: list[ssl.SSLSocket]) -> None:
    """Drive the handshakes and one echo of ``batch`` to the end."""
    echoed = {sock: bytearray() for sock in batch}
    deadline = time.monotonic() + 60
    todo = list(batch)
    for sock in todo:
        sel.register(sock, selectors.EVENT_READ)
    try:
        while todo:
            todo = [sock for sock in todo if not _step(sock, echoed[sock])]
            if time.monotonic() > deadline:
                raise ConnectionError(f"{len(todo)} TLS connections did not echo")
            if todo:
                sel.select(0.5)
    finally:
        for sock in batch:
            sel.unregister(sock)


def _step(sock: ssl.SSLSocket, echoed: bytearray) -> bool:
    """Advance one connection; return whether its message came back."""
    try:
        if not echoed:
            sock.do_handshake()
            echoed += b"-"  # the handshake is done: send the message once
            sock.send(b"ping")
        while len(echoed) < 5:
            more = sock.recv(5 - len(echoed))
            if not more:
                raise ConnectionError("the server closed a TLS connection")
            echoed += more
    except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
        return False
    return True


def measure(name: str, files: CertFiles, count: int) -> dict[str, Any]:
    """Measure server ``name`` with ``count`` idle TLS connections; one row."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "bufkit.bench._tls_idle", name, files.cert, files.key],
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
        socks = _open(port, files.cert, count)
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


def _missing(name: str) -> str | None:
    module = _NEEDS.get(name)
    if module is not None and importlib.util.find_spec(module) is None:
        return f"{module} is not installed"
    return None


def tls_idle_rows(
    count: int, servers: tuple[str, ...] = SERVERS
) -> list[dict[str, Any]]:
    """Measure each of ``servers`` with ``count`` idle TLS connections; one row each."""
    from bufkit.bench._certs import self_signed, unavailable
    from bufkit.bench._wire import raise_nofile_limit

    raise_nofile_limit()
    reason = unavailable()
    if reason is not None:
        return [{"server": n, "skipped": reason} for n in servers]
    with tempfile.TemporaryDirectory(prefix="bufkit-bench-tls-") as tmp:
        files = self_signed(Path(tmp))
        rows = []
        for name in servers:
            missing = _missing(name)
            if missing is not None:
                rows.append({"server": name, "skipped": missing})
                continue
            rows.append(measure(name, files, count))
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
    if "twisted" in per and "bufkit-twisted" in per:
        ratio = per["bufkit-twisted"] / per["twisted"]
        out.append(f"reported: bufkit-twisted vs Twisted's own TLS ({ratio:.2f}x)")
    pool = next(
        r.get("pool_bytes_idle") for r in rows if r["server"] == "bufkit-selectors"
    )
    judge("pool bytes held by idle TLS connections 0", pool == 0, f"{pool} bytes")
    return out


if __name__ == "__main__":
    sys.exit(main())
