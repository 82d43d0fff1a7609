"""Server instructions per TLS echo round trip: bufkit's selectors Loop vs asyncio.

Run from the repository root, under callgrind, twice per server with
different round-trip counts; the difference of the two totals over the
difference of the counts is the server's instructions per round trip (the
start-up cancels out, and the client runs in its own process, untraced)::

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.1 \\
        python benchmarks/tls_echo_instructions.py bufkit 64 1000
    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.3 \\
        python benchmarks/tls_echo_instructions.py bufkit 64 3000
    callgrind_annotate /tmp/cg.1 | grep TOTALS   # and /tmp/cg.3: (t3 - t1) / 2000

Servers: ``bufkit`` (``Loop.listen(Echo, ssl=)``), ``asyncio``
(``loop.create_server(ssl=)`` with an ``asyncio.Protocol`` echo) and
``uvloop``; add ``-plain`` (``bufkit-plain``) for the same over plain TCP,
which tells the cost of TLS from that of the loop. One client connection on
127.0.0.1 sends a message of SIZE bytes and waits for its echo, ROUNDS times.
Instruction counts do not depend on the machine's load, unlike CPU time.
Not a test: figures go to docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import ssl
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from bufkit.bench import _certs  # noqa: E402

SERVERS = ("bufkit", "asyncio", "uvloop")


def client(port: int, size: int, rounds: int, cafile: str | None) -> None:
    """Echo ``rounds`` messages of ``size`` bytes, one at a time."""
    sock = socket.create_connection(("127.0.0.1", port))
    if cafile is not None:
        ctx = ssl.create_default_context(cafile=cafile)
        sock = ctx.wrap_socket(sock, server_hostname="localhost")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    message = b"x" * size
    buf = bytearray(1 << 20)
    with sock:
        for _ in range(rounds):
            sock.sendall(message)
            got = 0
            while got < size:
                got += sock.recv_into(buf)


def _start_client(
    port: int, size: int, rounds: int, cafile: str | None
) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "--client", str(port), str(size), str(rounds)]
    return subprocess.Popen([*args, "" if cafile is None else cafile])


def serve_bufkit(
    ctx: ssl.SSLContext | None, size: int, rounds: int, ca: str | None
) -> None:
    """Serve one client with the selectors Loop until it leaves."""
    from bufkit.adapters.selectors import Loop
    from bufkit.servers import Echo

    loop = Loop()
    listener = loop.listen(Echo, "127.0.0.1", 0, ssl=ctx)
    proc = _start_client(listener.address[1], size, rounds, ca)
    seen = False
    while not seen or loop.connections:
        loop.run_once(1.0)
        seen = seen or bool(loop.connections)
    proc.wait()
    loop.close()


def serve_asyncio(
    ctx: ssl.SSLContext | None, size: int, rounds: int, ca: str | None, uv: bool
) -> None:
    """Serve one client with ``loop.create_server`` until it leaves."""

    class Echo(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def data_received(self, data: bytes) -> None:
            self.transport.write(data)

        def connection_lost(self, exc: Exception | None) -> None:
            done.set_result(None)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(Echo, "127.0.0.1", 0, ssl=ctx)
        proc = _start_client(server.sockets[0].getsockname()[1], size, rounds, ca)
        await done
        proc.wait()
        server.close()

    loop: asyncio.AbstractEventLoop
    if uv:
        import uvloop

        loop = uvloop.new_event_loop()
    else:
        loop = asyncio.new_event_loop()
    done: asyncio.Future[None] = loop.create_future()
    try:
        loop.run_until_complete(main())
    finally:
        loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    """Run one server (or, with ``--client``, the client)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "--client":
        port, size, rounds, ca = args[1:5]
        client(int(port), int(size), int(rounds), ca or None)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [*SERVERS, *(f"{name}-plain" for name in SERVERS)]
    parser.add_argument("server", choices=names)
    parser.add_argument("size", type=int, help="bytes per message")
    parser.add_argument("rounds", type=int, help="round trips")
    opts = parser.parse_args(args)
    plain = opts.server.endswith("-plain")
    name = opts.server.removesuffix("-plain")
    ctx, cafile = None, None
    if not plain:
        files = _certs.self_signed(Path(tempfile.mkdtemp()))
        ctx, cafile = _certs.server_context(files), files.cert
    if name == "bufkit":
        serve_bufkit(ctx, opts.size, opts.rounds, cafile)
    else:
        serve_asyncio(ctx, opts.size, opts.rounds, cafile, name == "uvloop")
    return 0


if __name__ == "__main__":
    sys.exit(main())
