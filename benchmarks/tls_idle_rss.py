"""Server memory per idle TLS connection: the selectors Loop, raw SSLSocket, asyncio.

Run from the repository root::

    python benchmarks/tls_idle_rss.py --connections 2000

Each server runs in its own process. The client (this process) opens the
connections, completes each handshake and echoes one message, then waits
until the server is idle and reads the server's resident set size from
``/proc``. The figure is (RSS with the idle connections - RSS before any) per
connection. Not a test: figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import os
import resource
import selectors
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _server_context(folder: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return ctx


def _raise_nofile() -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(20000, hard), hard))


def serve_bufkit(folder: Path, port_file: Path) -> None:
    """Echo over TLS on bufkit's selectors Loop."""
    from bufkit.adapters.selectors import Loop
    from bufkit.servers import Echo

    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=_server_context(folder))
    port_file.write_text(str(listener.address[1]))
    loop.run_forever()


def serve_asyncio(folder: Path, port_file: Path) -> None:
    """Echo over TLS with asyncio's create_server(ssl=)."""
    import asyncio

    class EchoProtocol(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)  # type: ignore[attr-defined]

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            EchoProtocol, "127.0.0.1", 0, ssl=_server_context(folder)
        )
        port_file.write_text(str(server.sockets[0].getsockname()[1]))
        await asyncio.Event().wait()

    asyncio.run(main())


def serve_raw(folder: Path, port_file: Path) -> None:
    """Echo over non-blocking ssl.SSLSocket objects on a selector: the floor."""
    ctx = _server_context(folder)
    sel = selectors.DefaultSelector()
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4096)
    lsock.setblocking(False)
    sel.register(lsock, selectors.EVENT_READ, None)
    port_file.write_text(str(lsock.getsockname()[1]))
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
                sel.register(tls, selectors.EVENT_READ, "hs")
                continue
            sock = key.fileobj
            assert isinstance(sock, ssl.SSLSocket)
            try:
                if key.data == "hs":
                    sock.do_handshake()
                    sel.modify(sock, selectors.EVENT_READ, "up")
                while True:  # the first record may have come with the handshake
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


SERVERS = {"bufkit": serve_bufkit, "raw-sslsocket": serve_raw, "asyncio": serve_asyncio}


def measure(name: str, folder: Path, count: int) -> float:
    """Return KiB of server RSS per idle TLS connection for server ``name``."""
    port_file = folder / f"{name}.port"
    port_file.unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(HERE))
    proc = subprocess.Popen(
        [sys.executable, __file__, "--serve", name, "--folder", str(folder)],
        env=env,
    )
    try:
        while not port_file.exists() or not port_file.read_text():
            time.sleep(0.05)
        port = int(port_file.read_text())
        time.sleep(0.3)
        before = _rss_kib(proc.pid)
        client_ctx = ssl.create_default_context(cafile=str(folder / "cert.pem"))
        socks = []
        for _ in range(count):
            raw = socket.create_connection(("127.0.0.1", port))
            tls = client_ctx.wrap_socket(raw, server_hostname="localhost")
            tls.sendall(b"ping")
            assert tls.recv(4) == b"ping"
            socks.append(tls)
        time.sleep(1.0)
        after = _rss_kib(proc.pid)
        for tls in socks:
            tls.close()
        return (after - before) / count
    finally:
        proc.kill()
        proc.wait()


def main() -> None:
    """Measure every server and print one line each."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument("--serve")
    parser.add_argument("--folder")
    args = parser.parse_args()
    _raise_nofile()
    if args.serve:
        SERVERS[args.serve](Path(args.folder), Path(args.folder) / f"{args.serve}.port")
        return
    sys.path.insert(0, str(HERE))
    from tests._tls import self_signed

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        self_signed(folder)
        print(f"Python {sys.version.split()[0]}, {ssl.OPENSSL_VERSION}")
        for name in SERVERS:
            per = measure(name, folder, args.connections)
            print(f"{name:>14}: {per:7.1f} KiB per idle TLS connection")


if __name__ == "__main__":
    main()
